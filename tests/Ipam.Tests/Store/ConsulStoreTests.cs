using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Skein.Ipam.Store;
using Skein.Ipam.Store.Consul;
using Skein.Ipam.Tests.Store.FakeConsul;

namespace Skein.Ipam.Tests.Store;

/// <summary>Client behaviour the conformance suite cannot see: wire format, auth, error tiers, retries, watch index rules, session TTL.</summary>
public sealed class ConsulStoreTests(FakeConsulFixture fixture) : IClassFixture<FakeConsulFixture>, IAsyncLifetime
{
    private readonly string _root = FakeConsulFixture.UniqueRoot();
    private ConsulStore _store = null!;
    private FakeConsulServer Server => fixture.Server;

    public Task InitializeAsync()
    {
        Server.RequiredToken = null;
        _store = fixture.Open(_root);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        Server.RequiredToken = null;
        await _store.DisposeAsync();
    }

    private static ReadOnlyMemory<byte> Bytes(string text) => Encoding.UTF8.GetBytes(text);

    [Fact]
    public async Task An_ephemeral_put_waits_out_the_lock_delay_of_the_previous_incarnations_session()
    {
        // A restart destroys the previous session and claims its keys at once; Consul refuses the acquire
        // during the lock-delay (§1.9), which skein keeps at 1 ms. Stretched here so the window is certain.
        Server.State.MinimumLockDelay = TimeSpan.FromMilliseconds(25);
        try
        {
            await using var previous = fixture.Open(_root);
            var old = await previous.StartLivenessAsync(new LivenessOptions(TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(5)), default);
            await previous.PutAsync("nodes/n1", "old"u8.ToArray(), Precondition.Absent, ephemeral: true, default);

            await using var liveness = await _store.StartLivenessAsync(new LivenessOptions(TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(5), PreviousId: old.Id), default);
            var claimed = await _store.PutAsync("nodes/n1", "new"u8.ToArray(), Precondition.Absent, ephemeral: true, default);
            Assert.Equal(WriteOutcome.Applied, claimed.Outcome);
        }
        finally
        {
            Server.State.MinimumLockDelay = TimeSpan.Zero;
        }
    }

    [Fact]
    public async Task A_transaction_of_ephemeral_puts_waits_out_the_lock_delay_too()
    {
        // Peer keys are published two at a time, in one transaction, right after a restart destroyed their session:
        // Consul refuses the lock while the keys are in their lock-delay (§1.9), answered here for the first attempt.
        await using var liveness = await _store.StartLivenessAsync(new LivenessOptions(TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(5)), default);
        Server.FailNext(1, HttpStatusCode.Conflict,
            $$"""{"Errors":[{"OpIndex":0,"What":"failed to lock key \"{{_root}}/peers/n/n1\", lock is already held"}],"Results":null}""",
            r => r.Path == "/v1/txn");
        var committed = await _store.CommitAsync(
        [
            new TxnOp.Put("peers/n/n1", "new"u8.ToArray(), Precondition.None, Ephemeral: true),
            new TxnOp.Put("peers/n/n1/e1", "new"u8.ToArray(), Precondition.None, Ephemeral: true),
        ], default);
        Assert.True(committed.Applied);
        Assert.Equal("new", Encoding.UTF8.GetString((await _store.GetAsync("peers/n/n1/e1", default))!.Value.Span));
    }

    private List<FakeConsulServer.RecordedRequest> RequestsUnderRoot() =>
        Server.Requests.Where(r => r.Path.Contains(_root) || r.Body.Contains(_root)).ToList();

    private Func<Microsoft.AspNetCore.Http.HttpRequest, bool> Mine(string method, string pathPart) =>
        r => r.Method == method && ((r.Path.Value ?? "").Contains(pathPart) || pathPart == "/v1/txn" && r.Path == "/v1/txn");

