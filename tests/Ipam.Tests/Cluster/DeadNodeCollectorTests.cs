using System.Text.Json.Nodes;
using Skein.Ipam.Allocation;
using Skein.Ipam.Cluster;
using Skein.Ipam.Store;
using Skein.Ipam.Tests.Store;
using Skein.Ipam.Tests.TestSupport;

namespace Skein.Ipam.Tests.Cluster;

/// <summary>The dead-node collector (cluster-store §4.9) on each backend.</summary>
public abstract class DeadNodeCollectorTests : ClusterTestBase
{
    private static readonly TimeSpan ReclaimAfter = TimeSpan.FromMinutes(10);

    /// <summary>node-b ran (membership + endpoints) and stopped; node-a is alive and collects.</summary>
    private async Task<(NodeMembership A, IpamService IpamA, string PoolId, List<string> BAddresses)> DeadNodeBAsync(string pool = "10.50.0.0/24", int endpoints = 3)
    {
        List<string> addresses = [];
        var storeB = await HostClientAsync();
        var b = await StartMemberAsync(storeB, "node-b");
        var ipamB = NewIpam(storeB, "node-b");
        string poolId = await ipamB.PoolAsync(pool);
        for (int i = 0; i < endpoints; i++)
            addresses.Add(await EndpointAsync(ipamB, poolId, IpamCalls.Mac(100 + i), $"b{i}"));
        await b.DisposeAsync();

        var storeA = await HostClientAsync();
        var a = await StartMemberAsync(storeA, "node-a");
        var ipamA = NewIpam(storeA, "node-a");
        await ipamA.PoolAsync(pool);
        return (a, ipamA, poolId, addresses);
    }

    [SkippableFact]
    public async Task A_dead_node_is_reclaimed_only_after_reclaimAfter_on_the_collectors_clock()
    {
        SkipIfUnavailable();
        var (a, ipamA, poolId, bAddresses) = await DeadNodeBAsync();
        string mine = await EndpointAsync(ipamA, poolId, IpamCalls.Mac(1), "a1");
        var log = new TestLog();
        var collector = NewCollector(a, ReclaimAfter, log);

        Assert.Equal(0, await collector.CollectOnceAsync(None)); // absence noticed now
        Time.Advance(ReclaimAfter - TimeSpan.FromSeconds(1));
        Assert.Equal(0, await collector.CollectOnceAsync(None));
        Assert.Equal(3, (await SlotsAsync()).Count(s => s.Node == "node-b"));
        Assert.Contains("node-b", (await PoolAsync("10.50.0.0/24")).Users.Keys);

        Time.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(1, await collector.CollectOnceAsync(None));

        var slots = await SlotsAsync();
        Assert.DoesNotContain(slots, s => s.Node == "node-b");
        Assert.Contains(slots, s => s.Address == mine.Split('/')[0] && s.Node == "node-a");
        Assert.DoesNotContain(slots, s => s.Owner == "node-b");
        Assert.Empty(await KeysAsync("affinity/node-b/"));
        Assert.Equal(["node-a"], (await PoolAsync("10.50.0.0/24")).Users.Keys.ToList());
        var info = await NodeInfoAsync("node-b");
        Assert.Equal(1, info!.ReclaimedIncarnation);
        Assert.NotNull(info.ReclaimedAt);
        Assert.True(log.Contains("reclaimed dead node node-b"), log.ToString());

        // Idempotent: another pass finds nothing to do.
        Time.Advance(ReclaimAfter * 2);
        Assert.Equal(0, await collector.CollectOnceAsync(None));
        // The freed addresses are usable again.
        foreach (var freed in bAddresses)
            await EndpointAsync(ipamA, poolId, IpamCalls.Mac(200 + bAddresses.IndexOf(freed)), $"r{bAddresses.IndexOf(freed)}", freed.Split('/')[0]);
    }

    [SkippableFact]
    public async Task A_node_that_never_ran_membership_is_never_reclaimed()
    {
        SkipIfUnavailable();
        var (a, _, poolId, _) = await DeadNodeBAsync();
        // node-x uses the store's IPAM without membership: no nodes/ key can prove it alive, so it is no candidate.
        var ipamX = NewIpam(await HostClientAsync(), "node-x");
        await ipamX.PoolAsync("10.50.0.0/24");
        await EndpointAsync(ipamX, poolId, IpamCalls.Mac(7), "x1");
        var collector = NewCollector(a, ReclaimAfter, new TestLog());
        await collector.CollectOnceAsync(None);
        Time.Advance(ReclaimAfter * 3);
        Assert.Equal(1, await collector.CollectOnceAsync(None)); // node-b only
        Assert.Single(await SlotsAsync(), s => s.Node == "node-x");
        Assert.Contains("node-x", (await PoolAsync("10.50.0.0/24")).Users.Keys);
        Assert.Null(await NodeInfoAsync("node-x"));
    }

