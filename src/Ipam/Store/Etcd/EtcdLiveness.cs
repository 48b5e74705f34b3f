namespace Skein.Ipam.Store.Etcd;

/// <summary>
/// A lease (cluster-store §2.5, §4.6) kept alive every RenewEvery. A keepalive answered without a
/// TTL, or a put refused with "lease not found", means the lease is gone and its keys with it: a new
/// lease is granted, Generation goes up and Recreated fires so the owner re-publishes.
/// </summary>
internal sealed class EtcdLiveness : RenewingLiveness
{
    private readonly EtcdStore _store;
    private long _leaseId;

    private EtcdLiveness(EtcdStore store, LivenessOptions options, long leaseId) : base(options)
    {
        _store = store;
        _leaseId = leaseId;
    }

    public static async Task<EtcdLiveness> StartAsync(EtcdStore store, LivenessOptions options, CancellationToken ct)
    {
        var (id, _) = await store.GrantLeaseAsync(options.Ttl, ct).ConfigureAwait(false);
        var liveness = new EtcdLiveness(store, options, id);
        liveness.StartLoop();
        return liveness;
    }

    public long LeaseId => Interlocked.Read(ref _leaseId);

    /// <summary>The lease id in decimal, as etcdctl prints it.</summary>
    public override string Id => LeaseId.ToString(System.Globalization.CultureInfo.InvariantCulture);

    protected override string Noun => "lease";

    protected override TimeProvider Time => _store.Time;

    protected override async Task<bool> RenewAsync(CancellationToken ct) =>
        await _store.KeepAliveAsync(LeaseId, ct).ConfigureAwait(false) > 0;

    protected override async Task ReplaceAsync(CancellationToken ct)
    {
        var (id, _) = await _store.GrantLeaseAsync(Options.Ttl, ct).ConfigureAwait(false);
        Interlocked.Exchange(ref _leaseId, id);
    }

    protected override async Task DestroyAsync(CancellationToken ct)
    {
        try
        {
            await _store.RevokeLeaseAsync(LeaseId, ct).ConfigureAwait(false);
        }
        catch (LivenessLostException)
        {
            // The lease is gone already, and its keys with it.
        }
    }

    protected override void Forget() => _store.ForgetLiveness(this);
}
