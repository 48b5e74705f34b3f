using System.Runtime.CompilerServices;

namespace Skein.Ipam.Store;

/// <summary>One key as the store holds it. Version is the store's modify index (0 = absent).</summary>
public sealed record KvEntry(string Key, ReadOnlyMemory<byte> Value, long Version, long CreateVersion, bool Ephemeral);

/// <summary>The condition under which a write applies.</summary>
public abstract record Precondition
{
    public static readonly Precondition None = new NoneCondition();
    public static readonly Precondition Absent = new AbsentCondition();
    public static Precondition VersionIs(long version) => new VersionCondition(version);

    public sealed record NoneCondition : Precondition;
    public sealed record AbsentCondition : Precondition;
    public sealed record VersionCondition(long Version) : Precondition;
}

public enum WriteOutcome { Applied, Conflict, AlreadyAbsent }

/// <summary>A CAS conflict is a result, not an exception. Current is filled on Conflict when cheap.</summary>
public sealed record WriteResult(WriteOutcome Outcome, long NewVersion, KvEntry? Current);

public abstract record TxnOp
{
    public sealed record Check(string Key, Precondition Pre) : TxnOp;
    public sealed record Put(string Key, ReadOnlyMemory<byte> Value, Precondition Pre, bool Ephemeral = false) : TxnOp;
    public sealed record Delete(string Key, Precondition Pre) : TxnOp;
}

/// <summary>All-or-nothing. FailedOpIndex is -1 when applied; NewVersions has one entry per op (0 for checks/deletes).</summary>
public sealed record TxnResult(bool Applied, int FailedOpIndex, IReadOnlyList<long> NewVersions);

public abstract record WatchUpdate
{
    public sealed record Snapshot(IReadOnlyDictionary<string, KvEntry> Entries, long Revision) : WatchUpdate;
    public sealed record Upsert(KvEntry Entry) : WatchUpdate;
    public sealed record Removed(string Key, long Revision) : WatchUpdate;
}

public sealed record StoreLimits(int MaxTxnOps = 64, int MaxValueBytes = 256 * 1024, int MaxKeyBytes = 512)
{
    public static readonly StoreLimits Default = new();
}

/// <param name="Ttl">Consul session TTL (at least 10 s) / etcd lease TTL; ignored by the embedded store.</param>
/// <param name="RenewEvery">Renew / keepalive interval, shorter than Ttl.</param>
/// <param name="Name">Label seen by operators (Consul session name): node id and incarnation.</param>
/// <param name="PreviousId">
/// The liveness id this node's previous incarnation recorded locally, if any. It is destroyed before the
/// new one starts, so the old incarnation's ephemeral keys go at once instead of after its TTL (cluster-store §4.6 step 2).
/// </param>
public sealed record LivenessOptions(TimeSpan Ttl, TimeSpan RenewEvery, string Name = "skein", string? PreviousId = null);

/// <summary>A store-side object (Consul session, etcd lease, embedded token) that binds ephemeral keys to this process.</summary>
public interface ILiveness : IAsyncDisposable
{
    string Id { get; }
    /// <summary>+1 each time the store-side object had to be recreated.</summary>
    long Generation { get; }
    /// <summary>Raised after recreation: the owner must re-publish every ephemeral key.</summary>
    event Func<ILiveness, CancellationToken, Task>? Recreated;
}

/// <summary>
/// The one contract every backend (embedded, Consul, etcd) implements; the conformance suite checks them all alike.
/// Keys are '/'-separated segments of [a-z0-9._-]; no leading slash.
/// </summary>
public interface IClusterStore : IAsyncDisposable
{
    StoreLimits Limits { get; }
    Task<KvEntry?> GetAsync(string key, CancellationToken ct);
    /// <summary>
    /// Every key under the prefix (a plain string prefix: "a/" does not match "ab"), sorted ordinally, and the
    /// store revision the listing reflects. With keysOnly, entries carry the key only: Value is empty and
    /// Version/CreateVersion may be 0 (Consul's ?keys listing has no indexes).
    /// </summary>
    Task<(IReadOnlyList<KvEntry> Entries, long Revision)> ListAsync(string prefix, bool keysOnly, CancellationToken ct);
    Task<WriteResult> PutAsync(string key, ReadOnlyMemory<byte> value, Precondition pre, bool ephemeral, CancellationToken ct);
    Task<WriteResult> DeleteAsync(string key, Precondition pre, CancellationToken ct);
    Task<TxnResult> CommitAsync(IReadOnlyList<TxnOp> ops, CancellationToken ct);
    /// <summary>Yields a Snapshot first, then changes; a Snapshot again after a resync.</summary>
    IAsyncEnumerable<WatchUpdate> WatchPrefixAsync(string prefix, CancellationToken ct);
    /// <summary>One per process; binds ephemeral writes.</summary>
    Task<ILiveness> StartLivenessAsync(LivenessOptions options, CancellationToken ct);
}

/// <summary>Transport errors, 429/5xx: retryable for idempotent operations.</summary>
public class StoreUnavailableException(string message, Exception? inner = null) : Exception(message, inner);
/// <summary>401/403: a configuration error.</summary>
public class StoreAuthException(string message) : Exception(message);
/// <summary>400/413: a request the store refused; a bug, never retried.</summary>
public class StoreRejectedException(string message) : Exception(message);
/// <summary>The session or lease behind an ephemeral write is gone.</summary>
public class LivenessLostException(string message) : Exception(message);
