using System.Net;
using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Skein.Driver.Overlay.Control;
using Skein.Driver.Overlay.Dataplane;
using Skein.Ipam.Store;
using Skein.Ipam.Store.Embedded;

namespace Skein.Driver.Tests.Overlay.Control;

/// <summary>The peer watcher on its own: view building, orderly leave vs. lost liveness (hold-down), store outages.</summary>
public sealed class PeerWatcherTests : IAsyncLifetime
{
    private const string Root = "skein/v1";
    private const string Net = "blue";
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "skein-pw-" + Guid.NewGuid().ToString("N")[..10]);
    private readonly ClusterKeys _keys = new(Root);
    private readonly List<PeerView> _applied = [];
    private EmbeddedStore _store = null!;

    public async Task InitializeAsync() => _store = await EmbeddedStore.OpenAsync(_dir);

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private PeerWatcher Watcher(IClusterStore store, TimeSpan holdDown) =>
        new(store, _keys, Net, "host-a", view =>
        {
            lock (_applied)
                _applied.Add(view);
        }, TimeProvider.System, NullLogger.Instance)
        {
            HoldDown = holdDown,
            MaxRetryDelay = TimeSpan.FromMilliseconds(200),
        };

    private Task PutAsync(string key, string json) =>
        _store.PutAsync(key, Encoding.UTF8.GetBytes(json), Precondition.None, ephemeral: false, default);

    private async Task PublishNodeAsync(string node, string vtep, params (string Eid, string Ip4, string Mac)[] endpoints)
    {
        await PutAsync(_keys.Node(node), $$"""{"addr":"{{vtep}}","vtep":"{{vtep}}"}""");
        await PutAsync(_keys.PeerNode(Net, node), $$"""{"vtep":"{{vtep}}","incarnation":1}""");
        foreach (var (eid, ip4, mac) in endpoints)
            await PutAsync(_keys.PeerEndpoint(Net, node, eid), $$"""{"ip4":"{{ip4}}","mac":"{{mac}}"}""");
    }

    private static async Task WaitAsync(Func<bool> condition, string failure)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
                Assert.Fail(failure);
            await Task.Delay(20);
        }
    }

    private static bool Has(PeerView view, string ip4) => view.Endpoints.Any(e => e.IPv4?.ToString() == ip4);

    [Fact]
    public async Task The_view_holds_remote_nodes_and_endpoints_only()
    {
        await PublishNodeAsync("host-a", "192.0.2.1", ("e1", "10.20.0.2", "02:00:00:00:00:01"));
        await PublishNodeAsync("host-b", "192.0.2.2", ("e2", "10.20.0.3", "02:00:00:00:00:02"));
        // An endpoint whose node key is missing has no VTEP to go to; a broken record is skipped, not fatal.
        await PutAsync(_keys.PeerEndpoint(Net, "host-c", "e3"), """{"ip4":"10.20.0.4","mac":"02:00:00:00:00:03"}""");
        await PutAsync(_keys.PeerEndpoint(Net, "host-b", "bad"), """{"ip4":"not-an-ip","mac":"02:00:00:00:00:09"}""");
        await using var watcher = Watcher(_store, TimeSpan.FromSeconds(30));
        watcher.Start();
        await WaitAsync(() => watcher.Applied > 0, "no view was applied");

        var view = watcher.Current;
        Assert.Equal([IPAddress.Parse("192.0.2.2")], view.RemoteVteps);
        var endpoint = Assert.Single(view.Endpoints);
        Assert.Equal("10.20.0.3", endpoint.IPv4!.ToString());
        Assert.Equal(IPAddress.Parse("192.0.2.2"), endpoint.Vtep);
        Assert.Equal("020000000002", endpoint.Mac.ToString());
    }

    [Fact]
    public async Task An_orderly_leave_drops_the_peer_at_once_but_a_lost_liveness_is_held_down()
    {
        await PublishNodeAsync("host-b", "192.0.2.2", ("e2", "10.20.0.3", "02:00:00:00:00:02"));
        await PublishNodeAsync("host-c", "192.0.2.3", ("e3", "10.20.0.4", "02:00:00:00:00:03"));
        await using var watcher = Watcher(_store, TimeSpan.FromSeconds(30));
        watcher.Start();
        await WaitAsync(() => Has(watcher.Current, "10.20.0.3") && Has(watcher.Current, "10.20.0.4"), "both peers should be in the view");

        // host-b leaves the network but stays alive (nodes/host-b remains): gone at once.
        await _store.DeleteAsync(_keys.PeerEndpoint(Net, "host-b", "e2"), Precondition.None, default);
        await _store.DeleteAsync(_keys.PeerNode(Net, "host-b"), Precondition.None, default);
        await WaitAsync(() => !Has(watcher.Current, "10.20.0.3"), "an orderly leave should drop the peer");
        Assert.Empty(watcher.HeldNodes);

        // host-c loses its liveness: every key goes, nodes/host-c included. The watch may hand the removals over one
        // at a time, so the endpoint goes first here and is applied on its own. Its entries stay (hold-down).
        var applied = watcher.Applied;
        await _store.DeleteAsync(_keys.PeerEndpoint(Net, "host-c", "e3"), Precondition.None, default);
        await WaitAsync(() => watcher.Applied > applied && !Has(watcher.Current, "10.20.0.4"), "the endpoint's removal should be applied");
        applied = watcher.Applied;
        await _store.CommitAsync(
        [
            new TxnOp.Delete(_keys.PeerNode(Net, "host-c"), Precondition.None),
            new TxnOp.Delete(_keys.Node("host-c"), Precondition.None),
        ], default);
        await WaitAsync(() => watcher.Applied > applied && watcher.HeldNodes.Count > 0, "the vanishing should be processed");
        Assert.Equal(["host-c"], watcher.HeldNodes);
        Assert.True(Has(watcher.Current, "10.20.0.4"), "a vanished node is kept during the hold-down");
        Assert.Contains(IPAddress.Parse("192.0.2.3"), watcher.Current.RemoteVteps);

        // It comes back (a recreated session): live again, no longer held.
        await PublishNodeAsync("host-c", "192.0.2.3", ("e3", "10.20.0.4", "02:00:00:00:00:03"));
        await WaitAsync(() => watcher.HeldNodes.Count == 0, "a re-published node leaves the hold-down");
        Assert.True(Has(watcher.Current, "10.20.0.4"), "a node that is back keeps its endpoints");
    }

    [Fact]
    public async Task A_held_node_that_does_not_come_back_is_dropped_when_the_hold_down_ends()
    {
        await PublishNodeAsync("host-b", "192.0.2.2", ("e2", "10.20.0.3", "02:00:00:00:00:02"));
        await using var watcher = Watcher(_store, TimeSpan.FromMilliseconds(300));
        watcher.Start();
        await WaitAsync(() => Has(watcher.Current, "10.20.0.3"), "the peer should be in the view");
        var applied = watcher.Applied;
        await _store.CommitAsync(
        [
            new TxnOp.Delete(_keys.PeerEndpoint(Net, "host-b", "e2"), Precondition.None),
            new TxnOp.Delete(_keys.PeerNode(Net, "host-b"), Precondition.None),
            new TxnOp.Delete(_keys.Node("host-b"), Precondition.None),
        ], default);
        await WaitAsync(() => watcher.Applied > applied, "the vanishing should be processed");
        await WaitAsync(() => !Has(watcher.Current, "10.20.0.3") && watcher.Current.RemoteVteps.Count == 0, "the hold-down should end");
        Assert.Empty(watcher.HeldNodes);
    }

    [Fact]
    public async Task A_failing_store_never_empties_the_view_and_the_watch_recovers()
    {
        await PublishNodeAsync("host-b", "192.0.2.2", ("e2", "10.20.0.3", "02:00:00:00:00:02"));
        var flaky = new FlakyWatchStore(_store);
        await using var watcher = Watcher(flaky, TimeSpan.FromSeconds(30));
        watcher.Start();
        await WaitAsync(() => Has(watcher.Current, "10.20.0.3"), "the peer should be in the view");

        flaky.Failing = true;
        flaky.BreakCurrentWatch();
        await WaitAsync(() => flaky.FailedAttempts >= 2, "the watcher should keep retrying");
        watcher.Resync();
        await WaitAsync(() => flaky.FailedAttempts >= 3, "the watcher should keep retrying");
        Assert.True(Has(watcher.Current, "10.20.0.3"), "an unreachable store must not remove peers");
        lock (_applied)
            Assert.All(_applied, v => Assert.True(Has(v, "10.20.0.3")));

        await PublishNodeAsync("host-d", "192.0.2.4", ("e4", "10.20.0.5", "02:00:00:00:00:04"));
        flaky.Failing = false;
        await WaitAsync(() => Has(watcher.Current, "10.20.0.5") && Has(watcher.Current, "10.20.0.3"), "the watch should resume with a fresh snapshot");
    }

    /// <summary>Passes everything through, except that a watch can be broken and new watches can be made to fail.</summary>
    private sealed class FlakyWatchStore(IClusterStore inner) : IClusterStore
    {
        private CancellationTokenSource _current = new();
        private int _failed;
        public volatile bool Failing;
        public int FailedAttempts => Volatile.Read(ref _failed);

        public void BreakCurrentWatch() => _current.Cancel();

        public StoreLimits Limits => inner.Limits;
        public Task<KvEntry?> GetAsync(string key, CancellationToken ct) =>
            Failing ? throw new StoreUnavailableException("store down (test)") : inner.GetAsync(key, ct);
        public Task<(IReadOnlyList<KvEntry> Entries, long Revision)> ListAsync(string prefix, bool keysOnly, CancellationToken ct) => inner.ListAsync(prefix, keysOnly, ct);
        public Task<WriteResult> PutAsync(string key, ReadOnlyMemory<byte> value, Precondition pre, bool ephemeral, CancellationToken ct) => inner.PutAsync(key, value, pre, ephemeral, ct);
        public Task<WriteResult> DeleteAsync(string key, Precondition pre, CancellationToken ct) => inner.DeleteAsync(key, pre, ct);
        public Task<TxnResult> CommitAsync(IReadOnlyList<TxnOp> ops, CancellationToken ct) => inner.CommitAsync(ops, ct);
        public Task<ILiveness> StartLivenessAsync(LivenessOptions options, CancellationToken ct) => inner.StartLivenessAsync(options, ct);
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;

        public async IAsyncEnumerable<WatchUpdate> WatchPrefixAsync(string prefix, [EnumeratorCancellation] CancellationToken ct)
        {
            if (Failing)
            {
                Interlocked.Increment(ref _failed);
                throw new StoreUnavailableException("store down (test)");
            }
            _current = new CancellationTokenSource();
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, _current.Token);
            var enumerator = inner.WatchPrefixAsync(prefix, linked.Token).GetAsyncEnumerator(linked.Token);
            try
            {
                while (true)
                {
                    bool more;
                    try
                    {
                        more = await enumerator.MoveNextAsync();
                    }
                    catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                    {
                        Interlocked.Increment(ref _failed);
                        throw new StoreUnavailableException("watch connection lost (test)");
                    }
                    if (!more)
                        yield break;
                    yield return enumerator.Current;
                }
            }
            finally
            {
                await enumerator.DisposeAsync();
            }
        }
    }
}
