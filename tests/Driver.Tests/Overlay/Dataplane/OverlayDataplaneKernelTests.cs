using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Skein.Driver.Netlink;
using Skein.Driver.Network.Kernel;
using Skein.Driver.Overlay.Dataplane;
using Skein.Driver.Tests.Netlink;
using Skein.Driver.Tests.TestSupport;
using Skein.Ipam;
using static Skein.Driver.Tests.Overlay.Dataplane.OverlayLab;

namespace Skein.Driver.Tests.Overlay.Dataplane;

/// <summary>
/// The VXLAN data plane on a real kernel: two hosts (<see cref="OverlayLab"/>) driven only through
/// <see cref="OverlayDataplane"/>; `bridge -j` and `ip -j` are the independent view of what the kernel holds, and a
/// packet socket on the underlay shows what crossed it.
/// </summary>
public class OverlayDataplaneKernelTests
{
    private const string FloodMac = "00:00:00:00:00:00";

    [SkippableFact]
    public void Containers_on_two_hosts_talk_only_while_each_host_has_the_other_in_its_view_and_ARP_and_ND_stay_local()
    {
        Skip.IfNot(NetNs.IsSupported, NetNs.SkipReason);
        Skip.IfNot(NetNsCommand.Exists("ping") && NetNsCommand.Exists("bridge"), "needs ping (iputils-ping) and bridge (iproute2)");
        using var lab = new OverlayLab();
        var (a, b) = (lab.A, lab.B);
        Assert.Equal(1450, a.Device.Mtu); // the underlay veth's 1500 − 50

        a.Dataplane.EnsureDevice(a.Device);
        b.Dataplane.EnsureDevice(b.Device);
        Assert.Equal(default, a.Dataplane.Apply(a.Device, PeerView.Empty));
        Assert.True(Unreachable(a, b.ContainerV4), "no peers programmed, yet the remote container answered over IPv4");
        Assert.True(Unreachable(a, b.ContainerV6), "no peers programmed, yet the remote container answered over IPv6");
        AssertDevice(a);
        // Forget the failed lookups, or a resolution still retrying from before Apply may time out just after it.
        a.Container.Exec("ip", "neigh", "flush", "dev", "eth0");

        using var capture = VxlanCapture.Start(a.Ns, Port);
        var resultA = a.Dataplane.Apply(a.Device, b.View);
        var resultB = b.Dataplane.Apply(b.Device, a.View);
        // Flood entry, MAC → VTEP, bridge MAC → VXLAN port, two neighbours.
        Assert.Equal(new PeerSyncResult(5, 0, 0, 0, 0, 0), resultA);
        Assert.Equal(resultA, resultB);
        AssertPeerEntries(a, b);
        AssertPeerEntries(b, a);

        Assert.True(Ping(a, b.ContainerV4, count: 2), "IPv4 ping across the overlay failed");
        Assert.True(Ping(a, b.ContainerV6, count: 2), "IPv6 ping across the overlay failed");
        Assert.True(Ping(b, a.ContainerV4), "IPv4 ping back across the overlay failed");
        Assert.True(Ping(a, IPAddress.Parse("10.77.0.1")), "the local gateway did not answer over IPv4");
        Assert.True(Ping(a, IPAddress.Parse("fd77::1")), "the local gateway did not answer over IPv6");
        Assert.True(Ping(b, IPAddress.Parse("10.77.0.1")), "the local gateway did not answer over IPv4 on host B");

        // The remote endpoint was resolved to its own MAC, the gateway to this host's bridge (not the other's).
        Assert.Equal(b.ContainerMacText, ContainerNeighbour(a, b.ContainerV4));
        Assert.Equal(b.ContainerMacText, ContainerNeighbour(a, b.ContainerV6));
        Assert.Equal(a.BridgeMac, ContainerNeighbour(a, IPAddress.Parse("10.77.0.1")));
        Assert.Equal(a.BridgeMac, ContainerNeighbour(a, IPAddress.Parse("fd77::1")));
        Assert.Equal(b.BridgeMac, ContainerNeighbour(b, IPAddress.Parse("10.77.0.1")));

        var afterPings = capture.Read();
        Assert.True(afterPings.Other >= 6, $"the capture saw no echo traffic inside VXLAN: {afterPings}");
        Assert.True((0, 0, 0) == (afterPings.Arp, afterPings.NeighborSolicitations, afterPings.NeighborAdvertisements), $"{afterPings}: {string.Join("; ", capture.Solicitations)}");

        // The capture can see ARP and ND: an address nobody announced is looked for across the underlay.
        Assert.True(Unreachable(a, IPAddress.Parse("10.77.0.99")));
        Assert.True(Unreachable(a, IPAddress.Parse("fd77::99")));
        var control = capture.Read();
        Assert.True(control.Arp >= 1, $"an ARP request for an unknown address should have been flooded: {control}");
        Assert.True(control.NeighborSolicitations >= 1, $"a neighbour solicitation for an unknown address should have been flooded: {control}");

        // The bridge's own entries for its local container (learned, not permanent) survive every Apply.
        Assert.Contains(Neighbours(a), n => n.String("dst") == a.ContainerV4.ToString() && !n.Strings("state").Contains("PERMANENT"));

        // The endpoint leaves, the host stays: its entries go, the flood entry stays, the local entries stay.
        var leave = a.Dataplane.Apply(a.Device, b.View with { Endpoints = [] });
        Assert.Equal(new PeerSyncResult(0, 4, 0, 1, 0, 0), leave);
        AssertPeerEntries(a, b, withEndpoint: false);
        Assert.Contains(Neighbours(a), n => n.String("dst") == a.ContainerV4.ToString());

        // The host leaves too: nothing of it is left, and the containers no longer reach each other.
        Assert.Equal(new PeerSyncResult(0, 1, 0, 0, 0, 0), a.Dataplane.Apply(a.Device, PeerView.Empty));
        Assert.DoesNotContain(VxlanFdb(a), e => e.String("dst") is not null);
        Assert.DoesNotContain(Neighbours(a), n => n.Strings("state").Contains("PERMANENT"));
        Assert.True(Unreachable(a, b.ContainerV4), "the peer was removed from the view, yet its container still answered");
    }

