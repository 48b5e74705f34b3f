using System.Net;
using System.Text;
using Skein.Ipam.Allocation;
using Skein.Ipam.Store;
using Skein.Ipam.Tests.TestSupport;

namespace Skein.Ipam.Tests.Allocation;

/// <summary>
/// Allocation while the cluster store is unreachable (decisions #18): endpoint addresses from blocks the host owns,
/// journaled locally, written back through the fencing check when the store returns; everything else fails fast.
/// </summary>
public sealed class OutageJournalTests : IAsyncLifetime
{
    private static readonly CancellationToken None = CancellationToken.None;
    private static readonly TimeSpan Allowance = TimeSpan.FromSeconds(540);
    private IpamTestEnvironment _env = null!;
    private FlakyStore _flaky = null!;
    private string _journalDir = null!;

    public async Task InitializeAsync()
    {
        _env = await IpamTestEnvironment.CreateAsync();
        _flaky = new FlakyStore(_env.Store);
        _journalDir = Path.Combine(_env.Directory, "state");
    }

    public async Task DisposeAsync() => await _env.DisposeAsync();

    private IpamService NodeA() => _env.NewService("node-a", o => o with { JournalDirectory = _journalDir, OutageAllowance = Allowance }, _flaky);

    private string JournalFile => Path.Combine(_journalDir, OutageJournal.FileName);

    /// <summary>A pool with its gateway and one endpoint, so node A owns the first block and has it in memory.</summary>
    private static async Task<string> PreparedPoolAsync(IpamService ipam)
    {
        string id = await ipam.PoolAsync("10.5.0.0/24");
        Assert.Equal("10.5.0.1/24", await ipam.GatewayAsync(id));
        Assert.Equal("10.5.0.2/24", await ipam.EndpointAsync(id, IpamCalls.Mac(1)));
        return id;
    }

    private async Task<string> BlockAsync(string key = "skein/v1/blocks/localdefault/10.5.0.0-24/10.5.0.0-28") =>
        Encoding.UTF8.GetString((await _env.Store.GetAsync(key, None))!.Value.Span);

    [Fact]
    public async Task Endpoint_addresses_come_from_owned_blocks_while_the_store_is_down_and_are_written_back()
    {
        using var ipam = NodeA();
        string id = await PreparedPoolAsync(ipam);
        _flaky.Down = true;
        string before = await _env.SnapshotAsync();

        Assert.Equal("10.5.0.3/24", await ipam.EndpointAsync(id, IpamCalls.Mac(2)));
        Assert.Equal("10.5.0.4/24", await ipam.EndpointAsync(id, IpamCalls.Mac(3)));
        Assert.Equal("10.5.0.3/24", await ipam.EndpointAsync(id, IpamCalls.Mac(2))); // a retry: same address, no new entry
        Assert.True(await ipam.MarkEndpointBoundAsync(null, IPAddress.Parse("10.5.0.3"), "e2", None));
        await ipam.ReleaseAsync(id, "10.5.0.2");
        Assert.Equal(4, ipam.JournalLength);
        Assert.True(ipam.AwaitsReplay(IPAddress.Parse("10.5.0.3")));
        Assert.False(ipam.AwaitsReplay(IPAddress.Parse("10.5.0.9")));
        Assert.Equal(before, await _env.SnapshotAsync()); // nothing reached the store
        Assert.Equal(4, File.ReadAllLines(JournalFile).Length); // and every change is on disk before its answer

        _flaky.Down = false;
        var replay = await ipam.ReplayJournalAsync(None);
        Assert.Equal(3, replay.Replayed); // the latest change of each of three addresses
        Assert.Empty(replay.Conflicts);
        Assert.Equal(0, ipam.JournalLength);
        Assert.Empty(File.ReadAllText(JournalFile));
        Assert.False(ipam.AwaitsReplay(IPAddress.Parse("10.5.0.3")));

        string block = await BlockAsync();
        Assert.Contains("\"3\":{\"kind\":\"container\",\"node\":\"node-a\",\"state\":\"bound\",\"mac\":\"02:42:00:00:00:02\",\"eid\":\"e2\"", block);
        Assert.Contains("\"4\":{\"kind\":\"container\",\"node\":\"node-a\",\"state\":\"pending\",\"mac\":\"02:42:00:00:00:03\"", block);
        Assert.DoesNotContain("\"2\":{", block); // released, and quarantined:
        Assert.Contains("\"freed\":{\"2\":", block);
        Assert.Equal("10.5.0.5/24", await ipam.EndpointAsync(id, IpamCalls.Mac(4)));
    }

