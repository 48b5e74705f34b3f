using Skein.Ipam.Store;

namespace Skein.Ipam.Tests.Allocation;

/// <summary>
/// Delegates to another store, counts transactions, and can hold the next one at its door until the test lets it
/// through: requests that arrive meanwhile queue behind it, deterministically.
/// </summary>
internal sealed class GatedStore(IClusterStore inner) : IClusterStore
{
    private int _commits;
    private Hold? _next;

    /// <summary>Transactions that reached this store (held ones included).</summary>
    public int Commits => Volatile.Read(ref _commits);

    /// <summary>One held transaction: <see cref="Entered"/> when it arrives, it goes on at <see cref="Release"/>.</summary>
    public sealed class Hold
    {
        private readonly TaskCompletionSource _entered = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public Task Entered => _entered.Task;
        public IReadOnlyList<TxnOp> Ops { get; private set; } = [];
        public void Release() => _released.SetResult();

        internal Task WaitAsync(IReadOnlyList<TxnOp> ops)
        {
            Ops = ops;
            _entered.SetResult();
            return _released.Task;
        }
    }

    /// <summary>Holds the next transaction.</summary>
    public Hold HoldNextCommit()
    {
        var hold = new Hold();
        Assert.Null(Interlocked.Exchange(ref _next, hold));
        return hold;
    }

    public async Task<TxnResult> CommitAsync(IReadOnlyList<TxnOp> ops, CancellationToken ct)
    {
        Interlocked.Increment(ref _commits);
        if (Interlocked.Exchange(ref _next, null) is { } hold)
            await hold.WaitAsync(ops);
        return await inner.CommitAsync(ops, ct);
    }

    public StoreLimits Limits => inner.Limits;
    public Task<KvEntry?> GetAsync(string key, CancellationToken ct) => inner.GetAsync(key, ct);
    public Task<(IReadOnlyList<KvEntry> Entries, long Revision)> ListAsync(string prefix, bool keysOnly, CancellationToken ct) => inner.ListAsync(prefix, keysOnly, ct);
    public Task<WriteResult> PutAsync(string key, ReadOnlyMemory<byte> value, Precondition pre, bool ephemeral, CancellationToken ct) => inner.PutAsync(key, value, pre, ephemeral, ct);
    public Task<WriteResult> DeleteAsync(string key, Precondition pre, CancellationToken ct) => inner.DeleteAsync(key, pre, ct);
    public IAsyncEnumerable<WatchUpdate> WatchPrefixAsync(string prefix, CancellationToken ct) => inner.WatchPrefixAsync(prefix, ct);
    public Task<ILiveness> StartLivenessAsync(LivenessOptions options, CancellationToken ct) => inner.StartLivenessAsync(options, ct);
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
