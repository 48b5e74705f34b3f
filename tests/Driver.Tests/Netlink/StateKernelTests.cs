using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using Skein.Driver.Netlink;
using Skein.Driver.Tests.TestSupport;

namespace Skein.Driver.Tests.Netlink;

/// <summary>Addresses, routes, neighbours, FDB entries, port flags and device settings, checked with ip/bridge -j.</summary>
public class StateKernelTests
{
    private static (NetNs Ns, RtNetlink Netlink, int Index) ScratchWithVeth()
    {
        Skip.IfNot(NetNs.IsSupported, NetNs.SkipReason);
        var ns = NetNs.Create();
        try
        {
            var nl = RtNetlink.OpenNamespace(ns.Path);
            nl.AddLink(new VethSpec("v0", "v1") { Up = true });
            nl.SetLinkUp(nl.GetLink("v1")!.Index);
            return (ns, nl, nl.GetLink("v0")!.Index);
        }
        catch
        {
            ns.Dispose();
            throw;
        }
    }

    [SkippableFact]
    public void Addresses_add_list_delete()
    {
        var (ns, nl, v0) = ScratchWithVeth();
        using (ns) using (nl)
        {
            nl.AddAddress(v0, IpPrefix.Parse("10.1.0.1/24"));
            nl.AddAddress(v0, IpPrefix.Parse("fd00::1/64"), AddressFlags.NoDad);
            Assert.True(Assert.Throws<NetlinkException>(() => nl.AddAddress(v0, IpPrefix.Parse("10.1.0.1/24"))).IsAlreadyExists);

            var json = KernelJson.Single(ns.IpJson("addr", "show", "dev", "v0")).GetProperty("addr_info").EnumerateArray().ToList();
            var v4 = json.Single(a => a.String("family") == "inet");
            Assert.Equal(("10.1.0.1", 24, "10.1.0.255"), (v4.String("local"), v4.Int("prefixlen"), v4.String("broadcast")));
            var v6 = json.Single(a => a.String("local") == "fd00::1");
            Assert.Equal(64, v6.Int("prefixlen"));
            Assert.Equal(true, v6.Bool("nodad"));

            var ours = nl.ListAddresses(v0);
            Assert.Contains(ours, a => a.Address == IpPrefix.Parse("10.1.0.1/24") && a.Scope == RouteScope.Universe && a.Label == "v0");
            Assert.Contains(ours, a => a.Address == IpPrefix.Parse("fd00::1/64") && a.Flags.HasFlag(AddressFlags.NoDad));
            Assert.All(nl.ListAddresses(family: AddressFamily.InterNetwork), a => Assert.Equal(AddressFamily.InterNetwork, a.Address.Family));
            Assert.Contains(nl.ListAddresses(family: AddressFamily.InterNetwork), a => a.Address.Address.Equals(IPAddress.Loopback));

            nl.DeleteAddress(v0, IpPrefix.Parse("10.1.0.1/24"));
            nl.DeleteAddress(v0, IpPrefix.Parse("fd00::1/64"));
            Assert.DoesNotContain(nl.ListAddresses(v0), a => a.Address.Address.Equals(IPAddress.Parse("10.1.0.1")) || a.Address.Address.Equals(IPAddress.Parse("fd00::1")));
            Assert.True(Assert.Throws<NetlinkException>(() => nl.DeleteAddress(v0, IpPrefix.Parse("10.1.0.1/24"))).IsNotFound);
        }
    }

