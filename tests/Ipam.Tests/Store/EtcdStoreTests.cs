using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Skein.Ipam.Store;
using Skein.Ipam.Store.Etcd;

namespace Skein.Ipam.Tests.Store;

/// <summary>etcd behaviour beyond the contract, against a real etcd 3.4: wire format, compaction, lease expiry, restart, auth.</summary>
public sealed class EtcdStoreTests(EtcdFixture fixture) : IClassFixture<EtcdFixture>
{
    private readonly string _root = FakeConsulFixture.UniqueRoot();

    private static ReadOnlyMemory<byte> Bytes(string text) => Encoding.UTF8.GetBytes(text);

    private static string Text(KvEntry? entry) => entry is null ? "<absent>" : Encoding.UTF8.GetString(entry.Value.Span);

    private EtcdStore Open(InterposingHandler? handler = null, InterposingHandler? watchHandler = null, EtcdServer? server = null, string? user = null, string? password = null, StoreHttpPolicy? http = null)
    {
        Skip.If(fixture.Server is null, EtcdServer.SkipReason);
        return new EtcdStore(new EtcdStoreOptions
        {
            BaseAddress = (server ?? fixture.Server)!.BaseAddress,
            RootPrefix = _root,
            User = user,
            Password = password,
            Handler = handler,
            WatchHandler = watchHandler,
            WatchRetryMaxDelay = TimeSpan.FromMilliseconds(300),
            Http = http ?? new StoreHttpPolicy { RequestTimeout = TimeSpan.FromSeconds(5), RetryBaseDelay = TimeSpan.FromMilliseconds(20) },
        });
    }

