using System.Net;
using System.Net.NetworkInformation;
using Skein.Driver.Netlink;
using Skein.Driver.Tests.TestSupport;

namespace Skein.Driver.Tests.Netlink;

/// <summary>Each link kind and link operation against the kernel, in a fresh namespace, read back with `ip -j -d`.</summary>
public class LinkKernelTests
{
    private static (NetNs Ns, RtNetlink Netlink) Scratch()
    {
        Skip.IfNot(NetNs.IsSupported, NetNs.SkipReason);
        var ns = NetNs.Create();
        try
        {
            return (ns, RtNetlink.OpenNamespace(ns.Path));
        }
        catch
        {
            ns.Dispose();
            throw;
        }
    }

    [SkippableFact]
    public void Bridge_settings_reach_the_kernel_and_decode_back()
    {
        var (ns, nl) = Scratch();
        using (ns) using (nl)
        {
            nl.AddLink(new BridgeSpec("br0") { AgeingTimeCentiseconds = 1200, ForwardDelayCentiseconds = 300, MulticastSnooping = false, Mtu = 1450, Up = true });

            var json = KernelJson.Single(ns.IpJson("-d", "link", "show", "br0"));
            var data = json.Path("linkinfo", "info_data");
            Assert.Equal("bridge", json.Path("linkinfo").String("info_kind"));
            Assert.Equal(0, data.Int("stp_state"));
            Assert.Equal(1200, data.Int("ageing_time"));
            Assert.Equal(300, data.Int("forward_delay"));
            Assert.Equal(0, data.Int("mcast_snooping"));
            Assert.Equal(0, data.Int("vlan_filtering"));
            Assert.Equal(1450, json.Int("mtu"));
            Assert.Contains("UP", json.Strings("flags"));

            var link = nl.GetLink("br0")!;
            Assert.Equal(json.Int("ifindex"), link.Index);
            Assert.True(link.IsUp);
            var bridge = Assert.IsType<BridgeSpec>(link.Details);
            Assert.Equal(1200, bridge.AgeingTimeCentiseconds);
            Assert.Equal(300, bridge.ForwardDelayCentiseconds);
            Assert.False(bridge.StpEnabled);
            Assert.False(bridge.MulticastSnooping);
            Assert.Equal(PhysicalAddress.Parse(json.String("address")!.Replace(':', '-').ToUpperInvariant()), link.MacAddress);
        }
    }

    [SkippableFact]
    public void Vxlan_settings_reach_the_kernel_and_decode_back()
    {
        var (ns, nl) = Scratch();
        using (ns) using (nl)
        {
            nl.AddLink(new VethSpec("ul0", "ul1"));
            int underlay = nl.GetLink("ul0")!.Index;
            nl.AddLink(new VxlanSpec("vx0", 0xFFFFFF)
            {
                Local = IPAddress.Parse("198.18.7.1"),
                UnderlayIndex = underlay,
                Port = 8472,
                Learning = false,
                Proxy = true,
                L2Miss = true,
                L3Miss = true,
                Ttl = 17,
                UdpChecksum = true,
            });
            nl.AddLink(new VxlanSpec("vx6", 7) { Local = IPAddress.Parse("fd00::7"), UdpZeroChecksum6Tx = true, UdpZeroChecksum6Rx = true });

            var data = KernelJson.Single(ns.IpJson("-d", "link", "show", "vx0")).Path("linkinfo", "info_data");
            Assert.Equal(0xFFFFFF, data.Int("id"));
            Assert.Equal("198.18.7.1", data.String("local"));
            Assert.Equal(8472, data.Int("port"));
            Assert.Equal(false, data.Bool("learning"));
            Assert.Equal(true, data.Bool("proxy"));
            Assert.Equal(true, data.Bool("l2miss"));
            Assert.Equal(true, data.Bool("l3miss"));
            Assert.Equal(17, data.Int("ttl"));
            Assert.Equal(true, data.Bool("udp_csum"));
            Assert.Equal("ul0", data.String("link"));

            var six = KernelJson.Single(ns.IpJson("-d", "link", "show", "vx6")).Path("linkinfo", "info_data");
            Assert.Equal("fd00::7", six.String("local6"));
            Assert.Equal(true, six.Bool("udp_zero_csum6_tx"));
            Assert.Equal(true, six.Bool("udp_zero_csum6_rx"));
            Assert.Equal(true, six.Bool("learning"));
            Assert.Equal(4789, six.Int("port"));

            var vxlan = Assert.IsType<VxlanSpec>(nl.GetLink("vx0")!.Details);
            Assert.Equal(0xFFFFFF, vxlan.Vni);
            Assert.Equal(IPAddress.Parse("198.18.7.1"), vxlan.Local);
            Assert.Equal(underlay, vxlan.UnderlayIndex);
            Assert.Equal((ushort)8472, vxlan.Port);
            Assert.False(vxlan.Learning);
            Assert.True(vxlan.Proxy && vxlan.L2Miss && vxlan.L3Miss);
            Assert.Equal(17, vxlan.Ttl);
            Assert.True(vxlan.UdpChecksum);
            Assert.Equal(IPAddress.Parse("fd00::7"), Assert.IsType<VxlanSpec>(nl.GetLink("vx6")!.Details).Local);
        }
    }