    [Fact]
    public async Task Token_goes_in_the_X_Consul_Token_header_only_and_never_into_errors()
    {
        Server.RequiredToken = "s3cret-token";
        await using var store = fixture.Open(_root, token: "s3cret-token");
        await store.PutAsync("k", Bytes("v"), Precondition.Absent, false, default);
        Assert.NotNull(await store.GetAsync("k", default));
        await using (await store.StartLivenessAsync(new LivenessOptions(TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(5)), default))
        {
        }

        var mine = Server.Requests.Where(r => r.TokenHeader is not null).ToList();
        Assert.Contains(mine, r => r.Path == "/v1/txn");
        Assert.Contains(mine, r => r.Path.StartsWith("/v1/session/create"));
        Assert.All(mine, r =>
        {
            Assert.Equal("s3cret-token", r.TokenHeader);
            Assert.DoesNotContain("token", r.Query);
        });

        await using var wrong = fixture.Open(_root, token: "wrong-token");
        var error = await Assert.ThrowsAsync<StoreAuthException>(() => wrong.GetAsync("k", default));
        Assert.Contains("403", error.Message);
        Assert.Contains("ACL not found", error.Message);
        Assert.DoesNotContain("wrong-token", error.Message);

        await using var none = fixture.Open(_root);
        var denied = await Assert.ThrowsAsync<StoreAuthException>(() => none.PutAsync("k", Bytes("v"), Precondition.None, false, default));
        Assert.Contains("Permission denied", denied.Message);
    }

    [Fact]
    public async Task Conditional_writes_go_through_txn_with_the_documented_body()
    {
        var created = await _store.PutAsync("pools/a", Bytes("{\"v\":1}"), Precondition.Absent, false, default);
        await _store.PutAsync("pools/a", Bytes("two"), Precondition.VersionIs(created.NewVersion), false, default);

        var txns = RequestsUnderRoot().Where(r => r.Path == "/v1/txn").ToList();
        Assert.Equal(2, txns.Count);
        Assert.Equal("PUT", txns[0].Method);
        var first = JsonNode.Parse(txns[0].Body)!.AsArray().Single()!["KV"]!;
        Assert.Equal("cas", first["Verb"]!.GetValue<string>());
        Assert.Equal($"{_root}/pools/a", first["Key"]!.GetValue<string>());
        Assert.Equal(0UL, first["Index"]!.GetValue<ulong>());
        Assert.Equal(Convert.ToBase64String(Encoding.UTF8.GetBytes("{\"v\":1}")), first["Value"]!.GetValue<string>());
        Assert.Null(first["Session"]);
        var second = JsonNode.Parse(txns[1].Body)!.AsArray().Single()!["KV"]!;
        Assert.Equal((ulong)created.NewVersion, second["Index"]!.GetValue<ulong>());
        Assert.DoesNotContain(RequestsUnderRoot(), r => r.Method == "PUT" && r.Path.StartsWith("/v1/kv/"));
    }

    [Fact]
    public async Task Session_is_created_as_documented_for_ephemeral_keys()
    {
        await using var liveness = await _store.StartLivenessAsync(new LivenessOptions(TimeSpan.FromSeconds(20), TimeSpan.FromSeconds(10), "skein n1 #7"), default);
        var create = Server.Requests.Last(r => r.Path == "/v1/session/create");
        var body = JsonNode.Parse(create.Body)!.AsObject();
        Assert.Equal("skein n1 #7", body["Name"]!.GetValue<string>());
        Assert.Equal("20s", body["TTL"]!.GetValue<string>());
        Assert.Equal("delete", body["Behavior"]!.GetValue<string>());
        Assert.Equal("1ms", body["LockDelay"]!.GetValue<string>());
        Assert.Empty(body["Checks"]!.AsArray());

        await _store.PutAsync("nodes/n1", Bytes("me"), Precondition.Absent, ephemeral: true, default);
        var txn = JsonNode.Parse(RequestsUnderRoot().Last(r => r.Path == "/v1/txn").Body)!.AsArray();
        Assert.Equal(["check-not-exists", "lock"], txn.Select(op => op!["KV"]!["Verb"]!.GetValue<string>()));
        Assert.Equal(liveness.Id, txn[1]!["KV"]!["Session"]!.GetValue<string>());
        var entry = await _store.GetAsync("nodes/n1", default);
        Assert.True(entry!.Ephemeral);
    }