    private static async Task<string> PostAsync(Uri server, string path, string json, string? token = null)
    {
        using var http = new HttpClient { BaseAddress = server };
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        if (token is not null)
            request.Headers.TryAddWithoutValidation("Authorization", token);
        using var response = await http.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"{path}: {(int)response.StatusCode} {body}");
        return body;
    }

    private static string B64(string text) => Convert.ToBase64String(Encoding.UTF8.GetBytes(text));

    [SkippableFact]
    public async Task Request_bodies_use_the_gateway_field_names()
    {
        var handler = new InterposingHandler();
        await using var store = Open(handler);
        await using (var liveness = await store.StartLivenessAsync(new LivenessOptions(TimeSpan.FromSeconds(15), TimeSpan.FromSeconds(5)), default))
        {
            await store.PutAsync("k", Bytes("v"), Precondition.Absent, ephemeral: true, default);
            var grant = JsonNode.Parse(handler.Requests.Single(r => r.Path == "/v3/lease/grant").Body)!.AsObject();
            Assert.Equal("15", grant["TTL"]!.GetValue<string>()); // "ttl" would be silently ignored (§2.2)
            var txn = JsonNode.Parse(handler.Requests.Last(r => r.Path == "/v3/kv/txn").Body)!.AsObject();
            var compare = txn["compare"]!.AsArray().Single()!;
            Assert.Equal("CREATE", compare["target"]!.GetValue<string>());
            Assert.Equal("EQUAL", compare["result"]!.GetValue<string>());
            Assert.Equal("0", compare["create_revision"]!.GetValue<string>());
            Assert.Equal(B64($"{_root}/k"), compare["key"]!.GetValue<string>());
            var put = txn["success"]!.AsArray().Single()!["request_put"]!;
            Assert.Equal(B64("v"), put["value"]!.GetValue<string>());
            Assert.Equal(liveness.Id, put["lease"]!.GetValue<string>());
            Assert.Equal(B64($"{_root}/k"), txn["failure"]!.AsArray().Single()!["request_range"]!["key"]!.GetValue<string>());
        }
    }

    [SkippableFact]
    public async Task Ephemeral_update_keeps_the_key_on_its_lease()
    {
        await using var store = Open();
        await using var liveness = await store.StartLivenessAsync(new LivenessOptions(TimeSpan.FromSeconds(15), TimeSpan.FromSeconds(5)), default);
        var created = await store.PutAsync("e", Bytes("1"), Precondition.Absent, ephemeral: true, default);
        await store.PutAsync("e", Bytes("2"), Precondition.VersionIs(created.NewVersion), ephemeral: true, default);
        await store.PutAsync("e", Bytes("3"), Precondition.None, ephemeral: true, default);
        Assert.True((await store.GetAsync("e", default))!.Ephemeral);
        await liveness.DisposeAsync();
        Assert.Null(await store.GetAsync("e", default));
    }

    [SkippableFact]
    public async Task Expired_lease_removes_keys_and_is_recreated_when_keepalives_return()
    {
        var handler = new InterposingHandler();
        await using var store = Open(handler);
        var liveness = await store.StartLivenessAsync(new LivenessOptions(TimeSpan.FromSeconds(2), TimeSpan.FromMilliseconds(300)), default);
        var republished = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        liveness.Recreated += async (_, ct) =>
        {
            await store.PutAsync("peer", Bytes("back"), Precondition.Absent, ephemeral: true, ct);
            republished.TrySetResult();
        };
        await store.PutAsync("peer", Bytes("first"), Precondition.Absent, ephemeral: true, default);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var watch = store.WatchPrefixAsync("", cts.Token).GetAsyncEnumerator(cts.Token);
        Assert.Single(Assert.IsType<WatchUpdate.Snapshot>(await WatchTestHelpers.NextAsync(watch)).Entries);

        handler.Override = path => path == "/v3/lease/keepalive" ? HttpStatusCode.ServiceUnavailable : null; // keepalives lost
        Assert.Equal("peer", Assert.IsType<WatchUpdate.Removed>(await WatchTestHelpers.NextAsync(watch)).Key);
        Assert.Null(await store.GetAsync("peer", default));

        handler.Override = null;
        await republished.Task.WaitAsync(TimeSpan.FromSeconds(15));
        Assert.Equal(1, liveness.Generation);
        Assert.Equal("back", Text(Assert.IsType<WatchUpdate.Upsert>(await WatchTestHelpers.NextAsync(watch)).Entry));
        await liveness.DisposeAsync();
    }

    [SkippableFact]
    public async Task Put_on_a_revoked_lease_reports_liveness_lost_and_triggers_recreation()
    {
        await using var store = Open();
        var liveness = await store.StartLivenessAsync(new LivenessOptions(TimeSpan.FromSeconds(15), TimeSpan.FromSeconds(14)), default);
        var recreated = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        liveness.Recreated += (_, _) =>
        {
            recreated.TrySetResult();
            return Task.CompletedTask;
        };
        await fixture.RevokeLeaseAsync(liveness.Id);
        var error = await Assert.ThrowsAsync<LivenessLostException>(() => store.PutAsync("x", Bytes("x"), Precondition.None, ephemeral: true, default));
        Assert.Contains("lease not found", error.Message);
        await recreated.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(WriteOutcome.Applied, (await store.PutAsync("x", Bytes("x"), Precondition.None, ephemeral: true, default)).Outcome);
        await liveness.DisposeAsync();
    }

    [SkippableFact]
    public async Task Watch_resumes_after_a_dropped_stream_without_losing_or_repeating_events()
    {
        var watchHandler = new InterposingHandler();
        await using var store = Open(watchHandler: watchHandler);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var watch = store.WatchPrefixAsync("r/", cts.Token).GetAsyncEnumerator(cts.Token);
        Assert.IsType<WatchUpdate.Snapshot>(await WatchTestHelpers.NextAsync(watch));
        await store.PutAsync("r/0", Bytes("0"), Precondition.None, false, default);
        Assert.Equal("r/0", Assert.IsType<WatchUpdate.Upsert>(await WatchTestHelpers.NextAsync(watch)).Entry.Key);

        watchHandler.Pause();
        for (var i = 1; i <= 5; i++)
            await store.PutAsync($"r/{i}", Bytes($"{i}"), Precondition.None, false, default);
        await store.DeleteAsync("r/0", Precondition.None, default);
        watchHandler.Resume();

        var seen = new List<string>();
        while (seen.Count < 6)
        {
            switch (await WatchTestHelpers.NextAsync(watch))
            {
                case WatchUpdate.Upsert u: seen.Add(u.Entry.Key); break;
                case WatchUpdate.Removed r: seen.Add("-" + r.Key); break;
                case WatchUpdate.Snapshot: Assert.Fail("resume within retained history must not re-snapshot"); break;
            }
        }
        Assert.Equal(["r/1", "r/2", "r/3", "r/4", "r/5", "-r/0"], seen);
    }

    [SkippableFact]
    public async Task Watch_resnapshots_when_the_revision_it_needs_was_compacted()
    {
        var watchHandler = new InterposingHandler();
        await using var store = Open(watchHandler: watchHandler);
        await store.PutAsync("c/old", Bytes("old"), Precondition.None, false, default);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var watch = store.WatchPrefixAsync("c/", cts.Token).GetAsyncEnumerator(cts.Token);
        Assert.IsType<WatchUpdate.Snapshot>(await WatchTestHelpers.NextAsync(watch));

        watchHandler.Pause();
        await store.DeleteAsync("c/old", Precondition.None, default);
        var last = await store.PutAsync("c/new", Bytes("new"), Precondition.None, false, default);
        await store.PutAsync("c/new", Bytes("newer"), Precondition.None, false, default);
        await PostAsync(fixture.Server!.BaseAddress, "v3/kv/compaction", $"{{\"revision\":\"{last.NewVersion + 1}\",\"physical\":true}}");
        watchHandler.Resume();

        var snapshot = Assert.IsType<WatchUpdate.Snapshot>(await WatchTestHelpers.NextAsync(watch));
        Assert.Equal(["c/new"], snapshot.Entries.Keys);
        Assert.Equal("newer", Text(snapshot.Entries["c/new"]));
        await store.PutAsync("c/after", Bytes("a"), Precondition.None, false, default);
        Assert.Equal("c/after", Assert.IsType<WatchUpdate.Upsert>(await WatchTestHelpers.NextAsync(watch)).Entry.Key);
    }

    [SkippableFact]
    public async Task Reads_retry_a_503_and_give_up_with_a_clear_error()
    {
        var handler = new InterposingHandler();
        await using var store = Open(handler);
        handler.Override = path => path == "/v3/kv/range" ? HttpStatusCode.ServiceUnavailable : null;
        var error = await Assert.ThrowsAsync<StoreUnavailableException>(() => store.GetAsync("x", default));
        Assert.Contains("503", error.Message);
        Assert.Contains(fixture.Server!.BaseAddress.ToString(), error.Message);
        Assert.Equal(StoreHttpPolicy.Default.MaxAttempts, handler.Requests.Count(r => r.Path == "/v3/kv/range"));
        var writes = handler.Requests.Count(r => r.Path == "/v3/kv/put");
        handler.Override = path => path == "/v3/kv/put" ? HttpStatusCode.ServiceUnavailable : null;
        await Assert.ThrowsAsync<StoreUnavailableException>(() => store.PutAsync("x", Bytes("x"), Precondition.None, false, default));
        Assert.Equal(writes + 1, handler.Requests.Count(r => r.Path == "/v3/kv/put")); // an unconditional put is not retried
    }

    [SkippableFact]
    public async Task Server_restart_fails_calls_fast_then_recovers_with_data_and_watch_intact()
    {
        Skip.If(fixture.Server is null, EtcdServer.SkipReason);
        await using var server = await EtcdServer.StartAsync();
        await using var store = Open(server: server, http: new StoreHttpPolicy { RequestTimeout = TimeSpan.FromSeconds(2), RetryBaseDelay = TimeSpan.FromMilliseconds(20) });
        await store.PutAsync("s/kept", Bytes("kept"), Precondition.Absent, false, default);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await using var watch = store.WatchPrefixAsync("s/", cts.Token).GetAsyncEnumerator(cts.Token);
        var view = Assert.IsType<WatchUpdate.Snapshot>(await WatchTestHelpers.NextAsync(watch)).Entries.Keys.ToHashSet();

        await server.StopAsync();
        var down = await Assert.ThrowsAsync<StoreUnavailableException>(() => store.GetAsync("s/kept", default).WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.Contains(server.BaseAddress.ToString(), down.Message);
        await Assert.ThrowsAsync<StoreUnavailableException>(() => store.PutAsync("s/x", Bytes("x"), Precondition.Absent, false, default).WaitAsync(TimeSpan.FromSeconds(20)));

        await server.RestartAsync();
        Assert.Equal("kept", Text(await store.GetAsync("s/kept", default)));
        await store.PutAsync("s/after", Bytes("after"), Precondition.Absent, false, default);
        while (!view.Contains("s/after"))
        {
            switch (await WatchTestHelpers.NextAsync(watch))
            {
                case WatchUpdate.Snapshot s: view = [.. s.Entries.Keys]; break;
                case WatchUpdate.Upsert u: view.Add(u.Entry.Key); break;
            }
        }
        Assert.Contains("s/kept", view);
    }

    [SkippableFact]
    public async Task Auth_uses_a_token_refreshes_it_and_reports_denials_without_secrets()
    {
        Skip.If(fixture.Server is null, EtcdServer.SkipReason);
        await using var server = await EtcdServer.StartAsync("--auth-token", "simple", "--auth-token-ttl", "1");
        var prefix = $"{_root}/";
        await PostAsync(server.BaseAddress, "v3/auth/user/add", "{\"name\":\"root\",\"password\":\"root-pw\"}");
        try { await PostAsync(server.BaseAddress, "v3/auth/role/add", "{\"name\":\"root\"}"); } catch (Xunit.Sdk.XunitException) { }
        await PostAsync(server.BaseAddress, "v3/auth/user/grant", "{\"user\":\"root\",\"role\":\"root\"}");
        await PostAsync(server.BaseAddress, "v3/auth/role/add", "{\"name\":\"skein\"}");
        await PostAsync(server.BaseAddress, "v3/auth/role/grant",
            $"{{\"name\":\"skein\",\"perm\":{{\"permType\":\"READWRITE\",\"key\":\"{B64(prefix)}\",\"range_end\":\"{B64(prefix[..^1] + "0")}\"}}}}");
        await PostAsync(server.BaseAddress, "v3/auth/user/add", "{\"name\":\"skein\",\"password\":\"skein-pw\"}");
        await PostAsync(server.BaseAddress, "v3/auth/user/grant", "{\"user\":\"skein\",\"role\":\"skein\"}");
        await PostAsync(server.BaseAddress, "v3/auth/enable", "{}");

        await using var store = Open(server: server, user: "skein", password: "skein-pw");
        await store.PutAsync("a", Bytes("1"), Precondition.Absent, false, default);
        Assert.Equal("1", Text(await store.GetAsync("a", default)));
        await using (var liveness = await store.StartLivenessAsync(new LivenessOptions(TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(2)), default))
            await store.PutAsync("eph", Bytes("e"), Precondition.None, ephemeral: true, default);

        await Task.Delay(TimeSpan.FromSeconds(2.5)); // the simple token expires after 1 s idle: the next call re-authenticates
        Assert.Equal("1", Text(await store.GetAsync("a", default)));

        await using var anonymous = Open(server: server);
        var noUser = await Assert.ThrowsAsync<StoreAuthException>(() => anonymous.GetAsync("a", default));
        Assert.Contains("user name is empty", noUser.Message);

        await using var wrong = Open(server: server, user: "skein", password: "not-the-password");
        var badPassword = await Assert.ThrowsAsync<StoreAuthException>(() => wrong.GetAsync("a", default));
        Assert.DoesNotContain("not-the-password", badPassword.Message);

        await using var outside = new EtcdStore(new EtcdStoreOptions { BaseAddress = server.BaseAddress, RootPrefix = "elsewhere", User = "skein", Password = "skein-pw" });
        var denied = await Assert.ThrowsAsync<StoreAuthException>(() => outside.PutAsync("a", Bytes("x"), Precondition.None, false, default));
        Assert.Contains("permission denied", denied.Message);
        Assert.DoesNotContain("skein-pw", denied.Message);
    }

    [SkippableFact]
    public async Task Large_prefixes_are_read_in_pages_at_one_revision()
    {
        Skip.If(fixture.Server is null, EtcdServer.SkipReason);
        await using var store = new EtcdStore(new EtcdStoreOptions { BaseAddress = fixture.Server!.BaseAddress, RootPrefix = _root, RangePageSize = 7 });
        for (var chunk = 0; chunk < 3; chunk++)
            await store.CommitAsync(Enumerable.Range(chunk * 20, 20).Select(i => (TxnOp)new TxnOp.Put($"p/{i:d3}", Bytes($"{i}"), Precondition.None)).ToList(), default);
        var (entries, revision) = await store.ListAsync("p/", keysOnly: false, default);
        Assert.Equal(60, entries.Count);
        Assert.Equal(Enumerable.Range(0, 60).Select(i => $"p/{i:d3}"), entries.Select(e => e.Key));
        Assert.True(revision >= entries.Max(e => e.Version));
    }

    [SkippableFact]
    public async Task Tls_with_ca_and_client_certificate_from_the_environment()
    {
        Skip.If(fixture.Server is null, EtcdServer.SkipReason);
        using var dir = new TempDirectory("etcd-tls");
        using var certificates = new TestCertificates(dir.Path);
        await using var server = await EtcdServer.StartAsync(certificates);
        var url = $"etcd+https://127.0.0.1:{server.ClientPort}/tls/test";

        var env = new Dictionary<string, string> { ["ETCDCTL_CACERT"] = certificates.CaFile, ["ETCDCTL_CERT"] = certificates.ClientCertFile, ["ETCDCTL_KEY"] = certificates.ClientKeyFile };
        await using (var store = await ClusterStoreFactory.OpenAsync(url, dir.Path, environment: name => env.GetValueOrDefault(name)))
        {
            Assert.Equal(WriteOutcome.Applied, (await store.PutAsync("k", Bytes("v"), Precondition.Absent, false, default)).Outcome);
            Assert.Equal("v", Text(await store.GetAsync("k", default)));
        }

        env.Remove("ETCDCTL_CERT");
        env.Remove("ETCDCTL_KEY");
        await using (var noClientCert = await ClusterStoreFactory.OpenAsync(url, dir.Path, environment: name => env.GetValueOrDefault(name)))
            await Assert.ThrowsAsync<StoreUnavailableException>(() => noClientCert.GetAsync("k", default));

        await using (var untrusted = await ClusterStoreFactory.OpenAsync(url, dir.Path, environment: _ => null))
        {
            var error = await Assert.ThrowsAsync<StoreAuthException>(() => untrusted.GetAsync("k", default));
            Assert.Contains("TLS certificate was not accepted", error.Message);
        }
    }
}
