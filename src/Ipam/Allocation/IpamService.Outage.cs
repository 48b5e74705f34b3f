using System.Net;
using Skein.Ipam.Addressing;
using Skein.Ipam.Store;

namespace Skein.Ipam.Allocation;

/// <summary>A journaled change the store refused on replay: someone else holds the address now.</summary>
public sealed record JournalConflict(IPAddress Address, string? Mac, string? EndpointId, string Detail);

/// <summary>What one replay of the outage journal did.</summary>
public sealed record JournalReplay(int Replayed, IReadOnlyList<JournalConflict> Conflicts)
{
    public static readonly JournalReplay Nothing = new(0, []);
}

// Allocation while the cluster store is unreachable (decisions #18, cluster-store §4.13 #3). A pool is either in
// normal mode (every change is a conditional write) or in journal mode (it has journaled changes not yet replayed):
// then its changes go to the local journal and to the in-memory cache of its blocks only, and nothing else writes
// the pool until the replay has written them back through the fencing check. A pool enters journal mode when a
// store call fails as unreachable, and leaves it when the replay succeeds. Only endpoint addresses in blocks this
// host already holds are handed out that way, and only while the store confirmed this host less than
// OutageAllowance ago (after reclaim-after the collector may give its blocks to others).
public sealed partial class IpamService
{
    private readonly OutageJournal? _journal;
    private readonly OutageSnapshots? _snapshots;
    /// <summary>The latest store confirmation recorded in a snapshot this process restored (null: none restored).</summary>
    private DateTimeOffset? _restoredConfirmation;
    private readonly Lock _restoredGate = new();
    private readonly SemaphoreSlim _replayGate = new(1, 1);
    private ILiveness? _liveness;
    private long _outageUntilTicks = long.MinValue;
    private string _outageCause = "";

    /// <summary>The liveness whose renewals prove to the IPAM that the store still counts this host alive.</summary>
    public void ObserveLiveness(ILiveness liveness) => _liveness = liveness ?? throw new ArgumentNullException(nameof(liveness));

    /// <summary>Journaled changes not yet written back to the store.</summary>
    public int JournalLength => _journal?.Count ?? 0;

    /// <summary>True while a change to <paramref name="address"/> waits in the journal: do not advertise it yet.</summary>
    public bool AwaitsReplay(IPAddress address) => _journal is { } journal && journal.Mentions(IpAddressText.Format(address));

    private bool CanJournal => _journal is not null && _options.OutageAllowance > TimeSpan.Zero;

    private bool InOutage => _time.GetUtcNow().UtcTicks < Interlocked.Read(ref _outageUntilTicks);

    /// <summary>For the next OutageProbeInterval, requests use the journal without trying the store first.</summary>
    private void EnterOutage(SkeinException cause)
    {
        _outageCause = cause.InnerException?.Message ?? cause.Message;
        Interlocked.Exchange(ref _outageUntilTicks, (_time.GetUtcNow() + _options.OutageProbeInterval).UtcTicks);
    }

    private static bool IsOutage(SkeinException e) => e.Kind == ErrorKind.Unavailable && e.InnerException is StoreUnavailableException;

    /// <summary>Journal mode for the pool: its endpoint changes go to the journal (store just found down, or changes pending).</summary>
    private bool UseJournal(string space, IpPrefix pool) => CanJournal && (InOutage || HasJournalFor(space, pool));

    /// <summary>The pool has journaled changes not yet written back: nothing else may change it meanwhile.</summary>
    private bool HasJournalFor(string space, IpPrefix pool) => _journal is { } journal && journal.HasEntriesFor(space, pool.ToString());

    /// <summary>
    /// Before a request: when the store may be back and changes wait in the journal, replay them first so the request
    /// sees the store as it will be. An unreachable store puts the IPAM in outage mode instead.
    /// </summary>
    private Task ReplayIfDueAsync(CancellationToken ct) =>
        !CanJournal || _journal!.IsEmpty || InOutage ? Task.CompletedTask : TryReplayJournalAsync(ct);

