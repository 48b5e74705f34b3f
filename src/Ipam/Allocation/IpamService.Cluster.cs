using System.Net;
using Skein.Ipam.Addressing;
using Skein.Ipam.Store;

namespace Skein.Ipam.Allocation;

/// <summary>What fencing found for one local endpoint's address (cluster-store §4.9).</summary>
internal enum SlotAssertion
{
    /// <summary>The slot exists and names this node and endpoint.</summary>
    Held,
    /// <summary>The slot was missing and is this node's again.</summary>
    Reinserted,
    /// <summary>Someone else holds the address now: never advertise the endpoint.</summary>
    Conflicted,
}

// The allocator's block logic as used by node membership (fencing) and the dead-node collector.
public sealed partial class IpamService
{
    /// <summary>How old a pending slot must be before its node frees it (cluster-store §4.8).</summary>
    public static readonly TimeSpan PendingExpiry = TimeSpan.FromMinutes(10);

    /// <summary>
    /// ExpirePendingAsync over several pools (the pools of skein's own networks on this node), for a
    /// periodic call by the plugin. Pools that no longer exist are skipped. Returns the addresses freed.
    /// </summary>
    public async Task<IReadOnlyList<IPAddress>> ExpirePendingAsync(IEnumerable<string> poolIds, TimeSpan olderThan, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(poolIds);
        var freed = new List<IPAddress>();
        foreach (string poolId in poolIds.Distinct(StringComparer.Ordinal))
        {
            try
            {
                freed.AddRange(await ExpirePendingAsync(poolId, olderThan, ct).ConfigureAwait(false));
            }
            catch (SkeinException e) when (e.Kind == ErrorKind.NotFound)
            {
            }
        }
        return freed;
    }

    /// <summary>
    /// Makes sure the slot of a local endpoint is this node's (fencing, cluster-store §4.9): present and
    /// ours → Held (marked bound); missing → inserted as the allocator would (claiming the block when it is
    /// absent or unowned, borrowing it otherwise; this node re-added to the pool's users, the pool
    /// re-created when the collector removed it); held by anything else → Conflicted.
    /// </summary>
    internal async Task<(SlotAssertion Outcome, string Detail)> AssertEndpointSlotAsync(IpPrefix pool, IPAddress address, string mac, string endpointId, CancellationToken ct)
    {
        if (!pool.Contains(address))
            throw SkeinException.Invalid($"{OutOfRange}: {IpAddressText.Format(address)} is not inside pool {pool}");
        mac = NormalizeMac(mac);
        string? space = await FindSpaceOfPoolAsync(pool, ct).ConfigureAwait(false);
        if (space is null)
        {
            space = _options.LocalAddressSpace;
            using var spaceHeld = await _spaceLocks.AcquireAsync(StoreKeys.SpaceSegment(space), ct).ConfigureAwait(false);
            for (int attempt = 1; ; attempt++)
            {
                try
                {
                    if (await TryClaimPoolAsync(space, pool, null, null, pinnedByName: false, ct).ConfigureAwait(false) is not null)
                        break;
                }
                catch (SkeinException e) when (e.Kind == ErrorKind.Conflict)
                {
                    return (SlotAssertion.Conflicted, $"pool {pool} is gone from the store and cannot be re-created: {e.Message}");
                }
                if (attempt >= _options.MaxCasAttempts)
                    throw new SkeinException(ErrorKind.Unavailable, $"the address space {space} kept changing while skein re-created pool {pool}; try again");
                await BackoffAsync(attempt, ct).ConfigureAwait(false);
            }
        }
        var slot = new SlotRecord { Kind = SlotKinds.Container, Node = _node, State = SlotKinds.Bound, Mac = mac, Eid = endpointId, Ts = NowSeconds() };
        return await WithPoolAsync(space, pool, cache => AssertSlotAsync(cache, address, slot, ct), ct).ConfigureAwait(false);
    }

