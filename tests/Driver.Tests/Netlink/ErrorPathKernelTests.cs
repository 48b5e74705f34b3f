using System.Net;
using Skein.Driver.Netlink;
using Skein.Driver.Netlink.Messages;
using Skein.Driver.Netlink.Wire;
using Skein.Driver.Tests.TestSupport;

namespace Skein.Driver.Tests.Netlink;

/// <summary>Kernel refusals surface errno, operation and the kernel's text; bad input is refused before anything is sent.</summary>
public class ErrorPathKernelTests
{
    private static (NetNs Ns, RtNetlink Netlink) Scratch()
    {
        Skip.IfNot(NetNs.IsSupported, NetNs.SkipReason);
        var ns = NetNs.Create();
        return (ns, RtNetlink.OpenNamespace(ns.Path));
    }

    private static List<string> LinkNames(NetNs ns) =>
        KernelJson.Array(ns.IpJson("link", "show")).Select(l => l.String("ifname")!).ToList();

    [SkippableFact]
    public void Creating_an_existing_link_is_EEXIST_with_the_operation()
    {
        var (ns, nl) = Scratch();
        using (ns) using (nl)
        {
            nl.AddLink(new BridgeSpec("br0"));
            var e = Assert.Throws<NetlinkException>(() => nl.AddLink(new BridgeSpec("br0")));
            Assert.Equal(17, e.Errno);
            Assert.True(e.IsAlreadyExists);
            Assert.Equal("add link br0 (bridge)", e.Operation);
            Assert.Contains("add link br0 (bridge)", e.Message);
            Assert.Contains("EEXIST", e.Message);
        }
    }

    [SkippableFact]
    public void A_second_vxlan_with_the_same_vni_carries_the_kernel_message()
    {
        var (ns, nl) = Scratch();
        using (ns) using (nl)
        {
            nl.AddLink(new VxlanSpec("vx0", 100));
            var e = Assert.Throws<NetlinkException>(() => nl.AddLink(new VxlanSpec("vx1", 100)));
            Assert.Equal(17, e.Errno);
            Assert.Equal("add link vx1 (vxlan)", e.Operation);
            Assert.False(string.IsNullOrEmpty(e.KernelMessage));
            Assert.Contains("VNI", e.KernelMessage);
            Assert.Contains(e.KernelMessage!, e.Message);
            Assert.DoesNotContain("vx1", LinkNames(ns));
        }
    }

    [SkippableFact]
    public void Deleting_a_missing_link_is_not_found()
    {
        var (ns, nl) = Scratch();
        using (ns) using (nl)
        {
            var byName = Assert.Throws<NetlinkException>(() => nl.DeleteLink("nosuch0"));
            Assert.Equal(19, byName.Errno);
            Assert.True(byName.IsNotFound);
            Assert.Equal("delete link nosuch0", byName.Operation);
            var byIndex = Assert.Throws<NetlinkException>(() => nl.DeleteLink(9999));
            Assert.True(byIndex.IsNotFound);
            Assert.Null(nl.GetLink("nosuch0"));
            Assert.Null(nl.GetLink(9999));
        }
    }

