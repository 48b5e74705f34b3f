using System.Collections.Concurrent;
using System.Net;
using System.Text.RegularExpressions;
using Skein.Ipam.Addressing;
using Skein.Ipam.Host;
using Skein.Ipam.Protocol;
using Skein.Ipam.Store;

namespace Skein.Ipam.Allocation;

/// <summary>
/// skein's IpamDriver: Docker's default IPAM semantics (plugin-protocol §3, cluster-store §5.4) on
/// top of the cluster store, with per-host address blocks (cluster-store §4.8). Every failure is a
/// SkeinException whose message is fit for the docker CLI, and a failed call changes no state.
/// </summary>
public sealed partial class IpamService : IDisposable
{
    private readonly IpamStoreAccess _store;
    private readonly IpamOptions _options;
    private readonly IHostNetworkView _hostView;
    private readonly TimeProvider _time;
    private readonly StoreKeys _keys;
    private readonly string _node;
    private readonly string _incarnation;
    private readonly KeyedAsyncLock _poolLocks = new();
    private readonly KeyedAsyncLock _spaceLocks = new();
    private readonly ConcurrentDictionary<string, PoolCache> _pools = new(StringComparer.Ordinal);

    public IpamService(IClusterStore store, IpamOptions options, IHostNetworkView hostView, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(hostView);
        ArgumentNullException.ThrowIfNull(time);
        if (!NodeIdPattern().IsMatch(options.NodeId))
            throw SkeinException.Invalid($"node id '{IpAddressText.Printable(options.NodeId)}' must be 1-63 characters of a-z, 0-9 and '-'");
        if (options.MaxCasAttempts < 1)
            throw SkeinException.Invalid("MaxCasAttempts must be at least 1");
        PoolId.ValidateSpace(options.LocalAddressSpace, "LocalAddressSpace");
        PoolId.ValidateSpace(options.GlobalAddressSpace, "GlobalAddressSpace");
        CheckDefaults(options.LocalDefaultPools, v6: false, "LocalDefaultPools");
        CheckDefaults(options.GlobalDefaultPools, v6: false, "GlobalDefaultPools");
        CheckDefaults(options.IPv6DefaultPools, v6: true, "IPv6DefaultPools");

        _options = options;
        _hostView = hostView;
        _time = time;
        _node = options.NodeId;
        _incarnation = options.Incarnation ?? Convert.ToHexStringLower(Guid.NewGuid().ToByteArray().AsSpan(0, 6));
        _keys = new StoreKeys(options.KeyRoot, _node);
        _store = new IpamStoreAccess(store, _node, _incarnation, time);
        if (options.JournalDirectory is { } journalDirectory)
        {
            _journal = OutageJournal.Open(journalDirectory);
            _snapshots = new OutageSnapshots(journalDirectory);
            _snapshots.DeleteAllBut(_journal.HasEntriesFor);
        }
    }

    public string NodeId => _node;

    /// <summary>RequiresMACAddress: the engine then sends each endpoint's MAC, skein's idempotency key.</summary>
    public GetCapabilitiesResponse GetCapabilities() => new() { RequiresMACAddress = true, RequiresRequestReplay = false };

    public GetAddressSpacesResponse GetDefaultAddressSpaces() => new()
    {
        LocalDefaultAddressSpace = _options.LocalAddressSpace,
        GlobalDefaultAddressSpace = _options.GlobalAddressSpace,
    };

    /// <summary>Thrown inside a retry loop when the store moved under us: drop the cache, re-read, try again.</summary>
    private sealed class StaleStateException : Exception;

    /// <summary>
    /// Runs <paramref name="work"/> under the pool's lock against a loaded cache, re-reading and
    /// retrying with jittered back-off when a conditional write loses (bounded).
    /// </summary>
    private async Task<T> WithPoolAsync<T>(string space, IpPrefix pool, Func<PoolCache, Task<T>> work, CancellationToken ct)
    {
        string poolKey = _keys.Pool(space, pool);
        using var held = await _poolLocks.AcquireAsync(poolKey, ct).ConfigureAwait(false);
        return await WithLockedPoolAsync(space, pool, poolKey, work, ct).ConfigureAwait(false);
    }

