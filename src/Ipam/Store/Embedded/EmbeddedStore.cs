using System.Runtime.CompilerServices;
using Microsoft.Win32.SafeHandles;

namespace Skein.Ipam.Store.Embedded;

/// <summary>
/// The single-host store (cluster-store §4.14): an in-memory ordered map with one revision counter,
/// made durable by an append-only log of committed transactions (cost proportional to the
/// transaction, not to the state; concurrent commits share one fsync) that is compacted into an atomically
/// replaced snapshot when it grows. One process at a time: an exclusive flock on <c>lock</c>.
/// Ephemeral keys live as long as this process's liveness; after a crash and reopen they are gone,
/// exactly like keys of an expired Consul session.
/// <para>
/// Group commit. A write runs in two phases. (1) Under <c>_writeGate</c>, one writer at a time: check its
/// preconditions against the latest state (durable state plus the writes appended before it but not yet
/// fsynced, <c>_pendingByKey</c>), take the next revision, append its record to the log (no fsync) and queue
/// it in <c>_unflushed</c>. (2) Outside that gate: wait for an fsync that started after the append. Writers
/// queue on <c>_flushGate</c>; whoever holds it fsyncs once for every record queued so far, then applies
/// those records, in revision order, to the state readers see, publishes them to watchers and completes their
/// writers. Meanwhile later writers keep appending, so the next fsync covers them all.
/// </para>
/// <para>
/// Why reads stay safe: readers (Get, List, Revision, watches, snapshots for compaction) see only
/// <c>_entries</c>/<c>_revision</c>, which change only after the fsync covering the change succeeded, so
/// nothing a reader observes can be lost by a crash. Writers must see pending writes too (else two
/// Absent puts of one key would both apply), and a writer's result can reveal them: a Conflict carries the
/// pending entry, a check-only or no-op commit succeeds because of it. Such a result is therefore also
/// returned only after the last record it may depend on is durable, and fails if that record's fsync fails.
/// </para>
/// </summary>
public sealed class EmbeddedStore : IClusterStore
{
    private const long MinCompactionLogBytes = 1024 * 1024;

    private readonly string _directory;
    private readonly FileStream _lockFile;
    private readonly FileStream _log;
    private readonly SemaphoreSlim _writeGate = new(1, 1);
    private readonly SemaphoreSlim _flushGate = new(1, 1);
    private readonly Lock _stateGate = new();
    private readonly Dictionary<string, KvEntry> _entries = new(StringComparer.Ordinal);
    private readonly SortedSet<string> _orderedKeys = new(StringComparer.Ordinal);
    private readonly List<EmbeddedWatcher> _watchers = [];
    private long _revision;
    // Guarded by _stateGate; changed only under _writeGate (append) or _flushGate (durable/failed).
    private readonly List<PendingRecord> _unflushed = [];
    private readonly Dictionary<string, PendingWrite> _pendingByKey = new(StringComparer.Ordinal);
    private long _appendedRevision;
    private long _logFsyncs;
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

    /// <summary>The fsync that makes appended log records durable; tests replace it to inject failures or delays.</summary>
    internal Action<SafeFileHandle> LogFsync { get; set; } = NativeFile.FsyncFile;

    /// <summary>How many group-commit fsyncs succeeded (recovery and compaction not counted).</summary>
    internal long LogFsyncCount => Interlocked.Read(ref _logFsyncs);

    /// <summary>A record appended to the log and waiting for the fsync that makes it durable.</summary>
    private sealed class PendingRecord(long revision, List<Mutation> mutations, long logOffset)
    {
        public long Revision { get; } = revision;
        public List<Mutation> Mutations { get; } = mutations;
        /// <summary>Where the record starts: the log is cut back to here if its fsync fails.</summary>
        public long LogOffset { get; } = logOffset;
        public TaskCompletionSource Durable { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>The newest not-yet-durable write of one key: Entry null for a delete.</summary>
    private readonly record struct PendingWrite(KvEntry? Entry, long Revision);

    /// <summary>The directory holding lock, snapshot and log.</summary>
    public string Directory => _directory;

    /// <summary>Revision of the last durable (and so visible) change, 0 for a new store; writes still waiting for their fsync are not counted.</summary>
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
        _appendedRevision = _revision;
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
        Attempt attempt;
        PendingRecord? appended = null;
        PendingRecord? dependsOn = null;
        await _writeGate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            ThrowIfDisposed();
            if (_brokenReason is not null)
                throw new StoreUnavailableException(_brokenReason);
            if (ops.Any(op => op is TxnOp.Put { Ephemeral: true }) && _liveness is null)
                throw new LivenessLostException("ephemeral write to the embedded store without a started liveness (call StartLivenessAsync first)");

            List<Mutation>? mutations = null;
            long revision;
            lock (_stateGate)
            {
                (attempt, mutations, revision) = Evaluate(ops, absentDeleteFails);
                if (mutations is null)
                    dependsOn = _unflushed.Count > 0 ? _unflushed[^1] : null;
            }
            if (mutations is not null)
                appended = Append(revision, mutations);
        }
        finally
        {
            _writeGate.Release();
        }
        // Not cancellable from here on: once appended, the fsync alone decides the outcome.
        if (appended is not null)
            await AwaitDurableAsync(appended).ConfigureAwait(false);
        else if (dependsOn is not null)
            await AwaitDependencyAsync(dependsOn).ConfigureAwait(false);
        return attempt;
    }

