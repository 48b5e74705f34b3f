using System.Collections;
using System.Diagnostics;
using System.Text;
using Skein.Ipam.Allocation;
using Skein.Ipam.Host;
using Skein.Ipam.Protocol;
using Skein.Ipam.Store;
using Skein.Ipam.Store.Etcd;

namespace Skein.Benchmarks;

/// <summary>
/// Issue 5's allocation figure: allocations per second with 8 concurrent simulated hosts on one etcd, each
/// with its own store client, skein's per-host blocks against the per-address CAS baseline (libnetwork's
/// design: one shared key per subnet holding the allocation bitmap, rewritten by every host with
/// compare-and-swap), same run, same workload: each host allocates in a loop (--per-host requests at a
/// time), and with --window N releases its oldest address once it holds more than N (churn; 0 = allocate
/// only, as container starts do). Also conflicts (failed conditional writes) per allocation. The designs
/// run in interleaved rounds (--rounds, each design's --seconds split among them, the order rotating), so
/// a change in the shared machine's load falls on all of them; the per-round ratios show the noise.
/// `scripted-cluster-alloc --etcd URL [--seconds N] [--rounds N] [--hosts N] [--per-host N] [--window N]`.
/// </summary>
internal static class ClusterAllocationBench
{
    private const string Pool = "10.128.0.0/16";

    public static async Task<int> RunAsync(string[] args)
    {
        var etcd = new Uri(ScriptedEntry.Option(args, "--etcd", "http://127.0.0.1:2379/"));
        var seconds = double.Parse(ScriptedEntry.Option(args, "--seconds", "10"), System.Globalization.CultureInfo.InvariantCulture);
        int rounds = int.Parse(ScriptedEntry.Option(args, "--rounds", "5"), System.Globalization.CultureInfo.InvariantCulture);
        int hosts = int.Parse(ScriptedEntry.Option(args, "--hosts", "8"), System.Globalization.CultureInfo.InvariantCulture);
        int window = int.Parse(ScriptedEntry.Option(args, "--window", "0"), System.Globalization.CultureInfo.InvariantCulture);
        int perHost = int.Parse(ScriptedEntry.Option(args, "--per-host", "1"), System.Globalization.CultureInfo.InvariantCulture);
        var slice = TimeSpan.FromSeconds(seconds / rounds);
        Console.WriteLine($"cluster allocation benchmark: etcd at {etcd}, {hosts} hosts with {perHost} concurrent request(s) each, pool {Pool}, window {window}, " +
                          $"{seconds} s per design in {rounds} interleaved rounds, {Environment.ProcessorCount} cores");

        // Warm-up of the HTTP stack and etcd, not measured.
        await using (var warmUp = await DesignRun.PrepareAsync("warm-up", etcd, hosts, perHost, window, Design.Skein))
        {
            await warmUp.RunSliceAsync(TimeSpan.FromSeconds(1));
            Console.WriteLine($"  {warmUp.Describe()}");
        }
        await using var skein = await DesignRun.PrepareAsync("skein per-host blocks", etcd, hosts, perHost, window, Design.Skein);
        await using var baseline = await DesignRun.PrepareAsync("per-address CAS baseline as libnetwork does it (read, then CAS, per attempt)", etcd, hosts, perHost, window, Design.Bitmap);
        await using var cached = await DesignRun.PrepareAsync("per-address CAS baseline, optimistic variant (cached copy, re-read only on conflict)", etcd, hosts, perHost, window, Design.CachedBitmap);
        DesignRun[] designs = [skein, baseline, cached];
        var roundRatios = new List<double>();
        for (int round = 0; round < rounds; round++)
        {
            var rates = new Dictionary<DesignRun, double>();
            foreach (var design in designs.Skip(round % designs.Length).Concat(designs.Take(round % designs.Length)))
                rates[design] = await design.RunSliceAsync(slice);
            roundRatios.Add(rates[skein] / rates[baseline]);
            Console.WriteLine($"  round {round + 1}: skein {rates[skein]:F0}/s, baseline {rates[baseline]:F0}/s (ratio {roundRatios[^1]:F2}x), optimistic baseline {rates[cached]:F0}/s");
        }
        foreach (var design in designs)
            Console.WriteLine($"  {design.Describe()}");

        var (s, b, c) = (skein.Figures, baseline.Figures, cached.Figures);
        double ratio = s.PerSecond / b.PerSecond;
        double cachedRatio = s.PerSecond / c.PerSecond;
        Console.WriteLine($"allocations/s: skein {s.PerSecond:F0}, baseline {b.PerSecond:F0} (ratio {ratio:F2}x, goal >= 10x; per round {roundRatios.Min():F2}-{roundRatios.Max():F2}x), " +
                          $"optimistic baseline {c.PerSecond:F0} (ratio {cachedRatio:F2}x)");
        Console.WriteLine($"conflicts per allocation: skein {s.ConflictsPerAllocation:F3}, baseline {b.ConflictsPerAllocation:F3}, optimistic baseline {c.ConflictsPerAllocation:F3}");
        Console.WriteLine($"RESULT cluster_alloc_hosts={hosts} per_host={perHost} window={window} skein_allocs_per_s={s.PerSecond:0} baseline_allocs_per_s={b.PerSecond:0} ratio={ratio:0.00} " +
                          $"ratio_round_min={roundRatios.Min():0.00} ratio_round_max={roundRatios.Max():0.00} rounds={rounds} " +
                          $"skein_conflicts_per_alloc={s.ConflictsPerAllocation:0.000} baseline_conflicts_per_alloc={b.ConflictsPerAllocation:0.000} " +
                          $"skein_writes_per_alloc={s.WritesPerAllocation:0.000} " +
                          $"optimistic_baseline_allocs_per_s={c.PerSecond:0} optimistic_ratio={cachedRatio:0.00} optimistic_baseline_conflicts_per_alloc={c.ConflictsPerAllocation:0.000}");
        return 0;
    }