    [SkippableFact]
    public void Routes_add_replace_delete_list_in_main_and_another_table()
    {
        var (ns, nl, v0) = ScratchWithVeth();
        using (ns) using (nl)
        {
            nl.AddAddress(v0, IpPrefix.Parse("10.1.0.1/24"));
            nl.AddAddress(v0, IpPrefix.Parse("fd00::1/64"), AddressFlags.NoDad);
            var gatewayRoute = new Route(IpPrefix.Parse("10.2.0.0/16")) { Gateway = IPAddress.Parse("10.1.0.254"), OutputIndex = v0, Metric = 5 };
            nl.AddRoute(gatewayRoute);
            Assert.True(Assert.Throws<NetlinkException>(() => nl.AddRoute(gatewayRoute)).IsAlreadyExists);
            nl.AddRoute(new Route(IpPrefix.Parse("10.3.0.0/24")) { OutputIndex = v0, Table = 100 });
            nl.AddRoute(new Route(IpPrefix.Parse("fd01::/64")) { Gateway = IPAddress.Parse("fd00::fe"), OutputIndex = v0, Mtu = 1400 });

            var main = KernelJson.Array(ns.IpJson("route", "show", "table", "main"));
            var json = main.Single(r => r.String("dst") == "10.2.0.0/16");
            Assert.Equal(("10.1.0.254", "v0", 5), (json.String("gateway"), json.String("dev"), json.Int("metric")));
            var inTable = KernelJson.Single(ns.IpJson("route", "show", "table", "100"));
            Assert.Equal(("10.3.0.0/24", "link"), (inTable.String("dst"), inTable.String("scope")));
            var six = KernelJson.Array(ns.IpJson("-6", "route", "show")).Single(r => r.String("dst") == "fd01::/64");
            Assert.Equal("fd00::fe", six.String("gateway"));

            var ours = nl.ListRoutes(AddressFamily.InterNetwork);
            var decoded = ours.Single(r => r.Destination == IpPrefix.Parse("10.2.0.0/16"));
            Assert.Equal((IPAddress.Parse("10.1.0.254"), (int?)v0, (int?)5, RouteProtocol.Boot), (decoded.Gateway, decoded.OutputIndex, decoded.Metric, decoded.Protocol));
            Assert.Contains(ours, r => r.Destination == IpPrefix.Parse("10.1.0.0/24") && r.Protocol == RouteProtocol.Kernel);
            Assert.DoesNotContain(ours, r => r.Destination == IpPrefix.Parse("10.3.0.0/24"));
            Assert.Equal(RouteScope.Link, nl.ListRoutes(AddressFamily.InterNetwork, 100).Single().Scope);
            Assert.Equal(1400, nl.ListRoutes(AddressFamily.InterNetworkV6).Single(r => r.Destination == IpPrefix.Parse("fd01::/64")).Mtu);

            nl.ReplaceRoute(gatewayRoute with { Gateway = IPAddress.Parse("10.1.0.253") });
            Assert.Equal("10.1.0.253", KernelJson.Array(ns.IpJson("route", "show")).Single(r => r.String("dst") == "10.2.0.0/16").String("gateway"));

            nl.DeleteRoute(new Route(IpPrefix.Parse("10.2.0.0/16")) { Metric = 5 });
            nl.DeleteRoute(new Route(IpPrefix.Parse("10.3.0.0/24")) { Table = 100 });
            Assert.DoesNotContain(KernelJson.Array(ns.IpJson("route", "show")), r => r.String("dst") == "10.2.0.0/16");
            Assert.Empty(KernelJson.Array(ns.IpJson("route", "show", "table", "100")));
            Assert.True(Assert.Throws<NetlinkException>(() => nl.DeleteRoute(new Route(IpPrefix.Parse("10.3.0.0/24")) { Table = 100 })).IsNotFound);
        }
    }

