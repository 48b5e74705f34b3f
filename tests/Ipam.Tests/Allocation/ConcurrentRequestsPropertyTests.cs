using System.Collections.Concurrent;
using System.Net;
using Skein.Ipam.Allocation;
using Skein.Ipam.Store;
using Skein.Ipam.Tests.Cluster;
using Skein.Ipam.Tests.Store;
using Skein.Ipam.Tests.TestSupport;

namespace Skein.Ipam.Tests.Allocation;

/// <summary>
/// Property: simulated hosts, each with several requests in flight at once (so they are served in groups), allocate,
/// bind and release on one pool past exhaustion, borrowing from each other's blocks, with static addresses that are
/// sometimes taken. Live allocations never share an address, the store holds exactly the live allocations, and
/// afterwards every usable address can still be handed out (nothing was half-written or leaked). Seeded.
/// </summary>
public abstract class ConcurrentRequestsPropertyTests : ClusterTestBase
{
    private const string Pool = "10.71.0.0/26"; // 8 blocks of 8; 61 container addresses besides the gateway
    private const int UsableContainerAddresses = 64 - 2 - 1;
    private const int Hosts = 3;
    private const int RequestsInFlight = 4;
    private const int OperationsPerWorker = 25;

    private sealed class SimulatedHost(string node, IpamService ipam)
    {
        public string Node { get; } = node;
        public IpamService Ipam { get; } = ipam;
        public ConcurrentDictionary<string, Allocation> Live { get; } = new();
        public int Exhausted;
        public int Taken;
    }

    [SkippableTheory]
    [InlineData(20261129)]
    [InlineData(77)]
    public async Task Hosts_with_several_requests_in_flight_never_share_an_address_and_leak_nothing(int seed)
    {
        SkipIfUnavailable();
        var hosts = new List<SimulatedHost>();
        for (int h = 0; h < Hosts; h++)
            hosts.Add(new SimulatedHost($"host-{h}", NewIpam(await HostClientAsync(), $"host-{h}", o => o with { Quarantine = TimeSpan.Zero })));
        string poolId = await hosts[0].Ipam.PoolAsync(Pool);
        string gateway = (await hosts[0].Ipam.GatewayAsync(poolId)).Split('/')[0];
        foreach (var host in hosts.Skip(1))
            await host.Ipam.PoolAsync(Pool);

        await Task.WhenAll(hosts.SelectMany((host, h) => Enumerable.Range(0, RequestsInFlight).Select(w =>
            Task.Run(() => RunWorkerAsync(host, poolId, w, new Random(seed * 31 + h * 7 + w))))));

        string context = $"seed {seed}: " + string.Join(", ", hosts.Select(h => $"{h.Node} live {h.Live.Count} exhausted {h.Exhausted} taken {h.Taken}"));
        var live = hosts.SelectMany(h => h.Live.Values).ToList();
        Assert.True(live.Select(a => a.Address).Distinct().Count() == live.Count, $"duplicate live addresses ({context})");
        Assert.True(hosts.Sum(h => h.Exhausted) > 0, $"the run never reached exhaustion ({context})");
        var slots = await SlotsAsync();
        AssertStoreHoldsExactly(slots, live, context);
        Assert.DoesNotContain(slots, s => s.Address == gateway && s.Kind != "gateway");

        // No leak: each host in turn, all its requests in flight at once, takes what is left until the pool is full.
        foreach (var host in hosts)
        {
            await Task.WhenAll(Enumerable.Range(0, RequestsInFlight).Select(w => Task.Run(async () =>
            {
                for (int n = 0; ; n++)
                {
                    string mac = IpamCalls.Mac(0x800000 | hosts.IndexOf(host) << 16 | w << 12 | n);
                    try
                    {
                        string address = (await host.Ipam.EndpointAsync(poolId, mac)).Split('/')[0];
                        Assert.True(host.Live.TryAdd(address, new Allocation(host.Node, address, mac, "")), $"{address} handed out twice ({context})");
                    }
                    catch (SkeinException e) when (e.Kind == ErrorKind.Conflict && e.Message.Contains("No available addresses", StringComparison.Ordinal))
                    {
                        return;
                    }
                }
            })));
        }
        var final = hosts.SelectMany(h => h.Live.Values).ToList();
        Assert.Equal(UsableContainerAddresses, final.Select(a => a.Address).Distinct().Count());
        Assert.Equal(UsableContainerAddresses, final.Count);
        AssertStoreHoldsExactly(await SlotsAsync(), final, context + " after refilling");
    }

    private static async Task RunWorkerAsync(SimulatedHost host, string poolId, int worker, Random random)
    {
        var mine = new List<Allocation>();
        for (int op = 0; op < OperationsPerWorker; op++)
        {
            if (mine.Count > 0 && random.Next(100) < 20)
            {
                var victim = mine[random.Next(mine.Count)];
                Assert.True(await host.Ipam.MarkEndpointUnboundAsync(poolId, IPAddress.Parse(victim.Address), victim.Eid, None));
                await host.Ipam.ReleaseAsync(poolId, victim.Address);
                mine.Remove(victim);
                Assert.True(host.Live.TryRemove(victim.Address, out _));
                continue;
            }
            string mac = IpamCalls.Mac((host.Node[^1] - '0') << 16 | worker << 8 | op);
            string eid = $"{host.Node.Replace("-", "")}w{worker}e{op}";
            // Now and then a static address, which may well be taken by then.
            string wanted = random.Next(100) < 15 ? $"10.71.0.{2 + random.Next(61)}" : "";
            try
            {
                string address = (await host.Ipam.EndpointAsync(poolId, mac, wanted)).Split('/')[0];
                Assert.True(await host.Ipam.MarkEndpointBoundAsync(poolId, IPAddress.Parse(address), eid, None));
                var allocation = new Allocation(host.Node, address, mac, eid);
                Assert.True(host.Live.TryAdd(address, allocation), $"{address} handed out twice");
                mine.Add(allocation);
            }
            catch (SkeinException e) when (e.Kind == ErrorKind.Conflict && e.Message.Contains("No available addresses", StringComparison.Ordinal))
            {
                Interlocked.Increment(ref host.Exhausted);
            }
            catch (SkeinException e) when (e.Kind == ErrorKind.Conflict && e.Message.Contains("Address already in use", StringComparison.Ordinal))
            {
                Interlocked.Increment(ref host.Taken);
            }
            catch (SkeinException e) when (e.Kind == ErrorKind.Unavailable && e.Message.Contains("kept changing", StringComparison.Ordinal))
            {
                // Bounded CAS retries ran out under contention: nothing was written.
            }
        }
    }

}

public sealed class EmbeddedConcurrentRequestsPropertyTests : ConcurrentRequestsPropertyTests
{
    protected override ClusterBackend CreateBackend() => new EmbeddedBackend();
}

public sealed class EtcdConcurrentRequestsPropertyTests(EtcdFixture fixture) : ConcurrentRequestsPropertyTests, IClassFixture<EtcdFixture>
{
    protected override ClusterBackend CreateBackend() => new EtcdBackend(fixture);
}

public sealed class ConsulConcurrentRequestsPropertyTests(FakeConsulFixture fixture) : ConcurrentRequestsPropertyTests, IClassFixture<FakeConsulFixture>
{
    protected override ClusterBackend CreateBackend() => new ConsulBackend(fixture);
}
