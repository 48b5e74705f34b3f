using System.Net.NetworkInformation;
using Skein.Driver.Netlink;
using Skein.Driver.Overlay.Dataplane;
using Skein.Driver.Tests.Netlink;
using Skein.Driver.Tests.TestSupport;
using static Skein.Driver.Tests.Overlay.Dataplane.OverlayLab;

namespace Skein.Driver.Tests.Overlay.Dataplane;

/// <summary>
/// The bridge bypass on a real kernel (<see cref="OverlayLab"/>): cross-host unicast goes veth → VXLAN and VXLAN →
/// veth through tc redirects. The proof is a bridge that can no longer forward to or from its VXLAN port: traffic
/// still flows with the bypass, and stops without it.
/// </summary>
public class BridgeBypassKernelTests
{
    private const string LocalVeth = "vc0";

    [SkippableFact]
    public void Cross_host_unicast_flows_past_a_bridge_that_cannot_forward_to_its_VXLAN_port_only_while_the_bypass_is_on()
    {
        Skip.IfNot(NetNs.IsSupported, NetNs.SkipReason);
        Skip.IfNot(NetNsCommand.Exists("ping") && NetNsCommand.Exists("bridge") && NetNsCommand.Exists("tc"), "needs ping, bridge and tc");
        using var lab = new OverlayLab();
        var (a, b) = (lab.A, lab.B);
        foreach (var (host, other) in new[] { (a, b), (b, a) })
        {
            host.Dataplane.EnsureDevice(host.Device);
            host.Dataplane.Apply(host.Device, other.View);
        }

        // clsact on the VXLAN device + its MAC table + its filter for the local MAC; clsact on the veth (block) + the
        // block's MAC table + the remote MAC's filter.
        Assert.Equal(new BypassSyncResult(6, 0, 0, 0), Bypass(a, b, enabled: true));
        Assert.Equal(new BypassSyncResult(6, 0, 0, 0), Bypass(b, a, enabled: true));
        Assert.Equal(new BypassSyncResult(0, 0, 6, 0), Bypass(a, b, enabled: true));
        Assert.Contains($"Egress Redirect to device {Vxlan}", a.Ns.Exec("tc", "filter", "show", "block", Vni.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        Assert.Contains($"Egress Redirect to device {LocalVeth}", a.Ns.Exec("tc", "filter", "show", "dev", Vxlan, "ingress"));

        Assert.True(Ping(a, b.ContainerV4, count: 2), "IPv4 ping with the bypass failed");
        Assert.True(Ping(a, b.ContainerV6, count: 2), "IPv6 ping with the bypass failed");
        Assert.True(Ping(a, System.Net.IPAddress.Parse("10.77.0.1")), "the local gateway must still answer through the bridge");

        // The bridges stop forwarding to and from their VXLAN ports. Neighbours are already resolved (and kept
        // reachable by the unicast that follows), so only the bypass can carry the echoes now.
        foreach (var host in new[] { a, b })
            host.Ns.Exec("bridge", "link", "set", "dev", Vxlan, "state", "0");
        Assert.True(Ping(a, b.ContainerV4, count: 3), "IPv4 ping across the bypass failed with the VXLAN bridge ports disabled");
        Assert.True(Ping(b, a.ContainerV6, count: 3), "IPv6 ping across the bypass failed with the VXLAN bridge ports disabled");

        // Off: everything skein added goes, and the same pings fail: they had really gone past the bridge.
        Assert.Equal(new BypassSyncResult(0, 2, 0, 0), Bypass(a, b, enabled: false));
        Bypass(b, a, enabled: false);
        Assert.DoesNotContain("clsact", a.Ns.Exec("tc", "qdisc", "show", "dev", Vxlan));
        Assert.DoesNotContain("clsact", a.Ns.Exec("tc", "qdisc", "show", "dev", LocalVeth));
        Assert.True(Unreachable(a, b.ContainerV4), "with the bypass off and the VXLAN ports disabled, the remote container still answered");

        // And the bridge path is intact for when the bypass is off.
        foreach (var host in new[] { a, b })
            host.Ns.Exec("bridge", "link", "set", "dev", Vxlan, "state", "3");
        Assert.True(Ping(a, b.ContainerV4, count: 2), "IPv4 ping through the bridge failed after the bypass was removed");
    }

    [SkippableFact]
    public void ApplyBypass_repairs_drift_drops_what_left_the_view_and_skips_ports_that_are_not_on_the_bridge()
    {
        Skip.IfNot(NetNs.IsSupported, NetNs.SkipReason);
        Skip.IfNot(NetNsCommand.Exists("tc"), "needs tc (iproute2)");
        using var lab = new OverlayLab();
        var (a, b) = (lab.A, lab.B);
        a.Dataplane.EnsureDevice(a.Device);
        Assert.Equal(new BypassSyncResult(6, 0, 0, 0), Bypass(a, b, enabled: true));
        using var net = RtNetlink.OpenNamespace(a.Ns.Path);
        int vxlan = net.GetLink(Vxlan)!.Index, veth = net.GetLink(LocalVeth)!.Index;
        var block = FilterAttachment.Block(OverlayDataplane.BypassBlock(Vni));

        // A peer record with this host's own bridge MAC never gets a redirect: the gateway's frames stay local.
        var spoofed = b.View with { Endpoints = [.. b.View.Endpoints, new RemoteEndpoint(Mac(a.BridgeMac), null, null, b.Underlay)] };
        Assert.Equal(new BypassSyncResult(0, 0, 6, 0), a.Dataplane.ApplyBypass(a.Device, [new LocalPort(LocalVeth, a.ContainerMac)], spoofed, enabled: true));

        // Drift: the VXLAN device's filter deleted by hand, a stray filter in the block's root table, a foreign
        // filter at another priority of the VXLAN device.
        var vxlanIngress = FilterAttachment.Ingress(vxlan);
        net.DeleteFilter(vxlanIngress, MacNodes(net, vxlanIngress).Single());
        net.AddMacRedirect(block, new MacRedirectFilter(Mac("02:77:00:00:00:99"), vxlan));
        a.Ns.Exec("tc", "filter", "add", "dev", Vxlan, "ingress", "prio", "5", "protocol", "ip", "u32", "match", "ip", "dst", "10.0.0.1/32",
            "action", "mirred", "egress", "redirect", "dev", LocalVeth);
        var repaired = Bypass(a, b, enabled: true);
        Assert.Equal((1, 2, 0), (repaired.Added, repaired.Removed, repaired.Failed));
        Assert.DoesNotContain("pref 5", a.Ns.Exec("tc", "filter", "show", "dev", Vxlan, "ingress"));

        // The veth's qdisc replaced by one of its own (no block): the block goes with its last user, tables and all.
        net.DeleteClsactQdisc(veth);
        net.AddClsactQdisc(veth);
        repaired = Bypass(a, b, enabled: true);
        Assert.Equal((3, 1, 0), (repaired.Added, repaired.Removed, repaired.Failed)); // qdisc replaced, table and filter back
        Assert.Equal(new ClsactQdisc(veth, OverlayDataplane.BypassBlock(Vni)), net.GetClsactQdisc(veth));
        Assert.Equal([(b.ContainerMac, (int?)vxlan)], MacNodes(net, block).Select(f => (f.DestinationMac!, f.TargetIndex)));
        Assert.Equal([(a.ContainerMac, (int?)veth)], MacNodes(net, vxlanIngress).Select(f => (f.DestinationMac!, f.TargetIndex)));

        // A table that is not skein's layout (here: the link gone) is rebuilt from scratch.
        net.DeleteFilter(block, net.ListFilters(block).Single(f => f.LinkTo is not null));
        repaired = Bypass(a, b, enabled: true);
        Assert.Equal((2, 1, 0), (repaired.Added, repaired.Removed, repaired.Failed));
        Assert.Single(net.ListFilters(block), f => f.LinkTo is not null);

        // The remote endpoint leaves the view: its filter goes. No view yet (null): the block is left alone.
        Assert.Equal(new BypassSyncResult(0, 1, 5, 0), a.Dataplane.ApplyBypass(a.Device, [new LocalPort(LocalVeth, a.ContainerMac)], b.View with { Endpoints = [] }, enabled: true));
        Assert.Empty(MacNodes(net, block));
        Assert.Equal(new BypassSyncResult(0, 0, 4, 0), a.Dataplane.ApplyBypass(a.Device, [new LocalPort(LocalVeth, a.ContainerMac)], null, enabled: true));

        // A port that is missing or not on the network's bridge gets nothing; its MAC's filter on the VXLAN device goes.
        net.SetNoMaster(veth);
        var off = a.Dataplane.ApplyBypass(a.Device, [new LocalPort(LocalVeth, a.ContainerMac), new LocalPort("gone0", Mac("02:77:00:00:00:42"))], b.View, enabled: true);
        Assert.Equal((0, 1), (off.Added, off.Removed));
        Assert.Empty(MacNodes(net, vxlanIngress));
    }

    /// <summary>The destination-MAC nodes at <paramref name="at"/> (not the tables or the link between them).</summary>
    private static List<MacRedirectFilter> MacNodes(RtNetlink net, FilterAttachment at) =>
        net.ListFilters(at).Where(f => f.DestinationMac is not null).ToList();

    [SkippableFact]
    public void A_kernel_without_tc_redirects_is_reported_once_and_then_left_alone()
    {
        Skip.IfNot(NetNs.IsSupported, NetNs.SkipReason);
        using var lab = new OverlayLab();
        var a = lab.A;
        a.Dataplane.EnsureDevice(a.Device);
        // As a kernel built without sch_ingress answers the first clsact (EOPNOTSUPP here; ENOENT there).
        var faulty = new FaultyKernel(a.Kernel) { FailWhen = (operation, _) => operation == nameof(FaultyKernel.AddClsactQdisc) };
        var dataplane = new OverlayDataplane(faulty, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        var first = dataplane.ApplyBypass(a.Device, [new LocalPort(LocalVeth, a.ContainerMac)], lab.B.View, enabled: true);
        Assert.True(first.Failed >= 1, first.ToString());
        Assert.NotNull(dataplane.BypassUnsupported);
        int failures = faulty.Failures;
        Assert.Equal(default, dataplane.ApplyBypass(a.Device, [new LocalPort(LocalVeth, a.ContainerMac)], lab.B.View, enabled: true));
        Assert.Equal(failures, faulty.Failures);
        Assert.DoesNotContain("clsact", a.Ns.Exec("tc", "qdisc", "show"));
    }

    private static BypassSyncResult Bypass(Host local, Host remote, bool enabled) =>
        local.Dataplane.ApplyBypass(local.Device, [new LocalPort(LocalVeth, local.ContainerMac)], remote.View, enabled);
}
