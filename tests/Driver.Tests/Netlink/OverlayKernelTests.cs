using System.Net;
using System.Net.NetworkInformation;
using Skein.Driver.Netlink;
using Skein.Driver.Tests.TestSupport;

namespace Skein.Driver.Tests.Netlink;

/// <summary>
/// The multi-host VXLAN layout skein builds, in four namespaces: two "hosts" joined by a veth
/// underlay (198.18.0.1 and .2), each with a bridge, a VXLAN port (learning off, neigh_suppress on)
/// with a flood entry to the other VTEP, and a veth endpoint moved into its own "container"
/// namespace. Remote endpoints are programmed as skein will: a VXLAN FDB entry MAC → VTEP, a bridge
/// FDB entry MAC → VXLAN port, and permanent neighbours on the bridge. A real ping then crosses it.
/// </summary>
public class OverlayKernelTests
{
    private const int Vni = 4242;

    private sealed record Host(string Underlay, string Endpoint, string Mac, string EndpointV6);

    private static readonly Host HostA = new("198.18.0.1", "10.77.0.1", "02-77-00-00-00-01", "fd77::1");
    private static readonly Host HostB = new("198.18.0.2", "10.77.0.2", "02-77-00-00-00-02", "fd77::2");

    [SkippableFact]
    public void Two_hosts_joined_by_vxlan_ping_each_other_over_IPv4_and_IPv6()
    {
        Skip.IfNot(NetNs.IsSupported, NetNs.SkipReason);
        Skip.IfNot(NetNsCommand.Exists("ping"), "needs ping (iputils-ping) for the end-to-end check");
        using var hostA = NetNs.Create();
        using var hostB = NetNs.Create();
        using var endpointA = NetNs.Create();
        using var endpointB = NetNs.Create();
        using var netA = RtNetlink.OpenNamespace(hostA.Path);
        using var netB = RtNetlink.OpenNamespace(hostB.Path);

        // Underlay: one veth whose peer is created straight in host B.
        using (var hostBFd = hostB.Open())
            netA.AddLink(new VethSpec("ul0", "ul0") { PeerNamespaceFd = (int)hostBFd.DangerousGetHandle() });
        int underlayA = SetUpUnderlay(netA, HostA);
        int underlayB = SetUpUnderlay(netB, HostB);

        var (bridgeA, vxlanA) = BuildOverlay(netA, underlayA, HostA, hostA, endpointA);
        var (bridgeB, vxlanB) = BuildOverlay(netB, underlayB, HostB, hostB, endpointB);
        ProgramRemote(netA, bridgeA, vxlanA, HostB);
        ProgramRemote(netB, bridgeB, vxlanB, HostA);

        // An extra route in endpoint A, to check routes through the same path.
        using (var epA = RtNetlink.OpenNamespace(endpointA.Path))
            epA.AddRoute(new Route(IpPrefix.Parse("10.88.0.0/16")) { Gateway = IPAddress.Parse(HostB.Endpoint), OutputIndex = epA.GetLink("eth0")!.Index, Metric = 7 });

        AssertKernelHolds(hostA, HostA, HostB);
        AssertKernelHolds(hostB, HostB, HostA);
        var route = KernelJson.Array(endpointA.IpJson("route", "show")).Single(r => r.String("dst") == "10.88.0.0/16");
        Assert.Equal((HostB.Endpoint, "eth0", 7), (route.String("gateway"), route.String("dev"), route.Int("metric")));

        var ping4 = endpointA.TryExec("ping", "-c", "3", "-i", "0.2", "-W", "2", HostB.Endpoint);
        Assert.True(ping4.ExitCode == 0, $"IPv4 ping across the overlay failed:\n{ping4.StandardOutput}{ping4.StandardError}");
        var ping6 = endpointB.TryExec("ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", HostA.EndpointV6);
        Assert.True(ping6.ExitCode == 0, $"IPv6 ping across the overlay failed:\n{ping6.StandardOutput}{ping6.StandardError}");

        // The traffic really went through VXLAN: the VXLAN devices counted packets both ways.
        var stats = KernelJson.Single(hostA.IpJson("-s", "link", "show", "vx0")).Path("stats64");
        Assert.True(stats.Path("tx").Int("packets") >= 3 && stats.Path("rx").Int("packets") >= 3, stats.ToString());
    }

    private static int SetUpUnderlay(RtNetlink net, Host host)
    {
        int index = net.GetLink("ul0")!.Index;
        net.AddAddress(index, new IpPrefix(IPAddress.Parse(host.Underlay), 24));
        net.SetLinkUp(index);
        return index;
    }