    [SkippableFact]
    public void Permanent_neighbours_for_IPv4_and_IPv6()
    {
        var (ns, nl, v0) = ScratchWithVeth();
        using (ns) using (nl)
        {
            var mac = PhysicalAddress.Parse("02-00-00-00-00-02");
            nl.AddNeighbor(new Neighbor(v0, IPAddress.Parse("10.1.0.2"), mac));
            nl.AddNeighbor(new Neighbor(v0, IPAddress.Parse("fd00::2"), mac));
            Assert.True(Assert.Throws<NetlinkException>(() => nl.AddNeighbor(new Neighbor(v0, IPAddress.Parse("10.1.0.2"), mac))).IsAlreadyExists);
            nl.ReplaceNeighbor(new Neighbor(v0, IPAddress.Parse("10.1.0.2"), PhysicalAddress.Parse("02-00-00-00-00-03")));

            var json = KernelJson.Array(ns.IpJson("neigh", "show", "dev", "v0"));
            var v4 = json.Single(n => n.String("dst") == "10.1.0.2");
            Assert.Equal("02:00:00:00:00:03", v4.String("lladdr"));
            Assert.Contains("PERMANENT", v4.Strings("state"));
            Assert.Contains("PERMANENT", json.Single(n => n.String("dst") == "fd00::2").Strings("state"));

            var ours = nl.ListNeighbors(v0);
            Assert.Contains(new Neighbor(v0, IPAddress.Parse("10.1.0.2"), PhysicalAddress.Parse("02-00-00-00-00-03")), ours);
            Assert.Contains(new Neighbor(v0, IPAddress.Parse("fd00::2"), mac), ours);
            Assert.All(nl.ListNeighbors(family: AddressFamily.InterNetworkV6), n => Assert.Equal(AddressFamily.InterNetworkV6, n.Address.AddressFamily));

            nl.DeleteNeighbor(new Neighbor(v0, IPAddress.Parse("10.1.0.2"), null));
            nl.DeleteNeighbor(new Neighbor(v0, IPAddress.Parse("fd00::2"), null));
            Assert.DoesNotContain(KernelJson.Array(ns.IpJson("neigh", "show", "dev", "v0")), n => n.Strings("state").Contains("PERMANENT"));
        }
    }

    [SkippableFact]
    public void Fdb_flood_entries_and_mac_entries_on_a_vxlan_port()
    {
        Skip.IfNot(NetNs.IsSupported, NetNs.SkipReason);
        using var ns = NetNs.Create();
        using var nl = RtNetlink.OpenNamespace(ns.Path);
        nl.AddLink(new BridgeSpec("br0"));
        nl.AddLink(new VxlanSpec("vx0", 42) { Learning = false, MasterIndex = nl.GetLink("br0")!.Index });
        int vx = nl.GetLink("vx0")!.Index;
        var remoteMac = PhysicalAddress.Parse("02-00-00-00-00-09");

        nl.AppendFdb(new FdbEntry(vx, FdbEntry.FloodMac, IPAddress.Parse("198.18.0.2")));
        nl.AppendFdb(new FdbEntry(vx, FdbEntry.FloodMac, IPAddress.Parse("198.18.0.3")));
        // The kernel reports NDA_VNI only when it differs from the device's own VNI.
        nl.AppendFdb(new FdbEntry(vx, remoteMac, IPAddress.Parse("198.18.0.2")) { Vni = 43, Port = 4790 });
        nl.AppendFdb(new FdbEntry(vx, remoteMac, null) { Self = false, Master = true, Permanent = false });
        Assert.True(Assert.Throws<NetlinkException>(() => nl.AddFdb(new FdbEntry(vx, FdbEntry.FloodMac, IPAddress.Parse("198.18.0.2")))).IsAlreadyExists);

        var json = KernelJson.Array(ns.BridgeJson("fdb", "show", "dev", "vx0"));
        var floods = json.Where(e => e.String("mac") == "00:00:00:00:00:00").Select(e => e.String("dst")).Order().ToList();
        Assert.Equal(["198.18.0.2", "198.18.0.3"], floods);
        var remote = json.Single(e => e.String("mac") == "02:00:00:00:00:09" && e.String("dst") is not null);
        Assert.Equal((4790, 43), (remote.Int("port"), remote.Int("vni")));
        Assert.Contains("self", remote.Strings("flags"));
        Assert.Contains(json, e => e.String("mac") == "02:00:00:00:00:09" && e.String("master") == "br0");

        var ours = nl.ListFdb(vx);
        Assert.Equal(2, ours.Count(e => e.IsFloodEntry && e.Self && e.Permanent));
        Assert.Contains(ours, e => e.MacAddress.Equals(remoteMac) && e.Self && e.Vni == 43 && e.Port == 4790);
        Assert.Contains(ours, e => e.MacAddress.Equals(remoteMac) && e.Master && !e.Self);

        nl.ReplaceFdb(new FdbEntry(vx, remoteMac, IPAddress.Parse("198.18.0.3")));
        nl.DeleteFdb(new FdbEntry(vx, FdbEntry.FloodMac, IPAddress.Parse("198.18.0.3")));
        json = KernelJson.Array(ns.BridgeJson("fdb", "show", "dev", "vx0"));
        Assert.Equal(["198.18.0.2"], json.Where(e => e.String("mac") == "00:00:00:00:00:00").Select(e => e.String("dst")).ToList());
        Assert.Equal("198.18.0.3", json.Single(e => e.String("mac") == "02:00:00:00:00:09" && e.String("dst") is not null).String("dst"));
        // Deleting an unknown MAC is an error; an unknown destination of a known MAC the kernel ignores.
        Assert.True(Assert.Throws<NetlinkException>(() => nl.DeleteFdb(new FdbEntry(vx, PhysicalAddress.Parse("02-00-00-00-00-77"), IPAddress.Parse("198.18.0.9")))).IsNotFound);
    }