    [Fact]
    public async Task Session_ttl_below_consuls_floor_is_refused_before_calling()
    {
        var error = await Assert.ThrowsAsync<ArgumentException>(() => _store.StartLivenessAsync(new LivenessOptions(TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(2)), default));
        Assert.Contains("10s", error.Message);
    }

    [Fact]
    public async Task Expired_session_takes_its_keys_and_is_recreated()
    {
        // Renewal far apart in real time, so only the manual clock decides expiry.
        var liveness = await _store.StartLivenessAsync(new LivenessOptions(TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(9)), default);
        var recreated = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        liveness.Recreated += (_, _) =>
        {
            recreated.TrySetResult();
            return Task.CompletedTask;
        };
        await _store.PutAsync("peers/net/n1", Bytes("p"), Precondition.None, ephemeral: true, default);
        await _store.PutAsync("peers/net/keep", Bytes("k"), Precondition.None, ephemeral: false, default);

        Server.AdvanceClock(TimeSpan.FromSeconds(15)); // within TTL × 2: Consul may still hold it (§1.8)
        Assert.NotNull(await _store.GetAsync("peers/net/n1", default));
        Server.AdvanceClock(TimeSpan.FromSeconds(10)); // past TTL × 2
        Assert.Null(await _store.GetAsync("peers/net/n1", default));
        Assert.NotNull(await _store.GetAsync("peers/net/keep", default));

        // A write with the dead session is refused and makes the liveness recreate at once.
        var oldId = liveness.Id;
        await Assert.ThrowsAsync<LivenessLostException>(() => _store.PutAsync("peers/net/n1", Bytes("p"), Precondition.None, ephemeral: true, default));
        await recreated.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(1, liveness.Generation);
        Assert.NotEqual(oldId, liveness.Id);
        Assert.Equal(WriteOutcome.Applied, (await _store.PutAsync("peers/net/n1", Bytes("p"), Precondition.None, ephemeral: true, default)).Outcome);
        await liveness.DisposeAsync();
        Assert.Null(await _store.GetAsync("peers/net/n1", default));
    }

