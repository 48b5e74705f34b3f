using System.Text.Json;
using Skein.Ipam.Allocation;
using Skein.Ipam.Protocol;
using Skein.Ipam.Store;
using Skein.Ipam.Tests.TestSupport;

namespace Skein.Ipam.Tests.Allocation;

/// <summary>
/// Group commit: endpoint requests of one pool that queue while a commit is in flight are written together in one
/// transaction, each caller with its own answer, exactly as if they had been served one at a time. The first request
/// is held inside its commit (it holds the pool's lock), so the requests made meanwhile queue behind it for sure.
/// </summary>
public sealed class GroupCommitTests : IAsyncLifetime
{
    private static readonly CancellationToken None = CancellationToken.None;
    private const string Block0 = "skein/v1/blocks/localdefault/10.6.0.0-24/10.6.0.0-28";
    private IpamTestEnvironment _env = null!;
    private FlakyStore _flaky = null!;
    private GatedStore _gated = null!;

    public async Task InitializeAsync()
    {
        _env = await IpamTestEnvironment.CreateAsync();
        _flaky = new FlakyStore(_env.Store);
        _gated = new GatedStore(_flaky);
    }

    public async Task DisposeAsync() => await _env.DisposeAsync();

    private IpamService NodeA(bool journal = false) => _env.NewService("node-a",
        journal ? o => o with { JournalDirectory = Path.Combine(_env.Directory, "state"), OutageAllowance = TimeSpan.FromSeconds(540) } : null,
        _gated);

    /// <summary>A pool with its gateway: node A owns the first block (.0-.15) and has it in memory.</summary>
    private static async Task<string> PreparedPoolAsync(IpamService ipam)
    {
        string id = await ipam.PoolAsync("10.6.0.0/24");
        Assert.Equal("10.6.0.1/24", await ipam.GatewayAsync(id));
        return id;
    }

    private static string Address(int last) => $"10.6.0.{last}/24";

    /// <summary>The first endpoint request (MAC 1) with its commit held open, so the requests made next queue behind it.</summary>
    private async Task<(Task<string> Call, GatedStore.Hold Held)> FirstHeldAsync(IpamService ipam, string id)
    {
        var held = _gated.HoldNextCommit();
        var call = ipam.EndpointAsync(id, IpamCalls.Mac(1));
        await held.Entered;
        return (call, held);
    }

    /// <summary>Ordinal → MAC of the container slots in a block, as the store holds it.</summary>
    private async Task<Dictionary<int, string>> ContainerSlotsAsync(string blockKey)
    {
        var entry = await _env.Store.GetAsync(blockKey, None);
        Assert.NotNull(entry);
        using var document = JsonDocument.Parse(entry.Value);
        return document.RootElement.GetProperty("slots").EnumerateObject()
            .Where(s => s.Value.GetProperty("kind").GetString() == "container")
            .ToDictionary(s => int.Parse(s.Name, System.Globalization.CultureInfo.InvariantCulture), s => s.Value.GetProperty("mac").GetString()!);
    }

    [Fact]
    public async Task Requests_queued_behind_a_commit_share_one_write_and_each_gets_its_own_address()
    {
        using var ipam = NodeA();
        string id = await PreparedPoolAsync(ipam);
        int before = _gated.Commits;
        var (first, held) = await FirstHeldAsync(ipam, id);
        var queued = Enumerable.Range(2, 7).Select(n => ipam.EndpointAsync(id, IpamCalls.Mac(n))).ToList();
        held.Release();

        Assert.Equal(Address(2), await first);
        Assert.Equal(Enumerable.Range(3, 7).Select(Address), await Task.WhenAll(queued)); // in arrival order, as one at a time
        Assert.Equal(2, _gated.Commits - before); // the first request's, and one for the seven queued behind it

        // Written, not only cached: after a restart every MAC finds its address again (the engine's retry).
        using var restarted = _env.NewService("node-a");
        for (int n = 1; n <= 8; n++)
            Assert.Equal(Address(n + 1), await restarted.EndpointAsync(id, IpamCalls.Mac(n)));
        Assert.Equal(Enumerable.Range(2, 8).ToDictionary(o => o, o => IpamCalls.Mac(o - 1)), await ContainerSlotsAsync(Block0));
    }