    [SkippableFact]
    public void Fdb_sync_adds_the_missing_and_removes_the_stale_only()
    {
        Skip.IfNot(NetNs.IsSupported, NetNs.SkipReason);
        using var ns = NetNs.Create();
        using var nl = RtNetlink.OpenNamespace(ns.Path);
        nl.AddLink(new BridgeSpec("br0"));
        nl.AddLink(new VxlanSpec("vx0", 42) { Learning = false, MasterIndex = nl.GetLink("br0")!.Index });
        int vx = nl.GetLink("vx0")!.Index;
        static PhysicalAddress Mac(int i) => new([0x02, 0, 0, 0, (byte)(i >> 8), (byte)i]);
        FdbEntry Remote(int i, string vtep) => new(vx, Mac(i), IPAddress.Parse(vtep));
        nl.AppendFdb(new FdbEntry(vx, Mac(999), null) { Self = false, Master = true, Permanent = false }); // not ours to sync

        var first = Enumerable.Range(0, 100).Select(i => Remote(i, "198.18.0.2"))
            .Append(new FdbEntry(vx, FdbEntry.FloodMac, IPAddress.Parse("198.18.0.2")))
            .Append(new FdbEntry(vx, FdbEntry.FloodMac, IPAddress.Parse("198.18.0.4"))).ToList();
        Assert.Equal(new FdbSyncResult(102, 0, 0), nl.SyncFdb(vx, first));
        Assert.Equal(new FdbSyncResult(0, 0, 0), nl.SyncFdb(vx, first));

        // 0-49 go, 100-149 come, 50-59 move to another VTEP, one flood destination changes.
        var second = Enumerable.Range(50, 100).Select(i => Remote(i, i < 60 ? "198.18.0.5" : "198.18.0.2"))
            .Append(new FdbEntry(vx, FdbEntry.FloodMac, IPAddress.Parse("198.18.0.2")))
            .Append(new FdbEntry(vx, FdbEntry.FloodMac, IPAddress.Parse("198.18.0.3"))).ToList();
        Assert.Equal(new FdbSyncResult(51, 51, 10), nl.SyncFdb(vx, second));
        Assert.Equal(0, nl.SyncFdb(vx, second).Changes);

        var json = KernelJson.Array(ns.BridgeJson("fdb", "show", "dev", "vx0"));
        var remote = json.Where(e => e.String("dst") is not null).Select(e => (e.String("mac"), e.String("dst"))).ToHashSet();
        var expected = second.Select(e => ((string?)string.Join(':', e.MacAddress.GetAddressBytes().Select(b => b.ToString("x2"))), (string?)e.Destination!.ToString())).ToHashSet();
        Assert.Equal(expected, remote);
        Assert.Contains(json, e => e.String("mac") == "02:00:00:00:03:e7" && e.String("master") == "br0");
        Assert.Throws<ArgumentException>(() => nl.SyncFdb(vx, [new FdbEntry(vx, Mac(1), null)]));
        Assert.Contains("cannot go to both", Assert.Throws<ArgumentException>(() => nl.SyncFdb(vx, [Remote(1, "198.18.0.2"), Remote(1, "198.18.0.3")])).Message);
    }