    [SkippableFact]
    public void Veth_peer_is_created_directly_in_another_namespace()
    {
        var (ns, nl) = Scratch();
        using var other = NetNs.Create();
        using (ns) using (nl)
        using (var otherFd = other.Open())
        {
            nl.AddLink(new VethSpec("host0", "ctr0")
            {
                PeerNamespaceFd = (int)otherFd.DangerousGetHandle(),
                PeerMtu = 1400,
                PeerMacAddress = PhysicalAddress.Parse("02-42-0A-00-00-05"),
                Mtu = 1400,
            });

            Assert.Null(nl.GetLink("ctr0"));
            var peer = KernelJson.Single(other.IpJson("link", "show", "ctr0"));
            Assert.Equal(1400, peer.Int("mtu"));
            Assert.Equal("02:42:0a:00:00:05", peer.String("address"));

            var host = nl.GetLink("host0")!;
            Assert.Equal("veth", host.Kind);
            Assert.NotNull(host.ParentNamespaceId); // the peer lives elsewhere
            Assert.IsType<VethSpec>(host.Details);

            using var inOther = RtNetlink.OpenNamespace(other.Path);
            Assert.Equal(peer.Int("ifindex"), inOther.GetLink("ctr0")!.Index);
        }
    }

    [SkippableFact]
    public void Veth_pair_in_one_namespace_lists_its_peer_name()
    {
        var (ns, nl) = Scratch();
        using (ns) using (nl)
        {
            nl.AddLink(new VethSpec("a0", "b0"));
            var a = nl.ListLinks().Single(l => l.Name == "a0");
            Assert.Equal("b0", Assert.IsType<VethSpec>(a.Details).PeerName);
            Assert.Equal(nl.GetLink("b0")!.Index, a.ParentIndex);
        }
    }

    [SkippableFact]
    public void Macvlan_on_a_parent()
    {
        var (ns, nl) = Scratch();
        using (ns) using (nl)
        {
            nl.AddLink(new VethSpec("p0", "p1"));
            int parent = nl.GetLink("p0")!.Index;
            nl.AddLink(new MacvlanSpec("mv0", parent) { Mode = MacvlanMode.Private });

            var json = KernelJson.Single(ns.IpJson("-d", "link", "show", "mv0"));
            Assert.Equal("macvlan", json.Path("linkinfo").String("info_kind"));
            Assert.Equal("private", json.Path("linkinfo", "info_data").String("mode"));
            var macvlan = Assert.IsType<MacvlanSpec>(nl.GetLink("mv0")!.Details);
            Assert.Equal(MacvlanMode.Private, macvlan.Mode);
            Assert.Equal(parent, macvlan.ParentIndex);
        }
    }