    [Fact]
    public async Task A_failing_request_gets_its_own_error_and_the_rest_of_its_batch_succeeds()
    {
        using var ipam = NodeA();
        string id = await PreparedPoolAsync(ipam);
        int before = _gated.Commits;
        var (first, held) = await FirstHeldAsync(ipam, id);
        var dynamic = ipam.EndpointAsync(id, IpamCalls.Mac(2));
        var taken = ipam.EndpointAsync(id, IpamCalls.Mac(3), "10.6.0.2"); // the first request's address
        var staticFree = ipam.EndpointAsync(id, IpamCalls.Mac(4), "10.6.0.10");
        var retry = ipam.EndpointAsync(id, IpamCalls.Mac(2)); // the engine repeating a request: the same address
        var broadcast = ipam.EndpointAsync(id, IpamCalls.Mac(5), "10.6.0.255");
        var unknownSubPool = ipam.EndpointAsync("LocalDefault/10.6.0.0/24/10.6.0.128/25", IpamCalls.Mac(6));
        var later = ipam.EndpointAsync(id, IpamCalls.Mac(7));
        held.Release();

        Assert.Equal(Address(2), await first);
        Assert.Equal(Address(3), await dynamic);
        await IpamCalls.FailsAsync(() => taken, ErrorKind.Conflict, "Address already in use: 10.6.0.2");
        Assert.Equal(Address(10), await staticFree);
        Assert.Equal(Address(3), await retry);
        await IpamCalls.FailsAsync(() => broadcast, ErrorKind.Conflict, "10.6.0.255 is the broadcast address");
        await IpamCalls.FailsAsync(() => unknownSubPool, ErrorKind.NotFound, "has no sub-pool 10.6.0.128/25");
        Assert.Equal(Address(4), await later);
        Assert.Equal(2, _gated.Commits - before);
        Assert.Equal(new Dictionary<int, string>
        {
            [2] = IpamCalls.Mac(1), [3] = IpamCalls.Mac(2), [4] = IpamCalls.Mac(7), [10] = IpamCalls.Mac(4),
        }, await ContainerSlotsAsync(Block0));
    }

    [Fact]
    public async Task A_batch_that_fills_its_block_claims_the_next_one_and_carries_on_in_order()
    {
        using var ipam = NodeA();
        string id = await PreparedPoolAsync(ipam);
        int before = _gated.Commits;
        var (first, held) = await FirstHeldAsync(ipam, id);
        var queued = Enumerable.Range(2, 19).Select(n => ipam.EndpointAsync(id, IpamCalls.Mac(n))).ToList();
        held.Release();

        Assert.Equal(Address(2), await first);
        Assert.Equal(Enumerable.Range(3, 19).Select(Address), await Task.WhenAll(queued));
        // The first request; .3-.15 in one write; .16 claims the next block on its own; .17-.21 in one write.
        Assert.Equal(4, _gated.Commits - before);
        Assert.Equal(6, (await ContainerSlotsAsync("skein/v1/blocks/localdefault/10.6.0.0-24/10.6.0.16-28")).Count);
    }

    [Fact]
    public async Task One_write_touches_at_most_eight_blocks()
    {
        using var ipam = NodeA();
        string id = await PreparedPoolAsync(ipam);
        for (int block = 1; block <= 10; block++)
            Assert.Equal(Address(16 * block + 1), await ipam.EndpointAsync(id, IpamCalls.Mac(100 + block), $"10.6.0.{16 * block + 1}")); // claims it
        int before = _gated.Commits;
        var (first, held) = await FirstHeldAsync(ipam, id);
        var queued = Enumerable.Range(1, 10).Select(block => ipam.EndpointAsync(id, IpamCalls.Mac(200 + block), $"10.6.0.{16 * block + 2}")).ToList();
        var batch = _gated.HoldNextCommit();
        held.Release();
        await batch.Entered;
        Assert.Equal(8, batch.Ops.Count);
        batch.Release();

        Assert.Equal(Address(2), await first);
        Assert.Equal(Enumerable.Range(1, 10).Select(block => Address(16 * block + 2)), await Task.WhenAll(queued));
        Assert.Equal(4, _gated.Commits - before); // the first; eight blocks; the ninth on its own; the tenth
    }