    [SkippableFact]
    public void Apply_and_EnsureDevice_repair_drift_and_change_nothing_when_run_again()
    {
        Skip.IfNot(NetNs.IsSupported, NetNs.SkipReason);
        Skip.IfNot(NetNsCommand.Exists("ping") && NetNsCommand.Exists("bridge"), "needs ping (iputils-ping) and bridge (iproute2)");
        using var lab = new OverlayLab();
        var (a, b) = (lab.A, lab.B);
        foreach (var (host, other) in new[] { (a, b), (b, a) })
        {
            host.Dataplane.EnsureDevice(host.Device);
            host.Dataplane.Apply(host.Device, other.View);
        }
        int index = a.Kernel.GetLink(Vxlan)!.Index;

        // Idempotent: the same link, nothing changed.
        a.Dataplane.EnsureDevice(a.Device);
        Assert.Equal(index, a.Kernel.GetLink(Vxlan)!.Index);
        Assert.Equal(new PeerSyncResult(0, 0, 0, 5, 0, 0), a.Dataplane.Apply(a.Device, b.View));

        // Entries deleted by hand come back; entries added by hand on skein's device and bridge go.
        string remoteMac = b.ContainerMacText;
        a.Ns.Exec("bridge", "fdb", "del", remoteMac, "dev", Vxlan, "dst", b.Underlay.ToString(), "self");
        a.Ns.Exec("bridge", "fdb", "del", FloodMac, "dev", Vxlan, "dst", b.Underlay.ToString(), "self");
        a.Ns.Exec("bridge", "fdb", "del", remoteMac, "dev", Vxlan, "master");
        a.Ns.Exec("ip", "neigh", "del", b.ContainerV4.ToString(), "dev", Bridge);
        a.Ns.Exec("bridge", "fdb", "append", FloodMac, "dev", Vxlan, "dst", "198.18.99.7", "self");
        a.Ns.Exec("bridge", "fdb", "add", "02:77:00:00:00:77", "dev", Vxlan, "dst", "198.18.99.7", "self");
        a.Ns.Exec("bridge", "fdb", "add", "02:77:00:00:00:77", "dev", Vxlan, "master", "static");
        a.Ns.Exec("ip", "neigh", "add", "10.77.0.77", "lladdr", "02:77:00:00:00:77", "dev", Bridge, "nud", "permanent");
        a.Ns.Exec("ip", "neigh", "replace", b.ContainerV6.ToString(), "lladdr", "02:77:00:00:00:77", "dev", Bridge, "nud", "permanent");
        var repaired = a.Dataplane.Apply(a.Device, b.View);
        Assert.Equal(new PeerSyncResult(4, 4, 1, 0, 0, 0), repaired);
        AssertPeerEntries(a, b);
        Assert.True(Ping(a, b.ContainerV4), "IPv4 ping failed after the entries were repaired");
        Assert.True(Ping(a, b.ContainerV6), "IPv6 ping failed after the entries were repaired");
        Assert.Equal(new PeerSyncResult(0, 0, 0, 5, 0, 0), a.Dataplane.Apply(a.Device, b.View));

        // The remote endpoint moves to another host: its entry is rewritten in place.
        var moved = new PeerView([b.Underlay, IPAddress.Parse("198.18.99.3")], [b.AsRemote with { Vtep = IPAddress.Parse("198.18.99.3") }]);
        Assert.Equal(new PeerSyncResult(1, 0, 1, 4, 0, 0), a.Dataplane.Apply(a.Device, moved));
        Assert.Contains(VxlanFdb(a), e => e.String("mac") == remoteMac && e.String("dst") == "198.18.99.3");
        Assert.DoesNotContain(VxlanFdb(a), e => e.String("mac") == remoteMac && e.String("dst") == b.Underlay.ToString());
        a.Dataplane.Apply(a.Device, b.View);

        // Link drift: MTU, master, port flags and state are repaired in place.
        a.Ns.Exec("ip", "link", "set", Vxlan, "mtu", "1300");
        a.Ns.Exec("bridge", "link", "set", "dev", Vxlan, "learning", "on", "neigh_suppress", "off");
        a.Ns.Exec("ip", "link", "set", Vxlan, "down");
        a.Ns.Exec("ip", "link", "set", Vxlan, "addrgenmode", "eui64");
        a.Ns.Exec("ip", "addr", "add", "fe80::77/64", "dev", Vxlan, "nodad");
        a.Dataplane.EnsureDevice(a.Device);
        Assert.Equal(index, a.Kernel.GetLink(Vxlan)!.Index);
        AssertDevice(a);
        a.Ns.Exec("ip", "link", "set", Vxlan, "nomaster");
        a.Dataplane.EnsureDevice(a.Device);
        AssertDevice(a);
        a.Dataplane.Apply(a.Device, b.View);
        Assert.True(Ping(a, b.ContainerV4), "IPv4 ping failed after the link was repaired");

        // A link whose VNI or port is wrong cannot be changed in place: it is recreated.
        a.Ns.Exec("ip", "link", "del", Vxlan);
        a.Ns.Exec("ip", "link", "add", Vxlan, "type", "vxlan", "id", "99", "dstport", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "local", a.Underlay.ToString());
        a.Dataplane.EnsureDevice(a.Device);
        AssertDevice(a);
        Assert.Equal(new PeerSyncResult(3, 0, 0, 2, 0, 0), a.Dataplane.Apply(a.Device, b.View));
        Assert.True(Ping(a, b.ContainerV4), "IPv4 ping failed after the link was recreated");
    }