    /// <summary>
    /// <see cref="ReplayJournalAsync"/> unless the store was found unreachable moments ago; null when the store is
    /// (still) unreachable, which puts the IPAM in outage mode for the next probe interval.
    /// </summary>
    public async Task<JournalReplay?> TryReplayJournalAsync(CancellationToken ct)
    {
        if (_journal is null || _journal.IsEmpty)
            return JournalReplay.Nothing;
        if (InOutage)
            return null;
        try
        {
            return await ReplayJournalAsync(ct).ConfigureAwait(false);
        }
        catch (SkeinException e) when (IsOutage(e))
        {
            EnterOutage(e);
            return null;
        }
    }

    /// <summary>Closes the journal file.</summary>
    public void Dispose() => _journal?.Dispose();

    /// <summary>The pool's cache for a journaled change, after checking that this host may still act on its own.</summary>
    private PoolCache OutageCache(string space, IpPrefix pool, string poolKey)
    {
        var cause = _outageCause.Length > 0 ? _outageCause : "no answer";
        // A process restarted during the outage knows its pools (and when the store last confirmed it) from the
        // snapshots taken at each pool's first journaled change.
        if (!_pools.ContainsKey(poolKey) && RestoreFromSnapshot(space, pool, poolKey) is { } restored)
            _pools[poolKey] = restored;
        DateTimeOffset? last = LastConfirmation();
        if (last is null)
            throw new SkeinException(ErrorKind.Unavailable, $"the cluster store is unreachable ({cause}) and has not answered skein since it started, so skein cannot allocate on its own; try again when the store is back");
        var age = _time.GetUtcNow() - last.Value;
        if (age < TimeSpan.Zero)
            throw new SkeinException(ErrorKind.Unavailable,
                $"the cluster store is unreachable ({cause}) and this host's clock is behind the store's last confirmation of it ({last.Value:u}), so skein cannot tell how long it has been on its own; try again when the store is back");
        if (age >= _options.OutageAllowance)
            throw new SkeinException(ErrorKind.Unavailable,
                $"the cluster store is unreachable ({cause}) and last confirmed this host {age.TotalSeconds:0} s ago; past {_options.OutageAllowance.TotalSeconds:0} s " +
                "(reclaim-after minus a margin) other hosts may reclaim its addresses, so skein allocates nothing until the store is back");
        if (!_pools.TryGetValue(poolKey, out var cache))
            throw new SkeinException(ErrorKind.Unavailable,
                $"the cluster store is unreachable ({cause}) and skein has not read pool {space}/{pool} since it started, so it knows no block of its own to allocate from; try again when the store is back");
        return cache;
    }

    /// <summary>When the store last confirmed this host: its last answer, the liveness renewal, or a restored snapshot's.</summary>
    private DateTimeOffset? LastConfirmation()
    {
        DateTimeOffset? last = _store.LastAnswer;
        if (_liveness?.LastConfirmed is { } confirmed && (last is null || confirmed > last))
            last = confirmed;
        DateTimeOffset? restored;
        lock (_restoredGate)
            restored = _restoredConfirmation;
        if (restored is not null && (last is null || restored > last))
            last = restored;
        return last;
    }

    /// <summary>The pool as its snapshot and its journal entries say, when it has entries and a snapshot; else null.</summary>
    private PoolCache? RestoreFromSnapshot(string space, IpPrefix pool, string poolKey)
    {
        string poolText = pool.ToString();
        if (_snapshots is null || !_journal!.HasEntriesFor(space, poolText) || _snapshots.Load(space, poolText) is not { } snapshot)
            return null;
        var cache = new PoolCache(snapshot.Space, pool, poolKey, snapshot.PoolVersion, snapshot.Record!);
        foreach (var block in snapshot.Blocks)
        {
            var cidr = IpPrefix.Parse(block.Cidr, "snapshot block");
            var index = pool.BlockIndexOf(cidr.Network, cache.BlockLength);
            cache.Blocks[index] = new CachedBlock(cidr, index, block.Key, block.Version, block.Record!, block.Borrowed);
        }
        foreach (var entry in _journal.EntriesFor(space, poolText))
        {
            var address = IpAddressText.Parse(entry.Addr, "journaled address");
            cache.BlockOf(address, out var index);
            if (cache.Blocks.TryGetValue(index, out var block))
                ApplySlot(block, (int)block.Cidr.OrdinalOf(address), entry.Slot, entry.Ts);
        }
        lock (_restoredGate)
        {
            // Pools restore under their own locks, possibly at once: the latest confirmation any snapshot recorded.
            if (_restoredConfirmation is null || snapshot.LastConfirmed > _restoredConfirmation)
                _restoredConfirmation = snapshot.LastConfirmed;
        }
        return cache;
    }