    private async Task<string?> FindSpaceOfPoolAsync(IpPrefix pool, CancellationToken ct)
    {
        var (entries, _) = await _store.ListAsync(_keys.Pools, keysOnly: true, ct).ConfigureAwait(false);
        string segment = "/" + pool.ToKeySegment();
        string? found = null;
        foreach (var entry in entries)
        {
            if (!entry.Key.EndsWith(segment, StringComparison.Ordinal))
                continue;
            var record = await _store.ReadAsync(entry.Key, IpamStoreJsonContext.Default.PoolRecord, ct).ConfigureAwait(false);
            if (record is not { } read || read.Value.Cidr != pool.ToString())
                continue;
            string space = read.Value.Space.Length > 0 ? read.Value.Space : entry.Key[_keys.Pools.Length..entry.Key.IndexOf('/', _keys.Pools.Length)];
            if (read.Value.Users.ContainsKey(_node))
                return space;
            found ??= space;
        }
        return found;
    }

    /// <summary>
    /// Makes the address hold <paramref name="slot"/> (a container slot of this node, bound or pending) as fencing and
    /// the journal replay need it: Held when it is this node's already (same MAC, or same endpoint), Reinserted when
    /// it was free, Conflicted when anything else holds it.
    /// </summary>
    private async Task<(SlotAssertion, string)> AssertSlotAsync(PoolCache cache, IPAddress address, SlotRecord slot, CancellationToken ct)
    {
        string shown = IpAddressText.Format(address);
        if (cache.Record.State == PoolStates.Deleting)
            return (SlotAssertion.Conflicted, $"pool {cache.Pool} is being deleted");
        var blockCidr = cache.BlockOf(address, out var index);
        int ordinal = (int)blockCidr.OrdinalOf(address);
        if (BlockGeometry.IsReserved(cache.Pool, cache.PoolOrdinalOfBlockStart(blockCidr) + (UInt128)ordinal))
            return (SlotAssertion.Conflicted, $"{shown} is a reserved address of {cache.Pool}");

        if (!cache.Record.Users.ContainsKey(_node))
        {
            string userToken = _store.NextToken();
            var users = new Dictionary<string, PoolUserRecord>(cache.Record.Users, StringComparer.Ordinal) { [_node] = new PoolUserRecord { Ts = NowSeconds() } };
            var updated = cache.Record with { W = userToken, Users = users };
            var put = new TxnOp.Put(cache.PoolKey, IpamStoreAccess.Encode(updated, IpamStoreJsonContext.Default.PoolRecord), Precondition.VersionIs(cache.PoolVersion));
            var added = await _store.CommitAsync([put], userToken, ct).ConfigureAwait(false);
            if (!added.Applied || added.NewVersions[0] == 0)
                throw new StaleStateException();
            cache.Record = updated;
            cache.PoolVersion = added.NewVersions[0];
        }

        string blockKey = _keys.Block(cache.Space, cache.Pool, blockCidr);
        var current = await _store.ReadAsync(blockKey, IpamStoreJsonContext.Default.BlockRecord, ct).ConfigureAwait(false);
        string token = _store.NextToken();
        var ops = new List<TxnOp>(3);
        SlotAssertion outcome;
        if (current is not { } existing)
        {
            var written = WithSlot(NewBlock(cache, blockCidr, token), ordinal, slot);
            ops.Add(new TxnOp.Put(blockKey, IpamStoreAccess.Encode(written, IpamStoreJsonContext.Default.BlockRecord), Precondition.Absent));
            ops.Add(AffinityPut(cache, blockCidr, borrowed: false, token, Precondition.None));
            ops.Add(new TxnOp.Check(cache.PoolKey, Precondition.VersionIs(cache.PoolVersion)));
            outcome = SlotAssertion.Reinserted;
        }
        else if (existing.Value.Slots.TryGetValue(ordinal, out var holder))
        {
            bool ours = holder.Kind == SlotKinds.Container && holder.Node == _node
                && (holder.Mac == slot.Mac || (slot.Eid is not null && holder.Eid == slot.Eid));
            if (!ours)
            {
                string who = holder.Kind == SlotKinds.Container ? $"a container of node {holder.Node}" : $"the network ({holder.Kind})";
                return (SlotAssertion.Conflicted, $"{shown} is now held by {who}");
            }
            if (holder.State == slot.State && holder.Eid == slot.Eid && holder.Mac == slot.Mac)
                return (SlotAssertion.Held, $"{shown} is held");
            var written = WithSlot(existing.Value, ordinal, slot) with { W = token };
            ops.Add(new TxnOp.Put(blockKey, IpamStoreAccess.Encode(written, IpamStoreJsonContext.Default.BlockRecord), Precondition.VersionIs(existing.Version)));
            outcome = SlotAssertion.Held;
        }
        else
        {
            var block = existing.Value;
            var written = WithSlot(block, ordinal, slot) with { W = token };
            if (block.Owner is null)
            {
                written = written with { Owner = _node, OwnerInc = _incarnation };
                ops.Add(AffinityPut(cache, blockCidr, borrowed: false, token, Precondition.None));
            }
            else if (block.Owner != _node)
            {
                var borrowers = block.Borrowers ?? [];
                written = written with { Borrowers = borrowers.Contains(_node) ? borrowers : [.. borrowers, _node] };
                ops.Add(AffinityPut(cache, blockCidr, borrowed: true, token, Precondition.None));
            }
            else
            {
                // Our own block: make sure the affinity entry is there too (a restored store may lack it).
                ops.Add(AffinityPut(cache, blockCidr, borrowed: false, token, Precondition.None));
            }
            ops.Insert(0, new TxnOp.Put(blockKey, IpamStoreAccess.Encode(written, IpamStoreJsonContext.Default.BlockRecord), Precondition.VersionIs(existing.Version)));
            outcome = SlotAssertion.Reinserted;
        }

        var result = await _store.CommitAsync(ops, token, ct).ConfigureAwait(false);
        if (!result.Applied)
            throw new StaleStateException();
        // Rare path: let the next allocation re-read this pool instead of patching the cache.
        _pools.TryRemove(cache.PoolKey, out _);
        return (outcome, outcome == SlotAssertion.Reinserted ? $"{shown} re-inserted" : $"{shown} marked {slot.State}");
    }

