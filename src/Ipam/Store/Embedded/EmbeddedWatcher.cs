namespace Skein.Ipam.Store.Embedded;

/// <summary>
/// One WatchPrefixAsync consumer: a bounded queue filled by the store under its state lock.
/// A consumer that falls more than <see cref="Capacity"/> updates behind loses its backlog and gets
/// one fresh Snapshot instead (cluster-store §4.14), so a stalled reader cannot grow memory without bound.
/// </summary>
internal sealed class EmbeddedWatcher(string prefix)
{
    public const int Capacity = 4096;

    private readonly Queue<WatchUpdate> _pending = new();
    private readonly SemaphoreSlim _available = new(0);
    private bool _closed;

    public string Prefix { get; } = prefix;

    /// <summary>Called with the store's state lock held; <paramref name="resync"/> builds the current snapshot on overflow.</summary>
    public void Post(WatchUpdate update, Func<WatchUpdate.Snapshot> resync)
    {
        lock (_pending)
        {
            if (_closed)
                return;
            if (_pending.Count >= Capacity)
            {
                _pending.Clear();
                _pending.Enqueue(resync());
                return; // the semaphore already counts at least one pending item
            }
            _pending.Enqueue(update);
        }
        _available.Release();
    }

    public void Close()
    {
        lock (_pending)
        {
            if (_closed)
                return;
            _closed = true;
        }
        _available.Release();
    }

    /// <summary>The next update, or null once the watcher is closed and drained.</summary>
    public async Task<WatchUpdate?> TakeAsync(CancellationToken ct)
    {
        while (true)
        {
            await _available.WaitAsync(ct).ConfigureAwait(false);
            lock (_pending)
            {
                if (_pending.TryDequeue(out var update))
                    return update;
                if (_closed)
                {
                    _available.Release(); // keep later TakeAsync calls from blocking
                    return null;
                }
            }
            // A permit whose item was swallowed by an overflow reset: wait for the next one.
        }
    }
}