    [Fact]
    public async Task A_failed_republication_is_retried_after_the_next_renewal()
    {
        var liveness = await _store.StartLivenessAsync(new LivenessOptions(TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(100)), default);
        var calls = 0;
        var republished = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        liveness.Recreated += async (_, ct) =>
        {
            if (Interlocked.Increment(ref calls) == 1)
                throw new StoreUnavailableException("store blinked during re-publication");
            await _store.PutAsync("nodes/n1", Bytes("again"), Precondition.None, ephemeral: true, ct);
            republished.TrySetResult(calls);
        };
        await _store.PutAsync("nodes/n1", Bytes("first"), Precondition.Absent, ephemeral: true, default);

        Server.DestroySession(liveness.Id);

        Assert.Equal(2, await republished.Task.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(1, liveness.Generation);
        Assert.Equal("again", Encoding.UTF8.GetString((await _store.GetAsync("nodes/n1", default))!.Value.Span));
        await liveness.DisposeAsync();
    }

    [Fact]
    public async Task Reads_retry_through_a_leader_election_and_then_succeed()
    {
        await _store.PutAsync("r/k", Bytes("v"), Precondition.None, false, default);
        Server.FailNext(2, HttpStatusCode.InternalServerError, "No cluster leader", Mine("GET", $"{_root}/r/k"));
        Assert.Equal("v", Encoding.UTF8.GetString((await _store.GetAsync("r/k", default))!.Value.Span));
        Assert.Equal(3, RequestsUnderRoot().Count(r => r.Method == "GET" && r.Path.EndsWith("/r/k")));
    }

    [Fact]
    public async Task Reads_give_up_after_bounded_attempts_with_a_clear_error()
    {
        Server.FailNext(10, HttpStatusCode.InternalServerError, "No cluster leader", Mine("GET", $"{_root}/r/gone"));
        var error = await Assert.ThrowsAsync<StoreUnavailableException>(() => _store.GetAsync("r/gone", default));
        Assert.Contains("No cluster leader", error.Message);
        Assert.Contains(Server.BaseAddress.ToString(), error.Message);
        Assert.Contains("500", error.Message);
        Assert.Equal(StoreHttpPolicy.Default.MaxAttempts, RequestsUnderRoot().Count(r => r.Path.EndsWith("/r/gone")));
    }

    [Fact]
    public async Task Writes_are_not_retried_after_an_ambiguous_failure()
    {
        Server.FailNext(1, HttpStatusCode.InternalServerError, "rpc error: timed out enqueuing operation", r => r.Path == "/v1/txn");
        var before = Server.Requests.Count(r => r.Path == "/v1/txn");
        var error = await Assert.ThrowsAsync<StoreUnavailableException>(() => _store.PutAsync("w/k", Bytes("v"), Precondition.Absent, false, default));
        Assert.Contains("timed out enqueuing", error.Message);
        Assert.Equal(1, Server.Requests.Count(r => r.Path == "/v1/txn") - before);
    }

    [Fact]
    public async Task A_write_whose_answer_is_lost_is_applied_once_and_visible_on_reread()
    {
        Server.ApplyThenDropNext(1, r => r.Path == "/v1/txn");
        await Assert.ThrowsAsync<StoreUnavailableException>(() => _store.PutAsync("amb/k", Bytes("w:n1/1/7"), Precondition.Absent, false, default));

        // The caller re-reads (cluster-store §4.3 writer token): the write happened, exactly once.
        var entry = await _store.GetAsync("amb/k", default);
        Assert.Equal("w:n1/1/7", Encoding.UTF8.GetString(entry!.Value.Span));
        Assert.Equal(entry.CreateVersion, entry.Version);
        var again = await _store.PutAsync("amb/k", Bytes("w:n1/1/7"), Precondition.Absent, false, default);
        Assert.Equal(WriteOutcome.Conflict, again.Outcome);
        Assert.Equal(entry.Version, again.Current!.Version);
    }

    [Fact]
    public async Task A_rate_limited_write_is_retried_because_it_was_never_applied()
    {
        Server.FailNext(1, HttpStatusCode.TooManyRequests, "rate limit exceeded", r => r.Path == "/v1/txn");
        var result = await _store.PutAsync("w/limited", Bytes("v"), Precondition.Absent, false, default);
        Assert.Equal(WriteOutcome.Applied, result.Outcome);
    }

    [Fact]
    public async Task A_token_that_cannot_read_the_whole_prefix_is_a_loud_configuration_error()
    {
        await _store.PutAsync("acl/visible", Bytes("v"), Precondition.None, false, default);
        await _store.PutAsync("acl/secret", Bytes("s"), Precondition.None, false, default);
        Server.HiddenByAcl = key => key.EndsWith("/acl/secret", StringComparison.Ordinal);
        try
        {
            var error = await Assert.ThrowsAsync<StoreAuthException>(() => _store.ListAsync("acl/", false, default));
            Assert.Contains("X-Consul-Results-Filtered-By-ACLs", error.Message);
            await Assert.ThrowsAsync<StoreAuthException>(async () =>
            {
                await foreach (var _ in _store.WatchPrefixAsync("acl/", new CancellationTokenSource(TimeSpan.FromSeconds(10)).Token))
                {
                }
            });
        }
        finally
        {
            Server.HiddenByAcl = null;
        }
    }

    [Fact]
    public async Task Refused_request_maps_to_StoreRejectedException()
    {
        var previous = Server.MaxTxnOps;
        Server.MaxTxnOps = 2;
        try
        {
            var error = await Assert.ThrowsAsync<StoreRejectedException>(() => _store.CommitAsync(
                [new TxnOp.Put("x/1", Bytes("1"), Precondition.None), new TxnOp.Put("x/2", Bytes("2"), Precondition.None), new TxnOp.Put("x/3", Bytes("3"), Precondition.None)], default));
            Assert.Contains("413", error.Message);
            Assert.Contains("too many operations", error.Message);
        }
        finally
        {
            Server.MaxTxnOps = previous;
        }
    }

    [Fact]
    public async Task A_404_without_consul_index_is_not_mistaken_for_a_missing_key()
    {
        var notConsul = new InterposingHandler { Override = _ => HttpStatusCode.NotFound };
        await using var store = new ConsulStore(new ConsulStoreOptions { BaseAddress = Server.BaseAddress, RootPrefix = _root, Handler = notConsul, WatchHandler = notConsul });
        var error = await Assert.ThrowsAsync<StoreRejectedException>(() => store.GetAsync("k", default));
        Assert.Contains("Consul agent", error.Message);
        await Assert.ThrowsAsync<StoreRejectedException>(() => store.ListAsync("", false, default));
    }

    [Fact]
    public async Task Unreachable_agent_fails_fast_naming_the_store()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop(); // nothing listens there now
        await using var store = new ConsulStore(new ConsulStoreOptions { BaseAddress = new Uri($"http://127.0.0.1:{port}/"), Http = new StoreHttpPolicy { RetryBaseDelay = TimeSpan.FromMilliseconds(10) } });
        var read = await Assert.ThrowsAsync<StoreUnavailableException>(() => store.GetAsync("k", default).WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.Contains($"127.0.0.1:{port}", read.Message);
        await Assert.ThrowsAsync<StoreUnavailableException>(() => store.PutAsync("k", Bytes("v"), Precondition.Absent, false, default).WaitAsync(TimeSpan.FromSeconds(20)));
    }

    [Fact]
    public async Task A_hanging_agent_hits_the_per_call_deadline()
    {
        await using var store = fixture.Open(_root, http: new StoreHttpPolicy { RequestTimeout = TimeSpan.FromMilliseconds(300), MaxAttempts = 2, RetryBaseDelay = TimeSpan.FromMilliseconds(10) });
        Server.DelayNext(2, TimeSpan.FromSeconds(30), Mine("GET", $"{_root}/slow"));
        var error = await Assert.ThrowsAsync<StoreUnavailableException>(() => store.GetAsync("slow", default).WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.Contains("no answer within", error.Message);
    }

    [Fact]
    public async Task Identical_rewrite_keeps_the_index_and_the_client_reports_it_truthfully()
    {
        var first = await _store.PutAsync("same", Bytes("v"), Precondition.None, false, default);
        var second = await _store.PutAsync("same", Bytes("v"), Precondition.None, false, default);
        var stored = await _store.GetAsync("same", default);
        Assert.Equal(stored!.Version, second.NewVersion);
        Assert.Equal(first.NewVersion, second.NewVersion); // §1.4: recent servers skip identical writes
    }

    [Fact]
    public async Task Watch_resnapshots_when_the_index_goes_backwards_after_a_restore()
    {
        await _store.PutAsync("net/a", Bytes("a"), Precondition.None, false, default);
        var snapshot = Server.State.TakeSnapshot();
        await _store.PutAsync("net/b", Bytes("b"), Precondition.None, false, default);

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var watch = _store.WatchPrefixAsync("net/", cts.Token).GetAsyncEnumerator(cts.Token);
        var first = Assert.IsType<WatchUpdate.Snapshot>(await WatchTestHelpers.NextAsync(watch));
        Assert.Equal(["net/a", "net/b"], first.Entries.Keys.Order());

        Server.State.Restore(snapshot); // net/b never happened, indexes go back
        var again = Assert.IsType<WatchUpdate.Snapshot>(await WatchTestHelpers.NextAsync(watch));
        Assert.Equal(["net/a"], again.Entries.Keys);
        Assert.True(again.Revision < first.Revision);

        await _store.PutAsync("net/c", Bytes("c"), Precondition.None, false, default);
        var upsert = Assert.IsType<WatchUpdate.Upsert>(await WatchTestHelpers.NextAsync(watch));
        Assert.Equal("net/c", upsert.Entry.Key);
    }

    [Fact]
    public async Task Watch_survives_reaped_tombstones_moving_the_prefix_index_back()
    {
        await _store.PutAsync("t/a", Bytes("a"), Precondition.None, false, default);
        await _store.PutAsync("t/b", Bytes("b"), Precondition.None, false, default);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var watch = _store.WatchPrefixAsync("t/", cts.Token).GetAsyncEnumerator(cts.Token);
        Assert.IsType<WatchUpdate.Snapshot>(await WatchTestHelpers.NextAsync(watch));
        await _store.DeleteAsync("t/b", Precondition.None, default);
        Assert.Equal("t/b", Assert.IsType<WatchUpdate.Removed>(await WatchTestHelpers.NextAsync(watch)).Key);

        Server.State.ReapTombstones();
        var resync = Assert.IsType<WatchUpdate.Snapshot>(await WatchTestHelpers.NextAsync(watch));
        Assert.Equal(["t/a"], resync.Entries.Keys);
    }

    [Fact]
    public async Task Watch_recovers_from_dropped_connections_and_errors_without_losing_changes()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var watch = _store.WatchPrefixAsync("d/", cts.Token).GetAsyncEnumerator(cts.Token);
        Assert.IsType<WatchUpdate.Snapshot>(await WatchTestHelpers.NextAsync(watch));

        Server.DropNext(1, Mine("GET", $"{_root}/d/"));
        Server.FailNext(1, HttpStatusCode.InternalServerError, "No cluster leader", Mine("GET", $"{_root}/d/"));
        await _store.PutAsync("d/1", Bytes("1"), Precondition.None, false, default);
        await _store.PutAsync("d/2", Bytes("2"), Precondition.None, false, default);

        var view = new Dictionary<string, string>();
        while (view.Count < 2)
        {
            switch (await WatchTestHelpers.NextAsync(watch))
            {
                case WatchUpdate.Snapshot s:
                    view = s.Entries.ToDictionary(e => e.Key, e => Encoding.UTF8.GetString(e.Value.Value.Span));
                    break;
                case WatchUpdate.Upsert u:
                    view[u.Entry.Key] = Encoding.UTF8.GetString(u.Entry.Value.Span);
                    break;
            }
        }
        Assert.Equal("1", view["d/1"]);
        Assert.Equal("2", view["d/2"]);
    }

    [Fact]
    public async Task Watch_coalesces_a_burst_of_writes_into_few_calls()
    {
        await using var store = new ConsulStore(new ConsulStoreOptions
        {
            BaseAddress = Server.BaseAddress,
            RootPrefix = _root,
            WatchWait = TimeSpan.FromSeconds(5),
            WatchMinInterval = TimeSpan.FromMilliseconds(250), // decisions #19
        });
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var watch = store.WatchPrefixAsync("burst/", cts.Token).GetAsyncEnumerator(cts.Token);
        Assert.IsType<WatchUpdate.Snapshot>(await WatchTestHelpers.NextAsync(watch));
        var callsBefore = RequestsUnderRoot().Count(r => r.Method == "GET" && r.Path.EndsWith("/burst/"));

        await store.CommitAsync(Enumerable.Range(0, 30).Select(i => (TxnOp)new TxnOp.Put($"burst/{i:d2}", Bytes("x"), Precondition.None)).ToList(), default);
        var seen = new HashSet<string>();
        while (seen.Count < 30)
        {
            if (await WatchTestHelpers.NextAsync(watch) is WatchUpdate.Upsert u)
                seen.Add(u.Entry.Key);
        }
        for (var i = 0; i < 10; i++)
            await store.PutAsync($"burst/{i:d2}", Bytes($"y{i}"), Precondition.None, false, default);
        var latest = new Dictionary<string, string>();
        while (!Enumerable.Range(0, 10).All(i => latest.GetValueOrDefault($"burst/{i:d2}") == $"y{i}"))
        {
            if (await WatchTestHelpers.NextAsync(watch) is WatchUpdate.Upsert u)
                latest[u.Entry.Key] = Encoding.UTF8.GetString(u.Entry.Value.Span);
        }
        var calls = RequestsUnderRoot().Count(r => r.Method == "GET" && r.Path.EndsWith("/burst/")) - callsBefore;
        Assert.True(calls < 11, $"{calls} blocking calls for 11 writes: no coalescing");
    }

    [Fact]
    public async Task Watch_index_is_never_zero_and_blocking_uses_the_last_index()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var watch = _store.WatchPrefixAsync("empty/", cts.Token).GetAsyncEnumerator(cts.Token);
        var snapshot = Assert.IsType<WatchUpdate.Snapshot>(await WatchTestHelpers.NextAsync(watch));
        Assert.Empty(snapshot.Entries);
        await _store.PutAsync("empty/x", Bytes("x"), Precondition.None, false, default);
        Assert.IsType<WatchUpdate.Upsert>(await WatchTestHelpers.NextAsync(watch));
        var watchCalls = RequestsUnderRoot().Where(r => r.Method == "GET" && r.Path.EndsWith("/empty/")).ToList();
        Assert.DoesNotContain("index=", watchCalls[0].Query);
        Assert.All(watchCalls.Skip(1), r => Assert.Matches(@"index=[1-9][0-9]*&wait=\d+ms", r.Query));
    }

