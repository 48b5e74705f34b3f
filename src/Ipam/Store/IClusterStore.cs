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
    /// <summary>
    /// Raised after recreation: the owner must re-publish every ephemeral key. Handlers must be idempotent:
    /// a handler that throws is called again after the next successful renewal.
    /// </summary>
    event Func<ILiveness, CancellationToken, Task>? Recreated;

    /// <summary>
    /// When the store last confirmed this liveness (creation or a successful renewal), on the liveness's clock; null
    /// when it cannot tell. Bounds how long a host may act on its own blocks while the store is unreachable
    /// (decisions #18): the collector reclaims only after the liveness has been gone for reclaim-after.
    /// </summary>
    DateTimeOffset? LastConfirmed => null;
}

/// <summary>
/// The one contract every backend (embedded, Consul, etcd) implements; the conformance suite
/// (tests/Ipam.Tests/Store/StoreConformanceTests.cs) checks them all alike.
/// Keys are '/'-separated segments of [a-z0-9._-]; no leading slash, no empty segment, no "..".
/// Bad keys, oversized values and transactions beyond Limits throw StoreRejectedException before anything is sent.
/// Errors: StoreUnavailableException (retryable outage; idempotent calls were already retried within a bounded
/// budget), StoreAuthException (token/ACL/TLS configuration), StoreRejectedException (a bug), LivenessLostException
/// (ephemeral write without a live session/lease). A failed precondition is a result, never an exception.
/// </summary>
public interface IClusterStore : IAsyncDisposable
{
    StoreLimits Limits { get; }
    /// <summary>The entry, or null when the key does not exist.</summary>
    Task<KvEntry?> GetAsync(string key, CancellationToken ct);
    /// <summary>
    /// Every key under the prefix (a plain string prefix: "a/" does not match "ab"), sorted ordinally, and the
    /// store revision the listing reflects. With keysOnly, entries carry the key only: Value is empty and
    /// Version/CreateVersion may be 0 (Consul's ?keys listing has no indexes).
    /// </summary>
    Task<(IReadOnlyList<KvEntry> Entries, long Revision)> ListAsync(string prefix, bool keysOnly, CancellationToken ct);
    /// <summary>
    /// Applied with the new version, or Conflict with the current entry (null when the key is absent).
    /// Ephemeral binds the key to this process's liveness (see StartLivenessAsync); a non-ephemeral put over this
    /// process's ephemeral key makes it persistent. Another live process's ephemeral key cannot be taken over on
    /// Consul (its lock holds: Conflict), while etcd rebinds it: do not rely on either.
    /// </summary>
    Task<WriteResult> PutAsync(string key, ReadOnlyMemory<byte> value, Precondition pre, bool ephemeral, CancellationToken ct);
    /// <summary>Applied; AlreadyAbsent when the key was not there (whatever the precondition); Conflict with the current entry.</summary>
    Task<WriteResult> DeleteAsync(string key, Precondition pre, CancellationToken ct);
    /// <summary>
    /// All-or-nothing. Every precondition (of checks, puts and deletes) must hold; a VersionIs precondition on an absent
    /// key fails. A key may be written at most once per transaction (a Check plus one write is fine).
    /// </summary>
    Task<TxnResult> CommitAsync(IReadOnlyList<TxnOp> ops, CancellationToken ct);
    /// <summary>
    /// Yields a Snapshot first, then changes in revision order; a Snapshot again after a resync (consumers replace
    /// their view). Consul coalesces changes that happen within its minimum call interval. Ends quietly when the
    /// store is disposed; throws OperationCanceledException when <paramref name="ct"/> is cancelled.
    /// </summary>
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
