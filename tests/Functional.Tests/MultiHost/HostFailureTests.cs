using System.Diagnostics;
using System.Text.RegularExpressions;
using Skein.Functional.Tests.Infrastructure;

namespace Skein.Functional.Tests.MultiHost;

/// <summary>
/// A host dies (skein and dockerd killed, off the underlay): the survivor forgets it and reclaims its addresses;
/// then the lab, dead host and all, is disposed and must leave nothing behind.
/// </summary>
public sealed class HostFailureTests
{
    [SkippableFact]
    public async Task A_dead_hosts_peers_are_dropped_after_TTL_and_hold_down_its_addresses_reclaimed_and_the_lab_removed()
    {
        var lab = new ReclaimLab();
        await lab.InitializeAsync();
        List<int> pids;
        try
        {
            lab.RequireReady();
            pids = await LabCleanupTests.PopulateAsync(lab);
            await KillAndReclaimAsync(lab);
        }
        finally
        {
            await lab.DisposeAsync();
        }
        await LabCleanupTests.AssertNothingLeftAsync(lab, pids);
    }

    private static async Task KillAndReclaimAsync(ReclaimLab lab)
    {
        var scope = lab.Scope(); // left to the lab's disposal, which must cope with a dead host
        var (h1, h2) = (lab[1], lab[2]);
        var net = await scope.NetworkOnAllAsync("kill", ["--subnet", "10.27.0.0/16"]);
        var c1 = await scope.RunAsync(h1, "c1", net);
        var c2 = await scope.RunAsync(h2, "c2", net);
        var ip2 = await scope.IPv4Async(c2);
        await scope.AssertPingsAsync(c1, c2, ip2);
        await scope.AssertPingsAsync(c2, c1, await scope.IPv4Async(c1));
        Assert.True(await KnowsPeerAsync(h1, h2.UnderlayIp, ip2), "host1 has no FDB/neighbour entries for host2 although their containers ping");
        Assert.True(await NodeKeyAsync(lab, "nodes", "host2") is not null, "nodes/host2 is missing from the store while host2 runs");

        var clock = Stopwatch.StartNew();
        await h2.Skein.StopAsync(hard: true);
        await h2.DisconnectAsync();
        await h2.StopDockerdAsync(kill: true);

        // a blip is not a death: right after the kill host1 still forwards to host2 (lease TTL, then hold-down)
        await Task.Delay(3000);
        Assert.True(await KnowsPeerAsync(h1, h2.UnderlayIp, ip2), $"host1 dropped host2's entries {clock.Elapsed.TotalSeconds:0} s after the kill, before TTL and hold-down");

        var dropped = await Shell.EventuallyAsync(async () => !await KnowsPeerAsync(h1, h2.UnderlayIp, ip2), TimeSpan.FromSeconds(90), TimeSpan.FromSeconds(1));
        Assert.True(dropped, $"host1 still has FDB/neighbour entries for the dead host2 {clock.Elapsed.TotalSeconds:0} s after the kill\n{await KernelViewAsync(h1)}");
        var droppedAfter = clock.Elapsed;
        Assert.True(await NodeKeyAsync(lab, "nodes", "host2") is null, "nodes/host2 is still in the store after host2's entries were dropped");

        var reclaimed = await Shell.EventuallyAsync(async () => (await NodeKeyAsync(lab, "nodeinfo", "host2"))?.Contains("reclaimedAt") == true,
            TimeSpan.FromSeconds(90), TimeSpan.FromSeconds(1));
        Assert.True(reclaimed, $"host2 was not reclaimed {clock.Elapsed.TotalSeconds:0} s after the kill (reclaim-after {lab.ReclaimAfterSeconds} s); " +
            $"nodeinfo/host2 = {await NodeKeyAsync(lab, "nodeinfo", "host2") ?? "(absent)"}\nhost1 skein log:\n{h1.Skein.Tail(20)}");

        // the survivor keeps allocating from the network (it may be handed host2's old address)
        var c3 = await scope.RunAsync(h1, "c3", net);
        var ip3 = await scope.IPv4Async(c3);
        await scope.AssertPingsAsync(c1, c3, ip3);
        Console.WriteLine($"host kill: peers dropped after {droppedAfter.TotalSeconds:0} s, reclaimed after {clock.Elapsed.TotalSeconds:0} s; new container got {ip3} (dead host had {ip2})");
    }

    /// <summary>FDB entries pointing at the peer's VTEP or a neighbour entry for its container, in the host's namespace.</summary>
    private static async Task<bool> KnowsPeerAsync(LabHost host, string vtep, string containerIp)
    {
        var fdb = (await host.InNetnsAsync("bridge", "fdb", "show")).EnsureOk().Stdout;
        var neigh = (await host.InNetnsAsync("ip", "neigh", "show")).EnsureOk().Stdout;
        return fdb.Split('\n').Any(l => l.Contains($"dst {vtep} ", StringComparison.Ordinal) || l.EndsWith($"dst {vtep}", StringComparison.Ordinal))
            || neigh.Split('\n').Any(l => l.StartsWith(containerIp + " ", StringComparison.Ordinal));
    }

    private static async Task<string> KernelViewAsync(LabHost host) =>
        "fdb:\n" + (await host.InNetnsAsync("bridge", "fdb", "show")).Stdout + "neigh:\n" + (await host.InNetnsAsync("ip", "neigh", "show")).Stdout;

    private static async Task<string?> NodeKeyAsync(MultiHostLab lab, string kind, string node) =>
        (await lab.StoreKeysAsync()).Where(kv => Regex.IsMatch(kv.Key, $@"(^|/){kind}/{node}$")).Select(kv => kv.Value).FirstOrDefault();
}