    private sealed record Figures(long Allocations, long Conflicts, long Writes, TimeSpan Elapsed)
    {
        public double PerSecond => Allocations / Elapsed.TotalSeconds;
        public double ConflictsPerAllocation => Allocations == 0 ? double.NaN : (double)Conflicts / Allocations;
        public double WritesPerAllocation => Allocations == 0 ? double.NaN : (double)Writes / Allocations;
    }

    private enum Design { Skein, Bitmap, CachedBitmap }

    private interface ISimulatedHost
    {
        Task<string> AllocateAsync(CancellationToken ct);
        Task ReleaseAsync(string address, CancellationToken ct);
    }

    /// <summary>
    /// One design's simulated hosts under their own root, run in slices: each request loop keeps the addresses it
    /// holds from one slice to the next (churn), and the figures add up over the slices.
    /// </summary>
    private sealed class DesignRun(string name, List<CountingStore> stores, List<ISimulatedHost> loops, int window) : IAsyncDisposable
    {
        private readonly List<Queue<string>> _held = loops.Select(_ => new Queue<string>()).ToList();
        private long _allocations;
        private TimeSpan _elapsed;

        public Figures Figures => new(_allocations, stores.Sum(s => s.Conflicts), stores.Sum(s => s.Writes), _elapsed);

        public string Describe() => $"{name}: {Figures.Allocations} allocations in {_elapsed.TotalSeconds:F1} s = {Figures.PerSecond:F0}/s, " +
                                    $"{Figures.Conflicts} conflicts ({Figures.ConflictsPerAllocation:F3} per allocation), {Figures.Writes} conditional writes";

        public static async Task<DesignRun> PrepareAsync(string name, Uri etcd, int hosts, int perHost, int window, Design design)
        {
            bool skein = design == Design.Skein;
            string root = $"bench-alloc/{Guid.NewGuid():N}";
            var stores = Enumerable.Range(0, hosts).Select(_ => new CountingStore(new EtcdStore(new EtcdStoreOptions { BaseAddress = etcd, RootPrefix = root }))).ToList();
            var simulated = new List<ISimulatedHost>();
            string? poolId = null;
            for (int i = 0; i < hosts; i++)
            {
                if (skein)
                {
                    var ipam = new IpamService(stores[i], new IpamOptions { NodeId = $"host-{i}" }, NoHostNetworks.Instance, TimeProvider.System);
                    var response = await ipam.RequestPoolAsync(new RequestPoolRequest { AddressSpace = "GlobalDefault", Pool = Pool, Options = [] }, default);
                    poolId ??= response.PoolID;
                    simulated.Add(new SkeinHost(ipam, poolId, i));
                }
                else
                {
                    // Each concurrent request works on its own copy, as libnetwork's set() does on a private copy.
                    var copies = Enumerable.Range(0, perHost).Select(_ => new BitmapHost(stores[i], Pool, readEachAttempt: design == Design.Bitmap)).ToList();
                    simulated.Add(new RoundRobin(copies));
                }
            }
            if (!skein)
                await BitmapHost.CreateAsync(stores[0], Pool);
            foreach (var store in stores)
                store.Reset();
            var loops = simulated.SelectMany(host => Enumerable.Range(0, perHost).Select(loop => host is RoundRobin copies ? copies.Hosts[loop] : host)).ToList();
            return new DesignRun(name, stores, loops, window);
        }

