namespace Skein.Ipam.Store.Consul;

/// <summary>
/// A TTL session with Behavior=delete (cluster-store §1.8, §1.9, §4.6), renewed every RenewEvery.
/// When Consul says the session is gone (renew 404, or a write reports an invalid session) a new
/// session is created, Generation goes up and Recreated fires so the owner re-publishes its
/// ephemeral keys. Transport failures only delay renewal: the session may well still be alive.
/// </summary>
internal sealed class ConsulLiveness : ILiveness
{
    private readonly ConsulStore _store;
    private readonly LivenessOptions _options;
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _wake = new(0, 1);
    private string _id;
    private long _generation;
    private Task _loop = Task.CompletedTask;
    private int _disposed;
    private List<Func<ILiveness, CancellationToken, Task>> _republishPending = [];

    private ConsulLiveness(ConsulStore store, LivenessOptions options, string id)
    {
        _store = store;
        _options = options;
        _id = id;
    }

    public static async Task<ConsulLiveness> StartAsync(ConsulStore store, LivenessOptions options, CancellationToken ct)
    {
        var id = await store.CreateSessionAsync(options, ct).ConfigureAwait(false);
        var liveness = new ConsulLiveness(store, options, id);
        liveness._loop = Task.Run(liveness.RenewLoopAsync);
        return liveness;
    }

    public string Id => Volatile.Read(ref _id);

    public long Generation => Interlocked.Read(ref _generation);

    public event Func<ILiveness, CancellationToken, Task>? Recreated;

    /// <summary>The most recent renewal or recreation failure, for status output; null when healthy.</summary>
    public string? LastError { get; private set; }

    /// <summary>Asks the loop to verify the session now instead of at the next tick.</summary>
    public void CheckNow()
    {
        try
        {
            _wake.Release();
        }
        catch (SemaphoreFullException)
        {
            // a check is already pending
        }
    }

    private async Task RenewLoopAsync()
    {
        var token = _stop.Token;
        var failures = 0;
        while (!token.IsCancellationRequested)
        {
            try
            {
                using var tick = CancellationTokenSource.CreateLinkedTokenSource(token);
                var delay = failures == 0 ? _options.RenewEvery : StoreHttp.Backoff(TimeSpan.FromMilliseconds(200), failures, _options.RenewEvery);
                var timer = Task.Delay(delay, _store.Time, tick.Token);
                var woken = _wake.WaitAsync(tick.Token);
                await Task.WhenAny(timer, woken).ConfigureAwait(false);
                await tick.CancelAsync().ConfigureAwait(false);
                token.ThrowIfCancellationRequested();

                if (!await _store.RenewSessionAsync(Id, token).ConfigureAwait(false))
                    await RecreateAsync(token).ConfigureAwait(false);
                else if (_republishPending.Count > 0)
                    await RunHandlersAsync(_republishPending, token).ConfigureAwait(false);
                failures = 0;
                if (_republishPending.Count == 0)
                    LastError = null;
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is StoreUnavailableException or StoreAuthException or StoreRejectedException or LivenessLostException or ObjectDisposedException)
            {
                failures++;
                LastError = e.Message;
            }
        }
    }

    private async Task RecreateAsync(CancellationToken ct)
    {
        var id = await _store.CreateSessionAsync(_options, ct).ConfigureAwait(false);
        Volatile.Write(ref _id, id);
        Interlocked.Increment(ref _generation);
        var handlers = Recreated?.GetInvocationList().Cast<Func<ILiveness, CancellationToken, Task>>().ToList() ?? [];
        await RunHandlersAsync(handlers, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Runs re-publication handlers; those that fail (the store blinked again) are kept and run again after
    /// the next successful renewal, so one failure cannot leave keys unpublished for good.
    /// </summary>
    private async Task RunHandlersAsync(List<Func<ILiveness, CancellationToken, Task>> handlers, CancellationToken ct)
    {
        var failed = new List<Func<ILiveness, CancellationToken, Task>>();
        foreach (var handler in handlers)
        {
            try
            {
                await handler(this, ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                failed.Add(handler);
                LastError = $"re-publication after session recreation failed (retried after the next renewal): {e.Message}";
            }
        }
        _republishPending = failed;
    }

    /// <summary>Stops renewing and destroys the session, which deletes its ephemeral keys (Behavior=delete).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        await _stop.CancelAsync().ConfigureAwait(false);
        try
        {
            await _loop.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        try
        {
            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await _store.DestroySessionAsync(Id, deadline.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is StoreUnavailableException or StoreAuthException or StoreRejectedException or OperationCanceledException)
        {
            // The TTL reaps it anyway; nothing else can be done here.
        }
        finally
        {
            _store.ForgetLiveness(this);
            _stop.Dispose();
        }
    }
}