    [SkippableFact]
    public void A_bad_vni_is_refused_before_sending_and_by_the_kernel_if_sent_anyway()
    {
        var (ns, nl) = Scratch();
        using (ns) using (nl)
        {
            var before = LinkNames(ns);
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => nl.AddLink(new VxlanSpec("vx0", 1 << 24)));
            Assert.Contains("VNI", e.Message);
            Assert.Contains("vx0", e.Message);
            Assert.Throws<ArgumentOutOfRangeException>(() => nl.AddLink(new VxlanSpec("vx0", -1)));
            Assert.Equal(before, LinkNames(ns));

            // The same request without our check: the kernel's own refusal is surfaced.
            using var fd = ns.Open();
            using var socket = NetworkNamespaceThread.Run((int)fd.DangerousGetHandle(), "test", () => NetlinkSocket.Create(TimeSpan.FromSeconds(5)));
            var raw = new byte[256];
            var kernel = Assert.Throws<NetlinkException>(() => socket.Execute("add link vx0 (vxlan)", LinkMessages.Add(raw, new VxlanSpec("vx0", 1 << 24))));
            Assert.Equal(34, kernel.Errno); // ERANGE
            Assert.Equal(before, LinkNames(ns));
        }
    }

    [SkippableFact]
    public void An_unknown_master_is_refused_and_nothing_is_left_behind()
    {
        var (ns, nl) = Scratch();
        using (ns) using (nl)
        {
            var e = Assert.Throws<NetlinkException>(() => nl.AddLink(new VethSpec("v0", "v1") { MasterIndex = 4242 }));
            Assert.True(e.IsNotFound || e.Errno == 22, e.Message);
            Assert.DoesNotContain("v0", LinkNames(ns));
            Assert.DoesNotContain("v1", LinkNames(ns));

            nl.AddLink(new VethSpec("v0", "v1"));
            var set = Assert.Throws<NetlinkException>(() => nl.SetMaster(nl.GetLink("v0")!.Index, 4242));
            Assert.Contains("set master 4242", set.Operation);
        }
    }

    [SkippableFact]
    public void Bad_arguments_name_what_is_wrong()
    {
        var (ns, nl) = Scratch();
        using (ns) using (nl)
        {
            Assert.Contains("longer than 15", Assert.Throws<ArgumentException>(() => nl.AddLink(new BridgeSpec("a-name-that-is-too-long"))).Message);
            Assert.Contains("'/'", Assert.Throws<ArgumentException>(() => nl.AddLink(new BridgeSpec("a/b"))).Message);
            Assert.Contains("MTU", Assert.Throws<ArgumentOutOfRangeException>(() => nl.AddLink(new BridgeSpec("br0") { Mtu = 20 })).Message);
            Assert.Contains("different names", Assert.Throws<ArgumentException>(() => nl.AddLink(new VethSpec("v0", "v0"))).Message);
            Assert.Throws<ArgumentOutOfRangeException>(() => nl.SetLinkUp(0));
            Assert.Contains("gateway", Assert.Throws<ArgumentException>(() => nl.AddRoute(new Route(IpPrefix.Parse("10.0.0.0/8")) { Gateway = IPAddress.Parse("fd00::1") })).Message);
            Assert.Contains("MAC", Assert.Throws<ArgumentException>(() => nl.AddNeighbor(new Neighbor(1, IPAddress.Parse("10.0.0.1"), null))).Message);
            Assert.Equal(["lo"], LinkNames(ns));
        }
    }

    [SkippableFact]
    public void Kernel_extended_ack_text_reaches_the_exception()
    {
        var (ns, nl) = Scratch();
        using (ns) using (nl)
        {
            nl.AddLink(new VethSpec("v0", "v1"));
            int v0 = nl.GetLink("v0")!.Index;
            // Something only the kernel can judge: a gateway that no link reaches.
            nl.SetLinkUp(v0);
            var e = Assert.Throws<NetlinkException>(() => nl.AddRoute(new Route(IpPrefix.Parse("10.9.0.0/16")) { Gateway = IPAddress.Parse("10.55.0.1"), OutputIndex = v0 }));
            Assert.False(string.IsNullOrEmpty(e.KernelMessage), e.Message);
            Assert.Contains("gateway", e.KernelMessage, StringComparison.OrdinalIgnoreCase);
        }
    }

    [SkippableFact]
    public void A_reply_that_never_comes_times_out_and_the_socket_stays_usable()
    {
        var (ns, nl) = Scratch();
        using (ns) using (nl)
        using (var fd = ns.Open())
        {
            using var socket = NetworkNamespaceThread.Run((int)fd.DangerousGetHandle(), "test", () => NetlinkSocket.Create(TimeSpan.FromMilliseconds(300)));
            // A change sent without NLM_F_ACK: the kernel applies it and answers nothing.
            var buffer = new byte[64];
            var silent = new MessageWriter(buffer, MessageType.NewLink, MessageFlags.Request);
            silent.WriteFixed(new InterfaceInfoMessage { Index = 1, Flags = 0, Change = 1 }); // lo down
            var silentBytes = silent.Finish().ToArray();
            var started = DateTime.UtcNow;
            var e = Assert.Throws<NetlinkTransportException>(() => socket.Get("take lo down silently", silentBytes, LinkMessages.Decoder));
            Assert.Equal(110, e.Errno); // ETIMEDOUT
            Assert.Contains("timed out", e.Message);
            Assert.True(DateTime.UtcNow - started >= TimeSpan.FromMilliseconds(250));

            var request = new byte[256];
            socket.Execute("add link br9 (bridge)", LinkMessages.Add(request, new BridgeSpec("br9")));
            Assert.Single(KernelJson.Array(ns.IpJson("link", "show", "br9")));
            Assert.DoesNotContain("UP", KernelJson.Single(ns.IpJson("link", "show", "lo")).Strings("flags")); // it was applied
        }
    }
}
