using System.Net;
using Skein.Ipam.Allocation;
using Skein.Ipam.Cluster;
using Skein.Ipam.Store;
using Skein.Ipam.Tests.Store;
using Skein.Ipam.Tests.TestSupport;

namespace Skein.Ipam.Tests.Cluster;

/// <summary>
/// Property: simulated hosts, each with its own store client, liveness and allocator, allocate and release
/// concurrently on one pool, driven past exhaustion so they borrow from each other's blocks. Live
/// allocations never share an address and the store holds exactly the live allocations; after some hosts
/// die and the collector runs past reclaimAfter, nothing of theirs is left and every usable address of the
/// pool can be handed out again (no leak). Seeded: a failure names its seed.
/// </summary>
public abstract class MultiHostAllocationPropertyTests : ClusterTestBase
{
    private const string Pool = "10.70.0.0/26"; // 8 blocks of 8; 61 container addresses besides the gateway
    private const int UsableContainerAddresses = 64 - 2 - 1;
    private const int Hosts = 4;
    private const int OperationsPerHost = 60;

    private sealed class SimulatedHost(string node, IClusterStore store, NodeMembership membership, IpamService ipam)
    {
        public string Node { get; } = node;
        public IClusterStore Store { get; } = store;
        public NodeMembership Membership { get; } = membership;
        public IpamService Ipam { get; } = ipam;
        public List<Allocation> Live { get; } = [];
        public int Exhausted { get; set; }
        public int Contended { get; set; }
    }

    [SkippableTheory]
    [InlineData(20261128)]
    [InlineData(4242)]
    public async Task Concurrent_hosts_never_share_an_address_and_dead_hosts_leak_nothing_after_collection(int seed)
    {
        SkipIfUnavailable();
        SkipUnlessMultiClient();
        var hosts = new List<SimulatedHost>();
        for (int h = 0; h < Hosts; h++)
        {
            string node = $"host-{h}";
            var store = await OpenClientAsync();
            var membership = await StartMemberAsync(store, node);
            hosts.Add(new SimulatedHost(node, store, membership, NewIpam(store, node, o => o with { Quarantine = TimeSpan.Zero })));
        }
        string poolId = await hosts[0].Ipam.PoolAsync(Pool);
        string gateway = (await hosts[0].Ipam.GatewayAsync(poolId)).Split('/')[0];
        foreach (var host in hosts.Skip(1))
            await host.Ipam.PoolAsync(Pool);

        await Task.WhenAll(hosts.Select((host, index) => Task.Run(() => RunHostAsync(host, poolId, new Random(seed * 31 + index)))));

        string context = $"seed {seed}: " + string.Join(", ", hosts.Select(h => $"{h.Node} live {h.Live.Count} exhausted {h.Exhausted} contended {h.Contended}"));
        var live = hosts.SelectMany(h => h.Live).ToList();
        Assert.True(live.Select(a => a.Address).Distinct().Count() == live.Count, $"duplicate live addresses ({context})");
        Assert.True(hosts.Sum(h => h.Exhausted) > 0, $"the run never reached exhaustion ({context})");
        var slots = await SlotsAsync();
        AssertStoreHoldsExactly(slots, live, context);
        Assert.DoesNotContain(slots, s => s.Address == gateway && s.Kind != "gateway");
        Assert.True(slots.Any(s => s.Kind == "container" && s.Owner is not null && s.Owner != s.Node), $"no host borrowed from another's block ({context})");

        // host-0 and host-1 die: their liveness ends, their allocations are left behind.
        var dead = hosts.Take(2).ToList();
        var alive = hosts.Skip(2).ToList();
        foreach (var host in dead)
            await host.Membership.DisposeAsync();
        var log = new TestLog();
        var collector = NewCollector(alive[0].Membership, TimeSpan.FromMinutes(10), log);
        Assert.Equal(0, await collector.CollectOnceAsync(None));
        Time.Advance(TimeSpan.FromMinutes(11));
        Assert.Equal(2, await collector.CollectOnceAsync(None));

        var survivors = alive.SelectMany(h => h.Live).ToList();
        slots = await SlotsAsync();
        AssertStoreHoldsExactly(slots, survivors, context + " after collection");
        foreach (var host in dead)
        {
            Assert.Empty(await KeysAsync($"affinity/{host.Node}/"));
            Assert.DoesNotContain(slots, s => s.Owner == host.Node);
            Assert.DoesNotContain(host.Node, (await PoolAsync(Pool)).Users.Keys);
        }

        // No leak: the survivors can now take every usable address of the pool, one host after the other.
        foreach (var host in alive)
        {
            while (true)
            {
                try
                {
                    string mac = IpamCalls.Mac(900_000 + host.Live.Count + 1000 * alive.IndexOf(host));
                    string address = (await host.Ipam.EndpointAsync(poolId, mac)).Split('/')[0];
                    host.Live.Add(new Allocation(host.Node, address, mac, ""));
                }
                catch (SkeinException e) when (e.Kind == ErrorKind.Conflict && e.Message.Contains("No available addresses", StringComparison.Ordinal))
                {
                    break;
                }
            }
        }
        var final = alive.SelectMany(h => h.Live).ToList();
        Assert.Equal(UsableContainerAddresses, final.Select(a => a.Address).Distinct().Count());
        Assert.Equal(UsableContainerAddresses, final.Count);
        AssertStoreHoldsExactly(await SlotsAsync(), final, context + " after refilling");
    }

    private static async Task RunHostAsync(SimulatedHost host, string poolId, Random random)
    {
        for (int op = 0; op < OperationsPerHost; op++)
        {
            if (host.Live.Count > 0 && random.Next(100) < 20)
            {
                var victim = host.Live[random.Next(host.Live.Count)];
                Assert.True(await host.Ipam.MarkEndpointUnboundAsync(poolId, IPAddress.Parse(victim.Address), victim.Eid, None));
                await host.Ipam.ReleaseAsync(poolId, victim.Address);
                host.Live.Remove(victim);
                continue;
            }
            string mac = IpamCalls.Mac((host.Node[^1] - '0') << 16 | op);
            string eid = $"{host.Node.Replace("-", "")}e{op}";
            try
            {
                string address = (await host.Ipam.EndpointAsync(poolId, mac)).Split('/')[0];
                Assert.True(await host.Ipam.MarkEndpointBoundAsync(poolId, IPAddress.Parse(address), eid, None));
                host.Live.Add(new Allocation(host.Node, address, mac, eid));
            }
            catch (SkeinException e) when (e.Kind == ErrorKind.Conflict && e.Message.Contains("No available addresses", StringComparison.Ordinal))
            {
                host.Exhausted++;
            }
            catch (SkeinException e) when (e.Kind == ErrorKind.Unavailable && e.Message.Contains("kept changing", StringComparison.Ordinal))
            {
                host.Contended++; // bounded CAS retries ran out under contention: nothing was written
            }
        }
    }

}

public sealed class EtcdMultiHostAllocationPropertyTests(EtcdFixture fixture) : MultiHostAllocationPropertyTests, IClassFixture<EtcdFixture>
{
    protected override ClusterBackend CreateBackend() => new EtcdBackend(fixture);
}

public sealed class ConsulMultiHostAllocationPropertyTests(FakeConsulFixture fixture) : MultiHostAllocationPropertyTests, IClassFixture<FakeConsulFixture>
{
    protected override ClusterBackend CreateBackend() => new ConsulBackend(fixture);
}