    /// <summary>Before a pool's first journaled change: the pool as acknowledged by the store, on disk (fsynced).</summary>
    private void SnapshotBeforeFirstChange(PoolCache cache)
    {
        if (_snapshots is not null && !_journal!.HasEntriesFor(cache.Space, cache.Pool.ToString()))
            SaveSnapshot(cache);
    }

    /// <summary>
    /// After a store write to a pool that has journal entries: the snapshot is rewritten from the cache (which holds
    /// the journaled changes too; they are re-applied on restore and give the same slots).
    /// </summary>
    private void RefreshSnapshot(PoolCache cache)
    {
        if (_snapshots is null || !_journal!.HasEntriesFor(cache.Space, cache.Pool.ToString()))
            return;
        try
        {
            SaveSnapshot(cache);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or SkeinException)
        {
            // The store write stands. Without a snapshot that knows it, a process restarted during the outage must
            // not allocate in this pool at all: it then fails fast, as for a pool it never read.
            _snapshots.TryDelete(cache.Space, cache.Pool.ToString());
        }
    }

    private void SaveSnapshot(PoolCache cache)
    {
        var confirmed = LastConfirmation()
            ?? throw new SkeinException(ErrorKind.Unavailable, $"the cluster store has not confirmed this host since skein started; nothing of pool {cache.Space}/{cache.Pool} is journaled");
        _snapshots!.Save(new PoolSnapshot
        {
            Space = cache.Space,
            Pool = cache.Pool.ToString(),
            PoolVersion = cache.PoolVersion,
            Record = cache.Record,
            LastConfirmed = confirmed,
            Blocks = [.. cache.Blocks.Values.Select(b => new BlockSnapshot
            {
                Cidr = b.Cidr.ToString(), Key = b.Key, Version = b.Version, Record = b.Record, Borrowed = b.Borrowed,
            })],
        });
    }

    /// <summary>Journals the slot an address holds now (null: released at <paramref name="now"/>), then updates the cache.</summary>
    private void JournalSlot(PoolCache cache, CachedBlock block, int ordinal, SlotRecord? slot, long now)
    {
        SnapshotBeforeFirstChange(cache);
        _journal!.Append(new JournalEntry
        {
            Space = cache.Space,
            Pool = cache.Pool.ToString(),
            Addr = IpAddressText.Format(block.Cidr.AddressAt((UInt128)ordinal)),
            Slot = slot,
            Ts = now,
        });
        ApplySlot(block, ordinal, slot, now);
    }

    /// <summary>The in-memory side of a journaled change.</summary>
    private static void ApplySlot(CachedBlock block, int ordinal, SlotRecord? slot, long now)
    {
        if (slot is not null)
        {
            block.Record = WithSlot(block.Record, ordinal, slot);
            return;
        }
        var slots = new Dictionary<int, SlotRecord>(block.Record.Slots);
        slots.Remove(ordinal);
        var freed = new Dictionary<int, long>(block.Record.Freed) { [ordinal] = now };
        block.Record = block.Record with { Slots = slots, Freed = freed };
    }

    /// <summary>RequestAddress for an endpoint from the journal: only from blocks this host owns (no store, no claim, no borrowing).</summary>
    private async Task<IPAddress> RequestFromJournalAsync(PoolId id, string mac, IPAddress? wanted, CancellationToken ct)
    {
        string poolKey = _keys.Pool(id.Space, id.Pool);
        using var held = await _poolLocks.AcquireAsync(poolKey, ct).ConfigureAwait(false);
        return RequestFromJournalLocked(OutageCache(id.Space, id.Pool, poolKey), id, mac, wanted);
    }

