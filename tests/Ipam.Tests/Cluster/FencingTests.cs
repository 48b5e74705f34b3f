using System.Net;
using Skein.Ipam.Allocation;
using Skein.Ipam.Cluster;
using Skein.Ipam.Tests.Store;
using Skein.Ipam.Tests.TestSupport;

namespace Skein.Ipam.Tests.Cluster;

/// <summary>Fencing of a node's local endpoints (cluster-store §4.9) on each backend.</summary>
public abstract class FencingTests : ClusterTestBase
{
    private const string Pool = "10.40.0.0/24";
    private static readonly string EidA = new('a', 64), EidB = new('b', 64);

    /// <summary>
    /// node-a runs two endpoints, dies, and is reclaimed by node-b's collector; returns node-a's endpoint
    /// claims and the pool id. Runs with hosts one after another, so the single-process store can play it too.
    /// </summary>
    private async Task<(List<LocalEndpointClaim> Claims, string PoolId, IpamService IpamB, NodeMembership B)> ReclaimNodeAAsync(bool bStaysUser = true)
    {
        var storeA = await HostClientAsync();
        var a = await StartMemberAsync(storeA, "node-a");
        var ipamA = NewIpam(storeA, "node-a");
        string poolId = await ipamA.PoolAsync(Pool);
        await ipamA.GatewayAsync(poolId);
        string first = await EndpointAsync(ipamA, poolId, IpamCalls.Mac(1), EidA);
        string second = await EndpointAsync(ipamA, poolId, IpamCalls.Mac(2), EidB);
        await a.DisposeAsync();

        var storeB = await HostClientAsync();
        var b = await StartMemberAsync(storeB, "node-b");
        var ipamB = NewIpam(storeB, "node-b");
        if (bStaysUser)
            await ipamB.PoolAsync(Pool);
        var collector = NewCollector(b, TimeSpan.FromMinutes(10), new TestLog());
        Assert.Equal(0, await collector.CollectOnceAsync(None));
        Time.Advance(TimeSpan.FromMinutes(11));
        Assert.Equal(1, await collector.CollectOnceAsync(None));
        Assert.DoesNotContain(await SlotsAsync(), s => s.Node == "node-a");
        Assert.Equal(1, (await NodeInfoAsync("node-a"))!.ReclaimedIncarnation);
        return ([new(EidA, IpamCalls.Mac(1), first, Pool), new(EidB, IpamCalls.Mac(2), second, Pool)], poolId, ipamB, b);
    }

    private async Task<NodeMembership> RestartAAsync(NodeMembership b, TestLog log)
    {
        if (!MultiClient)
            await b.DisposeAsync(); // one liveness per embedded store
        return await StartMemberAsync(await HostClientAsync(), "node-a", log);
    }

    [SkippableFact]
    public async Task A_reclaimed_node_reinserts_its_endpoints_where_the_addresses_are_still_free()
    {
        SkipIfUnavailable();
        var (claims, _, _, b) = await ReclaimNodeAAsync();
        var log = new TestLog();
        var a = await RestartAAsync(b, log);
        Assert.Equal(2, a.Incarnation);

        var conflicted = await a.FenceAsync(claims, None);

        Assert.Empty(conflicted);
        Assert.True(log.Contains("was reclaimed by the collector"), log.ToString());
        var slots = await SlotsAsync();
        foreach (var claim in claims)
        {
            var slot = Assert.Single(slots, s => s.Address == claim.Address.Split('/')[0]);
            Assert.Equal(("container", "node-a", claim.Mac, claim.EndpointId, "bound"), (slot.Kind, slot.Node, slot.Mac, slot.Eid, slot.State));
        }
        Assert.Contains("node-a", (await PoolAsync(Pool)).Users.Keys);
        Assert.Contains(await KeysAsync("affinity/node-a/"), k => k.StartsWith("affinity/node-a/localdefault/10.40.0.0-24/", StringComparison.Ordinal));
        // Fencing again changes nothing and finds no conflict.
        Assert.Empty(await a.FenceAsync(claims, None));
    }

    [SkippableFact]
    public async Task A_reclaimed_node_reports_endpoints_whose_address_another_node_took_as_conflicted()
    {
        SkipIfUnavailable();
        var (claims, poolId, ipamB, b) = await ReclaimNodeAAsync();
        // node-b takes node-a's first address for a container of its own.
        await EndpointAsync(ipamB, poolId, IpamCalls.Mac(50), new string('c', 64), claims[0].Address.Split('/')[0]);
        var log = new TestLog();
        var a = await RestartAAsync(b, log);

        var conflicted = await a.FenceAsync(claims, None);

        Assert.Equal([EidA], conflicted.ToList());
        Assert.True(log.Contains($"endpoint {EidA} is conflicted"), log.ToString());
        var slots = await SlotsAsync();
        Assert.Equal("node-b", Assert.Single(slots, s => s.Address == claims[0].Address.Split('/')[0]).Node);
        Assert.Equal("node-a", Assert.Single(slots, s => s.Address == claims[1].Address.Split('/')[0]).Node);
    }

