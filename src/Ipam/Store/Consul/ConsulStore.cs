using System.Net;
using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Text.Json;

namespace Skein.Ipam.Store.Consul;

/// <summary>
/// IClusterStore over Consul's HTTP API (cluster-store §1, §4.3): every conditional write through
/// /v1/txn so the new ModifyIndex comes back in one call, ephemeral keys as locks held by a
/// Behavior=delete session, prefix watches as blocking recursive reads diffed client-side.
/// </summary>
public sealed partial class ConsulStore : IClusterStore
{
    private readonly ConsulStoreOptions _options;
    private readonly HttpClient _client;
    private readonly HttpClient _watchClient;
    private readonly string _root;
    private readonly CancellationTokenSource _disposing = new();
    private ConsulLiveness? _liveness;
    private int _disposeStarted;
    private int _disposed;

    public ConsulStore(ConsulStoreOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        StoreRequestValidator.ValidateKey(options.RootPrefix, StoreLimits.Default);
        _options = options;
        _root = options.RootPrefix;
        var location = new StoreLocation { Kind = StoreKind.Consul, BaseAddress = options.BaseAddress };
        _client = CreateClient(options.Handler ?? StoreHttp.CreateHandler(location, options.Http), options);
        _watchClient = CreateClient(options.WatchHandler ?? StoreHttp.CreateHandler(location, options.Http), options);
    }

    /// <summary>From a parsed <c>--store</c> URL and the CONSUL_* environment.</summary>
    public static ConsulStore Create(StoreLocation location, TimeProvider? time = null)
    {
        if (location.Kind != StoreKind.Consul || location.BaseAddress is null)
            throw new ArgumentException($"store {location} is not a Consul store");
        var http = StoreHttpPolicy.Default;
        return new ConsulStore(new ConsulStoreOptions
        {
            BaseAddress = location.BaseAddress,
            RootPrefix = location.RootPrefix,
            Token = location.Token,
            Handler = StoreHttp.CreateHandler(location, http),
            WatchHandler = StoreHttp.CreateHandler(location, http),
            Time = time ?? TimeProvider.System,
            Http = http,
        });
    }