    /// <summary><see cref="WithPoolAsync"/> for a caller that already holds the pool's lock.</summary>
    private async Task<T> WithLockedPoolAsync<T>(string space, IpPrefix pool, string poolKey, Func<PoolCache, Task<T>> work, CancellationToken ct)
    {
        for (int attempt = 1; ; attempt++)
        {
            var cache = await LoadPoolAsync(space, pool, poolKey, ct).ConfigureAwait(false);
            try
            {
                var result = await work(cache).ConfigureAwait(false);
                // A store write to a pool whose journal is not written back yet (a request that checked for journal
                // entries before one was made, fencing, a gateway): the pool's outage snapshot follows, or a process
                // restarted during the outage would not know that write.
                RefreshSnapshot(cache);
                return result;
            }
            catch (StaleStateException)
            {
                _pools.TryRemove(poolKey, out _);
                if (attempt >= _options.MaxCasAttempts)
                    throw new SkeinException(ErrorKind.Unavailable, $"pool {space}/{pool} kept changing in the cluster store while skein updated it; try again");
                await BackoffAsync(attempt, ct).ConfigureAwait(false);
            }
            catch (SkeinException e) when (IsOutage(e))
            {
                // The store is unreachable. The cache changes only after a write was acknowledged, so it is as good as
                // before the call; allocation from the journal (decisions #18) works from it. A write that did apply
                // unseen fails its version check later and the cache is re-read then.
                throw;
            }
            catch
            {
                // A failure may leave the cache half-updated in memory only: re-read next time.
                _pools.TryRemove(poolKey, out _);
                throw;
            }
            finally
            {
                cache.JustRead = false;
            }
        }
    }

    private async Task<PoolCache> LoadPoolAsync(string space, IpPrefix pool, string poolKey, CancellationToken ct)
    {
        if (_pools.TryGetValue(poolKey, out var cached))
            return cached;
        var cache = await ReadPoolAsync(space, pool, poolKey, ct).ConfigureAwait(false);
        cache.JustRead = true;
        _pools[poolKey] = cache;
        return cache;
    }

    /// <summary>The pool record and this node's blocks as the store holds them now (not cached).</summary>
    private async Task<PoolCache> ReadPoolAsync(string space, IpPrefix pool, string poolKey, CancellationToken ct)
    {
        var read = await _store.ReadAsync(poolKey, IpamStoreJsonContext.Default.PoolRecord, ct).ConfigureAwait(false)
            ?? throw SkeinException.NotFound($"Address Pool not found: skein holds no pool {space}/{pool}");
        var cache = new PoolCache(read.Value.Space.Length > 0 ? read.Value.Space : space, pool, poolKey, read.Version, read.Value);

        var (affinities, _) = await _store.ListAsync(_keys.MyAffinitiesOf(space, pool), keysOnly: false, ct).ConfigureAwait(false);
        foreach (var affinity in affinities)
        {
            if (!IpPrefix.TryParseKeySegment(StoreKeys.LastSegment(affinity.Key), out var blockCidr) || !pool.Contains(blockCidr))
                continue;
            var affinityRecord = IpamStoreAccess.Decode(affinity, IpamStoreJsonContext.Default.AffinityRecord);
            string blockKey = _keys.Block(space, pool, blockCidr);
            var block = await _store.ReadAsync(blockKey, IpamStoreJsonContext.Default.BlockRecord, ct).ConfigureAwait(false);
            if (block is null)
                continue;
            var index = pool.BlockIndexOf(blockCidr.Network, cache.BlockLength);
            cache.Blocks[index] = new CachedBlock(blockCidr, index, blockKey, block.Value.Version, block.Value.Value, affinityRecord.Borrowed);
        }
        return cache;
    }

    private static Task BackoffAsync(int attempt, CancellationToken ct)
    {
        int ceiling = Math.Min(2 << Math.Min(attempt, 6), 100);
        return Task.Delay(TimeSpan.FromMilliseconds(1 + Random.Shared.Next(ceiling)), ct);
    }

    private long NowSeconds() => _time.GetUtcNow().ToUnixTimeSeconds();

    private static string Cidr(IPAddress address, IpPrefix pool) => $"{IpAddressText.Format(address)}/{pool.Length}";

    private static void CheckDefaults(IReadOnlyList<DefaultPoolRange> ranges, bool v6, string what)
    {
        foreach (var range in ranges)
        {
            if (range.Base.IsV6 != v6)
                throw SkeinException.Invalid($"{what}: {range.Base} is not an IPv{(v6 ? 6 : 4)} prefix");
        }
    }

    [GeneratedRegex("^[a-z0-9-]{1,63}$")]
    private static partial Regex NodeIdPattern();

    [GeneratedRegex("^[a-z0-9-]{1,63}$")]
    private static partial Regex NetworkNamePattern();

    [GeneratedRegex("^[a-z0-9]{1,64}$")]
    private static partial Regex EndpointIdPattern();
}