    private static (int Bridge, int Vxlan) BuildOverlay(RtNetlink net, int underlay, Host host, NetNs hostNs, NetNs endpointNs)
    {
        net.AddLink(new BridgeSpec("br0") { Mtu = 1450, Up = true });
        int bridge = net.GetLink("br0")!.Index;
        net.AddLink(new VxlanSpec("vx0", Vni)
        {
            Local = IPAddress.Parse(host.Underlay),
            UnderlayIndex = underlay,
            Learning = false,
            MasterIndex = bridge,
            Up = true,
        });
        int vxlan = net.GetLink("vx0")!.Index;
        net.SetBridgePortFlags(vxlan, new BridgePortSettings { Learning = false, NeighSuppress = true });
        net.AppendFdb(new FdbEntry(vxlan, FdbEntry.FloodMac, IPAddress.Parse(host == HostA ? HostB.Underlay : HostA.Underlay)));

        // Endpoint: a veth made on the host, its container end moved into the endpoint namespace.
        net.AddLink(new VethSpec("vethep", "ctr0") { Mtu = 1450, PeerMtu = 1450, MasterIndex = bridge, Up = true });
        int container = net.GetLink("ctr0")!.Index;
        using (var endpointFd = endpointNs.Open())
            net.MoveToNamespace(container, (int)endpointFd.DangerousGetHandle());
        Assert.Null(net.GetLink("ctr0"));

        using var endpoint = RtNetlink.OpenNamespace(endpointNs.Path);
        int eth = endpoint.GetLink("ctr0")!.Index;
        endpoint.Rename(eth, "eth0");
        endpoint.SetMacAddress(eth, PhysicalAddress.Parse(host.Mac));
        endpoint.AddAddress(eth, new IpPrefix(IPAddress.Parse(host.Endpoint), 24));
        endpoint.AddAddress(eth, new IpPrefix(IPAddress.Parse(host.EndpointV6), 64), AddressFlags.NoDad);
        endpoint.SetLinkUp(eth);
        return (bridge, vxlan);
    }

    private static void ProgramRemote(RtNetlink net, int bridge, int vxlan, Host remote)
    {
        var mac = PhysicalAddress.Parse(remote.Mac);
        net.AppendFdb(new FdbEntry(vxlan, mac, IPAddress.Parse(remote.Underlay)));
        net.AppendFdb(new FdbEntry(vxlan, mac, null) { Self = false, Master = true, Permanent = false });
        net.AddNeighbor(new Neighbor(bridge, IPAddress.Parse(remote.Endpoint), mac));
        net.AddNeighbor(new Neighbor(bridge, IPAddress.Parse(remote.EndpointV6), mac));
    }

    private static void AssertKernelHolds(NetNs ns, Host local, Host remote)
    {
        var vxlan = KernelJson.Single(ns.IpJson("-d", "link", "show", "vx0"));
        var data = vxlan.Path("linkinfo", "info_data");
        Assert.Equal((Vni, local.Underlay, false, 4789, "ul0"), (data.Int("id")!.Value, data.String("local"), data.Bool("learning")!.Value, data.Int("port")!.Value, data.String("link")));
        Assert.Equal("br0", vxlan.String("master"));
        Assert.Equal(1450, vxlan.Int("mtu"));

        var port = KernelJson.Single(ns.BridgeJson("-d", "link", "show", "dev", "vx0"));
        Assert.Equal((false, true), (port.Bool("learning"), port.Bool("neigh_suppress")));

        var fdb = KernelJson.Array(ns.BridgeJson("fdb", "show", "dev", "vx0"));
        string remoteMac = remote.Mac.Replace('-', ':').ToLowerInvariant();
        Assert.Contains(fdb, e => e.String("mac") == "00:00:00:00:00:00" && e.String("dst") == remote.Underlay && e.Strings("flags").Contains("self"));
        Assert.Contains(fdb, e => e.String("mac") == remoteMac && e.String("dst") == remote.Underlay);
        Assert.Contains(fdb, e => e.String("mac") == remoteMac && e.String("master") == "br0");

        var neighbours = KernelJson.Array(ns.IpJson("neigh", "show", "dev", "br0"));
        Assert.Contains(neighbours, n => n.String("dst") == remote.Endpoint && n.String("lladdr") == remoteMac && n.Strings("state").Contains("PERMANENT"));
        Assert.Contains(neighbours, n => n.String("dst") == remote.EndpointV6 && n.String("lladdr") == remoteMac);

        var underlay = KernelJson.Single(ns.IpJson("addr", "show", "dev", "ul0")).GetProperty("addr_info").EnumerateArray();
        Assert.Contains(underlay, a => a.String("local") == local.Underlay && a.Int("prefixlen") == 24);
        Assert.Contains(KernelJson.Array(ns.IpJson("link", "show", "master", "br0")), l => l.String("ifname") == "vethep");
    }
}