    [Fact]
    public async Task A_request_after_the_store_returns_writes_the_journal_back_first()
    {
        using var ipam = NodeA();
        string id = await PreparedPoolAsync(ipam);
        _flaky.Down = true;
        Assert.Equal("10.5.0.3/24", await ipam.EndpointAsync(id, IpamCalls.Mac(2)));
        _flaky.Down = false;
        _env.Time.Advance(ipamProbe);
        Assert.Equal("10.5.0.4/24", await ipam.EndpointAsync(id, IpamCalls.Mac(3)));
        Assert.Equal(0, ipam.JournalLength);
        string block = await BlockAsync();
        Assert.Contains("\"mac\":\"02:42:00:00:00:02\"", block);
        Assert.Contains("\"mac\":\"02:42:00:00:00:03\"", block);
    }

    private static readonly TimeSpan ipamProbe = new IpamOptions { NodeId = "x" }.OutageProbeInterval;

    [Fact]
    public async Task While_the_store_was_just_found_down_requests_do_not_wait_for_it_again_until_the_probe_interval()
    {
        using var ipam = NodeA();
        string id = await PreparedPoolAsync(ipam);
        _flaky.Down = true;
        Assert.Equal("10.5.0.3/24", await ipam.EndpointAsync(id, IpamCalls.Mac(2)));
        int refused = _flaky.Refused;
        Assert.True(refused > 0);
        Assert.Equal("10.5.0.4/24", await ipam.EndpointAsync(id, IpamCalls.Mac(3)));
        Assert.Equal(refused, _flaky.Refused); // straight to the journal
        _env.Time.Advance(ipamProbe);
        Assert.Equal("10.5.0.5/24", await ipam.EndpointAsync(id, IpamCalls.Mac(4)));
        Assert.True(_flaky.Refused > refused); // probed the store again (still down)
    }

    [Fact]
    public async Task Only_endpoint_addresses_from_owned_blocks_are_journaled_everything_else_fails_fast()
    {
        using var ipam = NodeA();
        string id = await PreparedPoolAsync(ipam);
        _flaky.Down = true;
        await IpamCalls.FailsAsync(() => ipam.PoolAsync("10.6.0.0/24"), ErrorKind.Unavailable, "cluster store is unreachable");
        await IpamCalls.FailsAsync(() => ipam.AuxAsync(id, "10.5.0.200"), ErrorKind.Unavailable, "unreachable");
        // A static address outside the blocks this host owns would need the store.
        await IpamCalls.FailsAsync(() => ipam.EndpointAsync(id, IpamCalls.Mac(2), "10.5.0.100"), ErrorKind.Unavailable, "not in a block this host owns");
        // One inside them works, and a taken one is refused as usual.
        Assert.Equal("10.5.0.9/24", await ipam.EndpointAsync(id, IpamCalls.Mac(3), "10.5.0.9"));
        await IpamCalls.FailsAsync(() => ipam.EndpointAsync(id, IpamCalls.Mac(4), "10.5.0.9"), ErrorKind.Conflict, "Address already in use");
        await IpamCalls.FailsAsync(() => ipam.ReleasePoolAsync(id), ErrorKind.Unavailable, "not written back yet");

        // The owned block runs out: no claiming or borrowing without the store, a clear error instead.
        var given = new List<string>();
        for (int n = 10; ; n++)
        {
            try
            {
                given.Add(await ipam.EndpointAsync(id, IpamCalls.Mac(n)));
            }
            catch (SkeinException e)
            {
                Assert.Equal(ErrorKind.Unavailable, e.Kind);
                Assert.Contains("no free address is left in the blocks this host owns", e.Message);
                break;
            }
        }
        Assert.Equal(12, given.Count); // .3-.8 and .10-.15 of 10.5.0.0/28, .9 taken statically
        Assert.Equal(given.Count, given.Distinct().Count());
    }

