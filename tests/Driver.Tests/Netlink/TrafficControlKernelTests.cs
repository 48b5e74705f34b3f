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

        // Without a table of their own the nodes sit in the root table 800:, which the dump also reports.
        var root = Assert.Single(net.ListFilters(block), f => f.Divisor is not null);
        Assert.Equal((0x8000_0000u, (uint?)1), (root.Handle, root.Divisor));
        var inBlock = Nodes(net.ListFilters(block));
        Assert.Equal([(Remote, (int?)b, (ushort)1), (Other, b, 1)], inBlock.Select(f => (f.DestinationMac!, f.TargetIndex, f.Priority)));
        Assert.All(inBlock, f => Assert.Equal(0x800u, f.Handle >> 20));
        var onDevice = Assert.Single(Nodes(net.ListFilters(ingress)));
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
        var decoded = Nodes(net.ListFilters(ingress)).OrderBy(f => f.Priority).ToList();
        Assert.Equal(3, decoded.Count);
        Assert.Equal((PhysicalAddress.Parse("02-42-0A-00-00-09"), (int?)c), (decoded[0].DestinationMac!, decoded[0].TargetIndex));
        Assert.Null(decoded[1].DestinationMac);
        Assert.Equal(c, decoded[1].TargetIndex);
        Assert.Equal(7, decoded[2].Priority);

        // Deleting by priority and handle removes exactly one; a second delete finds nothing.
        using var kernel = new RtNetlinkKernel(RtNetlink.OpenNamespace(ns.Path));
        Assert.True(kernel.DeleteFilter(block, inBlock[0]));
        Assert.False(kernel.DeleteFilter(block, inBlock[0]));
        Assert.Equal([Other], Nodes(net.ListFilters(block)).Select(f => f.DestinationMac!));
        Assert.True(kernel.DeleteFilter(ingress, decoded[1]));
        Assert.Equal(2, Nodes(net.ListFilters(ingress)).Count);

        // The qdisc goes with its filters; the block goes with the last qdisc that used it.
        Assert.True(kernel.DeleteClsactQdisc(b));
        Assert.False(kernel.DeleteClsactQdisc(b));
        Assert.Empty(net.ListFilters(ingress));
        Assert.True(kernel.DeleteClsactQdisc(a));
        Assert.Single(Nodes(net.ListFilters(block)));
        Assert.True(kernel.DeleteClsactQdisc(c));
        Assert.Empty(net.ListFilters(block));
        Assert.DoesNotContain(kernel.ListClsactQdiscs(), q => q.DeviceIndex is var i && (i == a || i == b || i == c));
    }

    [SkippableFact]
    public void A_MAC_hash_table_puts_each_filter_in_the_bucket_of_its_last_byte_and_a_priority_goes_at_once()
    {
        Skip.IfNot(NetNs.IsSupported, NetNs.SkipReason);
        Skip.IfNot(NetNsCommand.Exists("tc"), "needs tc (iproute2) for the cross-check");
        using var ns = NetNs.Create();
        using var net = RtNetlink.OpenNamespace(ns.Path);
        net.AddLink(new VethSpec("tcva", "tcvb") { Up = true });
        int a = net.GetLink("tcva")!.Index, b = net.GetLink("tcvb")!.Index;
        net.AddClsactQdisc(a);
        var ingress = FilterAttachment.Ingress(a);
        const uint table = 0x0010_0000;

        net.AddMacHashTable(ingress, 1, table);
        net.AddMacRedirect(ingress, new MacRedirectFilter(Remote, b), table);
        net.AddMacRedirect(ingress, new MacRedirectFilter(Other, b), table);

        var all = net.ListFilters(ingress);
        Assert.Contains(all, f => f.Handle == table && f.Divisor == 256);
        var link = Assert.Single(all, f => f.LinkTo is not null);
        Assert.True(link.HashesLastMacByte);
        Assert.Equal((table, 0x8000_0000u), (link.LinkTo!.Value, MacRedirectFilter.TableOf(link.Handle)));
        var nodes = Nodes(all).Where(f => f.LinkTo is null).OrderBy(f => f.Handle).ToList();
        Assert.Equal([(Remote, 0x05), (Other, 0x06)], nodes.Select(f => (f.DestinationMac!, MacRedirectFilter.BucketOf(f.Handle))));
        Assert.All(nodes, f => Assert.Equal(table, MacRedirectFilter.TableOf(f.Handle)));

        // tc reads the same layout: the link hashes on the low byte at -12, the nodes sit in buckets 5 and 6 of 1:.
        var text = ns.Exec("tc", "filter", "show", "dev", "tcva", "ingress");
        Assert.Contains("link 1:", text);
        Assert.Contains("hash mask 000000ff at -12", text);
        Assert.Contains("fh 1:5:800", text);
        Assert.Contains("fh 1:6:800", text);

        Assert.True(new RtNetlinkKernel(RtNetlink.OpenNamespace(ns.Path)).DeleteFilterPriority(ingress, 1, MacRedirectFilter.AllProtocols));
        Assert.Empty(net.ListFilters(ingress));
        Assert.Throws<ArgumentOutOfRangeException>(() => net.AddMacHashTable(ingress, 1, 0x8000_0000));
        Assert.Throws<ArgumentOutOfRangeException>(() => net.AddMacHashTable(ingress, 1, 0x0010_0800));
    }

    /// <summary>The match nodes of a dump, without the u32 tables.</summary>
    private static List<MacRedirectFilter> Nodes(IReadOnlyList<MacRedirectFilter> filters) => filters.Where(f => f.Divisor is null).ToList();

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
