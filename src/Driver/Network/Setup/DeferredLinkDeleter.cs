using Microsoft.Extensions.Logging;
using Skein.Driver.Network.Kernel;

namespace Skein.Driver.Network.Setup;

/// <summary>
/// Deletes links in the background, after the request that gave them up has been answered. Deleting a veth pair
/// costs the kernel ~15-25 ms (it waits for RCU grace periods while unregistering both devices), which Docker
/// would otherwise wait for on every container removal.
/// <para>
/// Only links that no record owns any more are handed here, so crash safety is the reconciler's: a process that
/// dies with deletions pending leaves skein-shaped links that no record owns, and the reconciliation on start
/// deletes exactly those. Nothing is persisted and nothing can be lost that was recorded.
/// </para>
/// <para>
/// A name may be wanted again before its deletion ran (Docker re-creates an endpoint with the same id after a
/// rollback; the names are a hash of the id): <see cref="DeleteNowIfPending"/> takes the pending deletion over
/// and runs it synchronously, or waits for the one in flight, so that a new link of that name is never deleted
/// by an old request and never adopted half-deleted.
/// </para>
/// </summary>
public sealed class DeferredLinkDeleter(IHostKernel kernel, ILogger log)
{
    private sealed class Batch(IReadOnlyList<string> names, string subject)
    {
        public IReadOnlyList<string> Names { get; } = names;
        public string Subject { get; } = subject;
        /// <summary>Set once every name of the batch was deleted (or failed to be).</summary>
        public ManualResetEventSlim Done { get; } = new(false);
    }

    private readonly Lock _gate = new();
    // Guarded by _gate. Both are tiny (a handful of batches at most), so they are scanned, not indexed.
    private readonly LinkedList<Batch> _queue = [];
    private readonly List<Batch> _inFlight = [];
    private bool _running;
    private TaskCompletionSource _idle = NewIdle(completed: true);

    /// <summary>How many batches wait or run; 0 when every handed-over link was deleted.</summary>
    public int Pending
    {
        get
        {
            lock (_gate)
                return _queue.Count + _inFlight.Count;
        }
    }

    /// <summary>
    /// Queues the deletion of <paramref name="names"/> (in order; a name that is gone already is success) and
    /// returns at once. <paramref name="subject"/> names the owner in log lines.
    /// </summary>
    public void Schedule(IReadOnlyList<string> names, string subject)
    {
        ArgumentNullException.ThrowIfNull(names);
        if (names.Count == 0)
            return;
        var batch = new Batch([.. names], subject);
        bool start;
        lock (_gate)
        {
            _queue.AddLast(batch);
            if (_idle.Task.IsCompleted)
                _idle = NewIdle(completed: false);
            start = !_running;
            _running = true;
        }
        if (start)
            _ = Task.Run(Drain);
    }

    /// <summary>
    /// Makes sure no deletion of <paramref name="name"/> is pending or running when this returns: a queued one is
    /// run here, synchronously; one in flight is waited for. Cheap when nothing is pending.
    /// </summary>
    public void DeleteNowIfPending(string name)
    {
        while (true)
        {
            Batch? running = null;
            Batch? mine = null;
            lock (_gate)
            {
                running = _inFlight.FirstOrDefault(b => b.Names.Contains(name, StringComparer.Ordinal));
                if (running is null)
                {
                    for (var node = _queue.First; node is not null; node = node.Next)
                    {
                        if (node.Value.Names.Contains(name, StringComparer.Ordinal))
                        {
                            mine = node.Value;
                            _queue.Remove(node);
                            _inFlight.Add(mine);
                            break;
                        }
                    }
                    if (mine is null)
                        return;
                }
            }
            if (running is not null)
                running.Done.Wait();
            else
                Run(mine!);
        }
    }

    /// <summary>Completes when nothing is pending (at once when nothing is); for shutdown and tests.</summary>
    public Task WhenIdleAsync()
    {
        lock (_gate)
            return _idle.Task;
    }

    private void Drain()
    {
        while (true)
        {
            Batch batch;
            lock (_gate)
            {
                if (_queue.First is not { } first)
                {
                    _running = false;
                    SignalIdleIfDrained();
                    return;
                }
                batch = first.Value;
                _queue.RemoveFirst();
                _inFlight.Add(batch);
            }
            Run(batch);
        }
    }

    /// <summary>Deletes a batch the caller moved to in-flight, then retires it and wakes whoever waits for it.</summary>
    private void Run(Batch batch)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            foreach (var name in batch.Names)
            {
                try
                {
                    kernel.DeleteLink(name);
                }
                catch (Exception ex)
                {
                    // Left for the reconciler, which deletes skein-shaped links that no record owns.
                    log.LogWarning("deleting link {Link} of {Subject} failed: {Error}; the reconciler will retry", name, batch.Subject, KernelFailure.Describe(ex) ?? ex.Message);
                }
            }
        }
        finally
        {
            log.LogDebug("deleted links of {Subject} in the background in {Ms:0.0} ms", batch.Subject, System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            lock (_gate)
            {
                _inFlight.Remove(batch);
                SignalIdleIfDrained();
            }
            batch.Done.Set();
        }
    }

    /// <summary>Caller holds the gate.</summary>
    private void SignalIdleIfDrained()
    {
        if (_queue.Count == 0 && _inFlight.Count == 0 && !_running)
            _idle.TrySetResult();
    }

    private static TaskCompletionSource NewIdle(bool completed)
    {
        var idle = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (completed)
            idle.SetResult();
        return idle;
    }
}
