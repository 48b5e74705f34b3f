using Skein.Ipam.Store;

namespace Skein.Ipam.Tests.TestSupport;

/// <summary>
/// Delegates to a real store; can apply a commit and then report a transport failure, or be down (every call
/// fails as unreachable). Counts the calls that reached it while down.
/// </summary>
internal sealed class FlakyStore(IClusterStore inner) : IClusterStore
{
    public int LoseNextCommitAnswers;
    public volatile bool Down;
    /// <summary>With a lost answer, the store also goes down: nobody can ask it whether the write applied.</summary>
    public volatile bool DownAfterLostAnswer;
    private int _refused;

    /// <summary>Calls refused because the store was down.</summary>
    public int Refused => Volatile.Read(ref _refused);

    public StoreLimits Limits => inner.Limits;

    private void ThrowIfDown()
    {
        if (!Down)
            return;
        Interlocked.Increment(ref _refused);
        throw new StoreUnavailableException("connection refused (test)");
    }

    public Task<KvEntry?> GetAsync(string key, CancellationToken ct) { ThrowIfDown(); return inner.GetAsync(key, ct); }
    public Task<(IReadOnlyList<KvEntry> Entries, long Revision)> ListAsync(string prefix, bool keysOnly, CancellationToken ct) { ThrowIfDown(); return inner.ListAsync(prefix, keysOnly, ct); }
    public Task<WriteResult> PutAsync(string key, ReadOnlyMemory<byte> value, Precondition pre, bool ephemeral, CancellationToken ct) { ThrowIfDown(); return inner.PutAsync(key, value, pre, ephemeral, ct); }
    public Task<WriteResult> DeleteAsync(string key, Precondition pre, CancellationToken ct) { ThrowIfDown(); return inner.DeleteAsync(key, pre, ct); }

    public async Task<TxnResult> CommitAsync(IReadOnlyList<TxnOp> ops, CancellationToken ct)
    {
        ThrowIfDown();
        var result = await inner.CommitAsync(ops, ct);
        if (LoseNextCommitAnswers > 0)
        {
            LoseNextCommitAnswers--;
            if (DownAfterLostAnswer)
                Down = true;
            throw new StoreUnavailableException("response lost after the write (test)");
        }
        return result;
    }

    public IAsyncEnumerable<WatchUpdate> WatchPrefixAsync(string prefix, CancellationToken ct) => inner.WatchPrefixAsync(prefix, ct);
    public Task<ILiveness> StartLivenessAsync(LivenessOptions options, CancellationToken ct) => inner.StartLivenessAsync(options, ct);
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
