namespace Skein.Ipam.Store.Consul;

/// <summary>
/// A TTL session with Behavior=delete (cluster-store §1.8, §1.9, §4.6), renewed every RenewEvery.
/// When Consul says the session is gone (renew 404, or a write reports an invalid session) a new
/// session is created, Generation goes up and Recreated fires so the owner re-publishes its
/// ephemeral keys. Transport failures only delay renewal: the session may well still be alive.
/// </summary>
internal sealed class ConsulLiveness : RenewingLiveness
{
    private readonly ConsulStore _store;
    private string _id;

    private ConsulLiveness(ConsulStore store, LivenessOptions options, string id) : base(options)
    {
        _store = store;
        _id = id;
    }

    public static async Task<ConsulLiveness> StartAsync(ConsulStore store, LivenessOptions options, CancellationToken ct)
    {
        var id = await store.CreateSessionAsync(options, ct).ConfigureAwait(false);
        var liveness = new ConsulLiveness(store, options, id);
        liveness.StartLoop();
        return liveness;
    }

    public override string Id => Volatile.Read(ref _id);

    protected override string Noun => "session";

    protected override TimeProvider Time => _store.Time;

    protected override Task<bool> RenewAsync(CancellationToken ct) => _store.RenewSessionAsync(Id, ct);

    protected override async Task ReplaceAsync(CancellationToken ct)
    {
        var id = await _store.CreateSessionAsync(Options, ct).ConfigureAwait(false);
        Volatile.Write(ref _id, id);
    }

    protected override Task DestroyAsync(CancellationToken ct) => _store.DestroySessionAsync(Id, ct);

    protected override void Forget() => _store.ForgetLiveness(this);
}
