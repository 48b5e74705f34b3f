using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace Skein.Ipam.Store.Etcd;

/// <summary>
/// IClusterStore over etcd v3's JSON gateway (cluster-store §2, §4.3): conditional writes as txn
/// compares on create/mod revision with a failure branch that reads the keys back (so a conflict
/// carries the current entry and names the failing operation), ephemeral keys bound to a lease,
/// prefix watches as a /v3/watch stream resumed from the last revision.
/// </summary>
public sealed partial class EtcdStore : IClusterStore
{
    private readonly EtcdStoreOptions _options;
    private readonly HttpClient _client;
    private readonly HttpClient _watchClient;
    private readonly string _root;
    private readonly CancellationTokenSource _disposing = new();
    private readonly SemaphoreSlim _authGate = new(1, 1);
    private string? _authToken;
    private EtcdLiveness? _liveness;
    private int _disposeStarted;
    private int _disposed;

    public EtcdStore(EtcdStoreOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        StoreRequestValidator.ValidateKey(options.RootPrefix, StoreLimits.Default);
        if ((options.User is null) != (options.Password is null))
            throw new ArgumentException("etcd user and password must be given together");
        _options = options;
        _root = options.RootPrefix;
        var location = new StoreLocation { Kind = StoreKind.Etcd, BaseAddress = options.BaseAddress };
        _client = CreateClient(options.Handler ?? StoreHttp.CreateHandler(location, options.Http), options);
        _watchClient = CreateClient(options.WatchHandler ?? StoreHttp.CreateHandler(location, options.Http), options);
    }

    public static EtcdStore Create(StoreLocation location, TimeProvider? time = null)
    {
        if (location.Kind != StoreKind.Etcd || location.BaseAddress is null)
            throw new ArgumentException($"store {location} is not an etcd store");
        var http = StoreHttpPolicy.Default;
        return new EtcdStore(new EtcdStoreOptions
        {
            BaseAddress = location.BaseAddress,
            RootPrefix = location.RootPrefix,
            User = location.User,
            Password = location.Password,
            Handler = StoreHttp.CreateHandler(location, http),
            WatchHandler = StoreHttp.CreateHandler(location, http),
            Time = time ?? TimeProvider.System,
            Http = http,
        });
    }