    [SkippableFact]
    public void Over_an_IPv6_underlay_the_MTU_allows_for_70_bytes_and_UDP_checksums_stay_on()
    {
        Skip.IfNot(NetNs.IsSupported, NetNs.SkipReason);
        Skip.IfNot(NetNsCommand.Exists("ping") && NetNsCommand.Exists("bridge"), "needs ping (iputils-ping) and bridge (iproute2)");
        using var lab = new OverlayLab(ipv6Underlay: true);
        var (a, b) = (lab.A, lab.B);
        Assert.Equal(1430, a.Device.Mtu);
        foreach (var (host, other) in new[] { (a, b), (b, a) })
        {
            host.Dataplane.EnsureDevice(host.Device);
            Assert.Equal(new PeerSyncResult(5, 0, 0, 0, 0, 0), host.Dataplane.Apply(host.Device, other.View));
        }
        AssertDevice(a);
        var data = KernelJson.Single(a.Ns.IpJson("-d", "link", "show", Vxlan)).Path("linkinfo", "info_data");
        Assert.Equal(((bool?)false, (bool?)false), (data.Bool("udp_zero_csum6_tx"), data.Bool("udp_zero_csum6_rx")));
        AssertPeerEntries(a, b);

        using var capture = VxlanCapture.Start(a.Ns, Port);
        Assert.True(Ping(a, b.ContainerV4, count: 2), "IPv4 ping across the IPv6 underlay failed");
        Assert.True(Ping(a, b.ContainerV6, count: 2), "IPv6 ping across the IPv6 underlay failed");
        var seen = capture.Read();
        Assert.True(seen.Other >= 8, $"the capture saw no echo traffic inside VXLAN over IPv6: {seen}");
        Assert.True((0, 0) == (seen.Arp, seen.NeighborSolicitations), $"{seen}: {string.Join("; ", capture.Solicitations)}");
    }

