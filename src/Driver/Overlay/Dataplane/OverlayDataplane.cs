using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Skein.Driver.Netlink;
using Skein.Driver.Network.Kernel;
using Skein.Ipam;

namespace Skein.Driver.Overlay.Dataplane;

/// <summary>
/// The kernel side of a multi-host network on one host: a VXLAN port on the network's bridge, and the entries that
/// tell it where the other hosts' endpoints are. Remote endpoints are programmed as static entries (no learning,
/// no ARP or ND across the underlay): a flood entry per remote VTEP on the VXLAN device, a MAC → VTEP entry per
/// remote endpoint on the VXLAN device and MAC → VXLAN port on the bridge, and permanent neighbour entries on the
/// bridge. With neigh_suppress on the VXLAN port the bridge answers ARP and ND for remote endpoints from those
/// neighbour entries, and never sends ARP or ND for its own (gateway) addresses out of that port, so every host's
/// bridge can carry the same gateway address (decisions #14).
/// </summary>
public sealed partial class OverlayDataplane(IHostKernel kernel, ILogger log)
{
    /// <summary>Outer Ethernet is not counted in the MTU: IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14.</summary>
    public const int IPv4Overhead = 50;

    /// <summary>IPv6 40 + UDP 8 + VXLAN 8 + inner Ethernet 14.</summary>
    public const int IPv6Overhead = 70;

    /// <summary>
    /// Makes the VXLAN link exactly what <paramref name="device"/> says: created when missing, recreated when its
    /// VNI, port, local address, learning or checksum settings differ (the kernel cannot change all of them in
    /// place), MTU and master repaired in place, bridge port flags learning off and neigh_suppress on, no IPv6
    /// address generation and no addresses, link up.
    /// A link created by this call is removed again if a later step fails. True when the link was (re)created: its
    /// index is new, so whatever pointed at the old one must be pointed again.
    /// </summary>
    public bool EnsureDevice(OverlayDevice device)
    {
        Validate(device);
        var bridge = kernel.GetLink(device.BridgeName)
            ?? throw SkeinException.NotFound($"bridge {device.BridgeName} for VXLAN device {device.VxlanName} does not exist");
        if (bridge.Kind != "bridge")
            throw SkeinException.Conflict($"{device.BridgeName} is not a bridge ({bridge.Kind ?? "unknown kind"}): cannot attach VXLAN device {device.VxlanName}");

        var link = kernel.GetLink(device.VxlanName);
        if (link is not null && link.Kind != "vxlan")
            throw SkeinException.Conflict($"a link named {device.VxlanName} already exists and is {(link.Kind is null ? "not a VXLAN device" : "a " + link.Kind)}");
        if (link is not null && Mismatch(link, device) is { } difference)
        {
            log.LogInformation("VXLAN device {Vxlan}: {Difference}; recreating it", device.VxlanName, difference);
            kernel.DeleteLink(device.VxlanName);
            link = null;
        }

        bool created = false;
        try
        {
            if (link is null)
            {
                kernel.AddLink(Spec(device, bridge.Index));
                created = true;
                link = kernel.GetLink(device.VxlanName)
                    ?? throw new InvalidOperationException($"VXLAN device {device.VxlanName} is missing right after it was created");
                log.LogInformation("VXLAN device {Vxlan}: created (VNI {Vni}, local {Local}, port {Port}, MTU {Mtu}) on {Bridge}",
                    device.VxlanName, device.Vni, device.LocalVtep, device.Port, device.Mtu, device.BridgeName);
            }
            else
            {
                if (link.Mtu != device.Mtu)
                {
                    log.LogInformation("VXLAN device {Vxlan}: MTU {Was} → {Mtu}", device.VxlanName, link.Mtu, device.Mtu);
                    kernel.SetMtu(link.Index, device.Mtu);
                }
                if (link.MasterIndex != bridge.Index)
                {
                    log.LogInformation("VXLAN device {Vxlan}: attaching to {Bridge}", device.VxlanName, device.BridgeName);
                    kernel.SetMaster(link.Index, bridge.Index);
                }
            }

            // Port flags before the link goes up, so nothing is learned or flooded with the defaults.
            var flags = kernel.GetBridgePortSettings(link.Index);
            if (flags.Learning != false || flags.NeighSuppress != true)
                kernel.SetBridgePortSettings(link.Index, new BridgePortSettings { Learning = false, NeighSuppress = true });

            // The VXLAN port is a wire, not a host: with a link-local address of its own it would send DAD, MLD and
            // router solicitations straight across the underlay, past the bridge's neighbour suppression.
            if (kernel.GetIPv6AddressGenerationMode(link.Index) is { } mode && mode != IPv6AddressGenerationMode.None)
                kernel.SetIPv6AddressGenerationMode(link.Index, IPv6AddressGenerationMode.None);
            foreach (var address in kernel.ListAddresses(link.Index))
                kernel.DeleteAddress(link.Index, address.Address);

            if (!link.IsUp)
                kernel.SetLinkUp(link.Index);
            return created;
        }
        catch when (created)
        {
            TryDelete(device.VxlanName);
            throw;
        }
    }

