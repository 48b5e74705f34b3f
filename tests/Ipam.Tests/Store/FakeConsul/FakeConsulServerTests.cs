using System.Net;
using System.Text;
using System.Text.Json.Nodes;

namespace Skein.Ipam.Tests.Store.FakeConsul;

/// <summary>
/// Pins the fake to the documented Consul behaviour (cluster-store §1) with raw HTTP, independently of
/// our client: if the fake drifted from the document, client tests passing against it would mean little.
/// </summary>
public sealed class FakeConsulServerTests : IAsyncLifetime
{
    private FakeConsulServer _server = null!;
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        _server = await FakeConsulServer.StartAsync();
        _http = new HttpClient { BaseAddress = _server.BaseAddress };
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _server.DisposeAsync();
    }

    private async Task<(HttpStatusCode Status, string Body, ulong Index)> Send(HttpMethod method, string path, string? body = null)
    {
        using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : new StringContent(body, Encoding.UTF8) };
        using var response = await _http.SendAsync(request);
        var index = response.Headers.TryGetValues("X-Consul-Index", out var values) ? ulong.Parse(values.First()) : 0;
        return (response.StatusCode, await response.Content.ReadAsStringAsync(), index);
    }

    [Fact]
    public async Task Missing_key_is_404_with_empty_body_and_an_index_header()
    {
        var (status, body, index) = await Send(HttpMethod.Get, "v1/kv/nope");
        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Equal("", body);
        Assert.True(index >= 1); // §1.2: never 0
    }

    [Fact]
    public async Task Found_key_index_is_its_modify_index_and_value_is_base64()
    {
        Assert.Equal("true", (await Send(HttpMethod.Put, "v1/kv/a/b", "hello")).Body);
        var (status, body, index) = await Send(HttpMethod.Get, "v1/kv/a/b");
        Assert.Equal(HttpStatusCode.OK, status);
        var entry = JsonNode.Parse(body)!.AsArray().Single()!;
        Assert.Equal(Convert.ToBase64String(Encoding.UTF8.GetBytes("hello")), entry["Value"]!.GetValue<string>());
        Assert.Equal(index, entry["ModifyIndex"]!.GetValue<ulong>());
    }

    [Fact]
    public async Task Cas_zero_creates_only_and_failure_is_200_false()
    {
        Assert.Equal("true", (await Send(HttpMethod.Put, "v1/kv/c?cas=0", "1")).Body);
        var (status, body, _) = await Send(HttpMethod.Put, "v1/kv/c?cas=0", "2");
        Assert.Equal((HttpStatusCode.OK, "false"), (status, body));
        Assert.Equal(HttpStatusCode.BadRequest, (await Send(HttpMethod.Put, "v1/kv/c?cas=1&acquire=x", "3")).Status);
    }

    [Fact]
    public async Task Cas_delete_of_a_missing_key_answers_true()
    {
        Assert.Equal("true", (await Send(HttpMethod.Delete, "v1/kv/never?cas=42")).Body);
        Assert.Equal(HttpStatusCode.BadRequest, (await Send(HttpMethod.Delete, "v1/kv/never?cas=1&recurse")).Status);
    }

    [Fact]
    public async Task Recursive_index_includes_tombstones_of_deleted_keys()
    {
        await Send(HttpMethod.Put, "v1/kv/p/a", "a");
        await Send(HttpMethod.Put, "v1/kv/p/b", "b");
        await Send(HttpMethod.Delete, "v1/kv/p/b");
        var (_, body, index) = await Send(HttpMethod.Get, "v1/kv/p/?recurse");
        var highestLive = JsonNode.Parse(body)!.AsArray().Max(e => e!["ModifyIndex"]!.GetValue<ulong>());
        Assert.True(index > highestLive);
    }

    [Fact]
    public async Task Txn_rollback_is_409_with_op_index_and_changes_nothing()
    {
        var ops = """[{"KV":{"Verb":"set","Key":"t/a","Value":"YQ=="}},{"KV":{"Verb":"check-not-exists","Key":"t/a"}}]""";
        var (status, body, _) = await Send(HttpMethod.Put, "v1/txn", ops);
        Assert.Equal(HttpStatusCode.Conflict, status);
        var parsed = JsonNode.Parse(body)!;
        Assert.Null(parsed["Results"]);
        Assert.Equal(1, parsed["Errors"]!.AsArray().Single()!["OpIndex"]!.GetValue<int>());
        Assert.Equal(HttpStatusCode.NotFound, (await Send(HttpMethod.Get, "v1/kv/t/a")).Status);

        var ok = await Send(HttpMethod.Put, "v1/txn", """[{"KV":{"Verb":"cas","Key":"t/a","Index":0,"Value":"YQ=="}},{"KV":{"Verb":"delete","Key":"t/none"}}]""");
        Assert.Equal(HttpStatusCode.OK, ok.Status);
        var results = JsonNode.Parse(ok.Body)!["Results"]!.AsArray();
        Assert.Single(results); // deletes produce no result element
        Assert.Null(results[0]!["KV"]!["Value"]);
    }

    [Fact]
    public async Task Session_ttl_below_ten_seconds_is_refused_and_renew_of_unknown_is_404()
    {
        var (status, body, _) = await Send(HttpMethod.Put, "v1/session/create", """{"TTL":"5s"}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("Invalid Session TTL", body);
        Assert.Equal(HttpStatusCode.NotFound, (await Send(HttpMethod.Put, "v1/session/renew/0b5e0b5e-0000-0000-0000-000000000000")).Status);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, (await Send(HttpMethod.Get, "v1/session/create")).Status);
    }

    [Fact]
    public async Task Acquire_with_an_unknown_session_is_500_and_lock_delay_blocks_reacquire()
    {
        var unknown = await Send(HttpMethod.Put, "v1/kv/l?acquire=0b5e0b5e-0000-0000-0000-000000000000", "x");
        Assert.Equal(HttpStatusCode.InternalServerError, unknown.Status);
        Assert.Contains("invalid session", unknown.Body);

        var id = JsonNode.Parse((await Send(HttpMethod.Put, "v1/session/create", """{"TTL":"10s","LockDelay":"15s"}""")).Body)!["ID"]!.GetValue<string>();
        Assert.Equal("true", (await Send(HttpMethod.Put, $"v1/kv/l?acquire={id}", "x")).Body);
        await Send(HttpMethod.Put, $"v1/session/destroy/{id}");
        var second = JsonNode.Parse((await Send(HttpMethod.Put, "v1/session/create", """{"TTL":"10s"}""")).Body)!["ID"]!.GetValue<string>();
        Assert.Equal("false", (await Send(HttpMethod.Put, $"v1/kv/l?acquire={second}", "x")).Body); // within the 15 s lock-delay
        _server.AdvanceClock(TimeSpan.FromSeconds(16));
        Assert.Equal("true", (await Send(HttpMethod.Put, $"v1/kv/l?acquire={second}", "x")).Body);
    }

    [Fact]
    public async Task Blocking_query_waits_for_a_change_and_returns_on_wait_timeout()
    {
        await Send(HttpMethod.Put, "v1/kv/b/k", "1");
        var index = (await Send(HttpMethod.Get, "v1/kv/b/?recurse")).Index;

        var blocked = Send(HttpMethod.Get, $"v1/kv/b/?recurse&index={index}&wait=10s");
        await Task.Delay(100);
        Assert.False(blocked.IsCompleted);
        await Send(HttpMethod.Put, "v1/kv/b/k", "2");
        var woken = await blocked.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.True(woken.Index > index);

        var timedOut = await Send(HttpMethod.Get, $"v1/kv/b/?recurse&index={woken.Index}&wait=200ms");
        Assert.Equal(woken.Index, timedOut.Index); // a return is not proof of change (§1.10)
    }

    [Fact]
    public async Task Token_is_checked_and_denials_are_plain_text_403()
    {
        _server.RequiredToken = "t0ken";
        var (status, body, _) = await Send(HttpMethod.Get, "v1/kv/x");
        Assert.Equal((HttpStatusCode.Forbidden, "Permission denied"), (status, body));
        using var request = new HttpRequestMessage(HttpMethod.Get, "v1/kv/x");
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", "t0ken");
        using var response = await _http.SendAsync(request);
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }
}
