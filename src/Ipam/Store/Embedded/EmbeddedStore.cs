using System.Runtime.CompilerServices;

namespace Skein.Ipam.Store.Embedded;

/// <summary>
/// The single-host store (cluster-store §4.14): an in-memory ordered map with one revision counter,
/// made durable by an append-only log of committed transactions (one fsync per commit, cost
/// proportional to the transaction, not to the state) that is compacted into an atomically
/// replaced snapshot when it grows. One process at a time: an exclusive flock on <c>lock</c>.
/// Ephemeral keys live as long as this process's liveness; after a crash and reopen they are gone,
/// exactly like keys of an expired Consul session.
/// </summary>
public sealed class EmbeddedStore : IClusterStore
{
    private const long MinCompactionLogBytes = 1024 * 1024;

    private readonly string _directory;
    private readonly FileStream _lockFile;
    private readonly FileStream _log;
    private readonly SemaphoreSlim _writeGate = new(1, 1);
    private readonly Lock _stateGate = new();
    private readonly Dictionary<string, KvEntry> _entries = new(StringComparer.Ordinal);
    private readonly SortedSet<string> _orderedKeys = new(StringComparer.Ordinal);
    private readonly List<EmbeddedWatcher> _watchers = [];
    private long _revision;
    private long _snapshotBytes;
    private EmbeddedLiveness? _liveness;
    private bool _disposed;
    private string? _brokenReason;

    private EmbeddedStore(string directory, FileStream lockFile, FileStream log)
    {
        _directory = directory;
        _lockFile = lockFile;
        _log = log;
    }

    public StoreLimits Limits { get; } = StoreLimits.Default;

    /// <summary>The directory holding lock, snapshot and log.</summary>
    public string Directory => _directory;

    /// <summary>Revision of the last committed change (0 for a new store).</summary>
    public long Revision
    {
        get { lock (_stateGate) return _revision; }
    }

    /// <summary>
    /// Opens (creating if needed) the store in <paramref name="directory"/>, replays its files and cuts a
    /// torn log tail. Fails with a clear message when another process holds the directory.
    /// </summary>
    public static Task<EmbeddedStore> OpenAsync(string directory, TimeProvider? time = null, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ct.ThrowIfCancellationRequested();
        time ??= TimeProvider.System;
        directory = Path.GetFullPath(directory);
        try
        {
            return Task.FromResult(Open(directory, time));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new StoreUnavailableException($"embedded store '{directory}' cannot be opened: {e.Message}", e);
        }
    }

    private static EmbeddedStore Open(string directory, TimeProvider time)
    {
        System.IO.Directory.CreateDirectory(directory);
        var lockFile = AcquireDirectoryLock(directory, time);
        FileStream? log = null;
        try
        {
            File.Delete(Path.Combine(directory, EmbeddedFiles.SnapshotTempName)); // a compaction cut short by a crash
            var logPath = Path.Combine(directory, EmbeddedFiles.LogName);
            var logExisted = File.Exists(logPath);
            log = new FileStream(logPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read, 1, FileOptions.None);
            if (!logExisted)
                NativeFile.FsyncDirectory(directory);
            var store = new EmbeddedStore(directory, lockFile, log);
            store.Recover();
            return store;
        }
        catch
        {
            log?.Dispose();
            lockFile.Dispose();
            throw;
        }
    }

