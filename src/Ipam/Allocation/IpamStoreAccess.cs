using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Skein.Ipam.Store;

namespace Skein.Ipam.Allocation;

/// <summary>
/// The IPAM's door to the cluster store: typed reads, writer tokens, transactions that survive an
/// ambiguous failure (a time-out after the request was sent: re-read and look for our own token),
/// and the translation of store exceptions into errors fit for the docker CLI user.
/// </summary>
internal sealed class IpamStoreAccess(IClusterStore store, string nodeId, string incarnation, TimeProvider time)
{
    private const int UnavailableAttempts = 3;
    private long _sequence;
    private readonly LastMoment _lastAnswer = new();

    /// <summary>When the store last answered an IPAM call (any answer that is not an outage); null: never.</summary>
    public DateTimeOffset? LastAnswer => _lastAnswer.Value;

    private void Answered() => _lastAnswer.Set(time.GetUtcNow());

    public IClusterStore Store { get; } = store;

    /// <summary>A new writer token "&lt;node&gt;/&lt;incarnation&gt;/&lt;seq&gt;" for one logical write.</summary>
    public string NextToken() => $"{nodeId}/{incarnation}/{Interlocked.Increment(ref _sequence)}";

    public async Task<(T Value, long Version)?> ReadAsync<T>(string key, JsonTypeInfo<T> type, CancellationToken ct)
    {
        var entry = await Guard(() => Store.GetAsync(key, ct)).ConfigureAwait(false);
        if (entry is null)
            return null;
        return (Decode(entry, type), entry.Version);
    }

    public Task<(IReadOnlyList<KvEntry> Entries, long Revision)> ListAsync(string prefix, bool keysOnly, CancellationToken ct) =>
        Guard(() => Store.ListAsync(prefix, keysOnly, ct));

    public static T Decode<T>(KvEntry entry, JsonTypeInfo<T> type)
    {
        try
        {
            return JsonSerializer.Deserialize(entry.Value.Span, type)
                ?? throw new SkeinException(ErrorKind.Internal, $"store key {entry.Key} holds null instead of a record");
        }
        catch (JsonException e)
        {
            throw new SkeinException(ErrorKind.Internal, $"store key {entry.Key} holds a record skein cannot read ({e.Message})", e);
        }
    }

    public static ReadOnlyMemory<byte> Encode<T>(T value, JsonTypeInfo<T> type) => JsonSerializer.SerializeToUtf8Bytes(value, type);

    /// <summary>
    /// Commits all-or-nothing. A conflict is a result. After a transport failure the first Put's key is
    /// re-read: finding <paramref name="token"/> there means the transaction did apply (for deletes
    /// only: the first deleted key being gone), and the result
    /// then carries version 0 for every op (the caller must re-read what it caches).
    /// </summary>
    public async Task<TxnResult> CommitAsync(IReadOnlyList<TxnOp> ops, string token, CancellationToken ct)
    {
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                var result = await Store.CommitAsync(ops, ct).ConfigureAwait(false);
                Answered();
                return result;
            }
            catch (StoreUnavailableException e)
            {
                var applied = await WasAppliedAsync(ops, token, ct).ConfigureAwait(false);
                if (applied == true)
                    return new TxnResult(true, -1, new long[ops.Count]);
                // The check could not reach the store either: it is down, not blinking (the client already retried).
                if (applied is null || attempt >= UnavailableAttempts)
                    throw Unavailable(e);
                await Task.Delay(TimeSpan.FromMilliseconds(50 * attempt + Random.Shared.Next(50)), ct).ConfigureAwait(false);
            }
            catch (StoreAuthException e)
            {
                throw new SkeinException(ErrorKind.Unavailable, $"the cluster store refused skein's credentials: {e.Message}", e);
            }
            catch (StoreRejectedException e)
            {
                throw new SkeinException(ErrorKind.Internal, $"the cluster store rejected an IPAM write: {e.Message}", e);
            }
        }
    }

    /// <summary>Whether the transaction applied; null when the store could not be asked.</summary>
    private async Task<bool?> WasAppliedAsync(IReadOnlyList<TxnOp> ops, string token, CancellationToken ct)
    {
        var firstPut = ops.OfType<TxnOp.Put>().FirstOrDefault();
        try
        {
            if (firstPut is null)
            {
                // A transaction of deletes left no token behind: it applied if its first key is gone.
                var firstDelete = ops.OfType<TxnOp.Delete>().FirstOrDefault();
                return firstDelete is not null && await Store.GetAsync(firstDelete.Key, ct).ConfigureAwait(false) is null;
            }
            var entry = await Store.GetAsync(firstPut.Key, ct).ConfigureAwait(false);
            if (entry is null)
                return false;
            using var document = JsonDocument.Parse(entry.Value);
            return document.RootElement.ValueKind == JsonValueKind.Object
                && document.RootElement.TryGetProperty("w", out var writer)
                && writer.ValueKind == JsonValueKind.String
                && writer.GetString() == token;
        }
        catch (StoreUnavailableException)
        {
            return null;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>
    /// A read, once: the store client already retried it within its own budget (reads are idempotent), so another
    /// round here would only multiply the wait before an outage is reported (and the journal takes over).
    /// </summary>
    private async Task<T> Guard<T>(Func<Task<T>> read)
    {
        try
        {
            var value = await read().ConfigureAwait(false);
            Answered();
            return value;
        }
        catch (StoreUnavailableException e)
        {
            throw Unavailable(e);
        }
        catch (StoreAuthException e)
        {
            throw new SkeinException(ErrorKind.Unavailable, $"the cluster store refused skein's credentials: {e.Message}", e);
        }
        catch (StoreRejectedException e)
        {
            throw new SkeinException(ErrorKind.Internal, $"the cluster store rejected an IPAM read: {e.Message}", e);
        }
    }

    internal static SkeinException Unavailable(Exception e) =>
        new(ErrorKind.Unavailable, $"the cluster store is unreachable, so skein cannot change addresses now: {e.Message}", e);
}