    [Fact]
    public async Task A_batch_that_loses_its_version_check_re_reads_and_serves_everyone()
    {
        using var ipam = NodeA();
        string id = await PreparedPoolAsync(ipam);
        int before = _gated.Commits;
        var (firstCall, first) = await FirstHeldAsync(ipam, id);
        var queued = Enumerable.Range(2, 4).Select(n => ipam.EndpointAsync(id, IpamCalls.Mac(n))).ToList();
        var batch = _gated.HoldNextCommit();
        first.Release();
        await batch.Entered;
        Assert.Single(batch.Ops); // one Put for the block the four requests share
        // Someone else writes the block meanwhile (as a borrower or the collector would): the batch's check fails.
        var entry = (await _env.Store.GetAsync(Block0, None))!;
        await _env.Store.PutAsync(Block0, entry.Value, Precondition.VersionIs(entry.Version), false, None);
        batch.Release();

        Assert.Equal(Address(2), await firstCall);
        Assert.Equal(Enumerable.Range(3, 4).Select(Address), await Task.WhenAll(queued));
        Assert.Equal(3, _gated.Commits - before); // the first, the batch that lost, the batch again after a re-read
        Assert.Equal(5, (await ContainerSlotsAsync(Block0)).Count);
    }

    [Fact]
    public async Task A_batch_whose_answer_was_lost_is_recognised_by_its_token_and_nothing_is_applied_twice()
    {
        using var ipam = NodeA();
        string id = await PreparedPoolAsync(ipam);
        var (firstCall, first) = await FirstHeldAsync(ipam, id);
        var queued = Enumerable.Range(2, 4).Select(n => ipam.EndpointAsync(id, IpamCalls.Mac(n))).ToList();
        var batch = _gated.HoldNextCommit();
        first.Release();
        await batch.Entered;
        _flaky.LoseNextCommitAnswers = 1;
        batch.Release();

        Assert.Equal(Address(2), await firstCall);
        Assert.Equal(Enumerable.Range(3, 4).Select(Address), await Task.WhenAll(queued));
        Assert.Equal(Address(4), await ipam.EndpointAsync(id, IpamCalls.Mac(3))); // a retry finds its address
        Assert.Equal(Address(7), await ipam.EndpointAsync(id, IpamCalls.Mac(6)));
        Assert.Equal(6, (await ContainerSlotsAsync(Block0)).Count);
    }

    [Fact]
    public async Task When_the_store_goes_down_under_a_commit_the_queued_requests_go_to_the_journal_without_asking_it_again()
    {
        using var ipam = NodeA(journal: true);
        string id = await PreparedPoolAsync(ipam);
        var (first, held) = await FirstHeldAsync(ipam, id);
        var queued = Enumerable.Range(2, 4).Select(n => ipam.EndpointAsync(id, IpamCalls.Mac(n))).ToList();
        _flaky.Down = true;
        held.Release();

        var addresses = await Task.WhenAll([first, .. queued]);
        Assert.Equal(Enumerable.Range(2, 5).Select(Address), addresses.Order(StringComparer.Ordinal));
        Assert.Equal(2, _flaky.Refused); // the first request's commit and the check whether it applied; nothing after
        Assert.Equal(5, ipam.JournalLength);

        _flaky.Down = false;
        var replay = await ipam.ReplayJournalAsync(None);
        Assert.Equal(5, replay.Replayed);
        Assert.Empty(replay.Conflicts);
        Assert.Equal(5, (await ContainerSlotsAsync(Block0)).Count);
    }