    /// <summary><see cref="RequestFromJournalAsync"/> for a caller that holds the pool's lock.</summary>
    private IPAddress RequestFromJournalLocked(PoolCache cache, PoolId id, string mac, IPAddress? wanted)
    {
        CheckSubPoolKnown(cache, id);
        if (PendingAddressOf(cache, _node, mac) is { } repeat && (wanted is null || wanted.Equals(repeat)))
            return repeat;

        long now = NowSeconds();
        CachedBlock? chosen;
        int chosenOrdinal;
        if (wanted is not null)
        {
            var blockCidr = cache.BlockOf(wanted, out var index);
            chosenOrdinal = (int)blockCidr.OrdinalOf(wanted);
            if (BlockGeometry.IsReserved(cache.Pool, cache.PoolOrdinalOfBlockStart(blockCidr) + (UInt128)chosenOrdinal))
                throw SkeinException.Conflict($"{AddressInUse}: {IpAddressText.Format(wanted)} is a reserved address of {cache.Pool}");
            if (!cache.Blocks.TryGetValue(index, out chosen) || chosen.Borrowed || chosen.Record.Owner != _node)
                throw new SkeinException(ErrorKind.Unavailable,
                    $"the cluster store is unreachable ({_outageCause}) and {IpAddressText.Format(wanted)} is not in a block this host owns; try again when the store is back");
            if (chosen.Record.Slots.ContainsKey(chosenOrdinal))
                throw SkeinException.Conflict($"{AddressInUse}: {IpAddressText.Format(wanted)} in pool {id}");
        }
        else
        {
            var pick = PickFree(cache, id.Window, now, ownedOnly: true);
            (chosen, chosenOrdinal) = pick.Best ?? pick.OldestFreed
                ?? throw new SkeinException(ErrorKind.Unavailable,
                    $"the cluster store is unreachable ({_outageCause}) and no free address is left in the blocks this host owns in pool {id}; try again when the store is back");
        }
        JournalSlot(cache, chosen, chosenOrdinal, ContainerSlot(mac), now);
        return chosen.Cidr.AddressAt((UInt128)chosenOrdinal);
    }

    /// <summary>ReleaseAddress from the journal: frees this host's endpoint slot in its cached blocks; anything else is left alone.</summary>
    private async Task ReleaseFromJournalAsync(PoolId id, IPAddress address, CancellationToken ct)
    {
        string poolKey = _keys.Pool(id.Space, id.Pool);
        using var held = await _poolLocks.AcquireAsync(poolKey, ct).ConfigureAwait(false);
        var cache = OutageCache(id.Space, id.Pool, poolKey);
        cache.BlockOf(address, out var index);
        if (!cache.Blocks.TryGetValue(index, out var block))
            return;
        int ordinal = (int)block.Cidr.OrdinalOf(address);
        if (!block.Record.Slots.TryGetValue(ordinal, out var slot) || slot.Kind != SlotKinds.Container || slot.Node != _node)
            return;
        JournalSlot(cache, block, ordinal, null, NowSeconds());
    }

    /// <summary>Bind/unbind from the journal; false when no slot of this host in the pool's cache holds the address.</summary>
    private async Task<bool> MarkFromJournalAsync(string space, IpPrefix pool, IPAddress address, string endpointId, bool bind, CancellationToken ct)
    {
        string poolKey = _keys.Pool(space, pool);
        using var held = await _poolLocks.AcquireAsync(poolKey, ct).ConfigureAwait(false);
        var cache = OutageCache(space, pool, poolKey);
        cache.BlockOf(address, out var index);
        if (!cache.Blocks.TryGetValue(index, out var block))
            return false;
        int ordinal = (int)block.Cidr.OrdinalOf(address);
        if (!block.Record.Slots.TryGetValue(ordinal, out var slot))
            return false;
        var updated = MarkedSlot(slot, endpointId, bind);
        if (updated is null)
            return false;
        if (!ReferenceEquals(updated, slot))
            JournalSlot(cache, block, ordinal, updated, NowSeconds());
        return true;
    }

