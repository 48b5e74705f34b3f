namespace Skein.Ipam.Store.Etcd;

/// <summary>
/// A lease (cluster-store §2.5, §4.6) kept alive every RenewEvery. A keepalive answered without a
/// TTL, or a put refused with "lease not found", means the lease is gone and its keys with it: a new
/// lease is granted, Generation goes up and Recreated fires so the owner re-publishes.
/// </summary>
internal sealed class EtcdLiveness : ILiveness
{
    private readonly EtcdStore _store;
    private readonly LivenessOptions _options;
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _wake = new(0, 1);
    private long _leaseId;
    private long _generation;
    private Task _loop = Task.CompletedTask;
    private int _disposed;
    private List<Func<ILiveness, CancellationToken, Task>> _republishPending = [];

    private EtcdLiveness(EtcdStore store, LivenessOptions options, long leaseId)
    {
        _store = store;
        _options = options;
        _leaseId = leaseId;
    }

    public static async Task<EtcdLiveness> StartAsync(EtcdStore store, LivenessOptions options, CancellationToken ct)
    {
        var (id, _) = await store.GrantLeaseAsync(options.Ttl, ct).ConfigureAwait(false);
        var liveness = new EtcdLiveness(store, options, id);
        liveness._loop = Task.Run(liveness.KeepAliveLoopAsync);
        return liveness;
    }

    public long LeaseId => Interlocked.Read(ref _leaseId);

    /// <summary>The lease id in decimal, as etcdctl prints it.</summary>
    public string Id => LeaseId.ToString(System.Globalization.CultureInfo.InvariantCulture);

    public long Generation => Interlocked.Read(ref _generation);

    public event Func<ILiveness, CancellationToken, Task>? Recreated;

    public string? LastError { get; private set; }

    public void CheckNow()
    {
        try
        {
            _wake.Release();
        }
        catch (SemaphoreFullException)
        {
        }
    }

    private async Task KeepAliveLoopAsync()
    {
        var token = _stop.Token;
        var failures = 0;
        while (!token.IsCancellationRequested)
        {
            try
            {
                using var tick = CancellationTokenSource.CreateLinkedTokenSource(token);
                var delay = failures == 0 ? _options.RenewEvery : StoreHttp.Backoff(TimeSpan.FromMilliseconds(200), failures, _options.RenewEvery);
                await Task.WhenAny(Task.Delay(delay, _store.Time, tick.Token), _wake.WaitAsync(tick.Token)).ConfigureAwait(false);
                await tick.CancelAsync().ConfigureAwait(false);
                token.ThrowIfCancellationRequested();

                if (await _store.KeepAliveAsync(LeaseId, token).ConfigureAwait(false) <= 0)
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
        var (id, _) = await _store.GrantLeaseAsync(_options.Ttl, ct).ConfigureAwait(false);
        Interlocked.Exchange(ref _leaseId, id);
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
                LastError = $"re-publication after lease recreation failed (retried after the next renewal): {e.Message}";
            }
        }
        _republishPending = failed;
    }

    /// <summary>Stops the keepalives and revokes the lease, which deletes its keys.</summary>
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
            await _store.RevokeLeaseAsync(LeaseId, deadline.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is StoreUnavailableException or StoreAuthException or StoreRejectedException or LivenessLostException or OperationCanceledException)
        {
            // The TTL reaps it anyway.
        }
        finally
        {
            _store.ForgetLiveness(this);
            _stop.Dispose();
        }
    }
}
