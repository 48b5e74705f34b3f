using System.Net;
using Skein.Driver.Netlink;
using Skein.Driver.Tests.TestSupport;

namespace Skein.Driver.Tests.Netlink;

public class SmokeKernelTests
{
    [SkippableFact]
    public void Creates_and_lists_links_in_a_namespace()
    {
        Skip.IfNot(NetNs.IsSupported, NetNs.SkipReason);
        using var ns = NetNs.Create();
        using var nl = RtNetlink.OpenNamespace(ns.Path);
        nl.AddLink(new BridgeSpec("br0") { Up = true });
        var br = nl.GetLink("br0")!;
        nl.AddLink(new VxlanSpec("vx0", 42) { Learning = false, MasterIndex = br.Index, Local = IPAddress.Parse("198.18.0.1") });
        nl.AddLink(new VethSpec("ve0", "ve1"));
        var links = nl.ListLinks();
        Assert.Contains(links, l => l.Name == "vx0" && l.Details is VxlanSpec { Vni: 42, Learning: false });
        Assert.Contains(links, l => l.Name == "ve0" && l.Details is VethSpec { PeerName: "ve1" });
        Console.WriteLine(ns.IpJson("-d", "link"));
    }
}
