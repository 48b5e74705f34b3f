using Skein.Driver.Netlink;
using Skein.Driver.Tests.TestSupport;

namespace Skein.Driver.Tests.Netlink;

/// <summary>Handles bound to namespaces, without any thread-pool thread ever changing namespace; sysctls per namespace.</summary>
public class NamespaceKernelTests
{
    private static string ThreadNamespace() => new FileInfo("/proc/thread-self/ns/net").LinkTarget ?? "";

    [SkippableFact]
    public void A_handle_opened_by_path_works_inside_that_namespace_only()
    {
        Skip.IfNot(NetNs.IsSupported, NetNs.SkipReason);
        using var ns = NetNs.Create();
        using var nl = RtNetlink.OpenNamespace(ns.Path);
        Assert.Equal(ns.Path, nl.NamespacePath);
        nl.AddLink(new BridgeSpec("skt-ns-br"));

        Assert.NotNull(nl.GetLink("skt-ns-br"));
        Assert.Single(KernelJson.Array(ns.IpJson("link", "show", "skt-ns-br")));
        using var here = RtNetlink.Open();
        Assert.Null(here.NamespacePath);
        Assert.Null(here.GetLink("skt-ns-br")); // read-only look at the test host: the bridge is not here
    }

    [SkippableFact]
    public void A_handle_opened_by_fd_keeps_its_own_copy_of_the_fd()
    {
        Skip.IfNot(NetNs.IsSupported, NetNs.SkipReason);
        using var ns = NetNs.Create();
        RtNetlink nl;
        using (var fd = ns.Open())
            nl = RtNetlink.OpenNamespace((int)fd.DangerousGetHandle());
        using (nl)
        {
            Assert.Null(nl.NamespacePath);
            nl.AddLink(new VethSpec("v0", "v1"));
            Assert.Equal("0", nl.ReadSysctl("net.ipv4.conf.v0.forwarding")); // needs the namespace fd after the caller closed theirs
            Assert.Single(KernelJson.Array(ns.IpJson("link", "show", "v0")));
        }
    }

    [SkippableFact]
    public async Task Opening_handles_never_moves_pool_threads_or_the_caller()
    {
        Skip.IfNot(NetNs.IsSupported, NetNs.SkipReason);
        using var ns = NetNs.Create();
        string home = ThreadNamespace();
        var seen = new System.Collections.Concurrent.ConcurrentBag<string>();

        await Task.WhenAll(Enumerable.Range(0, 32).Select(_ => Task.Run(() =>
        {
            using var nl = RtNetlink.OpenNamespace(ns.Path);
            nl.ListLinks();
            nl.ReadSysctl("net.ipv4.ip_forward");
            seen.Add(ThreadNamespace());
        })));
        await Task.WhenAll(Enumerable.Range(0, 64).Select(_ => Task.Run(() => seen.Add(ThreadNamespace()))));

        Assert.Equal(home, ThreadNamespace());
        Assert.All(seen, s => Assert.Equal(home, s));
    }

    [SkippableFact]
    public void Bad_namespace_paths_and_fds_fail_clearly()
    {
        Skip.IfNot(NetNs.IsSupported, NetNs.SkipReason);
        var missing = Assert.Throws<NetlinkTransportException>(() => RtNetlink.OpenNamespace("/var/run/netns/skt-does-not-exist"));
        Assert.Contains("skt-does-not-exist", missing.Message);
        Assert.Equal(2, missing.Errno);

        using var notNamespace = File.OpenHandle("/proc/self/status", FileMode.Open, FileAccess.Read);
        var wrong = Assert.Throws<ArgumentException>(() => RtNetlink.OpenNamespace((int)notNamespace.DangerousGetHandle()));
        Assert.Contains("not a network namespace", wrong.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => RtNetlink.OpenNamespace(-1));
    }

    [SkippableFact]
    public async Task One_handle_serves_many_threads()
    {
        Skip.IfNot(NetNs.IsSupported, NetNs.SkipReason);
        using var ns = NetNs.Create();
        using var nl = RtNetlink.OpenNamespace(ns.Path);
        await Task.WhenAll(Enumerable.Range(0, 8).Select(t => Task.Run(() =>
        {
            for (int i = 0; i < 10; i++)
            {
                string name = $"t{t}b{i}";
                nl.AddLink(new BridgeSpec(name));
                Assert.Equal(name, nl.GetLink(name)!.Name);
                Assert.Contains(nl.ListLinks(), l => l.Name == name);
                nl.DeleteLink(name);
            }
        })));
        Assert.Equal(["lo"], nl.ListLinks().Select(l => l.Name));
    }

    [SkippableFact]
    public async Task Dumps_stay_whole_while_links_change_underneath()
    {
        Skip.IfNot(NetNs.IsSupported, NetNs.SkipReason);
        using var ns = NetNs.Create();
        using var writer = RtNetlink.OpenNamespace(ns.Path);
        using var reader = RtNetlink.OpenNamespace(ns.Path);
        for (int i = 0; i < 40; i++) writer.AddLink(new BridgeSpec($"keep{i}"));

        using var stop = new CancellationTokenSource();
        var churn = Task.Run(() =>
        {
            for (int i = 0; !stop.IsCancellationRequested; i++)
            {
                writer.AddLink(new BridgeSpec("churn"));
                writer.DeleteLink("churn");
            }
        });
        for (int i = 0; i < 100; i++)
        {
            var names = reader.ListLinks().Select(l => l.Name).ToHashSet();
            Assert.All(Enumerable.Range(0, 40), k => Assert.Contains($"keep{k}", names));
        }
        stop.Cancel();
        await churn;
    }

    [SkippableFact]
    public void Sysctls_are_read_and_written_per_namespace()
    {
        Skip.IfNot(NetNs.IsSupported, NetNs.SkipReason);
        using var ns = NetNs.Create();
        using var nl = RtNetlink.OpenNamespace(ns.Path);
        string hostForwarding = Sysctl.Read("net.ipv4.ip_forward");

        Assert.Equal("0", nl.ReadSysctl("net.ipv4.ip_forward"));
        nl.WriteSysctl("net.ipv4.ip_forward", "1");
        Assert.Equal("1", nl.ReadSysctl("net/ipv4/ip_forward"));
        Assert.Equal("1", ns.Exec("cat", "/proc/sys/net/ipv4/ip_forward").Trim());
        Assert.Equal(hostForwarding, Sysctl.Read("net.ipv4.ip_forward")); // the host is untouched

        nl.AddLink(new VethSpec("v0.5", "v1"));  // a dotted device name needs the slash form
        Assert.Equal("0", nl.ReadSysctl("net/ipv6/conf/v0.5/disable_ipv6"));
        Assert.Null(Sysctl.TryRead("net.ipv4.conf.skt-no-such-dev.forwarding"));
        Assert.Contains("cannot read sysctl", Assert.Throws<IOException>(() => nl.ReadSysctl("net.ipv4.conf.nosuch.forwarding")).Message);
        Assert.Throws<ArgumentException>(() => Sysctl.Read("net/../../etc/passwd"));
        Assert.Throws<ArgumentException>(() => Sysctl.Read("net.ipv4.ip forward"));
    }
}
