using System.Net;
using System.Net.NetworkInformation;
using Microsoft.Extensions.Logging;
using Skein.Driver.Firewall;
using Skein.Driver.Netlink;
using Skein.Driver.Network.Kernel;
using Skein.Driver.Network.State;
using Skein.Ipam;

namespace Skein.Driver.Network.Setup;

/// <summary>
/// The kernel side of a network, as a pipeline of named steps: bridge, gateway addresses, forwarding, link up,
/// firewall. Every step converges, so the same pipeline creates a network, repeats a retried CreateNetwork and
/// repairs a network whose bridge or rules went missing.
/// </summary>
public sealed class BridgeSetup(IHostKernel kernel, IFirewall firewall, ILogger log)
{
    private sealed class Context(NetworkRecord network)
    {
        public NetworkRecord Network { get; } = network;
        public int BridgeIndex { get; set; }
    }

    private readonly SetupStep<Context>[] _linkSteps =
    [
        new("create bridge", c => CreateBridge(kernel, c)),
        new("add gateway addresses", c => AddGatewayAddresses(kernel, c)),
        new("enable IPv4 forwarding on the bridge", c => EnableForwarding(kernel, c)),
        new("bring the bridge up", c => BringUp(kernel, c)),
    ];

    private SetupStep<Context>[] AllSteps => [.. _linkSteps, new("program the firewall", c => ProgramFirewall(firewall, c))];

    /// <summary>Brings the kernel to what the record says; on failure nothing this call added is left behind.</summary>
    public void Apply(NetworkRecord network) =>
        SetupPipeline.Run(AllSteps, new Context(network), log, Subject(network));

    /// <summary>The link steps only: the reconciler hands all firewall rules over in one batch instead.</summary>
    public void ApplyLinks(NetworkRecord network) =>
        SetupPipeline.Run(_linkSteps, new Context(network), log, Subject(network));

    private static string Subject(NetworkRecord network) =>
        $"network {network.NetworkId[..Math.Min(12, network.NetworkId.Length)]} ({network.BridgeName})";

    /// <summary>Best effort: removes the firewall rules and the bridge; returns the failures it logged.</summary>
    public IReadOnlyList<string> Teardown(NetworkRecord network)
    {
        var failures = new List<string>();
        try
        {
            firewall.RemoveNetwork(network.BridgeName);
        }
        catch (Exception ex)
        {
            failures.Add($"removing firewall rules of {network.BridgeName}: {KernelFailure.Describe(ex) ?? ex.Message}");
        }
        try
        {
            kernel.DeleteLink(network.BridgeName);
        }
        catch (Exception ex)
        {
            failures.Add($"deleting bridge {network.BridgeName}: {KernelFailure.Describe(ex) ?? ex.Message}");
        }
        foreach (var failure in failures)
            log.LogWarning("network {Network}: {Failure}", network.NetworkId, failure);
        return failures;
    }

    /// <summary>Deletes one link (a VXLAN port) by name; false when it was not there.</summary>
    public bool RemoveLink(string name) => kernel.DeleteLink(name);

    public static NetworkFirewall FirewallView(NetworkRecord network) =>
        new(network.BridgeName,
            network.IPv4Subnets.Concat(network.IPv6Subnets).Select(s => IPNetwork.Parse(s)).ToList(),
            network.Internal,
            network.InterContainerConnectivity);

    /// <summary>A fixed MAC keeps the bridge's address from changing as ports come and go.</summary>
    public static PhysicalAddress BridgeMac(NetworkRecord network) =>
        PhysicalAddress.Parse(LinkNames.GeneratedMac("bridge:" + network.NetworkId).Replace(':', '-').ToUpperInvariant());

    private static Action? CreateBridge(IHostKernel kernel, Context c)
    {
        var name = c.Network.BridgeName;
        var existing = kernel.GetLink(name);
        if (existing is not null)
        {
            if (existing.Kind != "bridge")
                throw SkeinException.Conflict($"a link named {name} already exists and is {(existing.Kind is null ? "not a bridge" : "a " + existing.Kind)}");
            c.BridgeIndex = existing.Index;
            if (existing.Mtu != c.Network.Mtu)
                kernel.SetMtu(existing.Index, c.Network.Mtu);
            return null;
        }
        kernel.AddLink(new BridgeSpec(name) { Mtu = c.Network.Mtu, MacAddress = BridgeMac(c.Network) });
        var created = kernel.GetLink(name) ?? throw new InvalidOperationException($"bridge {name} is missing right after it was created");
        c.BridgeIndex = created.Index;
        return () => kernel.DeleteLink(name);
    }

    private static Action? AddGatewayAddresses(IHostKernel kernel, Context c)
    {
        var present = kernel.ListAddresses(c.BridgeIndex).Select(a => a.Address).ToHashSet();
        var added = new List<IpPrefix>();
        foreach (var (text, flags) in c.Network.IPv4Gateways.Select(g => (g, AddressFlags.None))
                     .Concat(c.Network.IPv6Gateways.Select(g => (g, AddressFlags.NoDad))))
        {
            var gateway = IpPrefix.Parse(text);
            if (present.Contains(gateway))
                continue;
            try
            {
                kernel.AddAddress(c.BridgeIndex, gateway, flags);
                added.Add(gateway);
            }
            catch (NetlinkException ex) when (ex.IsAlreadyExists)
            {
            }
            catch (NetlinkException ex) when (!gateway.IsIPv4 && kernel.TryReadSysctl($"net.ipv6.conf.{c.Network.BridgeName}.disable_ipv6") == "1")
            {
                // The kernel only says "permission denied"; the cause is a host setting skein cannot change (decisions #13).
                throw new SkeinException(ErrorKind.Conflict,
                    $"cannot put IPv6 gateway {gateway} on {c.Network.BridgeName}: IPv6 is disabled on new interfaces (net.ipv6.conf.default.disable_ipv6 = 1); enable IPv6 on the host or create the network without --ipv6", ex);
            }
        }
        var index = c.BridgeIndex;
        return added.Count == 0 ? null : () =>
        {
            foreach (var gateway in added)
                kernel.DeleteAddress(index, gateway);
        };
    }

    private static Action? EnableForwarding(IHostKernel kernel, Context c)
    {
        if (c.Network.IPv4Subnets.Count == 0)
            return null;
        if (kernel.GetIPv4DeviceConf(c.BridgeIndex, IPv4DeviceConf.Forwarding) != 1)
            kernel.SetIPv4DeviceConf(c.BridgeIndex, IPv4DeviceConf.Forwarding, 1);
        return null;
    }

    private static Action? BringUp(IHostKernel kernel, Context c)
    {
        var link = kernel.GetLink(c.Network.BridgeName);
        if (link is { IsUp: true })
            return null;
        kernel.SetLinkUp(c.BridgeIndex);
        return null;
    }

    private static Action? ProgramFirewall(IFirewall firewall, Context c)
    {
        firewall.ApplyNetwork(FirewallView(c.Network));
        var bridge = c.Network.BridgeName;
        return () => firewall.RemoveNetwork(bridge);
    }
}