    [SkippableFact]
    public async Task A_reclaimed_node_whose_pool_was_deleted_recreates_it()
    {
        SkipIfUnavailable();
        var (claims, _, _, b) = await ReclaimNodeAAsync(bStaysUser: false);
        Assert.Empty(await KeysAsync("pools/")); // node-a was the last user: the collector deleted the pool
        var a = await RestartAAsync(b, new TestLog());

        Assert.Empty(await a.FenceAsync(claims, None));

        Assert.Equal(["node-a"], (await PoolAsync(Pool)).Users.Keys.ToList());
        Assert.Equal(2, (await SlotsAsync()).Count(s => s.Kind == "container" && s.Node == "node-a"));
    }

    [SkippableFact]
    public async Task A_node_that_was_not_reclaimed_repairs_a_missing_slot_and_keeps_the_others()
    {
        SkipIfUnavailable();
        var store = await HostClientAsync();
        var log = new TestLog();
        var a = await StartMemberAsync(store, "node-a", log);
        var ipam = NewIpam(store, "node-a");
        string poolId = await ipam.PoolAsync(Pool);
        string first = await EndpointAsync(ipam, poolId, IpamCalls.Mac(1), EidA);
        string second = await EndpointAsync(ipam, poolId, IpamCalls.Mac(2), EidB);
        // The store lost the first slot (a restore from an old snapshot, say).
        Assert.True(await ipam.MarkEndpointUnboundAsync(poolId, IPAddress.Parse(first.Split('/')[0]), EidA, None));
        await ipam.ReleaseAsync(poolId, first);
        Assert.DoesNotContain(await SlotsAsync(), s => s.Address == first.Split('/')[0]);

        var conflicted = await a.FenceAsync([new(EidA, IpamCalls.Mac(1), first, Pool), new(EidB, IpamCalls.Mac(2), second, Pool)], None);

        Assert.Empty(conflicted);
        Assert.False(log.Contains("was reclaimed"), log.ToString());
        Assert.True(log.Contains($"endpoint {EidA}: its address was missing from the store and was repaired"), log.ToString());
        var slots = await SlotsAsync();
        Assert.Equal((EidA, "bound", "node-a"), Single(slots, first));
        Assert.Equal((EidB, "bound", "node-a"), Single(slots, second));
        // The allocator (with its cached view) does not hand the repaired address out again.
        string next = await ipam.EndpointAsync(poolId, IpamCalls.Mac(3));
        Assert.NotEqual(first, next);
        Assert.NotEqual(second, next);
    }

    private static (string?, string?, string) Single(List<SlotView> slots, string cidr)
    {
        var slot = Assert.Single(slots, s => s.Address == cidr.Split('/')[0]);
        return (slot.Eid, slot.State, slot.Node);
    }

    [SkippableFact]
    public async Task Fencing_claims_with_bad_input_fail_naming_the_endpoint()
    {
        SkipIfUnavailable();
        var a = await StartMemberAsync(await HostClientAsync(), "node-a");
        var error = await Assert.ThrowsAsync<SkeinException>(() => a.FenceAsync([new("e1", IpamCalls.Mac(1), "10.41.0.5/24", Pool)], None));
        Assert.Contains("endpoint e1", error.Message);
        Assert.Contains("does not belong to pool", error.Message);
        error = await Assert.ThrowsAsync<SkeinException>(() => a.FenceAsync([new("e2", IpamCalls.Mac(1), "10.40.0.5/24", "not-a-cidr")], None));
        Assert.Contains("endpoint e2", error.Message);
    }
}

public sealed class EmbeddedFencingTests : FencingTests
{
    protected override ClusterBackend CreateBackend() => new EmbeddedBackend();
}

public sealed class EtcdFencingTests(EtcdFixture fixture) : FencingTests, IClassFixture<EtcdFixture>
{
    protected override ClusterBackend CreateBackend() => new EtcdBackend(fixture);
}

public sealed class ConsulFencingTests(FakeConsulFixture fixture) : FencingTests, IClassFixture<FakeConsulFixture>
{
    protected override ClusterBackend CreateBackend() => new ConsulBackend(fixture);
}