    [SkippableFact]
    public void Bridge_port_flags_set_and_read_back()
    {
        Skip.IfNot(NetNs.IsSupported, NetNs.SkipReason);
        using var ns = NetNs.Create();
        using var nl = RtNetlink.OpenNamespace(ns.Path);
        nl.AddLink(new BridgeSpec("br0"));
        nl.AddLink(new VxlanSpec("vx0", 42) { Learning = false, MasterIndex = nl.GetLink("br0")!.Index });
        nl.AddLink(new VethSpec("v0", "v1"));
        int vx = nl.GetLink("vx0")!.Index;

        var before = nl.GetBridgePortFlags(vx);
        Assert.True(before.Learning);
        Assert.False(before.NeighSuppress);

        nl.SetBridgePortFlags(vx, new BridgePortSettings { Learning = false, NeighSuppress = true, Flood = true, Hairpin = false });
        var port = KernelJson.Single(ns.BridgeJson("-d", "link", "show", "dev", "vx0"));
        Assert.Equal((false, true, true, false), (port.Bool("learning"), port.Bool("neigh_suppress"), port.Bool("flood"), port.Bool("hairpin")));
        var after = nl.GetBridgePortFlags(vx);
        Assert.Equal((false, true, true), (after.Learning, after.NeighSuppress, after.Flood));

        var notPort = Assert.Throws<ArgumentException>(() => nl.GetBridgePortFlags(nl.GetLink("v0")!.Index));
        Assert.Contains("not a bridge port", notPort.Message);
        nl.SetBridgePortFlags(vx, new BridgePortSettings()); // nothing asked: nothing sent
    }

    [SkippableFact]
    public void IPv4_device_settings_through_netlink_agree_with_proc_sys()
    {
        var (ns, nl, v0) = ScratchWithVeth();
        using (ns) using (nl)
        {
            nl.SetIPv4DeviceConf(v0, IPv4DeviceConf.Forwarding, 1);
            nl.SetIPv4DeviceConf(v0, IPv4DeviceConf.ProxyArp, 1);
            nl.SetIPv4DeviceConf(v0, IPv4DeviceConf.RouteLocalnet, 1);

            Assert.Equal("1", ns.Exec("cat", "/proc/sys/net/ipv4/conf/v0/forwarding").Trim());
            Assert.Equal("1", ns.Exec("cat", "/proc/sys/net/ipv4/conf/v0/proxy_arp").Trim());
            Assert.Equal("1", ns.Exec("cat", "/proc/sys/net/ipv4/conf/v0/route_localnet").Trim());
            Assert.Equal("1", nl.ReadSysctl("net.ipv4.conf.v0.proxy_arp"));
            Assert.Equal(1, nl.GetIPv4DeviceConf(v0, IPv4DeviceConf.RouteLocalnet));

            nl.SetIPv4DeviceConf(v0, IPv4DeviceConf.ProxyArp, 0);
            Assert.Equal("0", ns.Exec("cat", "/proc/sys/net/ipv4/conf/v0/proxy_arp").Trim());
            Assert.Equal(0, nl.GetIPv4DeviceConf(v0, IPv4DeviceConf.ProxyArp));
            Assert.Equal(int.Parse(ns.Exec("cat", "/proc/sys/net/ipv4/conf/v0/send_redirects").Trim()), nl.GetIPv4DeviceConf(v0, IPv4DeviceConf.SendRedirects));
        }
    }
}