    [Fact]
    public async Task A_batch_the_store_may_have_applied_before_it_went_away_keeps_its_addresses_through_the_journal()
    {
        using var ipam = NodeA(journal: true);
        string id = await PreparedPoolAsync(ipam);
        var (firstCall, first) = await FirstHeldAsync(ipam, id);
        var queued = Enumerable.Range(2, 4).Select(n => ipam.EndpointAsync(id, IpamCalls.Mac(n))).ToList();
        var batch = _gated.HoldNextCommit();
        first.Release();
        await batch.Entered;
        var later = ipam.EndpointAsync(id, IpamCalls.Mac(6));    // queued behind the batch's write
        _flaky.LoseNextCommitAnswers = 1;                         // the write applies, its answer is lost
        _flaky.DownAfterLostAnswer = true;                        // and nobody can ask whether it applied
        batch.Release();

        // Each member of the batch keeps the address the unseen write gave it; the later request gets the next one.
        Assert.Equal(Address(2), await firstCall);
        Assert.Equal(Enumerable.Range(3, 4).Select(Address), await Task.WhenAll(queued));
        Assert.Equal(Address(7), await later);
        Assert.Equal(5, ipam.JournalLength);

        // Written back: the four already in the store are left as they are, nothing conflicts, nothing is doubled.
        _flaky.Down = false;
        var replay = await ipam.ReplayJournalAsync(None);
        Assert.Empty(replay.Conflicts);
        Assert.Equal(Enumerable.Range(2, 6).ToDictionary(n => n, n => IpamCalls.Mac(n - 1)), await ContainerSlotsAsync(Block0));
    }

    [Fact]
    public async Task A_request_cancelled_while_queued_takes_no_address()
    {
        using var ipam = NodeA();
        string id = await PreparedPoolAsync(ipam);
        var (first, held) = await FirstHeldAsync(ipam, id);
        using var cancel = new CancellationTokenSource();
        var cancelled = ipam.RequestAddressAsync(new RequestAddressRequest
        {
            PoolID = id, Options = new() { [IpamLabels.MacAddress] = IpamCalls.Mac(2) },
        }, cancel.Token);
        var other = ipam.EndpointAsync(id, IpamCalls.Mac(3));
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        held.Release();

        Assert.Equal(Address(2), await first);
        Assert.Equal(Address(3), await other);
        Assert.Equal(new Dictionary<int, string> { [2] = IpamCalls.Mac(1), [3] = IpamCalls.Mac(3) }, await ContainerSlotsAsync(Block0));
    }

    [Fact]
    public async Task A_request_served_in_another_callers_batch_is_answered_at_once_not_after_the_next_lock_holder()
    {
        using var ipam = NodeA();
        string id = await PreparedPoolAsync(ipam);
        var (first, hold1) = await FirstHeldAsync(ipam, id);
        var second = ipam.EndpointAsync(id, IpamCalls.Mac(2));
        var aux = ipam.AuxAsync(id, "10.6.0.12");              // queued for the pool lock behind the second request
        using var cancel = new CancellationTokenSource();
        var third = ipam.RequestAddressAsync(new RequestAddressRequest { PoolID = id, Options = new() { [IpamLabels.MacAddress] = IpamCalls.Mac(3) } }, cancel.Token);
        var hold2 = _gated.HoldNextCommit();
        hold1.Release();
        await hold2.Entered;                                   // the second request's holder writes the second and the third
        var hold3 = _gated.HoldNextCommit();
        hold2.Release();
        await hold3.Entered;                                   // the aux request holds the lock now

        // The third caller has its answer although the lock is still held, and a cancellation after that loses nothing.
        Assert.Same(third, await Task.WhenAny(third, Task.Delay(TimeSpan.FromSeconds(10))));
        cancel.Cancel();
        Assert.Equal(Address(4), (await third).Address);
        Assert.Equal(Address(3), await second);
        hold3.Release();
        await aux;
        Assert.Equal(Address(2), await first);
    }
}