    [Fact]
    public async Task Past_the_allowance_since_the_store_last_confirmed_this_host_nothing_is_handed_out()
    {
        using var ipam = NodeA();
        string id = await PreparedPoolAsync(ipam);
        var liveness = new FakeLiveness { LastConfirmed = _env.Time.GetUtcNow() };
        ipam.ObserveLiveness(liveness);
        _flaky.Down = true;
        _env.Time.Advance(Allowance - TimeSpan.FromSeconds(100));
        Assert.Equal("10.5.0.3/24", await ipam.EndpointAsync(id, IpamCalls.Mac(2)));
        // The liveness renewed later than the IPAM's last call: the allowance counts from then.
        liveness.LastConfirmed = _env.Time.GetUtcNow();
        _env.Time.Advance(TimeSpan.FromSeconds(200));
        Assert.Equal("10.5.0.4/24", await ipam.EndpointAsync(id, IpamCalls.Mac(3)));
        _env.Time.Advance(Allowance);
        await IpamCalls.FailsAsync(() => ipam.EndpointAsync(id, IpamCalls.Mac(4)), ErrorKind.Unavailable, "last confirmed this host");
    }

    [Fact]
    public async Task A_restart_during_the_outage_allocates_from_the_snapshot_and_the_journal_and_replays_both()
    {
        string id, other;
        using (var first = NodeA())
        {
            id = await PreparedPoolAsync(first);
            other = await first.PoolAsync("10.7.0.0/24");          // known to the first process, never journaled
            Assert.Equal("10.7.0.1/24", await first.GatewayAsync(other));
            Assert.Equal("10.7.0.2/24", await first.EndpointAsync(other, IpamCalls.Mac(9)));
            _flaky.Down = true;
            Assert.Equal("10.5.0.3/24", await first.EndpointAsync(id, IpamCalls.Mac(2)));
        }
        // A crash while appending leaves a torn line: never acknowledged, dropped when the journal is opened.
        await File.AppendAllTextAsync(JournalFile, "{\"v\":1,\"space\":\"Loc");
        Assert.Single(Directory.GetFiles(Path.Combine(_journalDir, OutageSnapshots.DirectoryName)));

        // Restarted with the store still down: the pool is known again from its snapshot plus the journal, so the
        // next container gets the next address, and a repeat its own.
        using var second = NodeA();
        Assert.Equal(1, second.JournalLength);
        Assert.Equal("10.5.0.4/24", await second.EndpointAsync(id, IpamCalls.Mac(3)));
        Assert.Equal("10.5.0.3/24", await second.EndpointAsync(id, IpamCalls.Mac(2)));
        // A pool with no journaled change has no snapshot: it fails fast, naming why.
        await IpamCalls.FailsAsync(() => second.EndpointAsync(other, IpamCalls.Mac(8)), ErrorKind.Unavailable, "has not read pool");

        _flaky.Down = false;
        var replay = await second.ReplayJournalAsync(None);
        Assert.Equal(2, replay.Replayed);
        Assert.Empty(replay.Conflicts);
        var block = await BlockAsync();
        Assert.Contains("\"mac\":\"02:42:00:00:00:02\"", block);
        Assert.Contains("\"mac\":\"02:42:00:00:00:03\"", block);
        Assert.Empty(Directory.GetFiles(Path.Combine(_journalDir, OutageSnapshots.DirectoryName)));
        Assert.Equal("10.5.0.5/24", await second.EndpointAsync(id, IpamCalls.Mac(4)));
        Assert.Equal("10.5.0.4/24", await second.EndpointAsync(id, IpamCalls.Mac(3))); // idempotent on the MAC across the restart
    }