    /// <summary>
    /// Dead-node reclaim, step 1 (cluster-store §4.9): for each block <paramref name="deadNode"/> owns or
    /// borrowed into, removes its container slots (quarantining their ordinals), clears it as owner and
    /// borrower, deletes the block when nothing but reserved slots remain, and deletes the affinity entry,
    /// all in one conditional transaction per block. Gateway, aux and other nodes' slots stay. Idempotent.
    /// Returns the number of slots removed.
    /// </summary>
    internal async Task<int> ReclaimBlocksOfAsync(string deadNode, CancellationToken ct)
    {
        if (deadNode == _node)
            throw new InvalidOperationException("a node cannot reclaim its own blocks");
        string prefix = _keys.AffinitiesOfNode(deadNode);
        var (affinities, _) = await _store.ListAsync(prefix, keysOnly: false, ct).ConfigureAwait(false);
        int removed = 0;
        foreach (var affinity in affinities)
        {
            string blockKey = _keys.Blocks + affinity.Key[prefix.Length..];
            for (int attempt = 1; ; attempt++)
            {
                var outcome = await TryReclaimBlockAsync(deadNode, blockKey, affinity, ct).ConfigureAwait(false);
                if (outcome is { } count)
                {
                    removed += count;
                    break;
                }
                if (attempt >= _options.MaxCasAttempts)
                    throw new SkeinException(ErrorKind.Unavailable, $"block {blockKey} kept changing while skein reclaimed node {deadNode}'s slots; the next pass continues");
                await BackoffAsync(attempt, ct).ConfigureAwait(false);
            }
        }
        return removed;
    }