    [SkippableFact]
    public void RemoveDevice_deletes_only_a_VXLAN_link_and_EnsureDevice_names_what_is_in_the_way()
    {
        Skip.IfNot(NetNs.IsSupported, NetNs.SkipReason);
        using var ns = NetNs.Create();
        using var kernel = new RtNetlinkKernel(RtNetlink.OpenNamespace(ns.Path));
        var dataplane = new OverlayDataplane(kernel, NullLogger.Instance);
        var device = new OverlayDevice("br0", OverlayNames.Vxlan("x"), 77, IPAddress.Parse("198.18.99.1"), 4789, 1450);

        var missingBridge = Assert.Throws<SkeinException>(() => dataplane.EnsureDevice(device));
        Assert.Equal(ErrorKind.NotFound, missingBridge.Kind);
        Assert.Contains("bridge br0", missingBridge.Message);
        Assert.Null(kernel.GetLink(device.VxlanName));

        kernel.AddLink(new BridgeSpec("br0"));
        kernel.AddLink(new BridgeSpec(device.VxlanName));
        var inTheWay = Assert.Throws<SkeinException>(() => dataplane.EnsureDevice(device));
        Assert.Equal(ErrorKind.Conflict, inTheWay.Kind);
        Assert.Contains($"{device.VxlanName} already exists and is a bridge", inTheWay.Message);
        Assert.Throws<SkeinException>(() => dataplane.RemoveDevice(device.VxlanName));
        Assert.NotNull(kernel.GetLink(device.VxlanName));
        Assert.Throws<SkeinException>(() => dataplane.Apply(device, PeerView.Empty));

        kernel.DeleteLink(device.VxlanName);
        dataplane.EnsureDevice(device);
        Assert.Equal("vxlan", kernel.GetLink(device.VxlanName)!.Kind);
        Assert.True(dataplane.RemoveDevice(device.VxlanName));
        Assert.Null(kernel.GetLink(device.VxlanName));
        Assert.False(dataplane.RemoveDevice(device.VxlanName));
        Assert.NotNull(kernel.GetLink("br0"));
    }

    [SkippableFact]
    public void A_failed_step_leaves_no_half_configured_VXLAN_link_behind()
    {
        Skip.IfNot(NetNs.IsSupported, NetNs.SkipReason);
        using var ns = NetNs.Create();
        var faulty = new FaultyKernel(new RtNetlinkKernel(RtNetlink.OpenNamespace(ns.Path)))
        {
            FailWhen = (operation, _) => operation == nameof(IHostKernel.SetBridgePortSettings),
        };
        using var kernel = faulty;
        kernel.AddLink(new BridgeSpec("br0"));
        var dataplane = new OverlayDataplane(kernel, NullLogger.Instance);
        var device = new OverlayDevice("br0", OverlayNames.Vxlan("x"), 77, IPAddress.Parse("198.18.99.1"), 4789, 1450);

        Assert.Throws<NetlinkException>(() => dataplane.EnsureDevice(device));
        Assert.Equal(1, faulty.Failures);
        Assert.Null(kernel.GetLink(device.VxlanName));
    }