    /// <summary>Deletes the VXLAN link (its FDB goes with it); false when there was none.</summary>
    public bool RemoveDevice(string vxlanName)
    {
        ValidateName(vxlanName, "VXLAN device name");
        var link = kernel.GetLink(vxlanName);
        if (link is null) return false;
        if (link.Kind != "vxlan")
            throw SkeinException.Conflict($"refusing to delete {vxlanName}: it is {(link.Kind is null ? "not a VXLAN device" : "a " + link.Kind)}");
        bool deleted = kernel.DeleteLink(vxlanName);
        if (deleted) log.LogInformation("VXLAN device {Vxlan}: removed", vxlanName);
        return deleted;
    }

    /// <summary>
    /// The overlay MTU for a VTEP: the MTU of the link holding <paramref name="localVtep"/> minus the VXLAN
    /// overhead (50 over IPv4, 70 over IPv6; decisions #15).
    /// </summary>
    public static int DefaultMtu(IHostKernel kernel, IPAddress localVtep)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        ArgumentNullException.ThrowIfNull(localVtep);
        var vtep = localVtep.IsIPv4MappedToIPv6 ? localVtep.MapToIPv4() : localVtep;
        var holder = kernel.ListAllAddresses().FirstOrDefault(a => a.Address.Address is { } address && address.Equals(vtep))
            ?? throw SkeinException.Invalid($"no interface in this network namespace holds the VTEP address {vtep} (check --advertise-addr)");
        var link = kernel.ListLinks().FirstOrDefault(l => l.Index == holder.Index)
            ?? throw SkeinException.NotFound($"the interface holding the VTEP address {vtep} (index {holder.Index}) disappeared");
        int overhead = vtep.AddressFamily == AddressFamily.InterNetworkV6 ? IPv6Overhead : IPv4Overhead;
        int mtu = link.Mtu - overhead;
        if (mtu < 68)
            throw SkeinException.Invalid($"the MTU of {link.Name} ({link.Mtu}), which holds the VTEP address {vtep}, leaves no room for VXLAN ({overhead} bytes of overhead)");
        return mtu;
    }

    internal static VxlanSpec Spec(OverlayDevice device, int bridgeIndex)
    {
        bool v6 = device.LocalVtep.AddressFamily == AddressFamily.InterNetworkV6;
        return new VxlanSpec(device.VxlanName, device.Vni)
        {
            Local = device.LocalVtep,
            Port = device.Port,
            Learning = false,
            Mtu = device.Mtu,
            MasterIndex = bridgeIndex,
            // Over IPv4 no UDP checksum, as the kernel and every VXLAN deployment default to (the inner frames carry
            // their own); over IPv6 a zero checksum is not allowed (RFC 6935), so compute and require them.
            UdpChecksum = v6 ? null : false,
            UdpZeroChecksum6Tx = v6 ? false : null,
            UdpZeroChecksum6Rx = v6 ? false : null,
        };
    }

    /// <summary>Why an existing VXLAN link cannot be kept, or null when only MTU/master/flags/state may need repair.</summary>
    internal static string? Mismatch(Link link, OverlayDevice device)
    {
        if (link.Details is not VxlanSpec actual) return "the kernel reports no VXLAN settings";
        var wanted = Spec(device, 1);
        if (actual.Vni != wanted.Vni) return $"VNI is {actual.Vni}, not {wanted.Vni}";
        if (actual.Port != wanted.Port) return $"UDP port is {actual.Port}, not {wanted.Port}";
        if (!Equals(actual.Local, wanted.Local)) return $"local address is {actual.Local?.ToString() ?? "unset"}, not {wanted.Local}";
        if (actual.Group is not null) return $"it has a default remote/group {actual.Group}";
        if (actual.Learning) return "address learning is on";
        if (actual.Proxy || actual.L2Miss || actual.L3Miss) return "proxy or miss notifications are on";
        if (wanted.UdpChecksum is { } checksum && actual.UdpChecksum is { } actualChecksum && checksum != actualChecksum)
            return $"UDP checksums are {(actualChecksum ? "on" : "off")}";
        if (wanted.UdpZeroChecksum6Tx is { } zeroTx && actual.UdpZeroChecksum6Tx is { } actualZeroTx && zeroTx != actualZeroTx)
            return "zero UDP checksums over IPv6 are allowed on transmit";
        if (wanted.UdpZeroChecksum6Rx is { } zeroRx && actual.UdpZeroChecksum6Rx is { } actualZeroRx && zeroRx != actualZeroRx)
            return "zero UDP checksums over IPv6 are accepted on receive";
        return null;
    }

    private void TryDelete(string name)
    {
        try
        {
            kernel.DeleteLink(name);
        }
        catch (Exception ex)
        {
            log.LogWarning("VXLAN device {Vxlan}: could not remove it after a failed setup: {Error}", name, KernelFailure.Describe(ex) ?? ex.Message);
        }
    }

    internal static void Validate(OverlayDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        ValidateName(device.BridgeName, "bridge name");
        ValidateName(device.VxlanName, "VXLAN device name");
        if (device.Vni is < 1 or > VxlanSpec.MaxVni)
            throw SkeinException.Invalid($"VNI {device.Vni} of {device.VxlanName} must be between 1 and {VxlanSpec.MaxVni}");
        if (device.Port == 0)
            throw SkeinException.Invalid($"VXLAN UDP port of {device.VxlanName} must not be 0");
        if (device.Mtu is < 68 or > 65535)
            throw SkeinException.Invalid($"MTU {device.Mtu} of {device.VxlanName} must be between 68 and 65535");
        var vtep = device.LocalVtep;
        if (vtep is null || vtep.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
            throw SkeinException.Invalid($"local VTEP of {device.VxlanName} must be an IPv4 or IPv6 address, not {vtep?.ToString() ?? "none"}");
        if (vtep.Equals(IPAddress.Any) || vtep.Equals(IPAddress.IPv6Any) || vtep.IsIPv6Multicast
            || (vtep.AddressFamily == AddressFamily.InterNetwork && (vtep.GetAddressBytes()[0] & 0xF0) == 0xE0))
            throw SkeinException.Invalid($"local VTEP {vtep} of {device.VxlanName} must be a unicast address");
        if (vtep.IsIPv4MappedToIPv6)
            throw SkeinException.Invalid($"local VTEP {vtep} of {device.VxlanName} is an IPv4-mapped IPv6 address: give it as IPv4");
    }

    private static void ValidateName(string? name, string what)
    {
        try
        {
            LinkSpec.ValidateName(name!, what);
        }
        catch (ArgumentException ex)
        {
            throw SkeinException.Invalid($"{what}: {ex.Message.Split(" (Parameter", 2)[0]}");
        }
    }
}