    /// <summary>
    /// Checks preconditions against the latest state (pending writes included) and builds the mutations;
    /// mutations null when nothing is to be recorded (a failed precondition, checks only, deletes of absent keys).
    /// Caller holds the write gate and the state lock.
    /// </summary>
    private (Attempt Attempt, List<Mutation>? Mutations, long Revision) Evaluate(IReadOnlyList<TxnOp> ops, bool absentDeleteFails)
    {
        for (var i = 0; i < ops.Count; i++)
        {
            var (key, pre) = StoreRequestValidator.KeyAndPrecondition(ops[i]);
            var current = Latest(key);
            var holds = Holds(pre, current) && !(absentDeleteFails && ops[i] is TxnOp.Delete && current is null);
            if (!holds)
                return (new Attempt(false, i, new long[ops.Count], current), null, 0);
        }

        var revision = _appendedRevision + 1;
        var versions = new long[ops.Count];
        var mutations = new List<Mutation>(ops.Count);
        for (var i = 0; i < ops.Count; i++)
        {
            switch (ops[i])
            {
                case TxnOp.Put put:
                    var createVersion = Latest(put.Key)?.CreateVersion ?? revision;
                    mutations.Add(new Mutation.Put(new KvEntry(put.Key, put.Value.ToArray(), revision, createVersion, put.Ephemeral)));
                    versions[i] = revision;
                    break;
                case TxnOp.Delete delete when Latest(delete.Key) is not null:
                    mutations.Add(new Mutation.Delete(delete.Key));
                    break;
            }
        }
        var attempt = new Attempt(true, -1, versions, null);
        return mutations.Count == 0 ? (attempt, null, 0) : (attempt, mutations, revision);
    }

    /// <summary>The key as writers see it: its newest pending write, else its durable entry. Caller holds the state lock.</summary>
    private KvEntry? Latest(string key) =>
        _pendingByKey.TryGetValue(key, out var pending) ? pending.Entry : _entries.GetValueOrDefault(key);

    private static bool Holds(Precondition pre, KvEntry? current) => pre switch
    {
        Precondition.NoneCondition => true,
        Precondition.AbsentCondition => current is null,
        Precondition.VersionCondition v => current is not null && current.Version == v.Version,
        _ => throw new StoreRejectedException($"unknown precondition {pre.GetType().Name}"),
    };

    /// <summary>Appends a record without fsync and queues it for the next group fsync. Caller holds the write gate.</summary>
    private PendingRecord Append(long revision, List<Mutation> mutations)
    {
        var record = EmbeddedFiles.EncodeRecord(new CommittedTxn(revision, mutations));
        var start = _log.Length;
        try
        {
            _log.Position = start;
            _log.Write(record);
        }
        catch (IOException e)
        {
            try
            {
                _log.SetLength(start); // never leave a half record in front of later ones
                _log.Position = start;
            }
            catch (IOException)
            {
                _brokenReason = $"embedded store '{_directory}' could not undo a failed log write ({e.Message}); reopen it to recover";
            }
            throw new StoreUnavailableException($"embedded store '{_directory}' could not write its log: {e.Message}", e);
        }
        var pending = new PendingRecord(revision, mutations, start);
        lock (_stateGate)
        {
            _unflushed.Add(pending);
            foreach (var mutation in mutations)
                _pendingByKey[mutation.Key] = new PendingWrite((mutation as Mutation.Put)?.Entry, revision);
            _appendedRevision = revision;
        }
        return pending;
    }

    /// <summary>Returns once the record is durable and visible; throws if its fsync failed (it is then neither).</summary>
    private async Task AwaitDurableAsync(PendingRecord record)
    {
        if (!record.Durable.Task.IsCompleted)
        {
            await _flushGate.WaitAsync().ConfigureAwait(false);
            try
            {
                // Whoever held the gate before may have fsynced this record already.
                if (!record.Durable.Task.IsCompleted)
                    await FlushUnflushedAsync(holdingWriteGate: false).ConfigureAwait(false);
            }
            finally
            {
                _flushGate.Release();
            }
        }
        await record.Durable.Task.ConfigureAwait(false);
    }

    /// <summary>For a result computed from pending state that it does not write itself (see the class comment).</summary>
    private async Task AwaitDependencyAsync(PendingRecord record)
    {
        try
        {
            await AwaitDurableAsync(record).ConfigureAwait(false);
        }
        catch (StoreUnavailableException e)
        {
            throw new StoreUnavailableException($"embedded store '{_directory}': the state this request was evaluated against could not be made durable; retry it ({e.Message})", e);
        }
    }