    [SkippableFact]
    public async Task A_node_that_comes_back_before_reclaimAfter_is_untouched_and_its_absence_counts_afresh()
    {
        SkipIfUnavailable();
        SkipUnlessMultiClient();
        var (a, _, _, _) = await DeadNodeBAsync();
        var collector = NewCollector(a, ReclaimAfter, new TestLog());
        Assert.Equal(0, await collector.CollectOnceAsync(None));
        Time.Advance(ReclaimAfter - TimeSpan.FromMinutes(1));

        var back = await StartMemberAsync(await OpenClientAsync(), "node-b");
        Assert.Equal(0, await collector.CollectOnceAsync(None));
        Time.Advance(ReclaimAfter * 2);
        Assert.Equal(0, await collector.CollectOnceAsync(None));
        Assert.Equal(3, (await SlotsAsync()).Count(s => s.Node == "node-b"));
        Assert.Null((await NodeInfoAsync("node-b"))!.ReclaimedIncarnation);

        await back.DisposeAsync();
        Assert.Equal(0, await collector.CollectOnceAsync(None));
        Time.Advance(ReclaimAfter - TimeSpan.FromSeconds(1));
        Assert.Equal(0, await collector.CollectOnceAsync(None));
        Time.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(1, await collector.CollectOnceAsync(None));
        Assert.Equal(2, (await NodeInfoAsync("node-b"))!.ReclaimedIncarnation);
    }

    [SkippableFact]
    public async Task Reclaim_keeps_other_nodes_borrowed_slots_and_the_gateway_and_aux_slots()
    {
        SkipIfUnavailable();
        // A /28 pool is two /29 blocks of 8: node-b takes both, node-a then has to borrow.
        var storeB = await HostClientAsync();
        var b = await StartMemberAsync(storeB, "node-b");
        var ipamB = NewIpam(storeB, "node-b");
        string poolId = await ipamB.PoolAsync("10.60.0.0/28");
        string gateway = await ipamB.GatewayAsync(poolId);
        await ipamB.AuxAsync(poolId, "10.60.0.14");
        var bAddresses = new List<string>();
        for (int i = 0; i < 8; i++)
            bAddresses.Add(await EndpointAsync(ipamB, poolId, IpamCalls.Mac(100 + i), $"b{i}"));
        Assert.Equal(2, (await SlotsAsync()).Select(s => s.Block).Distinct().Count());
        await b.DisposeAsync();

        var storeA = await HostClientAsync();
        var a = await StartMemberAsync(storeA, "node-a");
        var ipamA = NewIpam(storeA, "node-a");
        await ipamA.PoolAsync("10.60.0.0/28");
        string borrowed = await EndpointAsync(ipamA, poolId, IpamCalls.Mac(1), "a1");
        Assert.Contains(await KeysAsync("affinity/node-a/"), k => k.Length > 0);
        var before = Assert.Single(await SlotsAsync(), s => s.Address == borrowed.Split('/')[0]);
        Assert.Equal("node-b", before.Owner);

        var collector = NewCollector(a, ReclaimAfter, new TestLog());
        await collector.CollectOnceAsync(None);
        Time.Advance(ReclaimAfter + TimeSpan.FromSeconds(1));
        Assert.Equal(1, await collector.CollectOnceAsync(None));

        var slots = await SlotsAsync();
        Assert.DoesNotContain(slots, s => s.Node == "node-b");
        var kept = Assert.Single(slots, s => s.Address == borrowed.Split('/')[0]);
        Assert.Equal(("node-a", "bound"), (kept.Node, kept.State));
        Assert.Null(kept.Owner); // node-b no longer owns it
        Assert.Equal("gateway", Assert.Single(slots, s => s.Address == gateway.Split('/')[0]).Kind);
        Assert.Equal("aux", Assert.Single(slots, s => s.Address == "10.60.0.14").Kind);
        Assert.Equal(gateway.Split('/')[0], (await PoolAsync("10.60.0.0/28")).Gateway);
        Assert.NotEmpty(await KeysAsync("affinity/node-a/"));
        Assert.Empty(await KeysAsync("affinity/node-b/"));

        // node-a still releases its borrowed address normally, and the pool is usable again.
        await ipamA.ReleaseAsync(poolId, borrowed);
        Assert.DoesNotContain(await SlotsAsync(), s => s.Address == borrowed.Split('/')[0]);
        Time.Advance(TimeSpan.FromMinutes(3)); // past the quarantine of the freed addresses
        for (int i = 0; i < bAddresses.Count; i++)
            await ipamA.EndpointAsync(poolId, IpamCalls.Mac(300 + i));
    }