    private static HttpClient CreateClient(HttpMessageHandler handler, EtcdStoreOptions options)
    {
        var client = new HttpClient(handler, disposeHandler: true) { BaseAddress = options.BaseAddress, Timeout = Timeout.InfiniteTimeSpan };
        client.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("skein", "1"));
        return client;
    }

    public StoreLimits Limits { get; } = StoreLimits.Default;

    internal TimeProvider Time => _options.Time;

    private string Describe => $"etcd {_options.BaseAddress}";

    private byte[] FullKey(string key) => Encoding.UTF8.GetBytes($"{_root}/{key}");

    private string? Relative(byte[] fullKey)
    {
        var text = Encoding.UTF8.GetString(fullKey);
        return text.Length > _root.Length + 1 && text.StartsWith(_root, StringComparison.Ordinal) && text[_root.Length] == '/'
            ? text[(_root.Length + 1)..]
            : null;
    }

    /// <summary>range_end for a prefix: the prefix with its last byte incremented (§2.3); our alphabet never ends in 0xff.</summary>
    private static byte[] PrefixEnd(byte[] prefix)
    {
        var end = (byte[])prefix.Clone();
        for (var i = end.Length - 1; i >= 0; i--)
        {
            if (end[i] < 0xff)
            {
                end[i]++;
                return end[..(i + 1)];
            }
        }
        return [0];
    }

    private KvEntry ToEntry(EtcdKv kv, string relativeKey) =>
        new(relativeKey, kv.Value ?? [], kv.ModRevision, kv.CreateRevision, kv.Lease != 0);

    // ---- reads ---------------------------------------------------------------------------------

    public async Task<KvEntry?> GetAsync(string key, CancellationToken ct)
    {
        StoreRequestValidator.ValidateKey(key, Limits);
        var response = await CallAsync("range", "v3/kv/range", new EtcdRangeRequest { Key = FullKey(key) },
            EtcdJsonContext.Default.EtcdRangeRequest, EtcdJsonContext.Default.EtcdRangeResponse, idempotent: true, ct).ConfigureAwait(false);
        var kv = response.Kvs?.FirstOrDefault();
        return kv is null ? null : ToEntry(kv, key);
    }

    public async Task<(IReadOnlyList<KvEntry> Entries, long Revision)> ListAsync(string prefix, bool keysOnly, CancellationToken ct)
    {
        StoreRequestValidator.ValidatePrefix(prefix, Limits);
        var (entries, revision) = await RangePrefixAsync(prefix, keysOnly, ct).ConfigureAwait(false);
        return (entries, revision);
    }

    /// <summary>Pages through a prefix at one pinned revision, so the pages form one consistent snapshot.</summary>
    private async Task<(List<KvEntry> Entries, long Revision)> RangePrefixAsync(string prefix, bool keysOnly, CancellationToken ct)
    {
        var start = FullKey(prefix);
        var end = PrefixEnd(start);
        var entries = new List<KvEntry>();
        long? revision = null;
        while (true)
        {
            var response = await CallAsync("range", "v3/kv/range", new EtcdRangeRequest
            {
                Key = start,
                RangeEnd = end,
                Limit = _options.RangePageSize,
                Revision = revision,
                KeysOnly = keysOnly ? true : null,
            }, EtcdJsonContext.Default.EtcdRangeRequest, EtcdJsonContext.Default.EtcdRangeResponse, idempotent: true, ct).ConfigureAwait(false);
            revision ??= response.Header?.Revision ?? 0;
            var kvs = response.Kvs ?? [];
            foreach (var kv in kvs)
            {
                if (Relative(kv.Key) is { } rel)
                    entries.Add(ToEntry(kv, rel));
            }
            if (!response.More || kvs.Count == 0)
                return (entries, revision.Value);
            start = [.. kvs[^1].Key, 0]; // continue just after the last key (§2.3)
        }
    }

    // ---- writes --------------------------------------------------------------------------------

    public async Task<WriteResult> PutAsync(string key, ReadOnlyMemory<byte> value, Precondition pre, bool ephemeral, CancellationToken ct)
    {
        var op = new TxnOp.Put(key, value, pre, ephemeral);
        StoreRequestValidator.ValidateTxn([op], Limits);
        if (pre is Precondition.NoneCondition)
        {
            var put = await CallAsync("put", "v3/kv/put", new EtcdPutRequest
            {
                Key = FullKey(key),
                Value = value.ToArray(),
                Lease = ephemeral ? RequireLease() : null,
            }, EtcdJsonContext.Default.EtcdPutRequest, EtcdJsonContext.Default.EtcdPutResponse, idempotent: false, ct).ConfigureAwait(false);
            return new WriteResult(WriteOutcome.Applied, put.Header?.Revision ?? 0, null);
        }
        var outcome = await RunTxnAsync([op], ct).ConfigureAwait(false);
        return outcome.Applied
            ? new WriteResult(WriteOutcome.Applied, outcome.NewVersions[0], null)
            : new WriteResult(WriteOutcome.Conflict, 0, outcome.Reads.GetValueOrDefault(key));
    }

    public async Task<WriteResult> DeleteAsync(string key, Precondition pre, CancellationToken ct)
    {
        StoreRequestValidator.ValidateKey(key, Limits);
        StoreRequestValidator.ValidatePrecondition(key, pre);
        if (pre is Precondition.NoneCondition)
        {
            var deleted = await CallAsync("deleterange", "v3/kv/deleterange", new EtcdDeleteRangeRequest { Key = FullKey(key) },
                EtcdJsonContext.Default.EtcdDeleteRangeRequest, EtcdJsonContext.Default.EtcdDeleteRangeResponse, idempotent: false, ct).ConfigureAwait(false);
            return new WriteResult(deleted.Deleted > 0 ? WriteOutcome.Applied : WriteOutcome.AlreadyAbsent, 0, null);
        }
        var outcome = await RunTxnAsync([new TxnOp.Delete(key, pre)], ct).ConfigureAwait(false);
        if (outcome.Applied)
            return new WriteResult(pre is Precondition.AbsentCondition ? WriteOutcome.AlreadyAbsent : WriteOutcome.Applied, 0, null);
        // A MOD compare fails for a missing key too (§2.4): the failure branch's read tells which.
        var current = outcome.Reads.GetValueOrDefault(key);
        return current is null
            ? new WriteResult(WriteOutcome.AlreadyAbsent, 0, null)
            : new WriteResult(WriteOutcome.Conflict, 0, current);
    }

    public async Task<TxnResult> CommitAsync(IReadOnlyList<TxnOp> ops, CancellationToken ct)
    {
        StoreRequestValidator.ValidateTxn(ops, Limits);
        var outcome = await RunTxnAsync(ops, ct).ConfigureAwait(false);
        return new TxnResult(outcome.Applied, outcome.FailedOpIndex, outcome.NewVersions);
    }

    private sealed record TxnOutcome(bool Applied, int FailedOpIndex, long[] NewVersions, Dictionary<string, KvEntry> Reads);

    /// <summary>
    /// One kv/txn: a compare per precondition, the writes as the success branch, and a read of every
    /// guarded key as the failure branch, from which the first failing operation is found (§4.3).
    /// </summary>
    private async Task<TxnOutcome> RunTxnAsync(IReadOnlyList<TxnOp> ops, CancellationToken ct)
    {
        var request = new EtcdTxnRequest();
        var guarded = new List<string>();
        long? lease = null;
        foreach (var op in ops)
        {
            var (key, pre) = StoreRequestValidator.KeyAndPrecondition(op);
            switch (pre)
            {
                case Precondition.AbsentCondition:
                    request.Compare.Add(new EtcdCompare { Target = "CREATE", Key = FullKey(key), CreateRevision = 0 });
                    break;
                case Precondition.VersionCondition v:
                    request.Compare.Add(new EtcdCompare { Target = "MOD", Key = FullKey(key), ModRevision = v.Version });
                    break;
            }
            if (pre is not Precondition.NoneCondition && !guarded.Contains(key))
            {
                guarded.Add(key);
                request.Failure.Add(new EtcdRequestOp { RequestRange = new EtcdRangeRequest { Key = FullKey(key) } });
            }
            switch (op)
            {
                case TxnOp.Put put:
                    if (put.Ephemeral)
                        lease ??= RequireLease();
                    request.Success.Add(new EtcdRequestOp
                    {
                        RequestPut = new EtcdPutRequest { Key = FullKey(put.Key), Value = put.Value.ToArray(), Lease = put.Ephemeral ? lease : null },
                    });
                    break;
                case TxnOp.Delete { Pre: not Precondition.AbsentCondition } delete:
                    request.Success.Add(new EtcdRequestOp { RequestDeleteRange = new EtcdDeleteRangeRequest { Key = FullKey(delete.Key) } });
                    break;
            }
        }

        var versions = new long[ops.Count];
        var response = await CallAsync("txn", "v3/kv/txn", request, EtcdJsonContext.Default.EtcdTxnRequest,
            EtcdJsonContext.Default.EtcdTxnResponse, idempotent: false, ct).ConfigureAwait(false);
        var reads = new Dictionary<string, KvEntry>(StringComparer.Ordinal);
        if (response.Succeeded)
        {
            var revision = response.Header?.Revision ?? 0;
            for (var i = 0; i < ops.Count; i++)
            {
                if (ops[i] is TxnOp.Put)
                    versions[i] = revision;
            }
            return new TxnOutcome(true, -1, versions, reads);
        }
        foreach (var read in response.Responses ?? [])
        {
            foreach (var kv in read.ResponseRange?.Kvs ?? [])
            {
                if (Relative(kv.Key) is { } rel)
                    reads[rel] = ToEntry(kv, rel);
            }
        }
        var failed = 0;
        for (var i = 0; i < ops.Count; i++)
        {
            var (key, pre) = StoreRequestValidator.KeyAndPrecondition(ops[i]);
            var current = reads.GetValueOrDefault(key);
            var holds = pre switch
            {
                Precondition.AbsentCondition => current is null,
                Precondition.VersionCondition v => current?.Version == v.Version,
                _ => true,
            };
            if (!holds)
            {
                failed = i;
                break;
            }
        }
        return new TxnOutcome(false, failed, versions, reads);
    }

    // ---- liveness ------------------------------------------------------------------------------

    public async Task<ILiveness> StartLivenessAsync(LivenessOptions options, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Ttl < TimeSpan.FromSeconds(1))
            throw new ArgumentException($"etcd lease TTL {options.Ttl} is below one second");
        if (options.RenewEvery <= TimeSpan.Zero || options.RenewEvery >= options.Ttl)
            throw new ArgumentException($"liveness keepalive interval {options.RenewEvery} must be positive and shorter than the TTL {options.Ttl}");
        if (_liveness is { } existing)
            throw new InvalidOperationException($"this etcd store already has a liveness (lease {existing.Id}); start one per process and dispose it before starting another");
        if (options.PreviousId is { } previous)
        {
            if (!long.TryParse(previous, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var previousLease))
                throw new ArgumentException($"previous liveness id '{previous}' is not an etcd lease id");
            await RevokeLeaseAsync(previousLease, ct).ConfigureAwait(false);
        }
        var liveness = await EtcdLiveness.StartAsync(this, options, ct).ConfigureAwait(false);
        if (Interlocked.CompareExchange(ref _liveness, liveness, null) is not null)
        {
            await liveness.DisposeAsync().ConfigureAwait(false);
            throw new InvalidOperationException("this etcd store already has a liveness; start one per process");
        }
        return liveness;
    }

    internal void ForgetLiveness(EtcdLiveness liveness) => Interlocked.CompareExchange(ref _liveness, null, liveness);

    private long RequireLease() =>
        _liveness?.LeaseId ?? throw new LivenessLostException($"ephemeral write to {Describe} without a started liveness (call StartLivenessAsync first)");

    internal async Task<(long Id, long Ttl)> GrantLeaseAsync(TimeSpan ttl, CancellationToken ct)
    {
        var response = await CallAsync("lease grant", "v3/lease/grant", new EtcdLeaseGrantRequest { Ttl = (long)Math.Ceiling(ttl.TotalSeconds) },
            EtcdJsonContext.Default.EtcdLeaseGrantRequest, EtcdJsonContext.Default.EtcdLeaseGrantResponse, idempotent: false, ct).ConfigureAwait(false);
        if (response.Id == 0 || !string.IsNullOrEmpty(response.Error))
            throw new StoreUnavailableException($"{Describe}: lease grant failed: {response.Error ?? "no lease ID returned"}");
        return (response.Id, response.Ttl);
    }

    /// <summary>One keepalive round trip (§2.5): remaining TTL, 0 when the lease is gone.</summary>
    internal async Task<long> KeepAliveAsync(long leaseId, CancellationToken ct)
    {
        var body = JsonSerializer.SerializeToUtf8Bytes(new EtcdLeaseIdRequest { Id = leaseId }, EtcdJsonContext.Default.EtcdLeaseIdRequest);
        var response = await SendAsync("lease keepalive", () => JsonRequest("v3/lease/keepalive", body), idempotent: true, ct).ConfigureAwait(false);
        EnsureSuccess(response, "lease keepalive");
        // The gateway streams one {"result":...} line per request; we sent one.
        var firstLine = response.Text.Split('\n', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault() ?? "";
        EtcdLeaseKeepAliveLine? line;
        try
        {
            line = JsonSerializer.Deserialize(firstLine, EtcdJsonContext.Default.EtcdLeaseKeepAliveLine);
        }
        catch (JsonException e)
        {
            throw new StoreUnavailableException($"{Describe}: lease keepalive: unreadable answer ({e.Message})", e);
        }
        if (line?.Error is { } error)
        {
            if (error.GrpcCode == 5)
                return 0;
            throw new StoreUnavailableException($"{Describe}: lease keepalive: {error.Message}");
        }
        return line?.Result?.Ttl ?? 0;
    }

    internal async Task RevokeLeaseAsync(long leaseId, CancellationToken ct)
    {
        var body = JsonSerializer.SerializeToUtf8Bytes(new EtcdLeaseIdRequest { Id = leaseId }, EtcdJsonContext.Default.EtcdLeaseIdRequest);
        var response = await SendAsync("lease revoke", () => JsonRequest("v3/lease/revoke", body), idempotent: true, ct).ConfigureAwait(false);
        if (response.Status == HttpStatusCode.NotFound)
            return; // already gone
        EnsureSuccess(response, "lease revoke");
    }

    // ---- HTTP ----------------------------------------------------------------------------------

    internal sealed record EtcdResponse(HttpStatusCode Status, byte[] Body)
    {
        public string Text => Encoding.UTF8.GetString(Body);
    }

    private static HttpRequestMessage JsonRequest(string path, byte[] body) => new(HttpMethod.Post, path)
    {
        Content = new ByteArrayContent(body) { Headers = { ContentType = new MediaTypeHeaderValue("application/json") } },
    };

    private async Task<TResponse> CallAsync<TRequest, TResponse>(string what, string path, TRequest request, JsonTypeInfo<TRequest> requestType,
        JsonTypeInfo<TResponse> responseType, bool idempotent, CancellationToken ct)
    {
        var body = JsonSerializer.SerializeToUtf8Bytes(request, requestType);
        var response = await SendAsync(what, () => JsonRequest(path, body), idempotent, ct).ConfigureAwait(false);
        EnsureSuccess(response, what);
        try
        {
            return JsonSerializer.Deserialize(response.Body, responseType) ?? throw new JsonException("null document");
        }
        catch (JsonException e)
        {
            throw new StoreUnavailableException($"{Describe}: {what}: unreadable answer ({e.Message})", e);
        }
    }

    /// <summary>
    /// One call with a deadline per attempt, the auth token attached and refreshed once on 401 (§2.7).
    /// Idempotent calls retry transport failures and 429/5xx with jittered back-off; others retry only
    /// what surely never reached etcd.
    /// </summary>
    private async Task<EtcdResponse> SendAsync(string what, Func<HttpRequestMessage> build, bool idempotent, CancellationToken ct,
        HttpClient? client = null, HttpCompletionOption completion = HttpCompletionOption.ResponseContentRead)
    {
        client ??= _client;
        var policy = _options.Http;
        var started = _options.Time.GetTimestamp();
        var reauthenticated = false;
        for (var attempt = 1; ; attempt++)
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct, _disposing.Token);
            var attemptTimeout = policy.AttemptTimeout(_options.Time.GetElapsedTime(started));
            deadline.CancelAfter(attemptTimeout);
            Exception failure;
            bool retryable;
            try
            {
                var token = await AuthTokenAsync(forceRefresh: false, deadline.Token).ConfigureAwait(false);
                using var request = build();
                if (token is not null)
                    request.Headers.TryAddWithoutValidation("Authorization", token); // the raw token; "Bearer" is refused by 3.4
                using var response = await client.SendAsync(request, completion, deadline.Token).ConfigureAwait(false);
                var body = await response.Content.ReadAsByteArrayAsync(deadline.Token).ConfigureAwait(false);
                var result = new EtcdResponse(response.StatusCode, body);
                if (response.StatusCode == HttpStatusCode.Unauthorized && _options.User is not null && !reauthenticated)
                {
                    reauthenticated = true; // simple tokens expire after inactivity: authenticate once more
                    await AuthTokenAsync(forceRefresh: true, deadline.Token).ConfigureAwait(false);
                    attempt--;
                    continue;
                }
                if (!StoreHttp.IsRetryableStatus(response.StatusCode))
                    return result;
                failure = new StoreUnavailableException($"{Describe}: {what}: {(int)response.StatusCode} {ErrorText(result)}");
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

    private async Task<string?> AuthTokenAsync(bool forceRefresh, CancellationToken ct)
    {
        if (_options.User is null)
            return null;
        if (!forceRefresh && Volatile.Read(ref _authToken) is { } cached)
            return cached;
        await _authGate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (!forceRefresh && _authToken is not null)
                return _authToken;
            var body = JsonSerializer.SerializeToUtf8Bytes(new EtcdAuthenticateRequest { Name = _options.User, Password = _options.Password! },
                EtcdJsonContext.Default.EtcdAuthenticateRequest);
            using var request = JsonRequest("v3/auth/authenticate", body);
            using var response = await _client.SendAsync(request, ct).ConfigureAwait(false);
            var result = new EtcdResponse(response.StatusCode, await response.Content.ReadAsByteArrayAsync(ct).ConfigureAwait(false));
            if (!response.IsSuccessStatusCode)
            {
                if (StoreHttp.IsRetryableStatus(response.StatusCode))
                    throw new StoreUnavailableException($"{Describe}: authenticate as '{_options.User}': {(int)response.StatusCode} {ErrorText(result)}");
                throw new StoreAuthException($"{Describe}: authenticate as '{_options.User}': {(int)response.StatusCode} {ErrorText(result)}");
            }
            var token = JsonSerializer.Deserialize(result.Body, EtcdJsonContext.Default.EtcdAuthenticateResponse)?.Token;
            if (string.IsNullOrEmpty(token))
                throw new StoreAuthException($"{Describe}: authenticate as '{_options.User}' returned no token (is auth enabled?)");
            Volatile.Write(ref _authToken, token);
            return token;
        }
        finally
        {
            _authGate.Release();
        }
    }

    private void EnsureSuccess(EtcdResponse response, string what)
    {
        if (response.Status == HttpStatusCode.OK)
            return;
        var error = ParseError(response);
        var message = $"{Describe}: {what}: {(int)response.Status} {ErrorText(response)}";
        if (error?.Code == 5 || (error?.Message?.Contains("lease not found", StringComparison.OrdinalIgnoreCase) ?? false))
        {
            _liveness?.CheckNow();
            throw new LivenessLostException(message);
        }
        var text = error?.Message ?? "";
        throw response.Status switch
        {
            HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden => new StoreAuthException(message),
            // With auth enabled and no token the gateway answers 400 "user name is empty" (§2.7).
            HttpStatusCode.BadRequest when text.Contains("user name is empty", StringComparison.Ordinal)
                                          || text.Contains("authentication failed", StringComparison.Ordinal) => new StoreAuthException(message),
            HttpStatusCode.NotFound when error is null => new StoreRejectedException($"{message} (is the gRPC gateway enabled? it is off when etcd 3.4 runs from a config file without enable-grpc-gateway: true)"),
            HttpStatusCode.BadRequest or HttpStatusCode.NotFound or HttpStatusCode.MethodNotAllowed or HttpStatusCode.RequestEntityTooLarge => new StoreRejectedException(message),
            _ => new StoreUnavailableException(message),
        };
    }

    private static EtcdErrorBody? ParseError(EtcdResponse response)
    {
        try
        {
            return JsonSerializer.Deserialize(response.Body, EtcdJsonContext.Default.EtcdErrorBody);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static string ErrorText(EtcdResponse response) =>
        ParseError(response) is { Message: { } message } error ? $"{message} (code {error.Code})" : StoreHttp.Excerpt(response.Text);

    /// <summary>Revokes the lease (its ephemeral keys go at once), stops watches, closes connections.</summary>
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