    private static Task<WatchUpdate> StoreConformanceTests_NextAsync(IAsyncEnumerator<WatchUpdate> watch) => WatchTestHelpers.NextAsync(watch);
}

/// <summary>HTTPS to the agent with a private CA taken from CONSUL_CACERT, through the factory.</summary>
public sealed class ConsulTlsTests : IAsyncLifetime
{
    private readonly TempDirectory _dir = new("consul-tls");
    private FakeConsulServer _server = null!;
    private TestCertificates _certificates = null!;
    private string _caFile = null!;

    public async Task InitializeAsync()
    {
        _certificates = new TestCertificates(_dir.Path);
        _caFile = _certificates.CaFile;
        _server = await FakeConsulServer.StartAsync(_certificates.Server);
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        _certificates.Dispose();
        _dir.Dispose();
    }

    private string Url => $"consul+https://127.0.0.1:{_server.BaseAddress.Port}/tls/test";

    [Fact]
    public async Task Trusts_the_server_through_the_configured_ca_file()
    {
        var location = ClusterStoreFactory.Parse(Url, name => name == "CONSUL_CACERT" ? _caFile : null);
        await using var store = ConsulStore.Create(location);
        Assert.Equal(WriteOutcome.Applied, (await store.PutAsync("k", Encoding.UTF8.GetBytes("v"), Precondition.Absent, false, default)).Outcome);
        Assert.NotNull(await store.GetAsync("k", default));
    }

    [Fact]
    public async Task Refuses_a_server_it_cannot_verify()
    {
        var location = ClusterStoreFactory.Parse(Url, _ => null);
        await using var store = ConsulStore.Create(location);
        var error = await Assert.ThrowsAsync<StoreAuthException>(() => store.GetAsync("k", default));
        Assert.Contains("TLS certificate was not accepted", error.Message);
    }
}