    private static HttpClient CreateClient(HttpMessageHandler handler, ConsulStoreOptions options)
    {
        var client = new HttpClient(handler, disposeHandler: true)
        {
            BaseAddress = options.BaseAddress,
            Timeout = Timeout.InfiniteTimeSpan, // per-call deadlines below; a watch holds for minutes
        };
        if (options.Token is not null)
            client.DefaultRequestHeaders.Add("X-Consul-Token", options.Token);
        client.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("skein", "1"));
        return client;
    }

    public StoreLimits Limits { get; } = StoreLimits.Default;

    internal TimeProvider Time => _options.Time;

    private string Describe => $"consul {_options.BaseAddress}";

    private string FullKey(string key) => $"{_root}/{key}";

    private string? Relative(string fullKey) =>
        fullKey.Length > _root.Length + 1 && fullKey.StartsWith(_root, StringComparison.Ordinal) && fullKey[_root.Length] == '/'
            ? fullKey[(_root.Length + 1)..]
            : null;

    private static string KvPath(string fullKey) => "v1/kv/" + fullKey; // the key alphabet needs no escaping (§1.13)

    // ---- reads ---------------------------------------------------------------------------------

    public async Task<KvEntry?> GetAsync(string key, CancellationToken ct)
    {
        StoreRequestValidator.ValidateKey(key, Limits);
        var full = FullKey(key);
        var response = await SendAsync($"GET {full}", () => new HttpRequestMessage(HttpMethod.Get, KvPath(full)), idempotent: true, ct).ConfigureAwait(false);
        if (IsMissingKey(response, $"GET {full}"))
            return null; // §1.3: a missing key is 404 with an empty body
        EnsureStatus(response, $"GET {full}", HttpStatusCode.OK);
        var pairs = Deserialize(response, ConsulJsonContext.Default.ListConsulKvPair, $"GET {full}");
        var pair = pairs.FirstOrDefault(p => p.Key == full);
        return pair is null ? null : ToEntry(pair, key);
    }

    public async Task<(IReadOnlyList<KvEntry> Entries, long Revision)> ListAsync(string prefix, bool keysOnly, CancellationToken ct)
    {
        StoreRequestValidator.ValidatePrefix(prefix, Limits);
        var full = FullKey(prefix);
        var query = keysOnly ? "?keys" : "?recurse";
        var response = await SendAsync($"GET {full}{query}", () => new HttpRequestMessage(HttpMethod.Get, KvPath(full) + query), idempotent: true, ct).ConfigureAwait(false);
        if (IsMissingKey(response, $"GET {full}{query}"))
            return ([], (long)response.Index);
        EnsureStatus(response, $"GET {full}{query}", HttpStatusCode.OK);
        EnsureUnfiltered(response, full);
        var entries = new List<KvEntry>();
        if (keysOnly)
        {
            foreach (var name in Deserialize(response, ConsulJsonContext.Default.ListString, $"GET {full}{query}"))
            {
                if (Relative(name) is { } rel && StoreRequestValidator.IsUnder(rel, prefix))
                    entries.Add(new KvEntry(rel, ReadOnlyMemory<byte>.Empty, 0, 0, false)); // ?keys carries names only
            }
        }
        else
        {
            foreach (var pair in Deserialize(response, ConsulJsonContext.Default.ListConsulKvPair, $"GET {full}{query}"))
            {
                if (Relative(pair.Key) is { } rel && StoreRequestValidator.IsUnder(rel, prefix))
                    entries.Add(ToEntry(pair, rel));
            }
        }
        entries.Sort((a, b) => string.CompareOrdinal(a.Key, b.Key));
        return (entries, (long)response.Index);
    }

    private static KvEntry ToEntry(ConsulKvPair pair, string relativeKey) => new(
        relativeKey,
        string.IsNullOrEmpty(pair.Value) ? ReadOnlyMemory<byte>.Empty : Convert.FromBase64String(pair.Value), // null = empty value (§1.3)
        (long)pair.ModifyIndex,
        (long)pair.CreateIndex,
        !string.IsNullOrEmpty(pair.Session));

    // ---- writes --------------------------------------------------------------------------------

    public async Task<WriteResult> PutAsync(string key, ReadOnlyMemory<byte> value, Precondition pre, bool ephemeral, CancellationToken ct)
    {
        var op = new TxnOp.Put(key, value, pre, ephemeral);
        StoreRequestValidator.ValidateTxn([op], Limits);
        var (outcome, current) = await RunWaitingOutLockDelayAsync([op], ct).ConfigureAwait(false);
        if (outcome.Applied)
            return new WriteResult(WriteOutcome.Applied, outcome.NewVersions[0], null);
        return new WriteResult(WriteOutcome.Conflict, 0, current ?? await GetAsync(key, ct).ConfigureAwait(false));
    }

    private const int LockDelayAttempts = 5;

    /// <summary>
    /// Runs a transaction. When it failed on an ephemeral put whose precondition holds, the lock refused it: the key is
    /// in the lock-delay of a session that just ended, typically this node's previous incarnation, destroyed at start
    /// (§1.9). skein's sessions use a 1 ms lock-delay, so a short, bounded wait lets the acquire through (nothing of a
    /// failed transaction applied, so running it again is safe). Returns the failing key's entry when it was read.
    /// </summary>
    private async Task<(TxnOutcome Outcome, KvEntry? FailedKeyEntry)> RunWaitingOutLockDelayAsync(IReadOnlyList<TxnOp> ops, CancellationToken ct)
    {
        for (var attempt = 1; ; attempt++)
        {
            var outcome = await RunTxnAsync(ops, ct).ConfigureAwait(false);
            if (outcome.Applied || outcome.FailedOpIndex < 0 || outcome.FailedOpIndex >= ops.Count
                || ops[outcome.FailedOpIndex] is not TxnOp.Put { Ephemeral: true } put)
                return (outcome, null);
            var current = await GetAsync(put.Key, ct).ConfigureAwait(false);
            if (attempt >= LockDelayAttempts || !Holds(put.Pre, current))
                return (outcome, current);
            await Task.Delay(TimeSpan.FromMilliseconds(5 * attempt), ct).ConfigureAwait(false);
        }
    }

    private static bool Holds(Precondition pre, KvEntry? current) => pre switch
    {
        Precondition.AbsentCondition => current is null,
        Precondition.VersionCondition v => current?.Version == v.Version,
        _ => true,
    };

    public async Task<WriteResult> DeleteAsync(string key, Precondition pre, CancellationToken ct)
    {
        StoreRequestValidator.ValidateKey(key, Limits);
        StoreRequestValidator.ValidatePrecondition(key, pre);
        var full = FullKey(key);
        // Consul answers "true" to a CAS delete of a missing key (§1.5); a failing check verb in
        // one txn tells "already absent" apart from "deleted by me".
        List<ConsulTxnOp> ops = pre switch
        {
            Precondition.NoneCondition => [Kv("get", full), Kv("delete", full)],
            Precondition.AbsentCondition => [Kv("check-not-exists", full)],
            Precondition.VersionCondition v => [Kv("check-index", full, index: (ulong)v.Version), Kv("delete", full)],
            _ => throw new StoreRejectedException($"unknown precondition {pre.GetType().Name}"),
        };
        var response = await SendTxnAsync(ops, $"delete {full}", ct).ConfigureAwait(false);
        if (response.Errors is null)
            return pre is Precondition.AbsentCondition
                ? new WriteResult(WriteOutcome.AlreadyAbsent, 0, null)
                : new WriteResult(WriteOutcome.Applied, 0, null);
        if (pre is Precondition.NoneCondition)
            return new WriteResult(WriteOutcome.AlreadyAbsent, 0, null);
        var current = await GetAsync(key, ct).ConfigureAwait(false);
        return current is null
            ? new WriteResult(WriteOutcome.AlreadyAbsent, 0, null)
            : new WriteResult(WriteOutcome.Conflict, 0, current);
    }

    public async Task<TxnResult> CommitAsync(IReadOnlyList<TxnOp> ops, CancellationToken ct)
    {
        StoreRequestValidator.ValidateTxn(ops, Limits);
        var (outcome, _) = await RunWaitingOutLockDelayAsync(ops, ct).ConfigureAwait(false);
        return new TxnResult(outcome.Applied, outcome.FailedOpIndex, outcome.NewVersions);
    }

    private sealed record TxnOutcome(bool Applied, int FailedOpIndex, long[] NewVersions);

    /// <summary>Translates our ops to Consul verbs (§4.3 table), remembering which of ours each came from.</summary>
    private async Task<TxnOutcome> RunTxnAsync(IReadOnlyList<TxnOp> ops, CancellationToken ct)
    {
        var consulOps = new List<ConsulTxnOp>();
        var origin = new List<int>();
        string? session = null;
        for (var i = 0; i < ops.Count; i++)
        {
            void Add(ConsulTxnOp op)
            {
                consulOps.Add(op);
                origin.Add(i);
            }
            switch (ops[i])
            {
                case TxnOp.Check check:
                    if (CheckVerb(FullKey(check.Key), check.Pre) is { } checkOp)
                        Add(checkOp);
                    break;
                case TxnOp.Put { Ephemeral: false } put:
                    var value = Convert.ToBase64String(put.Value.Span);
                    Add(put.Pre switch
                    {
                        Precondition.NoneCondition => Kv("set", FullKey(put.Key), value),
                        Precondition.AbsentCondition => Kv("cas", FullKey(put.Key), value, index: 0),
                        Precondition.VersionCondition v => Kv("cas", FullKey(put.Key), value, index: (ulong)v.Version),
                        _ => throw new StoreRejectedException($"unknown precondition {put.Pre.GetType().Name}"),
                    });
                    break;
                case TxnOp.Put put:
                    // Ephemeral: a lock held by our Behavior=delete session (§1.9); re-locking with the same session updates the value.
                    session ??= RequireSession();
                    if (CheckVerb(FullKey(put.Key), put.Pre) is { } guard)
                        Add(guard);
                    Add(Kv("lock", FullKey(put.Key), Convert.ToBase64String(put.Value.Span), session: session));
                    break;
                case TxnOp.Delete delete:
                    if (CheckVerb(FullKey(delete.Key), delete.Pre) is { } deleteGuard)
                        Add(deleteGuard);
                    if (delete.Pre is not Precondition.AbsentCondition)
                        Add(Kv("delete", FullKey(delete.Key)));
                    break;
            }
        }

        var versions = new long[ops.Count];
        if (consulOps.Count == 0)
            return new TxnOutcome(true, -1, versions);
        var response = await SendTxnAsync(consulOps, $"txn of {ops.Count} operations", ct).ConfigureAwait(false);
        if (response.Errors is { Count: > 0 } errors)
        {
            var failed = errors[0];
            var index = failed.OpIndex >= 0 && failed.OpIndex < origin.Count ? origin[failed.OpIndex] : 0;
            return new TxnOutcome(false, index, versions);
        }
        // Every write of one txn lands at the same Raft index; take the highest index returned per key.
        var byKey = IndexesByKey(response);
        for (var i = 0; i < ops.Count; i++)
        {
            if (ops[i] is TxnOp.Put put)
                versions[i] = (long)byKey.GetValueOrDefault(FullKey(put.Key)).Index;
        }
        await ReleaseOwnLocksOnPersistentPutsAsync(ops, byKey, versions, ct).ConfigureAwait(false);
        return new TxnOutcome(true, -1, versions);
    }

    private static Dictionary<string, (ulong Index, string? Session)> IndexesByKey(ConsulTxnResponse response)
    {
        var byKey = new Dictionary<string, (ulong Index, string? Session)>(StringComparer.Ordinal);
        foreach (var result in response.Results ?? [])
        {
            if (result.KV is { } kv && kv.ModifyIndex >= byKey.GetValueOrDefault(kv.Key).Index)
                byKey[kv.Key] = (kv.ModifyIndex, kv.Session);
        }
        return byKey;
    }

    /// <summary>
    /// A plain write keeps Consul's lock holder (§1.4), so a persistent put over one of our own ephemeral
    /// keys would leave it bound to our session, unlike etcd (a put without lease detaches, §2.3) and
    /// the embedded store. Unlock such keys right away, guarded by the index just written; if someone
    /// changed the key in between, their write stands.
    /// </summary>
    private async Task ReleaseOwnLocksOnPersistentPutsAsync(IReadOnlyList<TxnOp> ops, Dictionary<string, (ulong Index, string? Session)> byKey, long[] versions, CancellationToken ct)
    {
        if (_liveness?.Id is not { } session)
            return;
        var unlocks = new List<ConsulTxnOp>();
        var positions = new List<int>();
        for (var i = 0; i < ops.Count; i++)
        {
            if (ops[i] is TxnOp.Put { Ephemeral: false } put && byKey.GetValueOrDefault(FullKey(put.Key)) is { Session: { } holder } written && holder == session)
            {
                unlocks.Add(Kv("check-index", FullKey(put.Key), index: written.Index));
                unlocks.Add(Kv("unlock", FullKey(put.Key), Convert.ToBase64String(put.Value.Span), session: session));
                positions.Add(i);
            }
        }
        if (unlocks.Count == 0)
            return;
        var response = await SendTxnAsync(unlocks, $"release of {positions.Count} ephemeral keys made persistent", ct).ConfigureAwait(false);
        if (response.Errors is { Count: > 0 })
            return;
        var released = IndexesByKey(response);
        foreach (var i in positions)
            versions[i] = (long)released.GetValueOrDefault(FullKey(((TxnOp.Put)ops[i]).Key)).Index;
    }

    private static ConsulTxnOp? CheckVerb(string fullKey, Precondition pre) => pre switch
    {
        Precondition.NoneCondition => null,
        Precondition.AbsentCondition => Kv("check-not-exists", fullKey),
        Precondition.VersionCondition v => Kv("check-index", fullKey, index: (ulong)v.Version),
        _ => throw new StoreRejectedException($"unknown precondition {pre.GetType().Name}"),
    };

    private static ConsulTxnOp Kv(string verb, string key, string? value = null, ulong? index = null, string? session = null) =>
        new(new ConsulTxnKvOp { Verb = verb, Key = key, Value = value, Index = index, Session = session });

    /// <summary>PUT /v1/txn: 200 → results, 409 → rolled back with Errors (§1.7). Never retried except when surely unsent.</summary>
    private async Task<ConsulTxnResponse> SendTxnAsync(List<ConsulTxnOp> ops, string what, CancellationToken ct)
    {
        var body = JsonSerializer.SerializeToUtf8Bytes(ops, ConsulJsonContext.Default.ListConsulTxnOp);
        var response = await SendAsync(what, () => new HttpRequestMessage(HttpMethod.Put, "v1/txn")
        {
            Content = new ByteArrayContent(body) { Headers = { ContentType = new MediaTypeHeaderValue("application/json") } },
        }, idempotent: false, ct).ConfigureAwait(false);
        if (response.Status is not (HttpStatusCode.OK or HttpStatusCode.Conflict))
            ThrowForStatus(response, what);
        var parsed = Deserialize(response, ConsulJsonContext.Default.ConsulTxnResponse, what);
        if (response.Status == HttpStatusCode.Conflict)
        {
            if (parsed.Errors is not { Count: > 0 })
                throw new StoreUnavailableException($"{Describe}: {what}: 409 without an Errors list");
            var lost = parsed.Errors.FirstOrDefault(e => e.What.Contains("invalid session", StringComparison.OrdinalIgnoreCase));
            if (lost is not null)
            {
                _liveness?.CheckNow();
                throw new LivenessLostException($"{Describe}: {what}: the session behind the ephemeral write is gone ({StoreHttp.Excerpt(lost.What)}); it is being recreated");
            }
        }
        return parsed;
    }

    // ---- liveness ------------------------------------------------------------------------------

    public async Task<ILiveness> StartLivenessAsync(LivenessOptions options, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Ttl < ConsulStoreOptions.MinSessionTtl)
            throw new ArgumentException($"Consul session TTL {options.Ttl.TotalSeconds}s is below Consul's floor of {ConsulStoreOptions.MinSessionTtl.TotalSeconds}s");
        if (options.RenewEvery <= TimeSpan.Zero || options.RenewEvery >= options.Ttl)
            throw new ArgumentException($"liveness renew interval {options.RenewEvery} must be positive and shorter than the TTL {options.Ttl}");
        if (_liveness is { } existing)
            throw new InvalidOperationException($"this Consul store already has a liveness (session {existing.Id}); start one per process and dispose it before starting another");
        if (options.PreviousId is { } previous)
        {
            if (!IsSessionId(previous))
                throw new ArgumentException($"previous liveness id '{previous}' is not a Consul session id");
            await DestroySessionAsync(previous, ct).ConfigureAwait(false);
        }
        var liveness = await ConsulLiveness.StartAsync(this, options, ct).ConfigureAwait(false);
        if (Interlocked.CompareExchange(ref _liveness, liveness, null) is not null)
        {
            await liveness.DisposeAsync().ConfigureAwait(false);
            throw new InvalidOperationException("this Consul store already has a liveness; start one per process");
        }
        return liveness;
    }

    private static bool IsSessionId(string id) => id.Length is > 0 and <= 64 && id.All(c => char.IsAsciiHexDigit(c) || c == '-');

    internal void ForgetLiveness(ConsulLiveness liveness) => Interlocked.CompareExchange(ref _liveness, null, liveness);

    private string RequireSession() =>
        _liveness?.Id ?? throw new LivenessLostException($"ephemeral write to {Describe} without a started liveness (call StartLivenessAsync first)");

    internal async Task<string> CreateSessionAsync(LivenessOptions options, CancellationToken ct)
    {
        var request = new ConsulSessionCreate
        {
            Name = options.Name,
            TTL = $"{(long)Math.Ceiling(options.Ttl.TotalSeconds)}s",
            Behavior = "delete",
            LockDelay = "1ms", // a restarted node must be able to re-acquire its keys at once (§1.9)
            Checks = [], // no serfHealth: the session's life is this process's renewals
        };
        var body = JsonSerializer.SerializeToUtf8Bytes(request, ConsulJsonContext.Default.ConsulSessionCreate);
        var response = await SendAsync("session create", () => new HttpRequestMessage(HttpMethod.Put, "v1/session/create")
        {
            Content = new ByteArrayContent(body) { Headers = { ContentType = new MediaTypeHeaderValue("application/json") } },
        }, idempotent: false, ct).ConfigureAwait(false);
        EnsureStatus(response, "session create", HttpStatusCode.OK);
        var id = Deserialize(response, ConsulJsonContext.Default.ConsulSessionId, "session create").ID;
        if (string.IsNullOrEmpty(id))
            throw new StoreUnavailableException($"{Describe}: session create returned no ID");
        return id;
    }

    /// <summary>True when renewed; false when Consul no longer knows the session (404, §1.8).</summary>
    internal async Task<bool> RenewSessionAsync(string id, CancellationToken ct)
    {
        var response = await SendAsync("session renew", () => new HttpRequestMessage(HttpMethod.Put, $"v1/session/renew/{id}"), idempotent: true, ct).ConfigureAwait(false);
        if (response.Status == HttpStatusCode.NotFound)
            return false;
        EnsureStatus(response, "session renew", HttpStatusCode.OK);
        var entries = Deserialize(response, ConsulJsonContext.Default.ListConsulSessionEntry, "session renew");
        return entries.Count > 0;
    }

    internal async Task DestroySessionAsync(string id, CancellationToken ct)
    {
        var response = await SendAsync("session destroy", () => new HttpRequestMessage(HttpMethod.Put, $"v1/session/destroy/{id}"), idempotent: true, ct).ConfigureAwait(false);
        // Idempotent by the docs; with ACLs an unknown id may come back as an error naming it (§1.8).
        if (response.Status == HttpStatusCode.OK || response.Status == HttpStatusCode.NotFound || response.Text.Contains("Unknown session", StringComparison.OrdinalIgnoreCase))
            return;
        ThrowForStatus(response, "session destroy");
    }

    // ---- HTTP ----------------------------------------------------------------------------------

    internal sealed record ConsulResponse(HttpStatusCode Status, byte[] Body, ulong Index, bool FilteredByAcls = false)
    {
        public string Text => System.Text.Encoding.UTF8.GetString(Body);
    }

    /// <summary>
    /// One call with a deadline per attempt. Idempotent calls retry transport failures and
    /// 429/5xx with jittered back-off; other calls retry only what surely never reached Consul
    /// (connection refused, 429). 401/403 always end in StoreAuthException.
    /// </summary>
    private async Task<ConsulResponse> SendAsync(string what, Func<HttpRequestMessage> build, bool idempotent, CancellationToken ct, HttpClient? client = null, TimeSpan? timeout = null)
    {
        client ??= _client;
        var policy = _options.Http;
        var started = _options.Time.GetTimestamp();
        for (var attempt = 1; ; attempt++)
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct, _disposing.Token);
            var attemptTimeout = timeout ?? policy.AttemptTimeout(_options.Time.GetElapsedTime(started));
            deadline.CancelAfter(attemptTimeout);
            Exception failure;
            bool retryable;
            try
            {
                using var request = build();
                using var response = await client.SendAsync(request, HttpCompletionOption.ResponseContentRead, deadline.Token).ConfigureAwait(false);
                var body = await response.Content.ReadAsByteArrayAsync(deadline.Token).ConfigureAwait(false);
                var index = response.Headers.TryGetValues("X-Consul-Index", out var values) && ulong.TryParse(values.FirstOrDefault(), out var parsed) ? parsed : 0;
                var filtered = response.Headers.TryGetValues("X-Consul-Results-Filtered-By-ACLs", out var filterValues)
                               && string.Equals(filterValues.FirstOrDefault(), "true", StringComparison.OrdinalIgnoreCase);
                var result = new ConsulResponse(response.StatusCode, body, index, filtered);
                if (response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
                    throw new StoreAuthException($"{Describe}: {what}: {(int)response.StatusCode} {StoreHttp.Excerpt(result.Text)} — check the ACL token's rights on '{_root}/' (key_prefix write, session_prefix write)");
                if (!StoreHttp.IsRetryableStatus(response.StatusCode))
                    return result;
                failure = new StoreUnavailableException($"{Describe}: {what}: {(int)response.StatusCode} {StoreHttp.Excerpt(result.Text)}");
                retryable = idempotent || response.StatusCode == HttpStatusCode.TooManyRequests;
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                throw;
            }
            catch (Exception e) when (e is OperationCanceledException or HttpRequestException)
            {
                failure = StoreHttp.AttemptFailure(e, Describe, what, attemptTimeout, idempotent, _disposing, out retryable);
            }
            if (!retryable || policy.NextRetryDelay(attempt, _options.Time.GetElapsedTime(started)) is not { } delay)
                throw failure;
            await Task.Delay(delay, _options.Time, ct).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// 404 on a KV read means "no such key" only when it carries X-Consul-Index (never 0, §1.2, §1.3);
    /// without it the URL did not reach a Consul KV endpoint (wrong port, proxy, another service).
    /// </summary>
    private bool IsMissingKey(ConsulResponse response, string what)
    {
        if (response.Status != HttpStatusCode.NotFound)
            return false;
        if (response.Index == 0)
            throw new StoreRejectedException($"{Describe}: {what}: 404 without X-Consul-Index ({StoreHttp.Excerpt(response.Text)}); is this address a Consul agent's HTTP API?");
        return true;
    }

    /// <summary>
    /// A recursive read silently drops keys the token may not read (§1.2); to a watcher that looks like
    /// deletion, so a token that cannot read the whole prefix is a configuration error.
    /// </summary>
    private void EnsureUnfiltered(ConsulResponse response, string fullPrefix)
    {
        if (response.FilteredByAcls)
            throw new StoreAuthException($"{Describe}: the ACL token cannot read every key under '{fullPrefix}' (X-Consul-Results-Filtered-By-ACLs); give it read on the whole '{_root}/' prefix");
    }

    private void EnsureStatus(ConsulResponse response, string what, HttpStatusCode expected)
    {
        if (response.Status != expected)
            ThrowForStatus(response, what);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowForStatus(ConsulResponse response, string what)
    {
        var message = $"{Describe}: {what}: {(int)response.Status} {StoreHttp.Excerpt(response.Text)}";
        if (response.Text.Contains("invalid session", StringComparison.OrdinalIgnoreCase))
        {
            _liveness?.CheckNow();
            throw new LivenessLostException(message);
        }
        throw response.Status switch
        {
            HttpStatusCode.BadRequest or HttpStatusCode.RequestEntityTooLarge or HttpStatusCode.MethodNotAllowed or HttpStatusCode.NotFound => new StoreRejectedException(message),
            _ => new StoreUnavailableException(message),
        };
    }

    private T Deserialize<T>(ConsulResponse response, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type, string what)
    {
        try
        {
            return JsonSerializer.Deserialize(response.Body, type) ?? throw new JsonException("null document");
        }
        catch (JsonException e)
        {
            throw new StoreUnavailableException($"{Describe}: {what}: unreadable answer ({e.Message})", e);
        }
    }

    /// <summary>Destroys the session (its ephemeral keys go at once), stops watches, closes connections.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposeStarted, 1) != 0)
            return;
        if (_liveness is { } liveness)
            await liveness.DisposeAsync().ConfigureAwait(false);
        Volatile.Write(ref _disposed, 1);
        await _disposing.CancelAsync().ConfigureAwait(false);
        _client.Dispose();
        _watchClient.Dispose();
        _disposing.Dispose();
    }
}