    /// <summary>
    /// One fsync for every record appended so far, then makes them visible in revision order and acknowledges
    /// them; on failure none of them is acknowledged or visible. Caller holds the flush gate.
    /// </summary>
    private async Task FlushUnflushedAsync(bool holdingWriteGate)
    {
        PendingRecord[] batch;
        lock (_stateGate)
            batch = [.. _unflushed];
        if (batch.Length == 0)
            return;
        try
        {
            // Records appended after this point are not counted as covered, even if the fsync happens to write them.
            LogFsync(_log.SafeFileHandle);
        }
        catch (Exception e)
        {
            await FailUnflushedAsync(e, holdingWriteGate).ConfigureAwait(false);
            return;
        }
        Interlocked.Increment(ref _logFsyncs);

        lock (_stateGate)
        {
            _unflushed.RemoveRange(0, batch.Length);
            foreach (var record in batch)
            {
                foreach (var mutation in record.Mutations)
                    ApplyMutation(mutation);
                _revision = record.Revision;
                Publish(record.Mutations, record.Revision);
            }
            foreach (var record in batch)
            {
                foreach (var mutation in record.Mutations)
                {
                    // A later pending write of the same key stays: writers must still see it.
                    if (_pendingByKey.TryGetValue(mutation.Key, out var pending) && pending.Revision <= _revision)
                        _pendingByKey.Remove(mutation.Key);
                }
            }
        }
        foreach (var record in batch)
            record.Durable.TrySetResult();

        if (RandomAccess.GetLength(_log.SafeFileHandle) >= Math.Max(MinCompactionLogBytes, 2 * _snapshotBytes))
            await CompactWhenNothingIsPendingAsync(holdingWriteGate).ConfigureAwait(false);
    }

    /// <summary>
    /// After a failed fsync: cuts every unflushed record (the failed batch and any appended since, which may
    /// rest on it) from the log and fails their writers. The durable state never included them.
    /// </summary>
    private async Task FailUnflushedAsync(Exception fsyncError, bool holdingWriteGate)
    {
        if (!holdingWriteGate)
            await _writeGate.WaitAsync().ConfigureAwait(false);
        try
        {
            PendingRecord[] failed;
            lock (_stateGate)
            {
                failed = [.. _unflushed];
                _unflushed.Clear();
                _pendingByKey.Clear();
                _appendedRevision = _revision;
            }
            try
            {
                _log.SetLength(failed[0].LogOffset);
                _log.Flush(flushToDisk: true);
                _log.Position = failed[0].LogOffset;
            }
            catch (IOException e)
            {
                _brokenReason = $"embedded store '{_directory}' could not cut unacknowledged records from its log after a failed fsync ({e.Message}); reopen it to recover";
            }
            foreach (var record in failed)
            {
                record.Durable.TrySetException(new StoreUnavailableException(
                    $"embedded store '{_directory}' could not make its log durable (fsync failed: {fsyncError.Message}); the write at revision {record.Revision} was not applied", fsyncError));
            }
        }
        finally
        {
            if (!holdingWriteGate)
                _writeGate.Release();
        }
    }

    private async Task CompactWhenNothingIsPendingAsync(bool holdingWriteGate)
    {
        if (!holdingWriteGate)
            await _writeGate.WaitAsync().ConfigureAwait(false);
        try
        {
            lock (_stateGate)
            {
                // Compaction truncates the log: records still waiting for their fsync must not be in it.
                if (_unflushed.Count > 0 || _disposed)
                    return;
            }
            Compact();
        }
        catch (IOException)
        {
            // The log still holds every committed change; compaction is retried after the next flush.
        }
        finally
        {
            if (!holdingWriteGate)
                _writeGate.Release();
        }
    }

    /// <summary>
    /// Writes the persistent state as a new snapshot, then empties the log. Caller holds the write gate with
    /// no unflushed record (or is opening).
    /// </summary>
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
        PendingRecord? appended = null;
        await _writeGate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (!ReferenceEquals(_liveness, liveness))
                return;
            _liveness = null;
            if (_disposed)
                return;
            List<Mutation> ephemeral;
            long revision;
            lock (_stateGate)
            {
                ephemeral = _entries.Keys.Concat(_pendingByKey.Keys).Distinct()
                    .Where(key => Latest(key)?.Ephemeral == true)
                    .Select(key => (Mutation)new Mutation.Delete(key)).ToList();
                revision = _appendedRevision + 1;
            }
            if (ephemeral.Count == 0)
                return;
            appended = Append(revision, ephemeral);
        }
        finally
        {
            _writeGate.Release();
        }
        await AwaitDurableAsync(appended).ConfigureAwait(false);
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    /// <summary>
    /// Closes the files and releases the directory lock. Ephemeral keys are not deleted here: like
    /// after a crash, the next open drops them.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        // Gate order everywhere: flush gate, then write gate.
        await _flushGate.WaitAsync().ConfigureAwait(false);
        try
        {
            await _writeGate.WaitAsync().ConfigureAwait(false);
            try
            {
                lock (_stateGate)
                {
                    if (_disposed)
                        return;
                }
                // Every appended write gets its fsync (or its failure) before the log closes.
                await FlushUnflushedAsync(holdingWriteGate: true).ConfigureAwait(false);
                lock (_stateGate)
                {
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
        finally
        {
            _flushGate.Release();
        }
    }
}