    [SkippableFact]
    public void Dummy_when_the_kernel_has_the_module()
    {
        var (ns, nl) = Scratch();
        using (ns) using (nl)
        {
            try
            {
                nl.AddLink(new DummySpec("dm0") { Up = true });
            }
            catch (NetlinkException e) when (e.Errno == 95)
            {
                Skip.If(true, $"this kernel has no dummy link support: {e.Message}");
            }
            Assert.IsType<DummySpec>(nl.GetLink("dm0")!.Details);
            Assert.Equal("dummy", KernelJson.Single(ns.IpJson("-d", "link", "show", "dm0")).Path("linkinfo").String("info_kind"));
        }
    }

    [SkippableFact]
    public void Link_operations_change_what_the_kernel_holds()
    {
        var (ns, nl) = Scratch();
        using var other = NetNs.Create();
        using (ns) using (nl)
        {
            nl.AddLink(new BridgeSpec("br0"));
            nl.AddLink(new VethSpec("v0", "v1"));
            int bridge = nl.GetLink("br0")!.Index;
            int v0 = nl.GetLink("v0")!.Index;

            nl.SetMtu(v0, 1234);
            nl.SetMacAddress(v0, PhysicalAddress.Parse("02-00-00-00-AB-CD"));
            nl.SetMaster(v0, bridge);
            nl.SetLinkUp(v0);
            var json = KernelJson.Single(ns.IpJson("link", "show", "v0"));
            Assert.Equal(1234, json.Int("mtu"));
            Assert.Equal("02:00:00:00:ab:cd", json.String("address"));
            Assert.Equal("br0", json.String("master"));
            Assert.Contains("UP", json.Strings("flags"));
            var link = nl.GetLink(v0)!;
            Assert.Equal((1234, bridge, true, "bridge"), (link.Mtu, link.MasterIndex, link.IsUp, link.PortKind));

            nl.SetNoMaster(v0);
            nl.SetLinkDown(v0);
            nl.Rename(v0, "renamed0");
            json = KernelJson.Single(ns.IpJson("link", "show", "renamed0"));
            Assert.Null(json.String("master"));
            Assert.DoesNotContain("UP", json.Strings("flags"));
            Assert.Null(nl.GetLink("v0"));
            Assert.Equal("renamed0", nl.GetLink(v0)!.Name);

            using (var otherFd = other.Open())
                nl.MoveToNamespace(v0, (int)otherFd.DangerousGetHandle());
            Assert.Null(nl.GetLink("renamed0"));
            Assert.Single(KernelJson.Array(other.IpJson("link", "show", "renamed0")));

            nl.DeleteLink("v1"); // deleting one end removes the pair, including the moved peer
            nl.DeleteLink(bridge);
            Assert.DoesNotContain(nl.ListLinks(), l => l.Name is "br0" or "v1");
            Assert.DoesNotContain(KernelJson.Array(other.IpJson("link", "show")), l => l.String("ifname") == "renamed0");
        }
    }

    [SkippableFact]
    public void List_links_agrees_with_ip()
    {
        var (ns, nl) = Scratch();
        using (ns) using (nl)
        {
            nl.AddLink(new BridgeSpec("br0"));
            nl.AddLink(new VxlanSpec("vx0", 5) { MasterIndex = nl.GetLink("br0")!.Index });
            nl.AddLink(new VethSpec("v0", "v1"));
            var ours = nl.ListLinks().Select(l => (l.Index, l.Name, l.Mtu)).OrderBy(l => l.Index).ToList();
            var theirs = KernelJson.Array(ns.IpJson("link", "show"))
                .Select(l => (l.Int("ifindex")!.Value, l.String("ifname")!, l.Int("mtu")!.Value)).OrderBy(l => l.Item1).ToList();
            Assert.Equal(theirs, ours);
        }
    }
}