    [Fact]
    public async Task A_snapshot_left_without_journal_entries_is_removed_at_start_and_never_used()
    {
        string id;
        var snapshots = Path.Combine(_journalDir, OutageSnapshots.DirectoryName);
        string path, saved;
        using (var first = NodeA())
        {
            id = await PreparedPoolAsync(first);
            _flaky.Down = true;
            Assert.Equal("10.5.0.3/24", await first.EndpointAsync(id, IpamCalls.Mac(2)));
            path = Directory.GetFiles(snapshots).Single();
            saved = await File.ReadAllTextAsync(path);
            _flaky.Down = false;
            await first.ReplayJournalAsync(None);
            Assert.Empty(Directory.GetFiles(snapshots));
            // Store-written allocations after the outage are in no snapshot.
            Assert.Equal("10.5.0.4/24", await first.EndpointAsync(id, IpamCalls.Mac(3)));
        }
        // As if a crash came between the replay and the snapshot's removal: the real snapshot is back.
        await File.WriteAllTextAsync(path, saved);

        using var second = NodeA();
        Assert.Empty(Directory.GetFiles(snapshots));
        _flaky.Down = true;
        await IpamCalls.FailsAsync(() => second.EndpointAsync(id, IpamCalls.Mac(5)), ErrorKind.Unavailable, "has not answered skein since it started");
    }

    [Fact]
    public async Task Past_the_allowance_a_restarted_process_refuses_as_the_running_one_would()
    {
        string id;
        using (var first = NodeA())
        {
            id = await PreparedPoolAsync(first);
            _flaky.Down = true;
            Assert.Equal("10.5.0.3/24", await first.EndpointAsync(id, IpamCalls.Mac(2)));
        }
        _env.Time.Advance(Allowance + TimeSpan.FromSeconds(1));
        using var second = NodeA();
        await IpamCalls.FailsAsync(() => second.EndpointAsync(id, IpamCalls.Mac(3)), ErrorKind.Unavailable, "last confirmed this host");
    }

    [Fact]
    public async Task A_store_write_after_the_first_journaled_change_reaches_the_snapshot_so_a_restart_never_hands_it_out()
    {
        var gated = new HangingStore(_flaky);
        IpamService Node() => _env.NewService("node-a", o => o with { JournalDirectory = _journalDir, OutageAllowance = Allowance }, gated);
        string id;
        using (var first = Node())
        {
            id = await PreparedPoolAsync(first);
            var hang = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            gated.Gate = hang;
            var endpoint = first.EndpointAsync(id, IpamCalls.Mac(2));      // holds the pool lock; its commit hangs, then fails
            await gated.Entered.Task;
            var aux = first.AuxAsync(id, "10.5.0.10");                      // found no journal entries; waits for the lock
            await Task.Delay(100);
            gated.ReadsFail = () => first.JournalLength == 0;
            hang.SetResult();
            await Task.WhenAll(endpoint, aux);
            Assert.Equal(1, first.JournalLength);
            Assert.Contains("\"10\":{\"kind\":\"aux\"", await BlockAsync()); // the aux reached the store after the journal entry
        }
        _flaky.Down = true;
        using var second = Node();
        await IpamCalls.FailsAsync(() => second.EndpointAsync(id, IpamCalls.Mac(3), "10.5.0.10"), ErrorKind.Conflict, "10.5.0.10");
        Assert.Equal("10.5.0.4/24", await second.EndpointAsync(id, IpamCalls.Mac(3)));
        _flaky.Down = false;
        Assert.Empty((await second.ReplayJournalAsync(None)).Conflicts);
    }

    [Fact]
    public async Task A_group_write_whose_answer_was_lost_survives_a_restart_during_the_outage()
    {
        string id;
        using (var first = NodeA())
        {
            id = await PreparedPoolAsync(first);
            _flaky.LoseNextCommitAnswers = 1;
            _flaky.DownAfterLostAnswer = true;
            Assert.Equal("10.5.0.3/24", await first.EndpointAsync(id, IpamCalls.Mac(2)));
            Assert.Equal(1, first.JournalLength);
        }
        using var second = NodeA();
        Assert.Equal("10.5.0.4/24", await second.EndpointAsync(id, IpamCalls.Mac(3)));
        Assert.Equal("10.5.0.3/24", await second.EndpointAsync(id, IpamCalls.Mac(2)));
        _flaky.Down = false;
        Assert.Empty((await second.ReplayJournalAsync(None)).Conflicts);
    }

