using System.Net.NetworkInformation;
using Skein.Driver.Netlink;
using Skein.Driver.Network.Kernel;
using Skein.Driver.Tests.TestSupport;

namespace Skein.Driver.Tests.Netlink;

/// <summary>
/// clsact qdiscs and u32 destination-MAC redirect filters through rtnetlink, checked against `tc -j` (an independent
/// encoder and decoder): what skein writes, tc reads as the same match and action, and what tc writes, skein reads.
/// </summary>
public class TrafficControlKernelTests
{
    private static readonly PhysicalAddress Remote = PhysicalAddress.Parse("02-42-0A-00-00-05");
    private static readonly PhysicalAddress Other = PhysicalAddress.Parse("02-42-0A-00-00-06");

    [SkippableFact]
    public void Clsact_with_a_shared_block_and_MAC_redirects_round_trip_through_tc()
    {
        Skip.IfNot(NetNs.IsSupported, NetNs.SkipReason);
        Skip.IfNot(NetNsCommand.Exists("tc"), "needs tc (iproute2) for the cross-check");
        using var ns = NetNs.Create();
        using var net = RtNetlink.OpenNamespace(ns.Path);
        net.AddLink(new VethSpec("tcva", "tcvb") { Up = true });
        net.AddLink(new VethSpec("tcvc", "tcvd") { Up = true });
        int a = net.GetLink("tcva")!.Index, b = net.GetLink("tcvb")!.Index, c = net.GetLink("tcvc")!.Index;

        net.AddClsactQdisc(a, 4242);
        net.AddClsactQdisc(c, 4242);
        net.AddClsactQdisc(b);
        Assert.Equal(new ClsactQdisc(a, 4242), net.GetClsactQdisc(a));
        Assert.Equal(new ClsactQdisc(b, 0), net.GetClsactQdisc(b));
        Assert.Null(net.GetClsactQdisc(net.GetLink("tcvd")!.Index));
        var again = Assert.Throws<NetlinkException>(() => net.AddClsactQdisc(a, 4242));
        Assert.True(again.IsAlreadyExists, again.Message);
        var tcQdisc = KernelJson.Array(ns.Exec("tc", "-j", "qdisc", "show", "dev", "tcva")).Single(q => q.String("kind") == "clsact");
        Assert.Equal(4242, tcQdisc.Int("ingress_block"));

        var block = FilterAttachment.Block(4242);
        var ingress = FilterAttachment.Ingress(b);
        net.AddMacRedirect(block, new MacRedirectFilter(Remote, b));
        net.AddMacRedirect(block, new MacRedirectFilter(Other, b));
        net.AddMacRedirect(ingress, new MacRedirectFilter(Remote, a) { Priority = 7 });

        var inBlock = net.ListFilters(block);
        Assert.Equal([(Remote, (int?)b, (ushort)1), (Other, b, 1)], inBlock.Select(f => (f.DestinationMac!, f.TargetIndex, f.Priority)));
        Assert.All(inBlock, f => Assert.Equal(0x800u, f.Handle >> 20));
        var onDevice = Assert.Single(net.ListFilters(ingress));
        Assert.Equal((Remote, (int?)a, (ushort)7), (onDevice.DestinationMac!, onDevice.TargetIndex, onDevice.Priority));

        // tc's view of skein's bytes: the same two match words and an egress redirect to the right device.
        var tcFilters = KernelJson.Array(ns.Exec("tc", "-j", "filter", "show", "block", "4242"))
            .Where(f => f.TryGetProperty("options", out var o) && o.TryGetProperty("match", out _)).ToList();
        Assert.Equal(2, tcFilters.Count);
        var tcText = ns.Exec("tc", "filter", "show", "block", "4242");
        Assert.Contains("match 00000242/0000ffff at -16", tcText);
        Assert.Contains("match 0a000005/ffffffff at -12", tcText);
        Assert.Contains("match 0a000006/ffffffff at -12", tcText);
        Assert.Contains("Egress Redirect to device tcvb", tcText);
        Assert.Contains("Egress Redirect to device tcva", ns.Exec("tc", "filter", "show", "dev", "tcvb", "ingress"));

        // skein's view of tc's bytes: a filter tc wrote the same way decodes to the same MAC and target; one of
        // another shape decodes with no MAC, so a sync removes it instead of mistaking it for its own.
        ns.Exec("tc", "filter", "add", "dev", "tcvb", "ingress", "protocol", "all", "pref", "1", "u32",
            "match", "ether", "dst", "02:42:0a:00:00:09", "action", "mirred", "egress", "redirect", "dev", "tcvc");
        ns.Exec("tc", "filter", "add", "dev", "tcvb", "ingress", "protocol", "ip", "pref", "2", "u32",
            "match", "ip", "dst", "10.0.0.1/32", "action", "mirred", "egress", "redirect", "dev", "tcvc");
        var decoded = net.ListFilters(ingress).OrderBy(f => f.Priority).ToList();
        Assert.Equal(3, decoded.Count);
        Assert.Equal((PhysicalAddress.Parse("02-42-0A-00-00-09"), (int?)c), (decoded[0].DestinationMac!, decoded[0].TargetIndex));
        Assert.Null(decoded[1].DestinationMac);
        Assert.Equal(c, decoded[1].TargetIndex);
        Assert.Equal(7, decoded[2].Priority);

        // Deleting by priority and handle removes exactly one; a second delete finds nothing.
        using var kernel = new RtNetlinkKernel(RtNetlink.OpenNamespace(ns.Path));
        Assert.True(kernel.DeleteFilter(block, inBlock[0]));
        Assert.False(kernel.DeleteFilter(block, inBlock[0]));
        Assert.Equal([Other], net.ListFilters(block).Select(f => f.DestinationMac!));
        Assert.True(kernel.DeleteFilter(ingress, decoded[1]));
        Assert.Equal(2, net.ListFilters(ingress).Count);

        // The qdisc goes with its filters; the block goes with the last qdisc that used it.
        Assert.True(kernel.DeleteClsactQdisc(b));
        Assert.False(kernel.DeleteClsactQdisc(b));
        Assert.Empty(net.ListFilters(ingress));
        Assert.True(kernel.DeleteClsactQdisc(a));
        Assert.Single(net.ListFilters(block));
        Assert.True(kernel.DeleteClsactQdisc(c));
        Assert.Empty(net.ListFilters(block));
        Assert.DoesNotContain(kernel.ListClsactQdiscs(), q => q.DeviceIndex is var i && (i == a || i == b || i == c));
    }

    [Fact]
    public void Bad_filters_are_refused_before_anything_is_sent()
    {
        using var net = RtNetlink.Open();
        var block = FilterAttachment.Block(7);
        Assert.Throws<ArgumentException>(() => net.AddMacRedirect(block, new MacRedirectFilter(PhysicalAddress.Parse("01-00-5E-00-00-01"), 3)));
        Assert.Throws<ArgumentException>(() => net.AddMacRedirect(block, new MacRedirectFilter(Remote, 0)));
        Assert.Throws<ArgumentException>(() => net.AddMacRedirect(block, new MacRedirectFilter(null, 3)));
        Assert.Throws<ArgumentException>(() => net.AddMacRedirect(block, new MacRedirectFilter(Remote, 3) { Priority = 0 }));
        Assert.Throws<ArgumentException>(() => net.AddMacRedirect(default, new MacRedirectFilter(Remote, 3)));
        Assert.Throws<ArgumentException>(() => net.DeleteFilter(block, new MacRedirectFilter(Remote, 3)));
        Assert.Throws<ArgumentOutOfRangeException>(() => FilterAttachment.Block(uint.MaxValue));
        Assert.Throws<ArgumentOutOfRangeException>(() => FilterAttachment.Ingress(0));
    }
}