    /// <summary>
    /// Writes the journal back (decisions #18): per pool, under its lock, the latest change of each address goes
    /// through the fencing check (a slot missing from the store is inserted as the allocator would, one held by
    /// anyone else is a conflict) or is released; then the pool's entries leave the journal and its cache is re-read.
    /// Throws Unavailable while the store is unreachable (what was written stays written: the replay is idempotent).
    /// </summary>
    public async Task<JournalReplay> ReplayJournalAsync(CancellationToken ct)
    {
        if (_journal is null || _journal.IsEmpty)
            return JournalReplay.Nothing;
        await _replayGate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var conflicts = new List<JournalConflict>();
            int replayed = 0;
            foreach (var (space, poolText) in _journal.Snapshot().Select(e => (e.Space, e.Pool)).Distinct().ToList())
            {
                var pool = IpPrefix.Parse(poolText, "journaled pool");
                string poolKey = _keys.Pool(space, pool);
                using var held = await _poolLocks.AcquireAsync(poolKey, ct).ConfigureAwait(false);
                var entries = _journal.EntriesFor(space, poolText);
                foreach (var latest in entries.GroupBy(e => e.Addr).Select(g => g.Last()))
                {
                    if (await ReplayEntryAsync(space, pool, poolKey, latest, ct).ConfigureAwait(false) is { } conflict)
                        conflicts.Add(conflict);
                    replayed++;
                }
                _journal.Remove(entries);
                if (!_journal.HasEntriesFor(space, poolText))
                    _snapshots?.TryDelete(space, poolText);
                _pools.TryRemove(poolKey, out _);
            }
            Interlocked.Exchange(ref _outageUntilTicks, long.MinValue);
            return new JournalReplay(replayed, conflicts);
        }
        finally
        {
            _replayGate.Release();
        }
    }

    private async Task<JournalConflict?> ReplayEntryAsync(string space, IpPrefix pool, string poolKey, JournalEntry entry, CancellationToken ct)
    {
        var address = IpAddressText.Parse(entry.Addr, "journaled address");
        for (int attempt = 1; ; attempt++)
        {
            PoolCache fresh;
            try
            {
                fresh = await ReadPoolAsync(space, pool, poolKey, ct).ConfigureAwait(false);
            }
            catch (SkeinException e) when (e.Kind == ErrorKind.NotFound)
            {
                return entry.Slot is { } lost ? new JournalConflict(address, lost.Mac, lost.Eid, $"pool {pool} is gone from the cluster store") : null;
            }
            try
            {
                if (entry.Slot is { } slot)
                {
                    var (outcome, detail) = await AssertSlotAsync(fresh, address, slot, ct).ConfigureAwait(false);
                    return outcome == SlotAssertion.Conflicted ? new JournalConflict(address, slot.Mac, slot.Eid, detail) : null;
                }
                await ReleaseInStoreAsync(fresh, address, entry.Ts, ct).ConfigureAwait(false);
                return null;
            }
            catch (StaleStateException)
            {
                if (attempt >= _options.MaxCasAttempts)
                    throw new SkeinException(ErrorKind.Unavailable, $"pool {space}/{pool} kept changing while skein replayed its outage journal; the next replay continues");
                await BackoffAsync(attempt, ct).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Frees this node's endpoint slot for the address as the store holds it now (not as cached), freed at <paramref name="freedAt"/>.</summary>
    private async Task ReleaseInStoreAsync(PoolCache cache, IPAddress address, long freedAt, CancellationToken ct)
    {
        var blockCidr = cache.BlockOf(address, out _);
        int ordinal = (int)blockCidr.OrdinalOf(address);
        string blockKey = _keys.Block(cache.Space, cache.Pool, blockCidr);
        var read = await _store.ReadAsync(blockKey, IpamStoreJsonContext.Default.BlockRecord, ct).ConfigureAwait(false);
        if (read is not { } block || !block.Value.Slots.TryGetValue(ordinal, out var slot) || slot.Kind != SlotKinds.Container || slot.Node != _node)
            return;
        string token = _store.NextToken();
        long now = NowSeconds();
        long quarantine = (long)_options.Quarantine.TotalSeconds;
        var slots = new Dictionary<int, SlotRecord>(block.Value.Slots);
        slots.Remove(ordinal);
        var freed = block.Value.Freed.Where(f => now - f.Value < quarantine).ToDictionary();
        freed[ordinal] = freedAt;
        var written = block.Value with { W = token, Slots = slots, Freed = freed };
        var put = new TxnOp.Put(blockKey, IpamStoreAccess.Encode(written, IpamStoreJsonContext.Default.BlockRecord), Precondition.VersionIs(block.Version));
        var result = await _store.CommitAsync([put], token, ct).ConfigureAwait(false);
        if (!result.Applied)
            throw new StaleStateException();
    }
}
