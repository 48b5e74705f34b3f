namespace Skein.Ipam.Store.Embedded;

/// <summary>
/// The embedded store's liveness is the process itself: nothing to renew, never recreated.
/// Disposing it deletes its ephemeral keys.
/// </summary>
internal sealed class EmbeddedLiveness(EmbeddedStore store, string id) : ILiveness
{
    public string Id { get; } = id;

    public long Generation => 0;

    // Never raised: a process cannot outlive its own liveness.
    public event Func<ILiveness, CancellationToken, Task>? Recreated
    {
        add { }
        remove { }
    }

    /// <summary>The store is this process: always confirmed.</summary>
    public DateTimeOffset? LastConfirmed => DateTimeOffset.UtcNow;

    public ValueTask DisposeAsync() => new(store.EndLivenessAsync(this));
}
