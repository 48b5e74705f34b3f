namespace Skein.Ipam.Store;

/// <summary>
/// A store-side liveness handle (Consul session, etcd lease) renewed every RenewEvery. When the store says
/// it is gone, the backend creates a new one, Generation goes up and Recreated fires so the owner re-publishes
/// its ephemeral keys. Transport failures only delay renewal: the handle may well still be alive.
/// </summary>
internal abstract class RenewingLiveness : ILiveness
{
    private readonly LivenessOptions _options;
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _wake = new(0, 1);
    private long _generation;
    private Task _loop = Task.CompletedTask;
    private int _disposed;
    private List<Func<ILiveness, CancellationToken, Task>> _republishPending = [];

    protected RenewingLiveness(LivenessOptions options) => _options = options;

    public abstract string Id { get; }

    public long Generation => Interlocked.Read(ref _generation);

    public event Func<ILiveness, CancellationToken, Task>? Recreated;

    private readonly LastMoment _lastConfirmed = new();

    public DateTimeOffset? LastConfirmed => _lastConfirmed.Value;

    /// <summary>Called when the store accepted the handle (created, renewed or recreated).</summary>
    protected void Confirmed() => _lastConfirmed.Set(Time.GetUtcNow());

    /// <summary>The most recent renewal or recreation failure, for status output; null when healthy.</summary>
    public string? LastError { get; private set; }

    protected LivenessOptions Options => _options;

    /// <summary>"session" or "lease", for messages.</summary>
    protected abstract string Noun { get; }

    protected abstract TimeProvider Time { get; }

    /// <summary>Renews the handle; false when the store says it is gone.</summary>
    protected abstract Task<bool> RenewAsync(CancellationToken ct);

    /// <summary>Creates a new handle and makes it the current one.</summary>
    protected abstract Task ReplaceAsync(CancellationToken ct);

    /// <summary>Destroys the handle, deleting its ephemeral keys.</summary>
    protected abstract Task DestroyAsync(CancellationToken ct);

    /// <summary>Tells the store this liveness is over.</summary>
    protected abstract void Forget();

    /// <summary>Starts the renewal loop; called once the first handle exists.</summary>
    protected void StartLoop()
    {
        Confirmed(); // just created by the store
        _loop = Task.Run(RenewLoopAsync);
    }

    /// <summary>Asks the loop to verify the handle now instead of at the next tick.</summary>
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
                var timer = Task.Delay(delay, Time, tick.Token);
                var woken = _wake.WaitAsync(tick.Token);
                await Task.WhenAny(timer, woken).ConfigureAwait(false);
                await tick.CancelAsync().ConfigureAwait(false);
                token.ThrowIfCancellationRequested();

                if (!await RenewAsync(token).ConfigureAwait(false))
                {
                    await RecreateAsync(token).ConfigureAwait(false);
                }
                else
                {
                    Confirmed();
                    if (_republishPending.Count > 0)
                        await RunHandlersAsync(_republishPending, token).ConfigureAwait(false);
                }
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
        await ReplaceAsync(ct).ConfigureAwait(false);
        Confirmed();
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
                LastError = $"re-publication after {Noun} recreation failed (retried after the next renewal): {e.Message}";
            }
        }
        _republishPending = failed;
    }

    /// <summary>Stops renewing and destroys the handle, which deletes its ephemeral keys.</summary>
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
            await DestroyAsync(deadline.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is StoreUnavailableException or StoreAuthException or StoreRejectedException or OperationCanceledException)
        {
            // The TTL reaps it anyway; nothing else can be done here.
        }
        finally
        {
            Forget();
            _stop.Dispose();
        }
    }
}