    /// <summary>Slots removed, or null when a conditional write lost (re-read and retry).</summary>
    private async Task<int?> TryReclaimBlockAsync(string deadNode, string blockKey, KvEntry affinity, CancellationToken ct)
    {
        var affinityNow = await _store.Store.GetAsync(affinity.Key, ct).ConfigureAwait(false);
        if (affinityNow is null)
            return 0;
        var read = await _store.ReadAsync(blockKey, IpamStoreJsonContext.Default.BlockRecord, ct).ConfigureAwait(false);
        string token = _store.NextToken();
        var ops = new List<TxnOp>(2);
        int removed = 0;
        if (read is { } current)
        {
            var block = current.Value;
            long now = NowSeconds();
            var slots = new Dictionary<int, SlotRecord>(block.Slots);
            var freed = new Dictionary<int, long>(block.Freed);
            foreach (var (ordinal, slot) in block.Slots)
            {
                if (slot.Kind == SlotKinds.Container && slot.Node == deadNode)
                {
                    slots.Remove(ordinal);
                    freed[ordinal] = now;
                    removed++;
                }
            }
            string? owner = block.Owner == deadNode ? null : block.Owner;
            var borrowers = block.Borrowers?.Where(b => b != deadNode).ToList();
            if (borrowers is { Count: 0 })
                borrowers = null;
            bool empty = owner is null && borrowers is null && slots.Values.All(s => s.Kind == SlotKinds.Reserved);
            if (empty)
            {
                ops.Add(new TxnOp.Delete(blockKey, Precondition.VersionIs(current.Version)));
            }
            else if (removed > 0 || owner != block.Owner || (borrowers?.Count ?? 0) != (block.Borrowers?.Count ?? 0))
            {
                var written = block with
                {
                    W = token,
                    Owner = owner,
                    OwnerInc = owner is null ? null : block.OwnerInc,
                    Borrowers = borrowers,
                    Slots = slots,
                    Freed = freed,
                };
                ops.Add(new TxnOp.Put(blockKey, IpamStoreAccess.Encode(written, IpamStoreJsonContext.Default.BlockRecord), Precondition.VersionIs(current.Version)));
            }
        }
        ops.Add(new TxnOp.Delete(affinity.Key, Precondition.VersionIs(affinityNow.Version)));
        var result = await _store.CommitAsync(ops, token, ct).ConfigureAwait(false);
        return result.Applied ? removed : null;
    }

    /// <summary>
    /// Dead-node reclaim, step 2 for pools: removes <paramref name="deadNode"/> from the users of every
    /// pool; a pool left with no user is deleted as ReleasePool deletes it (decision #4). Returns the
    /// number of pools changed.
    /// </summary>
    internal async Task<int> RemovePoolUserEverywhereAsync(string deadNode, CancellationToken ct)
    {
        var (entries, _) = await _store.ListAsync(_keys.Pools, keysOnly: false, ct).ConfigureAwait(false);
        int changed = 0;
        foreach (var entry in entries)
        {
            var record = IpamStoreAccess.Decode(entry, IpamStoreJsonContext.Default.PoolRecord);
            if (!record.Users.ContainsKey(deadNode) || !IpPrefix.TryParse(record.Cidr, false, out var pool, out _))
                continue;
            string space = record.Space.Length > 0 ? record.Space : entry.Key[_keys.Pools.Length..entry.Key.IndexOf('/', _keys.Pools.Length)];
            var id = new PoolId(space, pool, null);
            using var spaceHeld = await _spaceLocks.AcquireAsync(StoreKeys.SpaceSegment(space), ct).ConfigureAwait(false);
            using var poolHeld = await _poolLocks.AcquireAsync(entry.Key, ct).ConfigureAwait(false);
            for (int attempt = 1; ; attempt++)
            {
                bool done;
                try
                {
                    done = await TryReleasePoolAsync(id, entry.Key, deadNode, ct).ConfigureAwait(false);
                }
                catch (SkeinException e) when (e.Kind == ErrorKind.NotFound)
                {
                    done = true;
                }
                if (done)
                    break;
                if (attempt >= _options.MaxCasAttempts)
                    throw new SkeinException(ErrorKind.Unavailable, $"pool {id} kept changing while skein removed node {deadNode} from its users; the next pass continues");
                await BackoffAsync(attempt, ct).ConfigureAwait(false);
            }
            _pools.TryRemove(entry.Key, out _);
            changed++;
        }
        return changed;
    }
}