    [SkippableFact]
    public void DefaultMtu_is_the_underlay_MTU_less_the_VXLAN_overhead_and_names_a_VTEP_no_link_holds()
    {
        Skip.IfNot(NetNs.IsSupported, NetNs.SkipReason);
        using var ns = NetNs.Create();
        using var kernel = new RtNetlinkKernel(RtNetlink.OpenNamespace(ns.Path));
        kernel.AddLink(new VethSpec("ul0", "ul0p") { Mtu = 9000, PeerMtu = 9000 });
        kernel.AddLink(new VethSpec("ul1", "ul1p"));
        int ul0 = kernel.GetLink("ul0")!.Index, ul1 = kernel.GetLink("ul1")!.Index;
        kernel.AddAddress(ul0, IpPrefix.Parse("198.18.99.1/24"), AddressFlags.None);
        kernel.AddAddress(ul1, IpPrefix.Parse("198.18.98.1/24"), AddressFlags.None);
        kernel.AddAddress(ul1, IpPrefix.Parse("2001:db8::1/64"), AddressFlags.NoDad);

        Assert.Equal(8950, OverlayDataplane.DefaultMtu(kernel, IPAddress.Parse("198.18.99.1")));
        Assert.Equal(1450, OverlayDataplane.DefaultMtu(kernel, IPAddress.Parse("198.18.98.1")));
        Assert.Equal(1430, OverlayDataplane.DefaultMtu(kernel, IPAddress.Parse("2001:db8::1")));
        var missing = Assert.Throws<SkeinException>(() => OverlayDataplane.DefaultMtu(kernel, IPAddress.Parse("198.18.99.9")));
        Assert.Equal(ErrorKind.Invalid, missing.Kind);
        Assert.Contains("198.18.99.9", missing.Message);
    }

    private static void AssertDevice(Host host)
    {
        var link = KernelJson.Single(host.Ns.IpJson("-d", "link", "show", Vxlan));
        var data = link.Path("linkinfo", "info_data");
        Assert.Equal((Vni, host.Underlay.ToString(), false, (int)Port), (data.Int("id")!.Value, data.String("local") ?? data.String("local6"), data.Bool("learning")!.Value, data.Int("port")!.Value));
        Assert.False(data.TryGetProperty("group", out _) || data.TryGetProperty("remote", out _) || data.TryGetProperty("group6", out _), data.ToString());
        Assert.Equal((Bridge, host.Device.Mtu), (link.String("master"), link.Int("mtu")!.Value));
        Assert.Contains("UP", link.Strings("flags"));
        Assert.Equal("none", link.String("inet6_addr_gen_mode"));
        Assert.False(KernelJson.Single(host.Ns.IpJson("addr", "show", "dev", Vxlan)).Path("addr_info").EnumerateArray().Any(), "the VXLAN port has addresses");
        var port = KernelJson.Single(host.Ns.BridgeJson("-d", "link", "show", "dev", Vxlan));
        Assert.Equal(((bool?)false, (bool?)true), (port.Bool("learning"), port.Bool("neigh_suppress")));
    }

    /// <summary>Exactly the entries <paramref name="remote"/> calls for on <paramref name="local"/>, no more.</summary>
    private static void AssertPeerEntries(Host local, Host remote, bool withEndpoint = true)
    {
        var fdb = VxlanFdb(local);
        var own = fdb.Where(e => e.String("dst") is not null).Select(e => (e.String("mac"), e.String("dst"))).Order().ToList();
        var expected = new List<(string?, string?)> { (FloodMac, remote.Underlay.ToString()) };
        if (withEndpoint) expected.Add((remote.ContainerMacText, remote.Underlay.ToString()));
        Assert.Equal(expected.Order(), own);

        var bridgeStatic = fdb.Where(e => e.String("master") == Bridge && e.String("state") != "permanent").Select(e => e.String("mac")).ToList();
        Assert.Equal(withEndpoint ? [remote.ContainerMacText] : [], bridgeStatic);

        var permanent = Neighbours(local).Where(n => n.Strings("state").Contains("PERMANENT"))
            .Select(n => (n.String("dst"), n.String("lladdr"))).Order().ToList();
        var expectedNeighbours = withEndpoint
            ? new[] { (remote.ContainerV4.ToString(), remote.ContainerMacText), (remote.ContainerV6.ToString(), remote.ContainerMacText) }
            : [];
        Assert.Equal(expectedNeighbours.Select(n => ((string?)n.Item1, (string?)n.Item2)).Order(), permanent);
    }

    private static List<System.Text.Json.JsonElement> VxlanFdb(Host host) =>
        KernelJson.Array(host.Ns.BridgeJson("fdb", "show", "dev", Vxlan));

    private static List<System.Text.Json.JsonElement> Neighbours(Host host) =>
        KernelJson.Array(host.Ns.IpJson("neigh", "show", "dev", Bridge));

    private static string? ContainerNeighbour(Host host, IPAddress address) =>
        KernelJson.Array(host.Container.IpJson("neigh", "show", address.ToString(), "dev", "eth0")).Select(n => n.String("lladdr")).SingleOrDefault();
}