    [SkippableFact]
    public async Task Reclaim_removes_the_node_from_network_members_and_keeps_the_rest_of_the_record()
    {
        SkipIfUnavailable();
        var (a, _, _, _) = await DeadNodeBAsync();
        const string network = """{"v":1,"vni":4242,"pools":["10.50.0.0/24"],"members":{"node-a":["n1"],"node-b":["n2","n3"]},"optionsHash":"abc"}""";
        Assert.Equal(WriteOutcome.Applied, (await Shared.PutAsync($"{Root}/networks/blue", System.Text.Encoding.UTF8.GetBytes(network), Precondition.Absent, false, None)).Outcome);
        var collector = NewCollector(a, ReclaimAfter, new TestLog());
        await collector.CollectOnceAsync(None);
        Time.Advance(ReclaimAfter + TimeSpan.FromSeconds(1));
        Assert.Equal(1, await collector.CollectOnceAsync(None));

        var after = JsonNode.Parse((await ValueAsync("networks/blue"))!)!.AsObject();
        Assert.Equal(4242, after["vni"]!.GetValue<int>());
        Assert.Equal("abc", after["optionsHash"]!.GetValue<string>());
        Assert.Equal("10.50.0.0/24", after["pools"]![0]!.GetValue<string>());
        var members = after["members"]!.AsObject();
        Assert.False(members.ContainsKey("node-b"));
        Assert.Equal("n1", members["node-a"]![0]!.GetValue<string>());
    }

    [SkippableFact]
    public async Task Two_collectors_elect_one_leader_which_alone_reclaims_and_the_other_takes_over()
    {
        SkipIfUnavailable();
        SkipUnlessMultiClient();
        var (a, _, _, _) = await DeadNodeBAsync();
        var c = await StartMemberAsync(await OpenClientAsync(), "node-c");
        var logA = new TestLog();
        var logC = new TestLog();
        var reclaimFast = TimeSpan.FromMilliseconds(1);
        var collectorA = new DeadNodeCollector(a.Store, a, Root, reclaimFast, Time, logA.Add) { Interval = TimeSpan.FromMilliseconds(100), CampaignInterval = TimeSpan.FromMilliseconds(100) };
        var collectorC = new DeadNodeCollector(c.Store, c, Root, reclaimFast, Time, logC.Add) { Interval = TimeSpan.FromMilliseconds(100), CampaignInterval = TimeSpan.FromMilliseconds(100) };
        using var stopA = new CancellationTokenSource();
        using var stopC = new CancellationTokenSource();
        var runA = collectorA.RunAsync(stopA.Token);
        var runC = collectorC.RunAsync(stopC.Token);
        try
        {
            await EventuallyAsync(() => Task.FromResult(collectorA.IsLeader || collectorC.IsLeader), "a leader");
            // The manual clock does not move by itself: push it so the dead node becomes due.
            await EventuallyAsync(async () =>
            {
                Time.Advance(TimeSpan.FromSeconds(1));
                return (await NodeInfoAsync("node-b"))?.ReclaimedIncarnation == 1;
            }, "node-b reclaimed");
            Assert.False(collectorA.IsLeader && collectorC.IsLeader);
            var (leader, leaderLog, follower, followerLog, leaderMembership, stopLeader, runLeader) = collectorA.IsLeader
                ? (collectorA, logA, collectorC, logC, a, stopA, runA)
                : (collectorC, logC, collectorA, logA, c, stopC, runC);
            Assert.True(leaderLog.Contains("reclaimed dead node node-b"), leaderLog.ToString());
            Assert.False(followerLog.Contains("reclaimed dead node"), followerLog.ToString());
            Assert.Contains($"\"node\":\"{leaderMembership.NodeId}\"", await ValueAsync("gc/leader"));

            // The leader stops and its liveness ends: gc/leader goes, and the other candidate takes over.
            await stopLeader.CancelAsync();
            await runLeader;
            await leaderMembership.DisposeAsync();
            await EventuallyAsync(() => Task.FromResult(follower.IsLeader), "the other collector to lead");
            Assert.False(leader.IsLeader);
        }
        finally
        {
            await stopA.CancelAsync();
            await stopC.CancelAsync();
            await Task.WhenAll(runA, runC);
        }
    }
}

public sealed class EmbeddedDeadNodeCollectorTests : DeadNodeCollectorTests
{
    protected override ClusterBackend CreateBackend() => new EmbeddedBackend();
}

public sealed class EtcdDeadNodeCollectorTests(EtcdFixture fixture) : DeadNodeCollectorTests, IClassFixture<EtcdFixture>
{
    protected override ClusterBackend CreateBackend() => new EtcdBackend(fixture);
}

public sealed class ConsulDeadNodeCollectorTests(FakeConsulFixture fixture) : DeadNodeCollectorTests, IClassFixture<FakeConsulFixture>
{
    protected override ClusterBackend CreateBackend() => new ConsulBackend(fixture);
}
