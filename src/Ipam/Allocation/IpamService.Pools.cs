using System.Net;
using Skein.Ipam.Addressing;
using Skein.Ipam.Host;
using Skein.Ipam.Protocol;
using Skein.Ipam.Store;

namespace Skein.Ipam.Allocation;

public sealed partial class IpamService
{
    private const string PoolOverlap = "Pool overlaps with other one on this address space";

    /// <summary>
    /// IpamDriver.RequestPool: an explicit pool (--subnet, optional --ip-range), or one chosen from the
    /// defaults when Pool is empty (or, from Docker 29, a size-only request such as "0.0.0.0/24").
    /// A node holds one claim per pool: asking again for a pool this node holds is an overlap error,
    /// as with Docker's own IPAM (decisions #2, #3).
    /// </summary>
    public async Task<RequestPoolResponse> RequestPoolAsync(RequestPoolRequest request, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(request);
        string space = PoolId.ValidateSpace(request.AddressSpace);
        string? name = NetworkNameOption(request.Options);

        IpPrefix? pool = null;
        int? sizeOnly = null;
        bool v6 = request.V6;
        if (!string.IsNullOrEmpty(request.Pool))
        {
            var parsed = IpPrefix.Parse(request.Pool, "Pool (--subnet)", allowHostBits: true);
            v6 = parsed.IsV6; // the swarm manager never sets V6: the pool's own family wins (pitfall 13)
            if (parsed.NetworkNumber == 0)
            {
                if (parsed.Length == 0)
                    throw SkeinException.Invalid($"Pool (--subnet) {parsed} would cover every address; give a subnet, or a size such as {(v6 ? "::/64" : "0.0.0.0/24")}");
                sizeOnly = parsed.Length;
            }
            else
            {
                pool = parsed;
            }
        }

        IpPrefix? subPool = null;
        if (!string.IsNullOrEmpty(request.SubPool))
        {
            if (pool is not { } master)
                throw SkeinException.Invalid("Invalid Address Range: SubPool (--ip-range) needs an explicit Pool (--subnet)");
            var sub = IpPrefix.Parse(request.SubPool, "SubPool (--ip-range)", allowHostBits: true);
            if (!master.Contains(sub))
                throw SkeinException.Invalid($"Invalid Address Range: SubPool (--ip-range) {sub} is not inside Pool (--subnet) {master}");
            subPool = sub;
        }

        using var spaceHeld = await _spaceLocks.AcquireAsync(StoreKeys.SpaceSegment(space), ct).ConfigureAwait(false);
        for (int attempt = 1; ; attempt++)
        {
            var outcome = pool is { } explicitPool
                ? await TryClaimPoolAsync(space, explicitPool, subPool, name, pinnedByName: false, ct).ConfigureAwait(false)
                : await TryChooseDefaultPoolAsync(space, v6, sizeOnly, name, ct).ConfigureAwait(false);
            if (outcome is { } claimed)
            {
                var id = new PoolId(space, claimed, subPool);
                _pools.TryRemove(_keys.Pool(space, claimed), out _);
                return new RequestPoolResponse { PoolID = id.ToString(), Pool = claimed.ToString(), Data = [] };
            }
            if (attempt >= _options.MaxCasAttempts)
                throw new SkeinException(ErrorKind.Unavailable, $"the address space {space} kept changing in the cluster store while skein reserved a pool; try again");
            await BackoffAsync(attempt, ct).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Adds this node as a user of <paramref name="pool"/>, creating the pool (and its space and name
    /// entries) in one transaction when it does not exist. Null when a conditional write lost.
    /// </summary>
    private async Task<IpPrefix?> TryClaimPoolAsync(string space, IpPrefix pool, IpPrefix? subPool, string? name, bool pinnedByName, CancellationToken ct, bool chosen = false)
    {
        string poolKey = _keys.Pool(space, pool);
        using var poolHeld = await _poolLocks.AcquireAsync(poolKey, ct).ConfigureAwait(false);
        var existing = await _store.ReadAsync(poolKey, IpamStoreJsonContext.Default.PoolRecord, ct).ConfigureAwait(false);
        string token = _store.NextToken();
        var user = new PoolUserRecord { Sub = subPool?.ToString(), Ts = NowSeconds() };

        if (existing is { } current)
        {
            var record = current.Value;
            if (record.Users.ContainsKey(_node))
                throw SkeinException.Conflict($"{PoolOverlap}: {pool} is already in use by another network on this host");
            if (record.State == PoolStates.Deleting)
                return null;
            if (name is not null && record.Net != name)
                throw SkeinException.Conflict($"pool {pool} belongs to network '{record.Net}', but this request names network '{name}' (--ipam-opt {IpamLabels.NetworkName})");
            var users = new Dictionary<string, PoolUserRecord>(record.Users, StringComparer.Ordinal) { [_node] = user };
            var updated = record with { W = token, Users = users };
            var put = new TxnOp.Put(poolKey, IpamStoreAccess.Encode(updated, IpamStoreJsonContext.Default.PoolRecord), Precondition.VersionIs(current.Version));
            var result = await _store.CommitAsync([put], token, ct).ConfigureAwait(false);
            return result.Applied ? pool : null;
        }

        if (pinnedByName)
            return null; // the name entry points at a pool that is gone: re-read the name

        string spaceKey = _keys.Space(space);
        var spaceRead = await _store.ReadAsync(spaceKey, IpamStoreJsonContext.Default.SpaceRecord, ct).ConfigureAwait(false);
        var inUse = spaceRead?.Value.Pools ?? [];
        foreach (string other in inUse)
        {
            if (IpPrefix.TryParse(other, false, out var otherPool, out _) && otherPool.Overlaps(pool))
                throw SkeinException.Conflict($"{PoolOverlap}: {pool} overlaps {otherPool}");
        }

        var ops = new List<TxnOp>(3);
        var newSpace = new SpaceRecord { W = token, Pools = [.. inUse.Append(pool.ToString()).Order(StringComparer.Ordinal)] };
        ops.Add(new TxnOp.Put(spaceKey, IpamStoreAccess.Encode(newSpace, IpamStoreJsonContext.Default.SpaceRecord),
            spaceRead is { } s ? Precondition.VersionIs(s.Version) : Precondition.Absent));

        var newPool = new PoolRecord
        {
            W = token,
            Space = space,
            Cidr = pool.ToString(),
            V6 = pool.IsV6,
            BlockLen = BlockGeometry.BlockLengthFor(pool),
            Users = new Dictionary<string, PoolUserRecord>(StringComparer.Ordinal) { [_node] = user },
            Net = name ?? DerivedName(pool),
            Named = name is not null,
            Chosen = chosen,
        };
        ops.Add(new TxnOp.Put(poolKey, IpamStoreAccess.Encode(newPool, IpamStoreJsonContext.Default.PoolRecord), Precondition.Absent));

        if (name is not null)
        {
            string nameKey = _keys.PoolName(space, name);
            var nameRead = await _store.ReadAsync(nameKey, IpamStoreJsonContext.Default.PoolNameRecord, ct).ConfigureAwait(false);
            string? pinned = pool.IsV6 ? nameRead?.Value.V6 : nameRead?.Value.V4;
            if (pinned is not null && pinned != pool.ToString())
                throw SkeinException.Conflict($"network '{name}' already uses pool {pinned} in {space}; this request asks for {pool}");
            var newName = (nameRead?.Value ?? new PoolNameRecord()) with { W = token };
            newName = pool.IsV6 ? newName with { V6 = pool.ToString() } : newName with { V4 = pool.ToString() };
            ops.Add(new TxnOp.Put(nameKey, IpamStoreAccess.Encode(newName, IpamStoreJsonContext.Default.PoolNameRecord),
                nameRead is { } n ? Precondition.VersionIs(n.Version) : Precondition.Absent));
        }

        var committed = await _store.CommitAsync(ops, token, ct).ConfigureAwait(false);
        return committed.Applied ? pool : null;
    }

    /// <summary>
    /// Pool choice with no subnet (decision #2): a named network reuses the pool its name is pinned
    /// to; otherwise the first default candidate that overlaps no pool of the space (so never one
    /// this node already holds), no on-link route and no nameserver of this host.
    /// </summary>
    private async Task<IpPrefix?> TryChooseDefaultPoolAsync(string space, bool v6, int? sizeOnly, string? name, CancellationToken ct)
    {
        var reserved = _hostView.GetReservedNetworks(v6);
        if (name is not null)
        {
            var nameRead = await _store.ReadAsync(_keys.PoolName(space, name), IpamStoreJsonContext.Default.PoolNameRecord, ct).ConfigureAwait(false);
            string? pinnedText = v6 ? nameRead?.Value.V6 : nameRead?.Value.V4;
            if (pinnedText is not null && IpPrefix.TryParse(pinnedText, false, out var pinned, out _))
            {
                if (sizeOnly is { } wantedSize && wantedSize != pinned.Length)
                    throw SkeinException.Conflict($"network '{name}' uses pool {pinned}, not a /{wantedSize}");
                foreach (var hostNetwork in reserved)
                {
                    if (hostNetwork.Prefix.Overlaps(pinned))
                        throw SkeinException.Conflict($"network '{name}' uses pool {pinned}, which overlaps the {hostNetwork.Source} on this host");
                }
                return await TryClaimPoolAsync(space, pinned, null, name, pinnedByName: true, ct).ConfigureAwait(false);
            }
        }

        var spaceRead = await _store.ReadAsync(_keys.Space(space), IpamStoreJsonContext.Default.SpaceRecord, ct).ConfigureAwait(false);
        var inUse = new List<IpPrefix>();
        foreach (string text in spaceRead?.Value.Pools ?? [])
        {
            if (IpPrefix.TryParse(text, false, out var p, out _))
                inUse.Add(p);
        }

        var ranges = v6 ? _options.IPv6DefaultPools
            : string.Equals(space, _options.GlobalAddressSpace, StringComparison.OrdinalIgnoreCase) ? _options.GlobalDefaultPools
            : _options.LocalDefaultPools;
        foreach (var candidate in DefaultCandidates(ranges, sizeOnly, name))
        {
            if (inUse.Any(candidate.Overlaps) || reserved.Any(r => r.Prefix.Overlaps(candidate)))
                continue;
            return await TryClaimPoolAsync(space, candidate, null, name, pinnedByName: false, ct, chosen: name is null).ConfigureAwait(false);
        }
        string family = v6 ? "IPv6" : "IPv4";
        string size = sizeOnly is { } s2 ? $" /{s2}" : "";
        throw SkeinException.Conflict($"could not find an available, non-overlapping {family}{size} address pool among the defaults to assign to the network");
    }

    /// <summary>
    /// Candidates in order: every default range cut into its pool size (or the requested size). A
    /// named network starts at an offset from a hash of its name, so names spread over the range
    /// deterministically (cluster-store §4.7); unnamed ones take the first free, as Docker does.
    /// </summary>
    private static IEnumerable<IpPrefix> DefaultCandidates(IReadOnlyList<DefaultPoolRange> ranges, int? sizeOnly, string? name)
    {
        const int MaxCandidatesPerRange = 1 << 20;
        foreach (var range in ranges)
        {
            int size = sizeOnly ?? range.Size;
            if (size < range.Base.Length || size > range.Base.MaxLength)
                continue;
            UInt128 count = range.Base.BlockCount(size);
            UInt128 limit = count < MaxCandidatesPerRange ? count : MaxCandidatesPerRange;
            UInt128 offset = name is null ? 0 : StableHash(name) % count;
            for (UInt128 i = 0; i < limit; i++)
                yield return range.Base.BlockAt(size, (offset + i) % count);
        }
    }

    /// <summary>FNV-1a: the same on every host and every run (string.GetHashCode is randomised).</summary>
    private static ulong StableHash(string text)
    {
        ulong hash = 14695981039346656037;
        foreach (char c in text)
        {
            hash ^= c;
            hash *= 1099511628211;
        }
        return hash;
    }

    /// <summary>"p-10-20-0-0-16": the logical name of a pool whose user gave none (cluster-store §4.2).</summary>
    internal static string DerivedName(IpPrefix pool) => "p-" + pool.ToKeySegment().Replace('.', '-');

    private string? NetworkNameOption(Dictionary<string, string>? options)
    {
        if (options is null || !options.TryGetValue(IpamLabels.NetworkName, out var name))
            return null;
        if (!NetworkNamePattern().IsMatch(name))
            throw SkeinException.Invalid($"--ipam-opt {IpamLabels.NetworkName}='{IpAddressText.Printable(name)}' must be 1-63 characters of a-z, 0-9 and '-'");
        return name;
    }

    /// <summary>
    /// IpamDriver.ReleasePool: drops this node's claim. A pool left with no users is deleted at once
    /// with its blocks (gateway, aux and any leftover slots), its space entry and its name entry, in
    /// one transaction (decision #4). Releasing a pool this node does not hold succeeds.
    /// </summary>
    public async Task ReleasePoolAsync(ReleasePoolRequest request, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(request);
        var id = PoolId.Parse(request.PoolID);
        await ReplayIfDueAsync(ct).ConfigureAwait(false);
        if (HasJournalFor(id.Space, id.Pool))
            throw new SkeinException(ErrorKind.Unavailable, $"pool {id} has changes made while the cluster store was unreachable that are not written back yet; try again when the store is back");
        using var spaceHeld = await _spaceLocks.AcquireAsync(StoreKeys.SpaceSegment(id.Space), ct).ConfigureAwait(false);
        string poolKey = _keys.Pool(id.Space, id.Pool);
        using var poolHeld = await _poolLocks.AcquireAsync(poolKey, ct).ConfigureAwait(false);
        // Again under the lock: a request may have journaled a change while this one waited for it.
        if (HasJournalFor(id.Space, id.Pool))
            throw new SkeinException(ErrorKind.Unavailable, $"pool {id} has changes made while the cluster store was unreachable that are not written back yet; try again when the store is back");
        try
        {
            for (int attempt = 1; ; attempt++)
            {
                if (await TryReleasePoolAsync(id, poolKey, _node, ct).ConfigureAwait(false))
                    return;
                if (attempt >= _options.MaxCasAttempts)
                    throw new SkeinException(ErrorKind.Unavailable, $"pool {id} kept changing in the cluster store while skein released it; try again");
                await BackoffAsync(attempt, ct).ConfigureAwait(false);
            }
        }
        finally
        {
            _pools.TryRemove(poolKey, out _);
        }
    }

    /// <summary>
    /// Drops <paramref name="user"/>'s claim on the pool (this node's, or a dead node's for the
    /// collector), deleting the pool with everything in it when no user is left.
    /// </summary>
    private async Task<bool> TryReleasePoolAsync(PoolId id, string poolKey, string user, CancellationToken ct)
    {
        var read = await _store.ReadAsync(poolKey, IpamStoreJsonContext.Default.PoolRecord, ct).ConfigureAwait(false)
            ?? throw SkeinException.NotFound($"Address Pool not found: skein holds no pool {id}");
        var record = read.Value;
        if (!record.Users.ContainsKey(user))
            return true;
        string token = _store.NextToken();
        var users = new Dictionary<string, PoolUserRecord>(record.Users, StringComparer.Ordinal);
        users.Remove(user);
        if (users.Count > 0)
        {
            var updated = record with { W = token, Users = users };
            var put = new TxnOp.Put(poolKey, IpamStoreAccess.Encode(updated, IpamStoreJsonContext.Default.PoolRecord), Precondition.VersionIs(read.Version));
            return (await _store.CommitAsync([put], token, ct).ConfigureAwait(false)).Applied;
        }

        // Last user: everything that belongs to the pool goes.
        var (blocks, _) = await _store.ListAsync(_keys.BlocksOf(id.Space, id.Pool), keysOnly: false, ct).ConfigureAwait(false);
        var blockOps = new List<TxnOp>();
        foreach (var block in blocks)
        {
            blockOps.Add(new TxnOp.Delete(block.Key, Precondition.VersionIs(block.Version)));
            string segment = StoreKeys.LastSegment(block.Key);
            if (!IpPrefix.TryParseKeySegment(segment, out var blockCidr))
                continue;
            var blockRecord = IpamStoreAccess.Decode(block, IpamStoreJsonContext.Default.BlockRecord);
            var nodes = blockRecord.Slots.Values.Select(slot => slot.Node)
                .Append(blockRecord.Owner ?? SlotKinds.AnyNode)
                .Concat(blockRecord.Borrowers ?? [])
                .Where(node => node != SlotKinds.AnyNode).Distinct(StringComparer.Ordinal);
            foreach (string node in nodes)
                blockOps.Add(new TxnOp.Delete(_keys.Affinity(node, id.Space, id.Pool, blockCidr), Precondition.None));
        }

        var finalOps = new List<TxnOp>(3) { new TxnOp.Delete(poolKey, Precondition.VersionIs(read.Version)) };
        string spaceKey = _keys.Space(id.Space);
        var spaceRead = await _store.ReadAsync(spaceKey, IpamStoreJsonContext.Default.SpaceRecord, ct).ConfigureAwait(false);
        if (spaceRead is { } space)
        {
            var remaining = space.Value.Pools.Where(p => p != id.Pool.ToString()).ToList();
            finalOps.Add(remaining.Count == 0
                ? new TxnOp.Delete(spaceKey, Precondition.VersionIs(space.Version))
                : new TxnOp.Put(spaceKey, IpamStoreAccess.Encode(space.Value with { W = token, Pools = remaining }, IpamStoreJsonContext.Default.SpaceRecord), Precondition.VersionIs(space.Version)));
        }
        if (record.Named)
        {
            string nameKey = _keys.PoolName(id.Space, record.Net);
            var nameRead = await _store.ReadAsync(nameKey, IpamStoreJsonContext.Default.PoolNameRecord, ct).ConfigureAwait(false);
            if (nameRead is { } name)
            {
                var left = id.Pool.IsV6 ? name.Value with { W = token, V6 = null } : name.Value with { W = token, V4 = null };
                finalOps.Add(left.V4 is null && left.V6 is null
                    ? new TxnOp.Delete(nameKey, Precondition.VersionIs(name.Version))
                    : new TxnOp.Put(nameKey, IpamStoreAccess.Encode(left, IpamStoreJsonContext.Default.PoolNameRecord), Precondition.VersionIs(name.Version)));
            }
        }

        int limit = _store.Store.Limits.MaxTxnOps;
        if (blockOps.Count + finalOps.Count <= limit)
            return (await _store.CommitAsync([.. finalOps, .. blockOps], token, ct).ConfigureAwait(false)).Applied;

        // Too many blocks for one transaction: mark the pool as being deleted (nobody claims it
        // meanwhile), remove the blocks in chunks, then the pool with its space and name entries.
        var deleting = record with { W = token, Users = users, State = PoolStates.Deleting };
        var mark = await _store.CommitAsync(
            [new TxnOp.Put(poolKey, IpamStoreAccess.Encode(deleting, IpamStoreJsonContext.Default.PoolRecord), Precondition.VersionIs(read.Version))],
            token, ct).ConfigureAwait(false);
        if (!mark.Applied)
            return false;
        var relaxed = blockOps.Select(op => op is TxnOp.Delete d ? new TxnOp.Delete(d.Key, Precondition.None) : op).ToList();
        foreach (var chunk in relaxed.Chunk(limit))
            await _store.CommitAsync(chunk, _store.NextToken(), ct).ConfigureAwait(false);
        finalOps[0] = new TxnOp.Delete(poolKey, mark.NewVersions[0] > 0 ? Precondition.VersionIs(mark.NewVersions[0]) : Precondition.None);
        return (await _store.CommitAsync(finalOps, token, ct).ConfigureAwait(false)).Applied;
    }

    /// <summary>
    /// The pool record for the driver: by PoolID ("&lt;Space&gt;/&lt;pool&gt;", a sub-pool part is
    /// ignored) or null when no such pool exists.
    /// </summary>
    public Task<PoolInfo?> FindPoolAsync(string poolId, CancellationToken ct)
    {
        var id = PoolId.Parse(poolId);
        return FindPoolAsync(id.Space, id.Pool, ct);
    }

    public async Task<PoolInfo?> FindPoolAsync(string addressSpace, IpPrefix pool, CancellationToken ct)
    {
        string space = PoolId.ValidateSpace(addressSpace);
        var read = await _store.ReadAsync(_keys.Pool(space, pool), IpamStoreJsonContext.Default.PoolRecord, ct).ConfigureAwait(false);
        if (read is not { } found)
            return null;
        var record = found.Value;
        string recordSpace = record.Space.Length > 0 ? record.Space : space;
        var subPools = record.Users.Values
            .Select(u => u.Sub is not null && IpPrefix.TryParse(u.Sub, false, out var sub, out _) ? sub : (IpPrefix?)null)
            .OfType<IpPrefix>().Distinct().Order().ToList();
        IPAddress? gateway = record.Gateway is not null && IpAddressText.TryParse(record.Gateway, out var gw, out _) ? gw : null;
        return new PoolInfo(
            new PoolId(recordSpace, pool, null).ToString(), recordSpace, pool, subPools, gateway, record.Net, record.Named,
            [.. record.Users.Keys.Order(StringComparer.Ordinal)], record.Users.ContainsKey(_node), record.Chosen);
    }
}
