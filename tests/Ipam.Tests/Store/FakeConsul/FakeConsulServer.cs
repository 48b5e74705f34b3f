using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Skein.Ipam.Tests.Store.FakeConsul;

/// <summary>
/// An in-test Consul agent: the HTTP API subset of cluster-store.md §1 (KV, /v1/txn, sessions,
/// blocking queries, ACL token check, status codes and bodies of §1.12), written from that document
/// and not from our client, on Kestrel at 127.0.0.1 with a free port. Session time runs on a
/// <see cref="ManualClock"/>; blocking waits run in real time (tests use short waits). Fault
/// injection covers the cases of §4.15: failures with a given status, dropped connections, slow
/// answers, tombstone reaping and snapshot restores (index going backwards).
/// </summary>
public sealed class FakeConsulServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly List<Fault> _faults = [];
    private readonly List<RecordedRequest> _requests = [];

    public sealed record RecordedRequest(string Method, string Path, string Query, string? TokenHeader, string? Authorization, string Body);

    private sealed class Fault(Func<HttpRequest, bool> match, int remaining, Func<HttpContext, Task> action)
    {
        public Func<HttpRequest, bool> Match { get; } = match;
        public int Remaining { get; set; } = remaining;
        public Func<HttpContext, Task> Action { get; } = action;
    }

    private FakeConsulServer(WebApplication app, ManualClock clock, FakeConsulState? state = null)
    {
        _app = app;
        Clock = clock;
        State = state ?? new FakeConsulState(clock);
    }

    public ManualClock Clock { get; }
    public FakeConsulState State { get; }
    public Uri BaseAddress { get; private set; } = null!;

    /// <summary>When set, every request needs this token (X-Consul-Token, Bearer, or the deprecated ?token=).</summary>
    public string? RequiredToken { get; set; }

    /// <summary>128 from Consul 1.14 on, 64 before (§1.7).</summary>
    public int MaxTxnOps { get; set; } = 128;

    /// <summary>kv_max_value_size, default 512 KiB (§1.4).</summary>
    public int MaxValueBytes { get; set; } = 512 * 1024;

    public IReadOnlyList<RecordedRequest> Requests
    {
        get { lock (_requests) return _requests.ToList(); }
    }

    /// <summary>Keys the configured token may not read: recursive reads drop them and say so in a header (§1.2).</summary>
    public Func<string, bool>? HiddenByAcl { get; set; }

    /// <param name="tls">Serve HTTPS with this certificate (the agent's ports.https listener, §1.1).</param>
    public static async Task<FakeConsulServer> StartAsync(System.Security.Cryptography.X509Certificates.X509Certificate2? tls = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0, listen =>
        {
            if (tls is not null)
                listen.UseHttps(tls);
        }));
        var app = builder.Build();
        var server = new FakeConsulServer(app, new ManualClock());
        app.Run(server.HandleAsync);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        server.BaseAddress = new Uri(address.EndsWith('/') ? address : address + "/");
        return server;
    }

    /// <summary>
    /// Serves plain HTTP on <paramref name="endpoint"/> through a listening socket the caller creates and
    /// binds (for instance inside another network namespace); Kestrel owns and closes that socket.
    /// </summary>
    /// <param name="resume">The state (and clock) of an earlier server to serve again, as a restarted Consul agent serves its raft data.</param>
    public static async Task<FakeConsulServer> StartAsync(IPEndPoint endpoint, Func<EndPoint, System.Net.Sockets.Socket> createBoundListenSocket,
        FakeConsulServer? resume = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseSockets(sockets => sockets.CreateBoundListenSocket = createBoundListenSocket);
        builder.WebHost.UseKestrel(k => k.Listen(endpoint));
        var app = builder.Build();
        var server = resume is null ? new FakeConsulServer(app, new ManualClock()) : new FakeConsulServer(app, resume.Clock, resume.State);
        app.Run(server.HandleAsync);
        await app.StartAsync();
        server.BaseAddress = new Uri($"http://{endpoint}/");
        return server;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    // ---- fault injection -----------------------------------------------------------------------

    /// <summary>The next <paramref name="count"/> matching requests get this status and plain-text body.</summary>
    public void FailNext(int count, HttpStatusCode status, string body, Func<HttpRequest, bool>? match = null) =>
        AddFault(match, count, async ctx =>
        {
            ctx.Response.StatusCode = (int)status;
            ctx.Response.ContentType = "text/plain; charset=utf-8";
            await ctx.Response.WriteAsync(body);
        });

    /// <summary>The next matching requests lose their connection without an answer.</summary>
    public void DropNext(int count, Func<HttpRequest, bool>? match = null) =>
        AddFault(match, count, ctx =>
        {
            ctx.Abort();
            return Task.CompletedTask;
        });

    /// <summary>The next matching requests are carried out, but the connection drops before the answer leaves (an ambiguous failure).</summary>
    public void ApplyThenDropNext(int count, Func<HttpRequest, bool>? match = null) =>
        AddFault(match, count, async ctx =>
        {
            var original = ctx.Response.Body;
            ctx.Response.Body = new MemoryStream(); // the answer goes nowhere
            await ServeAsync(ctx);
            ctx.Response.Body = original;
            ctx.Abort();
        });

    /// <summary>The next matching requests are answered normally, but only after a delay.</summary>
    public void DelayNext(int count, TimeSpan delay, Func<HttpRequest, bool>? match = null) =>
        AddFault(match, count, async ctx =>
        {
            await Task.Delay(delay, ctx.RequestAborted);
            await ServeAsync(ctx);
        });

    private void AddFault(Func<HttpRequest, bool>? match, int count, Func<HttpContext, Task> action)
    {
        lock (_faults)
            _faults.Add(new Fault(match ?? (_ => true), count, action));
    }

    /// <summary>Invalidates a session from the server side, as when its node fails (§1.8).</summary>
    public void DestroySession(string id)
    {
        lock (State.Gate)
            State.InvalidateSession(id);
    }

    /// <summary>Moves session time forward and reaps what expired.</summary>
    public void AdvanceClock(TimeSpan by)
    {
        Clock.Advance(by);
        lock (State.Gate)
            State.ReapExpiredSessions();
    }

    // ---- dispatch ------------------------------------------------------------------------------

    private async Task HandleAsync(HttpContext ctx)
    {
        var request = ctx.Request;
        request.EnableBuffering();
        var body = request.Path.StartsWithSegments("/v1/txn") || request.Path.StartsWithSegments("/v1/session")
            ? await new StreamReader(request.Body, Encoding.UTF8, leaveOpen: true).ReadToEndAsync(ctx.RequestAborted)
            : "";
        request.Body.Position = 0;
        lock (_requests)
            _requests.Add(new RecordedRequest(request.Method, request.Path.Value ?? "", request.QueryString.Value ?? "",
                request.Headers["X-Consul-Token"].FirstOrDefault(), request.Headers.Authorization.FirstOrDefault(), body));

        Fault? fault = null;
        lock (_faults)
        {
            fault = _faults.FirstOrDefault(f => f.Remaining > 0 && f.Match(request));
            if (fault is not null && --fault.Remaining == 0)
                _faults.Remove(fault);
        }
        if (fault is not null)
        {
            await fault.Action(ctx);
            return;
        }
        await ServeAsync(ctx);
    }

    private async Task ServeAsync(HttpContext ctx)
    {
        try
        {
            if (!Authorized(ctx.Request, out var denial))
            {
                await TextAsync(ctx, HttpStatusCode.Forbidden, denial);
                return;
            }
            lock (State.Gate)
                State.ReapExpiredSessions();

            var path = ctx.Request.Path.Value ?? "";
            var method = ctx.Request.Method;
            if (path.StartsWith("/v1/kv/", StringComparison.Ordinal) || path == "/v1/kv")
            {
                var key = path.Length > "/v1/kv/".Length ? path["/v1/kv/".Length..] : "";
                switch (method)
                {
                    case "GET": await KvGetAsync(ctx, key); return;
                    case "PUT": await KvPutAsync(ctx, key); return;
                    case "DELETE": await KvDeleteAsync(ctx, key); return;
                }
                await MethodNotAllowedAsync(ctx, "GET, PUT, DELETE");
                return;
            }
            if (path == "/v1/txn")
            {
                if (method != "PUT")
                {
                    await MethodNotAllowedAsync(ctx, "PUT");
                    return;
                }
                await TxnAsync(ctx);
                return;
            }
            if (path.StartsWith("/v1/session/", StringComparison.Ordinal))
            {
                await SessionAsync(ctx, path["/v1/session/".Length..]);
                return;
            }
            await TextAsync(ctx, HttpStatusCode.NotFound, $"Invalid URL path: not a recognized HTTP API endpoint");
        }
        catch (BadRequest e)
        {
            await TextAsync(ctx, HttpStatusCode.BadRequest, e.Message);
        }
    }

    private sealed class BadRequest(string message) : Exception(message);

    private bool Authorized(HttpRequest request, out string denial)
    {
        denial = "";
        if (RequiredToken is null)
            return true;
        string? token = request.Headers["X-Consul-Token"].FirstOrDefault();
        var authorization = request.Headers.Authorization.FirstOrDefault();
        if (token is null && authorization is not null && authorization.StartsWith("Bearer ", StringComparison.Ordinal))
            token = authorization["Bearer ".Length..];
        token ??= request.Query["token"].FirstOrDefault();
        if (token is null)
        {
            denial = "Permission denied"; // the anonymous token may do nothing here
            return false;
        }
        if (token != RequiredToken)
        {
            denial = "ACL not found";
            return false;
        }
        return true;
    }

    // ---- KV: GET (§1.3, §1.10) ---------------------------------------------------------------

    private async Task KvGetAsync(HttpContext ctx, string key)
    {
        var query = ctx.Request.Query;
        var recurse = query.ContainsKey("recurse");
        var keysOnly = query.ContainsKey("keys");
        var separator = query["separator"].FirstOrDefault() ?? query["seperator"].FirstOrDefault();
        if (query.ContainsKey("stale") && query.ContainsKey("consistent"))
            throw new BadRequest("Cannot specify ?stale with ?consistent, conflicting semantics.");
        if (key.Length == 0 && !recurse && !keysOnly)
            throw new BadRequest("Missing key name");
        var minIndex = ParseIndex(query["index"].FirstOrDefault());
        var wait = ParseWait(query["wait"].FirstOrDefault());

        var deadline = DateTime.UtcNow + wait + TimeSpan.FromMilliseconds(Random.Shared.NextDouble() * wait.TotalMilliseconds / 16);
        while (true)
        {
            Task changed;
            ulong index;
            List<FakeKv> entries;
            lock (State.Gate)
            {
                changed = State.Changed;
                if (recurse || keysOnly)
                {
                    entries = State.Under(key).ToList();
                    index = State.PrefixIndex(key);
                    if (HiddenByAcl is { } hidden && entries.RemoveAll(kv => hidden(kv.Key)) > 0)
                        ctx.Response.Headers["X-Consul-Results-Filtered-By-ACLs"] = "true";
                }
                else
                {
                    entries = State.Kvs.TryGetValue(key, out var kv) ? [kv] : [];
                    index = entries.Count > 0 ? entries[0].ModifyIndex : State.KvsTableIndex;
                }
            }
            index = Math.Max(index, 1); // never 0 (§1.2)
            // Block while nothing newer than the client's index exists (§1.10); index 0 never blocks.
            // An index below the client's (a restore, reaped tombstones) is answered at once.
            if (minIndex > 0 && index == minIndex && DateTime.UtcNow < deadline)
            {
                var remaining = deadline - DateTime.UtcNow;
                if (remaining > TimeSpan.Zero)
                {
                    try
                    {
                        await changed.WaitAsync(remaining, ctx.RequestAborted);
                    }
                    catch (TimeoutException)
                    {
                    }
                    continue;
                }
            }

            SetIndexHeaders(ctx, index);
            if (keysOnly)
            {
                var names = entries.Select(kv => kv.Key);
                if (separator is { Length: > 0 })
                {
                    names = names.Select(name =>
                    {
                        var at = name.IndexOf(separator, key.Length, StringComparison.Ordinal);
                        return at < 0 ? name : name[..(at + separator.Length)];
                    }).Distinct();
                }
                var list = names.ToList();
                if (list.Count == 0 && key.Length > 0)
                {
                    ctx.Response.StatusCode = 404;
                    return;
                }
                await JsonAsync(ctx, HttpStatusCode.OK, new JsonArray(list.Select(n => (JsonNode?)JsonValue.Create(n)).ToArray()));
                return;
            }
            if (entries.Count == 0)
            {
                ctx.Response.StatusCode = 404; // empty body, index header still set
                return;
            }
            if (query.ContainsKey("raw") && !recurse)
            {
                ctx.Response.ContentType = "text/plain";
                await ctx.Response.Body.WriteAsync(entries[0].Value);
                return;
            }
            await JsonAsync(ctx, HttpStatusCode.OK, new JsonArray(entries.Select(kv => (JsonNode?)EntryJson(kv, withValue: true)).ToArray()));
            return;
        }
    }

    private static JsonObject EntryJson(FakeKv kv, bool withValue)
    {
        var entry = new JsonObject
        {
            ["LockIndex"] = kv.LockIndex,
            ["Key"] = kv.Key,
            ["Flags"] = kv.Flags,
            ["Value"] = withValue && kv.Value.Length > 0 ? Convert.ToBase64String(kv.Value) : null,
            ["CreateIndex"] = kv.CreateIndex,
            ["ModifyIndex"] = kv.ModifyIndex,
        };
        if (kv.Session is not null)
            entry["Session"] = kv.Session;
        return entry;
    }

    private static ulong ParseIndex(string? text)
    {
        if (text is null)
            return 0;
        return ulong.TryParse(text, out var index) ? index : throw new BadRequest($"Invalid index: {text}");
    }

    /// <summary>Go duration (a subset: ns/us/ms/s/m/h), default 5 min, capped at 10 min (§1.10).</summary>
    private static TimeSpan ParseWait(string? text)
    {
        if (text is null)
            return TimeSpan.FromMinutes(5);
        var wait = ParseGoDuration(text) ?? throw new BadRequest($"Invalid wait time: {text}");
        return wait > TimeSpan.FromMinutes(10) ? TimeSpan.FromMinutes(10) : wait;
    }

    private static TimeSpan? ParseGoDuration(string text)
    {
        var units = new (string Suffix, double Ticks)[] { ("ns", 0.01), ("us", 10), ("µs", 10), ("ms", TimeSpan.TicksPerMillisecond), ("s", TimeSpan.TicksPerSecond), ("m", TimeSpan.TicksPerMinute), ("h", TimeSpan.TicksPerHour) };
        foreach (var (suffix, ticks) in units)
        {
            if (text.EndsWith(suffix, StringComparison.Ordinal) && double.TryParse(text[..^suffix.Length], System.Globalization.CultureInfo.InvariantCulture, out var amount))
                return TimeSpan.FromTicks((long)(amount * ticks));
        }
        return text == "0" ? TimeSpan.Zero : null;
    }

    private void SetIndexHeaders(HttpContext ctx, ulong index)
    {
        ctx.Response.Headers["X-Consul-Index"] = Math.Max(index, 1).ToString();
        ctx.Response.Headers["X-Consul-KnownLeader"] = "true";
        ctx.Response.Headers["X-Consul-LastContact"] = "0";
    }

    // ---- KV: PUT (§1.4) ------------------------------------------------------------------------

    private async Task KvPutAsync(HttpContext ctx, string key)
    {
        var query = ctx.Request.Query;
        if (key.Length == 0)
            throw new BadRequest("Missing key name");
        var cas = query["cas"].FirstOrDefault();
        var acquire = query["acquire"].FirstOrDefault();
        var release = query["release"].FirstOrDefault();
        if (new[] { cas, acquire, release }.Count(x => x is not null) > 1)
            throw new BadRequest("Conflicting flags: cas=, acquire=, release= are mutually exclusive");
        var flags = query["flags"].FirstOrDefault() is { } f ? ulong.TryParse(f, out var parsed) ? parsed : throw new BadRequest($"Invalid flags: {f}") : 0UL;
        var value = await ReadBodyAsync(ctx, MaxValueBytes);
        if (value is null)
        {
            await TextAsync(ctx, HttpStatusCode.RequestEntityTooLarge, $"Request body too large, max size: {MaxValueBytes} bytes.");
            return;
        }

        bool ok;
        try
        {
            lock (State.Gate)
            {
                var kv = new FakeKv(key, value, flags, 0, 0, 0, null);
                ok = cas is not null ? SetCas(kv, ParseIndex(cas))
                    : acquire is not null ? Lock(kv with { Session = acquire })
                    : release is not null ? Unlock(kv with { Session = release })
                    : Set(kv);
            }
        }
        catch (InvalidSession e)
        {
            // §1.4: acquire with an unknown session is an RPC error, 500 — not a false.
            await TextAsync(ctx, HttpStatusCode.InternalServerError, e.Message);
            return;
        }
        await JsonAsync(ctx, HttpStatusCode.OK, JsonValue.Create(ok));
    }

    private sealed class InvalidSession(string id) : Exception($"invalid session \"{id}\"");

    /// <summary>Unconditional write; keeps the lock holder (§1.4); skips a write identical to what is stored.</summary>
    private bool Set(FakeKv kv)
    {
        State.Kvs.TryGetValue(kv.Key, out var existing);
        if (existing is not null && existing.Value.AsSpan().SequenceEqual(kv.Value) && existing.Flags == kv.Flags)
            return true;
        Write(kv with { Session = existing?.Session, LockIndex = existing?.LockIndex ?? 0 }, existing);
        return true;
    }

    private bool SetCas(FakeKv kv, ulong index)
    {
        State.Kvs.TryGetValue(kv.Key, out var existing);
        if (index == 0 ? existing is not null : existing is null || existing.ModifyIndex != index)
            return false;
        Write(kv with { Session = existing?.Session, LockIndex = existing?.LockIndex ?? 0 }, existing);
        return true;
    }

    private bool Lock(FakeKv kv)
    {
        if (!State.Sessions.ContainsKey(kv.Session!))
            throw new InvalidSession(kv.Session!);
        State.Kvs.TryGetValue(kv.Key, out var existing);
        if (existing?.Session is { } holder && holder != kv.Session)
            return false;
        if (existing?.Session != kv.Session && State.LockDelayActive(kv.Key))
            return false;
        var lockIndex = existing?.Session == kv.Session ? existing!.LockIndex : (existing?.LockIndex ?? 0) + 1;
        Write(kv with { LockIndex = lockIndex }, existing);
        return true;
    }

    private bool Unlock(FakeKv kv)
    {
        State.Kvs.TryGetValue(kv.Key, out var existing);
        if (existing is null || existing.Session != kv.Session)
            return false;
        Write(kv with { Session = null, LockIndex = existing.LockIndex }, existing);
        return true;
    }

    private void Write(FakeKv kv, FakeKv? existing, ulong? atIndex = null)
    {
        var index = atIndex ?? State.NextIndex();
        State.Put(kv with { CreateIndex = existing?.CreateIndex ?? index, ModifyIndex = index }, index);
        if (atIndex is null)
            State.NotifyChanged();
    }

    // ---- KV: DELETE (§1.5) ---------------------------------------------------------------------

    private async Task KvDeleteAsync(HttpContext ctx, string key)
    {
        var query = ctx.Request.Query;
        var recurse = query.ContainsKey("recurse");
        var cas = query["cas"].FirstOrDefault();
        if (recurse && cas is not null)
            throw new BadRequest("Conflicting flags: cas=, recurse are mutually exclusive");
        if (key.Length == 0 && !recurse)
            throw new BadRequest("Missing key name");
        bool ok = true;
        lock (State.Gate)
        {
            var index = State.RaftIndex + 1;
            var changed = false;
            if (recurse)
            {
                foreach (var kv in State.Under(key).ToList())
                {
                    State.Delete(kv.Key, index);
                    changed = true;
                }
            }
            else if (cas is not null)
            {
                var expected = ParseIndex(cas);
                // Quirk (§1.5): a CAS delete of a key that does not exist answers true.
                if (State.Kvs.TryGetValue(key, out var existing))
                {
                    ok = expected != 0 && existing.ModifyIndex == expected;
                    if (ok)
                    {
                        State.Delete(key, index);
                        changed = true;
                    }
                }
            }
            else if (State.Kvs.ContainsKey(key))
            {
                State.Delete(key, index);
                changed = true;
            }
            if (changed)
            {
                State.NextIndex();
                State.NotifyChanged();
            }
        }
        await JsonAsync(ctx, HttpStatusCode.OK, JsonValue.Create(ok));
    }

    // ---- /v1/txn (§1.7) ----------------------------------------------------------------------

    private async Task TxnAsync(HttpContext ctx)
    {
        var body = await ReadBodyAsync(ctx, Math.Max(512 * 1024, MaxValueBytes) * 2);
        if (body is null)
        {
            await TextAsync(ctx, HttpStatusCode.RequestEntityTooLarge, "Request body too large");
            return;
        }
        JsonArray ops;
        try
        {
            ops = JsonNode.Parse(body) as JsonArray ?? throw new BadRequest("Failed to parse body: expected a JSON array");
        }
        catch (JsonException e)
        {
            throw new BadRequest($"Failed to parse body: {e.Message}");
        }
        if (ops.Count > MaxTxnOps)
        {
            await TextAsync(ctx, HttpStatusCode.RequestEntityTooLarge, $"Transaction contains too many operations ({ops.Count} > {MaxTxnOps})");
            return;
        }
        var parsed = ops.Select((node, i) => ParseTxnOp(node, i)).ToList();

        var results = new JsonArray();
        var errors = new JsonArray();
        lock (State.Gate)
        {
            // Run against a copy; commit only when every operation succeeded (all-or-nothing).
            var saved = State.TakeSnapshotUnlocked();
            var index = State.RaftIndex + 1;
            var wrote = false;
            for (var i = 0; i < parsed.Count && errors.Count == 0; i++)
            {
                var op = parsed[i];
                try
                {
                    foreach (var result in ApplyTxnOp(op, index, ref wrote))
                        results.Add(new JsonObject { ["KV"] = result });
                }
                catch (TxnOpFailed e)
                {
                    errors.Add(new JsonObject { ["OpIndex"] = i, ["What"] = e.Message });
                }
            }
            if (errors.Count > 0)
            {
                State.RestoreUnlocked(saved);
            }
            else if (wrote)
            {
                State.NextIndex();
                State.NotifyChanged();
            }
        }
        if (errors.Count > 0)
            await JsonAsync(ctx, HttpStatusCode.Conflict, new JsonObject { ["Results"] = null, ["Errors"] = errors });
        else
            await JsonAsync(ctx, HttpStatusCode.OK, new JsonObject { ["Results"] = results, ["Errors"] = null });
    }

    private sealed record TxnKvOp(string Verb, string Key, byte[] Value, ulong Flags, ulong Index, string? Session);

    private sealed class TxnOpFailed(string what) : Exception(what);

    private static TxnKvOp ParseTxnOp(JsonNode? node, int i)
    {
        if (node is not JsonObject op || op["KV"] is not JsonObject kv)
            throw new BadRequest($"Failed to parse body: operation {i} has no KV member");
        var verb = kv["Verb"]?.GetValue<string>() ?? throw new BadRequest($"Failed to parse body: operation {i} has no Verb");
        var key = kv["Key"]?.GetValue<string>() ?? "";
        byte[] value;
        try
        {
            value = kv["Value"] is JsonValue v && v.GetValue<string>() is { } text ? Convert.FromBase64String(text) : [];
        }
        catch (FormatException)
        {
            throw new BadRequest($"Failed to parse body: operation {i} Value is not base64");
        }
        var flags = kv["Flags"]?.GetValue<ulong>() ?? 0;
        var index = kv["Index"]?.GetValue<ulong>() ?? 0;
        var session = kv["Session"]?.GetValue<string>();
        return new TxnKvOp(verb, key, value, flags, index, session);
    }

    /// <summary>One verb of the §1.7 table. Writes of one transaction share one Raft index.</summary>
    private IEnumerable<JsonObject> ApplyTxnOp(TxnKvOp op, ulong index, ref bool wrote)
    {
        State.Kvs.TryGetValue(op.Key, out var existing);
        var kv = new FakeKv(op.Key, op.Value, op.Flags, 0, 0, 0, op.Session);
        switch (op.Verb)
        {
            case "set":
                WriteInTxn(kv with { Session = existing?.Session, LockIndex = existing?.LockIndex ?? 0 }, existing, index, ref wrote);
                return [Blank(State.Kvs[op.Key])];
            case "cas":
                if (op.Index == 0 ? existing is not null : existing is null || existing.ModifyIndex != op.Index)
                    throw new TxnOpFailed($"failed to set key \"{op.Key}\", index is stale");
                WriteInTxn(kv with { Session = existing?.Session, LockIndex = existing?.LockIndex ?? 0 }, existing, index, ref wrote);
                return [Blank(State.Kvs[op.Key])];
            case "lock":
                if (op.Session is null || !State.Sessions.ContainsKey(op.Session))
                    throw new TxnOpFailed($"failed to lock key \"{op.Key}\": invalid session \"{op.Session}\"");
                if ((existing?.Session is { } holder && holder != op.Session) || (existing?.Session != op.Session && State.LockDelayActive(op.Key)))
                    throw new TxnOpFailed($"failed to lock key \"{op.Key}\", lock is already held");
                var lockIndex = existing?.Session == op.Session ? existing!.LockIndex : (existing?.LockIndex ?? 0) + 1;
                WriteInTxn(kv with { LockIndex = lockIndex }, existing, index, ref wrote);
                return [Blank(State.Kvs[op.Key])];
            case "unlock":
                if (existing is null || existing.Session != op.Session)
                    throw new TxnOpFailed($"failed to unlock key \"{op.Key}\", lock isn't held, or is held by another session");
                WriteInTxn(kv with { Session = null, LockIndex = existing.LockIndex }, existing, index, ref wrote);
                return [Blank(State.Kvs[op.Key])];
            case "get":
                return existing is null ? throw new TxnOpFailed($"key \"{op.Key}\" doesn't exist") : [EntryJson(existing, withValue: true)];
            case "get-or-empty":
                return existing is null ? [] : [EntryJson(existing, withValue: true)];
            case "get-tree":
                return State.Under(op.Key).Select(e => EntryJson(e, withValue: true)).ToList();
            case "check-index":
                if (existing is null)
                    throw new TxnOpFailed($"failed to check index of key \"{op.Key}\", key doesn't exist");
                if (existing.ModifyIndex != op.Index)
                    throw new TxnOpFailed($"failed to check index of key \"{op.Key}\", current modify index {existing.ModifyIndex} != {op.Index}");
                return [Blank(existing)];
            case "check-session":
                if (existing is null || existing.Session != op.Session)
                    throw new TxnOpFailed($"failed to check session of key \"{op.Key}\"");
                return [Blank(existing)];
            case "check-not-exists":
                return existing is null ? [] : throw new TxnOpFailed($"key \"{op.Key}\" exists");
            case "delete":
                if (existing is not null)
                {
                    State.Delete(op.Key, index);
                    wrote = true;
                }
                return [];
            case "delete-tree":
                foreach (var e in State.Under(op.Key).ToList())
                {
                    State.Delete(e.Key, index);
                    wrote = true;
                }
                return [];
            case "delete-cas":
                if (existing is not null)
                {
                    if (existing.ModifyIndex != op.Index)
                        throw new TxnOpFailed($"failed to delete key \"{op.Key}\", index is stale");
                    State.Delete(op.Key, index);
                    wrote = true;
                }
                return [];
            default:
                throw new BadRequest($"Failed to parse body: unknown KV verb \"{op.Verb}\"");
        }
    }

    private void WriteInTxn(FakeKv kv, FakeKv? existing, ulong index, ref bool wrote)
    {
        // §1.4: recent servers skip a write identical to the stored entry; ModifyIndex stays.
        if (existing is not null && existing.Value.AsSpan().SequenceEqual(kv.Value) && existing.Flags == kv.Flags
            && existing.Session == kv.Session && existing.LockIndex == kv.LockIndex)
            return;
        Write(kv, existing, atIndex: index);
        wrote = true;
    }

    /// <summary>Non-read verbs return the entry with Value null (§1.7).</summary>
    private static JsonObject Blank(FakeKv kv) => EntryJson(kv, withValue: false);

    // ---- sessions (§1.8) ---------------------------------------------------------------------

    private async Task SessionAsync(HttpContext ctx, string rest)
    {
        var slash = rest.IndexOf('/');
        var action = slash < 0 ? rest : rest[..slash];
        var id = slash < 0 ? "" : rest[(slash + 1)..];
        var method = ctx.Request.Method;
        switch (action)
        {
            case "create" when method == "PUT":
                await SessionCreateAsync(ctx);
                return;
            case "renew" when method == "PUT":
            {
                FakeSession? session;
                lock (State.Gate)
                {
                    if (State.Sessions.TryGetValue(id, out session))
                        State.Sessions[id] = session = session with { RenewedAt = Clock.GetUtcNow() };
                }
                if (session is null)
                {
                    await TextAsync(ctx, HttpStatusCode.NotFound, $"Session id '{id}' not found");
                    return;
                }
                await JsonAsync(ctx, HttpStatusCode.OK, new JsonArray(SessionJson(session)));
                return;
            }
            case "destroy" when method == "PUT":
                lock (State.Gate)
                    State.InvalidateSession(id);
                await JsonAsync(ctx, HttpStatusCode.OK, JsonValue.Create(true));
                return;
            case "info" when method == "GET":
            {
                FakeSession? session;
                lock (State.Gate)
                    State.Sessions.TryGetValue(id, out session);
                SetIndexHeaders(ctx, State.RaftIndex);
                await JsonAsync(ctx, HttpStatusCode.OK, session is null ? new JsonArray() : new JsonArray(SessionJson(session)));
                return;
            }
            case "create" or "renew" or "destroy":
                await MethodNotAllowedAsync(ctx, "PUT");
                return;
            case "info":
                await MethodNotAllowedAsync(ctx, "GET");
                return;
        }
        await TextAsync(ctx, HttpStatusCode.NotFound, "Invalid URL path: not a recognized HTTP API endpoint");
    }

    private async Task SessionCreateAsync(HttpContext ctx)
    {
        var body = await ReadBodyAsync(ctx, 64 * 1024) ?? [];
        JsonObject request;
        try
        {
            request = body.Length == 0 ? new JsonObject() : JsonNode.Parse(body) as JsonObject ?? throw new BadRequest("Request decode failed: expected an object");
        }
        catch (JsonException e)
        {
            throw new BadRequest($"Request decode failed: {e.Message}");
        }
        var behavior = request["Behavior"]?.GetValue<string>() ?? "release";
        if (behavior is not ("release" or "delete"))
            throw new BadRequest($"Invalid Behavior setting '{behavior}'");
        TimeSpan? ttl = null;
        if (request["TTL"]?.GetValue<string>() is { Length: > 0 } ttlText)
        {
            ttl = ParseGoDuration(ttlText) ?? throw new BadRequest($"Request decode failed: invalid TTL '{ttlText}'");
            if (ttl != TimeSpan.Zero && (ttl < TimeSpan.FromSeconds(10) || ttl > TimeSpan.FromHours(24)))
                throw new BadRequest($"Invalid Session TTL '{ttlText}', must be between [10s=24h0m0s]");
        }
        var lockDelay = ParseLockDelay(request["LockDelay"]);
        string id;
        FakeSession session;
        lock (State.Gate)
        {
            id = Guid.NewGuid().ToString();
            session = new FakeSession(id, request["Name"]?.GetValue<string>() ?? "", ttl, behavior, lockDelay, State.NextIndex(), Clock.GetUtcNow());
            State.Sessions[id] = session;
        }
        await JsonAsync(ctx, HttpStatusCode.OK, new JsonObject { ["ID"] = id });
    }

    /// <summary>§1.8: a duration string or a number of nanoseconds; anything below 1000 ns counts as seconds; default 15 s.</summary>
    private static TimeSpan ParseLockDelay(JsonNode? node)
    {
        if (node is null)
            return TimeSpan.FromSeconds(15);
        double nanoseconds;
        if (node.GetValueKind() == JsonValueKind.Number)
            nanoseconds = node.GetValue<double>();
        else
            nanoseconds = (ParseGoDuration(node.GetValue<string>()) ?? throw new BadRequest($"Request decode failed: invalid LockDelay '{node}'")).Ticks * 100.0;
        return nanoseconds < 1000 ? TimeSpan.FromSeconds(nanoseconds) : TimeSpan.FromTicks((long)(nanoseconds / 100));
    }

    private static JsonObject SessionJson(FakeSession session) => new()
    {
        ["ID"] = session.Id,
        ["Name"] = session.Name,
        ["Node"] = "fake-node",
        ["LockDelay"] = session.LockDelay.Ticks * 100,
        ["Behavior"] = session.Behavior,
        ["TTL"] = session.Ttl is { } ttl ? $"{ttl.TotalSeconds}s" : "",
        ["CreateIndex"] = session.CreateIndex,
        ["ModifyIndex"] = session.CreateIndex,
    };

    // ---- plumbing ------------------------------------------------------------------------------

    private static async Task<byte[]?> ReadBodyAsync(HttpContext ctx, int limit)
    {
        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await ctx.Request.Body.ReadAsync(chunk, ctx.RequestAborted)) > 0)
        {
            buffer.Write(chunk, 0, read);
            if (buffer.Length > limit)
                return null;
        }
        return buffer.ToArray();
    }

    private static async Task TextAsync(HttpContext ctx, HttpStatusCode status, string text)
    {
        ctx.Response.StatusCode = (int)status;
        ctx.Response.ContentType = "text/plain; charset=utf-8";
        await ctx.Response.WriteAsync(text);
    }

    private static async Task MethodNotAllowedAsync(HttpContext ctx, string allow)
    {
        ctx.Response.Headers.Allow = allow;
        await TextAsync(ctx, HttpStatusCode.MethodNotAllowed, $"method {ctx.Request.Method} not allowed");
    }

    private static async Task JsonAsync(HttpContext ctx, HttpStatusCode status, JsonNode? node)
    {
        ctx.Response.StatusCode = (int)status;
        ctx.Response.ContentType = "application/json";
        await ctx.Response.WriteAsync(node?.ToJsonString() ?? "null", Encoding.UTF8);
    }
}