        /// <summary>Runs every request loop for <paramref name="duration"/>; returns the slice's allocations per second.</summary>
        public async Task<double> RunSliceAsync(TimeSpan duration)
        {
            long allocations = 0;
            var clock = Stopwatch.StartNew();
            using var stop = new CancellationTokenSource(duration);
            await Task.WhenAll(loops.Select((host, index) => Task.Run(async () =>
            {
                var held = _held[index];
                long mine = 0;
                try
                {
                    while (!stop.IsCancellationRequested)
                    {
                        held.Enqueue(await host.AllocateAsync(CancellationToken.None));
                        mine++;
                        if (window > 0 && held.Count > window)
                            await host.ReleaseAsync(held.Dequeue(), CancellationToken.None);
                    }
                }
                finally
                {
                    Interlocked.Add(ref allocations, mine);
                }
            })));
            var elapsed = clock.Elapsed;
            _allocations += allocations;
            _elapsed += elapsed;
            return allocations / elapsed.TotalSeconds;
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var store in stores)
                await store.DisposeAsync();
        }
    }

    /// <summary>One simulated host's per-request baseline copies.</summary>
    private sealed class RoundRobin(List<BitmapHost> hosts) : ISimulatedHost
    {
        public List<BitmapHost> Hosts { get; } = hosts;
        public Task<string> AllocateAsync(CancellationToken ct) => Hosts[0].AllocateAsync(ct);
        public Task ReleaseAsync(string address, CancellationToken ct) => Hosts[0].ReleaseAsync(address, ct);
    }

    /// <summary>A host running skein's allocator: dynamic container addresses, released as the engine does.</summary>
    private sealed class SkeinHost(IpamService ipam, string poolId, int index) : ISimulatedHost
    {
        private long _next;

        public async Task<string> AllocateAsync(CancellationToken ct)
        {
            long n = Interlocked.Increment(ref _next);
            string mac = $"02:{index:x2}:{(n >> 24) & 0xff:x2}:{(n >> 16) & 0xff:x2}:{(n >> 8) & 0xff:x2}:{n & 0xff:x2}";
            var response = await ipam.RequestAddressAsync(new RequestAddressRequest
            {
                PoolID = poolId, Options = new() { [IpamLabels.MacAddress] = mac },
            }, ct);
            return response.Address.Split('/')[0];
        }

        public Task ReleaseAsync(string address, CancellationToken ct) =>
            ipam.ReleaseAddressAsync(new ReleaseAddressRequest { PoolID = poolId, Address = address }, ct);
    }

    /// <summary>
    /// libnetwork's classic design (cluster-store §3.1): the subnet's allocation bitmap is one key that
    /// every host rewrites with compare-and-swap. libnetwork's bitseq Handle.set reads the handle from the
    /// store before every attempt (readEachAttempt); the optimistic variant keeps its last copy and
    /// reloads only from the current value a lost CAS returns, the cheapest form of the design.
    /// </summary>
    private sealed class BitmapHost(IClusterStore store, string pool, bool readEachAttempt) : ISimulatedHost
    {
        private readonly string _key = $"bitmap/{pool.Replace('/', '-')}";
        private BitArray? _bits;
        private long _version;

        public static async Task CreateAsync(IClusterStore store, string pool)
        {
            int size = 1 << (32 - int.Parse(pool.Split('/')[1], System.Globalization.CultureInfo.InvariantCulture));
            var bits = new BitArray(size);
            bits[0] = bits[size - 1] = true; // network and broadcast
            await store.PutAsync($"bitmap/{pool.Replace('/', '-')}", Encode(bits), Precondition.Absent, false, default);
        }

        public async Task<string> AllocateAsync(CancellationToken ct)
        {
            while (true)
            {
                await EnsureLoadedAsync(ct);
                int ordinal = -1;
                for (int i = 0; i < _bits!.Length; i++)
                {
                    if (!_bits[i])
                    {
                        ordinal = i;
                        break;
                    }
                }
                if (ordinal < 0)
                    throw new InvalidOperationException("baseline pool exhausted");
                var next = new BitArray(_bits) { [ordinal] = true };
                if (await TryWriteAsync(next, ct))
                    return Address(ordinal);
            }
        }

        public async Task ReleaseAsync(string address, CancellationToken ct)
        {
            int ordinal = Ordinal(address);
            while (true)
            {
                await EnsureLoadedAsync(ct);
                var next = new BitArray(_bits!) { [ordinal] = false };
                if (await TryWriteAsync(next, ct))
                    return;
            }
        }

        private async Task EnsureLoadedAsync(CancellationToken ct)
        {
            if (_bits is not null && !readEachAttempt)
                return;
            var entry = await store.GetAsync(_key, ct) ?? throw new InvalidOperationException($"{_key} is missing");
            Load(entry);
        }

        private void Load(KvEntry entry)
        {
            _bits = Decode(entry.Value.Span);
            _version = entry.Version;
        }

        private async Task<bool> TryWriteAsync(BitArray next, CancellationToken ct)
        {
            var result = await store.PutAsync(_key, Encode(next), Precondition.VersionIs(_version), false, ct);
            if (result.Outcome == WriteOutcome.Applied)
            {
                _bits = next;
                _version = result.NewVersion;
                return true;
            }
            if (result.Current is { } current)
                Load(current);
            else
                _bits = null;
            return false;
        }

        /// <summary>Runs of allocated ordinals ("size;start-end,..."), compact as libnetwork's run-length bitseq is.</summary>
        private static ReadOnlyMemory<byte> Encode(BitArray bits)
        {
            var text = new StringBuilder().Append(bits.Length).Append(';');
            for (int i = 0; i < bits.Length; i++)
            {
                if (!bits[i])
                    continue;
                int start = i;
                while (i + 1 < bits.Length && bits[i + 1])
                    i++;
                text.Append(start).Append('-').Append(i).Append(',');
            }
            return Encoding.UTF8.GetBytes(text.ToString());
        }

        private static BitArray Decode(ReadOnlySpan<byte> value)
        {
            string text = Encoding.UTF8.GetString(value);
            int semicolon = text.IndexOf(';');
            var bits = new BitArray(int.Parse(text[..semicolon], System.Globalization.CultureInfo.InvariantCulture));
            foreach (var run in text[(semicolon + 1)..].Split(',', StringSplitOptions.RemoveEmptyEntries))
            {
                var ends = run.Split('-');
                for (int i = int.Parse(ends[0], System.Globalization.CultureInfo.InvariantCulture); i <= int.Parse(ends[1], System.Globalization.CultureInfo.InvariantCulture); i++)
                    bits[i] = true;
            }
            return bits;
        }

        private static string Address(int ordinal) => $"10.128.{ordinal >> 8}.{ordinal & 0xff}"; // ordinals of the /16

        private static int Ordinal(string address)
        {
            var parts = address.Split('.');
            return int.Parse(parts[2], System.Globalization.CultureInfo.InvariantCulture) << 8 | int.Parse(parts[3], System.Globalization.CultureInfo.InvariantCulture);
        }
    }

    /// <summary>Counts conditional writes and the ones that lost (conflicts), for either design.</summary>
    private sealed class CountingStore(IClusterStore inner) : IClusterStore
    {
        private long _writes;
        private long _conflicts;

        public long Writes => Interlocked.Read(ref _writes);
        public long Conflicts => Interlocked.Read(ref _conflicts);

        public void Reset()
        {
            Interlocked.Exchange(ref _writes, 0);
            Interlocked.Exchange(ref _conflicts, 0);
        }

        public StoreLimits Limits => inner.Limits;
        public Task<KvEntry?> GetAsync(string key, CancellationToken ct) => inner.GetAsync(key, ct);
        public Task<(IReadOnlyList<KvEntry> Entries, long Revision)> ListAsync(string prefix, bool keysOnly, CancellationToken ct) => inner.ListAsync(prefix, keysOnly, ct);

        public async Task<WriteResult> PutAsync(string key, ReadOnlyMemory<byte> value, Precondition pre, bool ephemeral, CancellationToken ct)
        {
            var result = await inner.PutAsync(key, value, pre, ephemeral, ct);
            Count(result.Outcome == WriteOutcome.Conflict);
            return result;
        }

        public async Task<WriteResult> DeleteAsync(string key, Precondition pre, CancellationToken ct)
        {
            var result = await inner.DeleteAsync(key, pre, ct);
            Count(result.Outcome == WriteOutcome.Conflict);
            return result;
        }

        public async Task<TxnResult> CommitAsync(IReadOnlyList<TxnOp> ops, CancellationToken ct)
        {
            var result = await inner.CommitAsync(ops, ct);
            Count(!result.Applied);
            return result;
        }

        private void Count(bool conflict)
        {
            Interlocked.Increment(ref _writes);
            if (conflict)
                Interlocked.Increment(ref _conflicts);
        }

        public IAsyncEnumerable<WatchUpdate> WatchPrefixAsync(string prefix, CancellationToken ct) => inner.WatchPrefixAsync(prefix, ct);
        public Task<ILiveness> StartLivenessAsync(LivenessOptions options, CancellationToken ct) => inner.StartLivenessAsync(options, ct);
        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }

    private sealed class NoHostNetworks : IHostNetworkView
    {
        public static readonly NoHostNetworks Instance = new();
        public IReadOnlyList<HostReservedNetwork> GetReservedNetworks(bool v6) => [];
    }
}