    /// <summary>A store whose next commit hangs until released and then fails as unreachable; reads fail while told to.</summary>
    private sealed class HangingStore(IClusterStore inner) : IClusterStore
    {
        public TaskCompletionSource? Gate;
        public TaskCompletionSource Entered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public Func<bool> ReadsFail { get; set; } = () => false;
        public StoreLimits Limits => inner.Limits;
        public Task<KvEntry?> GetAsync(string key, CancellationToken ct) => ReadsFail() ? throw new StoreUnavailableException("down (test)") : inner.GetAsync(key, ct);
        public Task<(IReadOnlyList<KvEntry> Entries, long Revision)> ListAsync(string prefix, bool keysOnly, CancellationToken ct) =>
            ReadsFail() ? throw new StoreUnavailableException("down (test)") : inner.ListAsync(prefix, keysOnly, ct);
        public Task<WriteResult> PutAsync(string key, ReadOnlyMemory<byte> value, Precondition pre, bool ephemeral, CancellationToken ct) => inner.PutAsync(key, value, pre, ephemeral, ct);
        public Task<WriteResult> DeleteAsync(string key, Precondition pre, CancellationToken ct) => inner.DeleteAsync(key, pre, ct);

        public async Task<TxnResult> CommitAsync(IReadOnlyList<TxnOp> ops, CancellationToken ct)
        {
            if (Interlocked.Exchange(ref Gate, null) is { } gate)
            {
                Entered.TrySetResult();
                await gate.Task;
                throw new StoreUnavailableException("connection refused (test)");
            }
            return await inner.CommitAsync(ops, ct);
        }

        public IAsyncEnumerable<WatchUpdate> WatchPrefixAsync(string prefix, CancellationToken ct) => inner.WatchPrefixAsync(prefix, ct);
        public Task<ILiveness> StartLivenessAsync(LivenessOptions options, CancellationToken ct) => inner.StartLivenessAsync(options, ct);
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    [Fact]
    public async Task An_address_someone_else_took_meanwhile_is_reported_as_a_conflict_and_not_overwritten()
    {
        using var ipam = NodeA();
        string id = await PreparedPoolAsync(ipam);
        using var other = _env.NewService("node-b");
        Assert.Equal(id, await other.PoolAsync("10.5.0.0/24"));
        _flaky.Down = true; // only node A's client is cut off
        Assert.Equal("10.5.0.3/24", await ipam.EndpointAsync(id, IpamCalls.Mac(2)));
        Assert.True(await ipam.MarkEndpointBoundAsync(null, IPAddress.Parse("10.5.0.3"), "e2", None));
        Assert.Equal("10.5.0.3/24", await other.EndpointAsync(id, IpamCalls.Mac(9), "10.5.0.3"));

        _flaky.Down = false;
        var replay = await ipam.ReplayJournalAsync(None);
        var conflict = Assert.Single(replay.Conflicts);
        Assert.Equal(IPAddress.Parse("10.5.0.3"), conflict.Address);
        Assert.Equal("e2", conflict.EndpointId);
        Assert.Equal(IpamCalls.Mac(2), conflict.Mac);
        Assert.Contains("node-b", conflict.Detail);
        Assert.Contains("\"node\":\"node-b\",\"state\":\"pending\",\"mac\":\"02:42:00:00:00:09\"", await BlockAsync());
        Assert.Equal(0, ipam.JournalLength);
    }

    [Fact]
    public async Task Without_a_journal_directory_an_unreachable_store_still_fails_fast()
    {
        var ipam = _env.NewService("node-a", store: _flaky);
        string id = await PreparedPoolAsync(ipam);
        _flaky.Down = true;
        await IpamCalls.FailsAsync(() => ipam.EndpointAsync(id, IpamCalls.Mac(2)), ErrorKind.Unavailable, "cluster store is unreachable");
        Assert.Equal(0, ipam.JournalLength);
    }

    private sealed class FakeLiveness : ILiveness
    {
        public string Id => "fake";
        public long Generation => 0;
        public DateTimeOffset? LastConfirmed { get; set; }
        public event Func<ILiveness, CancellationToken, Task>? Recreated { add { } remove { } }
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
