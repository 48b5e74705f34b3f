namespace Skein.Ipam.Tests.Store.FakeConsul;

/// <summary>One KV entry as Consul's state store holds it (cluster-store §1.3).</summary>
public sealed record FakeKv(string Key, byte[] Value, ulong Flags, ulong CreateIndex, ulong ModifyIndex, ulong LockIndex, string? Session);

/// <summary>A session (cluster-store §1.8). Expiry is evaluated against the injectable clock.</summary>
public sealed record FakeSession(string Id, string Name, TimeSpan? Ttl, string Behavior, TimeSpan LockDelay, ulong CreateIndex, DateTimeOffset RenewedAt);

/// <summary>
/// The server's data: KV table with tombstones, sessions, lock-delays and a Raft index. Everything
/// runs under one lock; a change completes the current "changed" task so blocking queries re-run.
/// Cited sections are of cluster-store.md, which is what this fake is written from.
/// </summary>
public sealed class FakeConsulState(TimeProvider clock)
{
    private readonly Lock _gate = new();
    private SortedDictionary<string, FakeKv> _kvs = new(StringComparer.Ordinal);
    private Dictionary<string, ulong> _tombstones = new(StringComparer.Ordinal);
    private Dictionary<string, FakeSession> _sessions = new(StringComparer.Ordinal);
    private readonly Dictionary<string, DateTimeOffset> _lockDelayUntil = new(StringComparer.Ordinal);
    private ulong _raftIndex = 10;
    private ulong _kvsTableIndex = 1;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Lock Gate => _gate;
    public TimeProvider Clock => clock;

    /// <summary>Sessions are reaped only after twice their TTL (§1.8 "up to twice the TTL"); the fake takes the worst case.</summary>
    public const int SessionTtlMultiplier = 2;

    public Task Changed
    {
        get { lock (_gate) return _changed.Task; }
    }

    // ---- used with Gate held ---------------------------------------------------------------------

    public SortedDictionary<string, FakeKv> Kvs => _kvs;
    public Dictionary<string, FakeSession> Sessions => _sessions;
    public ulong RaftIndex => _raftIndex;
    public ulong KvsTableIndex => _kvsTableIndex;

    public ulong NextIndex() => ++_raftIndex;

    public IEnumerable<FakeKv> Under(string prefix) => _kvs.Values.Where(kv => kv.Key.StartsWith(prefix, StringComparison.Ordinal));

    /// <summary>§1.3: a recursive read's index is the highest inside the prefix including tombstones, else the table index.</summary>
    public ulong PrefixIndex(string prefix)
    {
        var max = 0UL;
        foreach (var kv in Under(prefix))
            max = Math.Max(max, kv.ModifyIndex);
        foreach (var (key, index) in _tombstones)
        {
            if (key.StartsWith(prefix, StringComparison.Ordinal))
                max = Math.Max(max, index);
        }
        return max == 0 ? _kvsTableIndex : max;
    }

    public void Put(FakeKv kv, ulong index)
    {
        _kvs[kv.Key] = kv;
        _tombstones.Remove(kv.Key);
        _kvsTableIndex = Math.Max(_kvsTableIndex, index);
    }

    public void Delete(string key, ulong index)
    {
        if (_kvs.Remove(key))
        {
            _tombstones[key] = index;
            _kvsTableIndex = Math.Max(_kvsTableIndex, index);
        }
    }

    public bool LockDelayActive(string key) =>
        _lockDelayUntil.TryGetValue(key, out var until) && clock.GetUtcNow() < until;

    public void NotifyChanged()
    {
        var previous = _changed;
        _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        previous.TrySetResult();
    }

    /// <summary>Test knob: a lock-delay at least this long, to make the window after an invalidation observable.</summary>
    public TimeSpan MinimumLockDelay { get; set; }

    /// <summary>Invalidates a session (§1.8): Behavior=delete deletes its keys, release unlocks them; both start the lock-delay.</summary>
    public void InvalidateSession(string id)
    {
        if (!_sessions.Remove(id, out var session))
            return;
        var index = NextIndex();
        foreach (var kv in _kvs.Values.Where(kv => kv.Session == id).ToList())
        {
            var lockDelay = MinimumLockDelay > session.LockDelay ? MinimumLockDelay : session.LockDelay;
            if (lockDelay > TimeSpan.Zero)
                _lockDelayUntil[kv.Key] = clock.GetUtcNow() + lockDelay;
            if (session.Behavior == "delete")
                Delete(kv.Key, index);
            else
                Put(kv with { Session = null, ModifyIndex = index }, index);
        }
        NotifyChanged();
    }

    /// <summary>Reaps sessions whose TTL × 2 has passed without renewal.</summary>
    public void ReapExpiredSessions()
    {
        var now = clock.GetUtcNow();
        foreach (var session in _sessions.Values.ToList())
        {
            if (session.Ttl is { } ttl && ttl > TimeSpan.Zero && now - session.RenewedAt > ttl * SessionTtlMultiplier)
                InvalidateSession(session.Id);
        }
    }

    // ---- operator actions (take the lock themselves) -------------------------------------------------

    /// <summary>Tombstone reaping (§1.3): a prefix's index can then move backwards.</summary>
    public void ReapTombstones()
    {
        lock (_gate)
        {
            _tombstones.Clear();
            NotifyChanged();
        }
    }

    public sealed record Snapshot(SortedDictionary<string, FakeKv> Kvs, Dictionary<string, ulong> Tombstones, Dictionary<string, FakeSession> Sessions, ulong RaftIndex, ulong KvsTableIndex);

    public Snapshot TakeSnapshot()
    {
        lock (_gate)
            return TakeSnapshotUnlocked();
    }

    public Snapshot TakeSnapshotUnlocked() =>
        new(new(_kvs, StringComparer.Ordinal), new(_tombstones, StringComparer.Ordinal), new(_sessions, StringComparer.Ordinal), _raftIndex, _kvsTableIndex);

    /// <summary>Rolls back a failed transaction; nothing observable happened, so nobody is woken.</summary>
    public void RestoreUnlocked(Snapshot snapshot)
    {
        _kvs = new(snapshot.Kvs, StringComparer.Ordinal);
        _tombstones = new(snapshot.Tombstones, StringComparer.Ordinal);
        _sessions = new(snapshot.Sessions, StringComparer.Ordinal);
        _raftIndex = snapshot.RaftIndex;
        _kvsTableIndex = snapshot.KvsTableIndex;
    }

    /// <summary>A snapshot restore on the servers (§1.10 rule 1): state and indexes go back in time.</summary>
    public void Restore(Snapshot snapshot)
    {
        lock (_gate)
        {
            RestoreUnlocked(snapshot);
            NotifyChanged();
        }
    }
}