    private static FileStream AcquireDirectoryLock(string directory, TimeProvider time)
    {
        var lockPath = Path.Combine(directory, EmbeddedFiles.LockName);
        var ownerPath = Path.Combine(directory, EmbeddedFiles.OwnerName);
        FileStream lockFile;
        try
        {
            lockFile = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.ReadWrite, 1, FileOptions.None);
        }
        catch (IOException e)
        {
            // .NET itself takes a shared flock when opening; it fails while another process holds ours.
            throw InUse(directory, ownerPath, e);
        }
        if (!NativeFile.TryLockExclusive(lockFile.SafeFileHandle))
        {
            lockFile.Dispose();
            throw InUse(directory, ownerPath, null);
        }
        // Who holds the lock, for the message another process shows; informational only.
        File.WriteAllText(ownerPath, $"pid={Environment.ProcessId} since={time.GetUtcNow():O}\n");
        return lockFile;
    }

    private static StoreUnavailableException InUse(string directory, string ownerPath, Exception? inner)
    {
        var owner = "";
        try
        {
            owner = File.ReadAllText(ownerPath).Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
        var who = owner.Length == 0 ? "" : $" ({owner})";
        return new StoreUnavailableException($"embedded store '{directory}' is in use by another skein process{who}; only one process may open it", inner);
    }

    /// <summary>Loads snapshot + log, drops the previous process's ephemeral keys, then compacts.</summary>
    private void Recover()
    {
        var (snapshotRevision, snapshotEntries) = EmbeddedFiles.ReadSnapshot(_directory);
        _revision = snapshotRevision;
        foreach (var entry in snapshotEntries)
            Store(entry);

        var records = EmbeddedFiles.ReadLog(_log, out var intactLength);
        foreach (var record in records)
        {
            if (record.Revision <= _revision)
                continue; // already folded into the snapshot by a compaction that crashed before truncating the log
            foreach (var mutation in record.Mutations)
                ApplyMutation(mutation);
            _revision = record.Revision;
        }
        if (intactLength < _log.Length)
        {
            _log.SetLength(intactLength); // a torn last record: the transaction was never acknowledged
            _log.Flush(flushToDisk: true);
        }

        foreach (var key in _entries.Values.Where(e => e.Ephemeral).Select(e => e.Key).ToList())
            Remove(key);

        if (_log.Length > 0 || snapshotRevision != _revision)
            Compact();
        _log.Position = _log.Length;
    }

    public Task<KvEntry?> GetAsync(string key, CancellationToken ct)
    {
        StoreRequestValidator.ValidateKey(key, Limits);
        ct.ThrowIfCancellationRequested();
        lock (_stateGate)
        {
            ThrowIfDisposed();
            return Task.FromResult(_entries.GetValueOrDefault(key));
        }
    }

    public Task<(IReadOnlyList<KvEntry> Entries, long Revision)> ListAsync(string prefix, bool keysOnly, CancellationToken ct)
    {
        StoreRequestValidator.ValidatePrefix(prefix, Limits);
        ct.ThrowIfCancellationRequested();
        lock (_stateGate)
        {
            ThrowIfDisposed();
            var entries = new List<KvEntry>();
            foreach (var key in KeysUnder(prefix))
            {
                var entry = _entries[key];
                entries.Add(keysOnly ? entry with { Value = ReadOnlyMemory<byte>.Empty } : entry);
            }
            return Task.FromResult<(IReadOnlyList<KvEntry>, long)>((entries, _revision));
        }
    }

    public async Task<WriteResult> PutAsync(string key, ReadOnlyMemory<byte> value, Precondition pre, bool ephemeral, CancellationToken ct)
    {
        var attempt = await CommitCoreAsync([new TxnOp.Put(key, value, pre, ephemeral)], ct).ConfigureAwait(false);
        return attempt.Applied
            ? new WriteResult(WriteOutcome.Applied, attempt.NewVersions[0], null)
            : new WriteResult(WriteOutcome.Conflict, 0, attempt.FailedCurrent);
    }

    public async Task<WriteResult> DeleteAsync(string key, Precondition pre, CancellationToken ct)
    {
        // Deleting what is not there is "already absent" whatever the precondition asked (cluster-store §4.3).
        var attempt = await CommitCoreAsync([new TxnOp.Delete(key, pre)], ct, absentDeleteFails: true).ConfigureAwait(false);
        if (attempt.Applied)
            return new WriteResult(WriteOutcome.Applied, 0, null);
        return attempt.FailedCurrent is null
            ? new WriteResult(WriteOutcome.AlreadyAbsent, 0, null)
            : new WriteResult(WriteOutcome.Conflict, 0, attempt.FailedCurrent);
    }

    public async Task<TxnResult> CommitAsync(IReadOnlyList<TxnOp> ops, CancellationToken ct)
    {
        var attempt = await CommitCoreAsync(ops, ct).ConfigureAwait(false);
        return new TxnResult(attempt.Applied, attempt.FailedOpIndex, attempt.NewVersions);
    }

    private sealed record Attempt(bool Applied, int FailedOpIndex, IReadOnlyList<long> NewVersions, KvEntry? FailedCurrent);

    private async Task<Attempt> CommitCoreAsync(IReadOnlyList<TxnOp> ops, CancellationToken ct, bool absentDeleteFails = false)
    {
        StoreRequestValidator.ValidateTxn(ops, Limits);
        await _writeGate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            ThrowIfDisposed();
            if (_brokenReason is not null)
                throw new StoreUnavailableException(_brokenReason);
            if (ops.Any(op => op is TxnOp.Put { Ephemeral: true }) && _liveness is null)
                throw new LivenessLostException("ephemeral write to the embedded store without a started liveness (call StartLivenessAsync first)");

            // Only this writer mutates the maps, so reading them here without the state lock is safe.
            for (var i = 0; i < ops.Count; i++)
            {
                var (key, pre) = StoreRequestValidator.KeyAndPrecondition(ops[i]);
                var current = _entries.GetValueOrDefault(key);
                var holds = Holds(pre, current) && !(absentDeleteFails && ops[i] is TxnOp.Delete && current is null);
                if (!holds)
                    return new Attempt(false, i, new long[ops.Count], current);
            }

            var revision = _revision + 1;
            var versions = new long[ops.Count];
            var mutations = new List<Mutation>(ops.Count);
            for (var i = 0; i < ops.Count; i++)
            {
                switch (ops[i])
                {
                    case TxnOp.Put put:
                        var createVersion = _entries.TryGetValue(put.Key, out var existing) ? existing.CreateVersion : revision;
                        mutations.Add(new Mutation.Put(new KvEntry(put.Key, put.Value.ToArray(), revision, createVersion, put.Ephemeral)));
                        versions[i] = revision;
                        break;
                    case TxnOp.Delete delete when _entries.ContainsKey(delete.Key):
                        mutations.Add(new Mutation.Delete(delete.Key));
                        break;
                }
            }
            if (mutations.Count == 0)
                return new Attempt(true, -1, versions, null); // checks only, or deletes of absent keys: nothing to record

            AppendToLog(new CommittedTxn(revision, mutations));
            lock (_stateGate)
            {
                foreach (var mutation in mutations)
                    ApplyMutation(mutation);
                _revision = revision;
                Publish(mutations, revision);
            }
            CompactIfLogIsLarge();
            return new Attempt(true, -1, versions, null);
        }
        finally
        {
            _writeGate.Release();
        }
    }

    private static bool Holds(Precondition pre, KvEntry? current) => pre switch
    {
        Precondition.NoneCondition => true,
        Precondition.AbsentCondition => current is null,
        Precondition.VersionCondition v => current is not null && current.Version == v.Version,
        _ => throw new StoreRejectedException($"unknown precondition {pre.GetType().Name}"),
    };

    private void AppendToLog(CommittedTxn txn)
    {
        var record = EmbeddedFiles.EncodeRecord(txn);
        var start = _log.Length;
        try
        {
            _log.Position = start;
            _log.Write(record);
            _log.Flush(flushToDisk: true);
        }
        catch (IOException e)
        {
            try
            {
                _log.SetLength(start); // never leave a half record in front of later ones
                _log.Flush(flushToDisk: true);
            }
            catch (IOException)
            {
                _brokenReason = $"embedded store '{_directory}' could not undo a failed log write ({e.Message}); reopen it to recover";
            }
            throw new StoreUnavailableException($"embedded store '{_directory}' could not write its log: {e.Message}", e);
        }
    }

    private void CompactIfLogIsLarge()
    {
        if (_log.Length < Math.Max(MinCompactionLogBytes, 2 * _snapshotBytes))
            return;
        try
        {
            Compact();
        }
        catch (IOException)
        {
            // The log still holds every committed change; compaction is retried after the next commit.
        }
    }

    /// <summary>Writes the persistent state as a new snapshot, then empties the log. Caller holds the write gate (or is opening).</summary>
    private void Compact()
    {
        List<KvEntry> persistent;
        long revision;
        lock (_stateGate)
        {
            persistent = _entries.Values.Where(e => !e.Ephemeral).ToList();
            revision = _revision;
        }
        EmbeddedFiles.WriteSnapshot(_directory, revision, persistent);
        _snapshotBytes = new FileInfo(Path.Combine(_directory, EmbeddedFiles.SnapshotName)).Length;
        // A crash before this truncation is harmless: replay skips records at or below the snapshot's revision.
        _log.SetLength(0);
        _log.Flush(flushToDisk: true);
        _log.Position = 0;
    }

    private void ApplyMutation(Mutation mutation)
    {
        switch (mutation)
        {
            case Mutation.Put put:
                Store(put.Entry);
                break;
            case Mutation.Delete delete:
                Remove(delete.Key);
                break;
        }
    }

    private void Store(KvEntry entry)
    {
        _entries[entry.Key] = entry;
        _orderedKeys.Add(entry.Key);
    }

    private void Remove(string key)
    {
        _entries.Remove(key);
        _orderedKeys.Remove(key);
    }

    private IEnumerable<string> KeysUnder(string prefix)
    {
        if (_orderedKeys.Count == 0)
            return [];
        // Keys use only [a-z0-9._-/], so every key under the prefix sorts below prefix + U+FFFF.
        return _orderedKeys.GetViewBetween(prefix, prefix + '\uffff');
    }

    private WatchUpdate.Snapshot SnapshotOf(string prefix)
    {
        var entries = new Dictionary<string, KvEntry>(StringComparer.Ordinal);
        foreach (var key in KeysUnder(prefix))
            entries[key] = _entries[key];
        return new WatchUpdate.Snapshot(entries, _revision);
    }

    private void Publish(List<Mutation> mutations, long revision)
    {
        foreach (var watcher in _watchers)
        {
            foreach (var mutation in mutations)
            {
                if (!StoreRequestValidator.IsUnder(mutation.Key, watcher.Prefix))
                    continue;
                WatchUpdate update = mutation switch
                {
                    Mutation.Put put => new WatchUpdate.Upsert(put.Entry),
                    _ => new WatchUpdate.Removed(mutation.Key, revision),
                };
                watcher.Post(update, () => SnapshotOf(watcher.Prefix));
            }
        }
    }

    public async IAsyncEnumerable<WatchUpdate> WatchPrefixAsync(string prefix, [EnumeratorCancellation] CancellationToken ct)
    {
        StoreRequestValidator.ValidatePrefix(prefix, Limits);
        var watcher = new EmbeddedWatcher(prefix);
        lock (_stateGate)
        {
            ThrowIfDisposed();
            watcher.Post(SnapshotOf(prefix), () => SnapshotOf(prefix));
            _watchers.Add(watcher);
        }
        try
        {
            while (true)
            {
                var update = await watcher.TakeAsync(ct).ConfigureAwait(false);
                if (update is null)
                    yield break; // the store was disposed
                yield return update;
            }
        }
        finally
        {
            lock (_stateGate)
                _watchers.Remove(watcher);
        }
    }

    /// <summary>
    /// Binds ephemeral writes to this process. PreviousId needs no action here: a previous process's
    /// ephemeral keys were already dropped when this one opened the store.
    /// </summary>
    public Task<ILiveness> StartLivenessAsync(LivenessOptions options, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(options);
        ct.ThrowIfCancellationRequested();
        lock (_stateGate)
        {
            ThrowIfDisposed();
            if (_liveness is not null)
                throw new InvalidOperationException($"the embedded store already has a liveness ({_liveness.Id}); start one per process and dispose it before starting another");
            _liveness = new EmbeddedLiveness(this, $"embedded-{Environment.ProcessId}-{Guid.NewGuid():N}");
            return Task.FromResult<ILiveness>(_liveness);
        }
    }

    /// <summary>Ends a liveness: its ephemeral keys go away in one commit, as when a Consul session is destroyed.</summary>
    internal async Task EndLivenessAsync(EmbeddedLiveness liveness)
    {
        await _writeGate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (!ReferenceEquals(_liveness, liveness))
                return;
            _liveness = null;
            if (_disposed)
                return;
            var ephemeral = _entries.Values.Where(e => e.Ephemeral).Select(e => (Mutation)new Mutation.Delete(e.Key)).ToList();
            if (ephemeral.Count == 0)
                return;
            var revision = _revision + 1;
            AppendToLog(new CommittedTxn(revision, ephemeral));
            lock (_stateGate)
            {
                foreach (var mutation in ephemeral)
                    ApplyMutation(mutation);
                _revision = revision;
                Publish(ephemeral, revision);
            }
        }
        finally
        {
            _writeGate.Release();
        }
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    /// <summary>
    /// Closes the files and releases the directory lock. Ephemeral keys are not deleted here: like
    /// after a crash, the next open drops them.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        await _writeGate.WaitAsync().ConfigureAwait(false);
        try
        {
            lock (_stateGate)
            {
                if (_disposed)
                    return;
                _disposed = true;
                foreach (var watcher in _watchers)
                    watcher.Close();
            }
            await _log.DisposeAsync().ConfigureAwait(false);
            await _lockFile.DisposeAsync().ConfigureAwait(false); // closing the descriptor drops the flock
        }
        finally
        {
            _writeGate.Release();
        }
    }
}
