using BenchmarkDotNet.Attributes;
using Skein.Ipam.Addressing;
using Skein.Ipam.Allocation;
using Skein.Ipam.Host;
using Skein.Ipam.Protocol;
using Skein.Ipam.Store.Embedded;

namespace Skein.Benchmarks;

/// <summary>
/// One container's IPAM round trip, RequestAddress (dynamic, with MAC) then ReleaseAddress, on the
/// embedded store in a temporary directory: two durable conditional writes. With the quarantine on,
/// each round takes a fresh address (and claims a new block every 62), as after real churn; with it
/// off the same address is reused, the steady-state cost of the allocator and the store alone.
/// Run: dotnet run -c Release --project tests/Benchmarks -- --filter '*IpamAllocation*'
/// </summary>
[SimpleJob(launchCount: 1, warmupCount: 3, iterationCount: 10)]
[MemoryDiagnoser]
public class IpamAllocationBenchmarks
{
    private sealed class NoHostNetworks : IHostNetworkView
    {
        public IReadOnlyList<HostReservedNetwork> GetReservedNetworks(bool v6) => [];
    }

    private string _directory = "";
    private EmbeddedStore _store = null!;
    private IpamService _ipam = null!;
    private string _poolId = "";
    private int _round;

    [Params(false, true)]
    public bool Quarantine { get; set; }

    [GlobalSetup]
    public async Task SetupAsync()
    {
        _directory = Path.Combine(Path.GetTempPath(), "skein-ipam-bench-" + Guid.NewGuid().ToString("N"));
        _store = await EmbeddedStore.OpenAsync(_directory);
        var options = new IpamOptions { NodeId = "bench", Quarantine = Quarantine ? TimeSpan.FromSeconds(120) : TimeSpan.Zero };
        _ipam = new IpamService(_store, options, new NoHostNetworks(), TimeProvider.System);
        var pool = await _ipam.RequestPoolAsync(new RequestPoolRequest { AddressSpace = "LocalDefault", Pool = "10.0.0.0/8" }, CancellationToken.None);
        _poolId = pool.PoolID;
        await _ipam.RequestAddressAsync(new RequestAddressRequest
        {
            PoolID = _poolId, Options = new() { [IpamLabels.RequestAddressType] = IpamLabels.GatewayRequest },
        }, CancellationToken.None);
    }

    [GlobalCleanup]
    public async Task CleanupAsync()
    {
        await _store.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    /// <summary>The floor: the same two durable conditional writes of a small value, straight to the store.</summary>
    [Benchmark(Baseline = true, Description = "two store CAS writes")]
    public async Task TwoStoreWrites()
    {
        const string key = "bench/baseline";
        var current = await _store.GetAsync(key, CancellationToken.None);
        var first = await _store.PutAsync(key, BaselineValue, current is null ? Skein.Ipam.Store.Precondition.Absent : Skein.Ipam.Store.Precondition.VersionIs(current.Version), false, CancellationToken.None);
        await _store.PutAsync(key, BaselineValue, Skein.Ipam.Store.Precondition.VersionIs(first.NewVersion), false, CancellationToken.None);
    }

    private static readonly ReadOnlyMemory<byte> BaselineValue = System.Text.Encoding.UTF8.GetBytes(
        "{\"v\":1,\"w\":\"bench/x/1\",\"owner\":\"bench\",\"slots\":{\"0\":{\"kind\":\"reserved\",\"node\":\"*\",\"ts\":0},\"1\":{\"kind\":\"container\",\"node\":\"bench\",\"state\":\"pending\",\"mac\":\"02:42:00:00:00:01\",\"ts\":0}},\"freed\":{}}");

    [Benchmark(Description = "RequestAddress + ReleaseAddress")]
    public async Task RequestThenRelease()
    {
        int n = Interlocked.Increment(ref _round);
        string mac = $"02:42:{(n >> 24) & 0xff:x2}:{(n >> 16) & 0xff:x2}:{(n >> 8) & 0xff:x2}:{n & 0xff:x2}";
        var granted = await _ipam.RequestAddressAsync(new RequestAddressRequest
        {
            PoolID = _poolId, Options = new() { [IpamLabels.MacAddress] = mac },
        }, CancellationToken.None);
        await _ipam.ReleaseAddressAsync(new ReleaseAddressRequest { PoolID = _poolId, Address = granted.Address.Split('/')[0] }, CancellationToken.None);
    }
}
