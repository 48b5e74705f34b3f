using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using Skein.Ipam.Addressing;
using Skein.Ipam.Allocation;
using Skein.Ipam.Host;
using Skein.Ipam.Store;
using Skein.Ipam.Store.Consul;

namespace Skein.Ipam.Cluster;

/// <param name="NodeId">This host's id: [a-z0-9-]{1,63}.</param>
/// <param name="KeyRoot">Root of every key, as the IPAM uses it (IpamOptions.KeyRoot).</param>
/// <param name="AdvertiseAddress">This host's underlay IP (its VTEP).</param>
/// <param name="ReclaimAfter">How long a dead node's addresses are kept before the collector reclaims them.</param>
/// <param name="Ttl">Liveness TTL; default 20 s on Consul, 15 s on etcd (cluster-store §4.6).</param>
/// <param name="RenewEvery">Renewal interval; default 10 s on Consul, 5 s on etcd.</param>
/// <param name="StateDir">Where the liveness id is kept across restarts (file "liveness-id"); none when null.</param>
public sealed record NodeMembershipOptions(string NodeId, string KeyRoot, string AdvertiseAddress,
    TimeSpan ReclaimAfter, TimeSpan? Ttl = null, TimeSpan? RenewEvery = null, string? StateDir = null);

/// <summary>An endpoint this node runs, as fencing needs it.</summary>
/// <param name="EndpointId">Docker's endpoint id.</param>
/// <param name="Mac">The endpoint's MAC address.</param>
/// <param name="Address">Its address with the pool's prefix length ("10.20.0.5/16").</param>
/// <param name="Pool">The pool CIDR the address came from.</param>
public sealed record LocalEndpointClaim(string EndpointId, string Mac, string Address, string Pool);

/// <summary>Another live process holds nodes/&lt;node&gt;: two hosts (or two plugins) use one node id.</summary>
public sealed class DuplicateNodeIdException(string nodeId, string message) : SkeinException(ErrorKind.Conflict, message)
{
    public string NodeId { get; } = nodeId;
}

/// <summary>
/// This node's identity in the cluster store (cluster-store §4.6): a liveness (Consul session / etcd lease)
/// that replaces the previous incarnation's, the ephemeral claim nodes/&lt;node&gt; that refuses a duplicate
/// node id, the incarnation counter in nodeinfo/&lt;node&gt;, re-publication after the liveness had to be
/// recreated, and fencing of local endpoints against what the collector reclaimed (§4.9).
/// </summary>
public sealed partial class NodeMembership : IAsyncDisposable
{
    private const string LivenessIdFile = "liveness-id";
    private static readonly TimeSpan ConsulTtl = TimeSpan.FromSeconds(20), ConsulRenew = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan EtcdTtl = TimeSpan.FromSeconds(15), EtcdRenew = TimeSpan.FromSeconds(5);

    private readonly IClusterStore _store;
    private readonly NodeMembershipOptions _options;
    private readonly TimeProvider _time;
    private readonly Action<string> _log;
    private readonly StoreKeys _keys;
    private ILiveness _liveness = null!;
    private IpamService _ipam = null!;
    private long _previousIncarnation;
    private long _startedAt;
    private int _disposed;

    private NodeMembership(IClusterStore store, NodeMembershipOptions options, TimeProvider time, Action<string> log)
    {
        _store = store;
        _options = options;
        _time = time;
        _log = log;
        _keys = new StoreKeys(options.KeyRoot, options.NodeId);
    }

    public string NodeId => _options.NodeId;

    /// <summary>This run's incarnation (1 on a node's first start), from nodeinfo/&lt;node&gt;.</summary>
    public long Incarnation { get; private set; }

    public ILiveness Liveness => _liveness;

    internal IClusterStore Store => _store;

    internal TimeProvider Time => _time;

    internal string KeyRoot => _options.KeyRoot;

    /// <summary>The allocator's block logic, acting as this node (fencing, and the collector's writes).</summary>
    internal IpamService Ipam => _ipam;

    /// <summary>Raised after the liveness was recreated and nodes/&lt;node&gt; re-claimed: re-publish every ephemeral key.</summary>
    public event Func<CancellationToken, Task>? Republish;

    /// <summary>
    /// Starts liveness (destroying the previous one recorded in StateDir), claims nodes/&lt;node&gt;
    /// (DuplicateNodeIdException when another live process holds it) and increments the incarnation.
    /// </summary>
    public static async Task<NodeMembership> StartAsync(IClusterStore store, NodeMembershipOptions options, TimeProvider time,
        Action<string> log, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(time);
        ArgumentNullException.ThrowIfNull(log);
        if (options.NodeId is null || !NodeIdPattern().IsMatch(options.NodeId))
            throw SkeinException.Invalid($"node id '{IpAddressText.Printable(options.NodeId ?? "")}' must be 1-63 characters of a-z, 0-9 and '-'");
        if (!IpAddressText.TryParse(options.AdvertiseAddress ?? "", out var advertise, out var error))
            throw SkeinException.Invalid($"advertise address '{IpAddressText.Printable(options.AdvertiseAddress ?? "")}' is not an IP address: {error}");
        if (options.KeyRoot is null)
            throw SkeinException.Invalid("the key root is missing (use \"\" when the store applies the root)");
        bool consul = store is ConsulStore;
        var ttl = options.Ttl ?? (consul ? ConsulTtl : EtcdTtl);
        var renew = options.RenewEvery ?? (consul ? ConsulRenew : EtcdRenew);
        if (options.ReclaimAfter <= ttl)
            throw SkeinException.Invalid($"reclaim-after ({options.ReclaimAfter.TotalSeconds:0} s) must be much longer than the liveness TTL ({ttl.TotalSeconds:0} s)");

        var membership = new NodeMembership(store, options, time, log);
        await membership.StartLivenessAsync(ttl, renew, ct).ConfigureAwait(false);
        try
        {
            await membership.JoinAsync(IpAddressText.Format(advertise), ct).ConfigureAwait(false);
        }
        catch
        {
            await membership._liveness.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        membership._liveness.Recreated += membership.OnLivenessRecreatedAsync;
        return membership;
    }

    private async Task StartLivenessAsync(TimeSpan ttl, TimeSpan renew, CancellationToken ct)
    {
        string? idFile = _options.StateDir is { } dir ? Path.Combine(dir, LivenessIdFile) : null;
        string? previous = null;
        if (idFile is not null && File.Exists(idFile))
        {
            previous = (await File.ReadAllTextAsync(idFile, ct).ConfigureAwait(false)).Trim();
            if (previous.Length == 0)
                previous = null;
        }
        var liveness = new LivenessOptions(ttl, renew, $"skein {_options.NodeId}", previous);
        try
        {
            _liveness = await _store.StartLivenessAsync(liveness, ct).ConfigureAwait(false);
        }
        catch (ArgumentException e) when (previous is not null)
        {
            // Recorded by another kind of store (the operator switched backends): nothing to destroy here.
            _log($"ignoring the previous liveness id '{IpAddressText.Printable(previous)}' in {idFile}: {e.Message}");
            _liveness = await _store.StartLivenessAsync(liveness with { PreviousId = null }, ct).ConfigureAwait(false);
        }
        if (idFile is not null)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(idFile)!);
            string temp = idFile + ".tmp";
            await File.WriteAllTextAsync(temp, _liveness.Id + "\n", ct).ConfigureAwait(false);
            File.Move(temp, idFile, overwrite: true);
        }
    }

    /// <summary>Claims nodes/&lt;node&gt; and CAS-increments nodeinfo/&lt;node&gt; (§4.6 steps 4-5).</summary>
    private async Task JoinAsync(string advertise, CancellationToken ct)
    {
        _startedAt = _time.GetUtcNow().ToUnixTimeSeconds();
        var info = await ReadInfoAsync(ct).ConfigureAwait(false);
        long next = (info?.Record.Incarnation ?? 0) + 1;
        await ClaimNodeKeyAsync(advertise, next, ct).ConfigureAwait(false);
        for (int attempt = 1; ; attempt++)
        {
            var record = (info?.Record ?? new NodeInfoRecord()) with
            {
                W = $"{NodeId}/{next}",
                Incarnation = next,
                LastStart = _startedAt,
            };
            var result = await _store.PutAsync(_keys.NodeInfo(NodeId), Encode(record, ClusterJsonContext.Default.NodeInfoRecord),
                info is { } read ? Precondition.VersionIs(read.Version) : Precondition.Absent, ephemeral: false, ct).ConfigureAwait(false);
            if (result.Outcome == WriteOutcome.Applied)
                break;
            if (attempt >= 16)
                throw new SkeinException(ErrorKind.Unavailable, $"nodeinfo/{NodeId} kept changing while skein started; try again");
            info = await ReadInfoAsync(ct).ConfigureAwait(false);
            long again = (info?.Record.Incarnation ?? 0) + 1;
            if (again != next)
            {
                next = again;
                await ClaimNodeKeyAsync(advertise, next, ct, replace: true).ConfigureAwait(false);
            }
        }
        _previousIncarnation = next - 1;
        Incarnation = next;
        _ipam = new IpamService(_store, new IpamOptions { NodeId = NodeId, KeyRoot = _options.KeyRoot, Incarnation = $"i{next}" },
            NoHostNetworks.Instance, _time);
        _log($"node {NodeId} joined the cluster store as incarnation {next} (liveness {_liveness.Id})");
    }

    private async Task ClaimNodeKeyAsync(string advertise, long incarnation, CancellationToken ct, bool replace = false)
    {
        var record = new NodeRecord { Addr = advertise, Vtep = advertise, Incarnation = incarnation, StartedAt = _startedAt };
        var value = Encode(record, ClusterJsonContext.Default.NodeRecord);
        string key = _keys.Node(NodeId);
        if (replace)
        {
            var mine = await _store.GetAsync(key, ct).ConfigureAwait(false);
            if (mine is not null)
            {
                await _store.PutAsync(key, value, Precondition.VersionIs(mine.Version), ephemeral: true, ct).ConfigureAwait(false);
                return;
            }
        }
        var result = await _store.PutAsync(key, value, Precondition.Absent, ephemeral: true, ct).ConfigureAwait(false);
        if (result.Outcome == WriteOutcome.Applied)
            return;
        string holder = "another process";
        if (result.Current is { } current)
        {
            try
            {
                var other = JsonSerializer.Deserialize(current.Value.Span, ClusterJsonContext.Default.NodeRecord);
                if (other is not null)
                    holder = $"another process (address {other.Addr}, incarnation {other.Incarnation})";
            }
            catch (JsonException)
            {
            }
        }
        throw new DuplicateNodeIdException(NodeId,
            $"node id '{NodeId}' is already in use: {holder} holds {key} in the cluster store. Two hosts (a cloned VM, a duplicate hostname) " +
            $"or two skein processes share this node id; give each host its own --node-id (SKEIN_NODE_ID), or stop the other one and retry once its key is gone");
    }

    private async Task OnLivenessRecreatedAsync(ILiveness liveness, CancellationToken ct)
    {
        string key = _keys.Node(NodeId);
        var record = new NodeRecord { Addr = VtepText, Vtep = VtepText, Incarnation = Incarnation, StartedAt = _startedAt };
        var result = await _store.PutAsync(key, Encode(record, ClusterJsonContext.Default.NodeRecord), Precondition.Absent, ephemeral: true, ct).ConfigureAwait(false);
        if (result.Outcome != WriteOutcome.Applied)
        {
            var message = $"after its liveness was recreated, node {NodeId} could not re-claim {key}: another live process holds it (duplicate node id?); retrying";
            _log(message);
            throw new DuplicateNodeIdException(NodeId, message);
        }
        _log($"node {NodeId}: liveness recreated (generation {liveness.Generation}, id {liveness.Id}); re-publishing ephemeral keys");
        var handlers = Republish?.GetInvocationList().Cast<Func<CancellationToken, Task>>() ?? [];
        foreach (var handler in handlers)
            await handler(ct).ConfigureAwait(false);
    }

    private string VtepText => IpAddressText.Format(IpAddressText.Parse(_options.AdvertiseAddress, "advertise address"));

    /// <summary>
    /// Fencing (cluster-store §4.9): call before publishing peers. When nodeinfo says this node was
    /// reclaimed at or after the incarnation it last ran with, every local endpoint's slot is re-inserted
    /// (claiming or borrowing its block as the allocator does); otherwise each slot is verified and repaired
    /// when missing and free. Returns the endpoint ids whose address someone else holds now: never advertise them.
    /// </summary>
    public async Task<IReadOnlySet<string>> FenceAsync(IReadOnlyList<LocalEndpointClaim> endpoints, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var parsed = new List<(LocalEndpointClaim Claim, IPAddress Address, IpPrefix Pool)>(endpoints.Count);
        foreach (var claim in endpoints)
        {
            ArgumentNullException.ThrowIfNull(claim);
            string what = $"endpoint {IpAddressText.Printable(claim.EndpointId ?? "")}";
            if (string.IsNullOrEmpty(claim.EndpointId))
                throw SkeinException.Invalid("a fencing claim has no endpoint id");
            var pool = IpPrefix.Parse(claim.Pool ?? "", $"{what}: pool");
            var withLength = IpPrefix.Parse(claim.Address ?? "", $"{what}: address (ip/len)", allowHostBits: true);
            var address = IpAddressText.Parse((claim.Address ?? "").Split('/')[0], $"{what}: address");
            if (!pool.Contains(address) || withLength.Length != pool.Length)
                throw SkeinException.Invalid($"{what}: address {claim.Address} does not belong to pool {pool}");
            parsed.Add((claim, address, pool));
        }

        var info = await ReadInfoAsync(ct).ConfigureAwait(false);
        bool reclaimed = info?.Record.ReclaimedIncarnation is { } gone && gone >= _previousIncarnation;
        if (reclaimed)
            _log($"node {NodeId} was reclaimed by the collector (incarnation {info!.Value.Record.ReclaimedIncarnation}); re-asserting {parsed.Count} local endpoint addresses");

        var conflicted = new HashSet<string>(StringComparer.Ordinal);
        int reinserted = 0;
        foreach (var (claim, address, pool) in parsed)
        {
            var (outcome, detail) = await _ipam.AssertEndpointSlotAsync(pool, address, claim.Mac, claim.EndpointId, ct).ConfigureAwait(false);
            switch (outcome)
            {
                case SlotAssertion.Conflicted:
                    conflicted.Add(claim.EndpointId);
                    _log($"endpoint {claim.EndpointId} is conflicted and will not be advertised: {detail}; restart its container to give it a new address");
                    break;
                case SlotAssertion.Reinserted:
                    reinserted++;
                    if (!reclaimed)
                        _log($"endpoint {claim.EndpointId}: its address was missing from the store and was repaired ({detail})");
                    break;
            }
        }
        if (reclaimed || reinserted > 0 || conflicted.Count > 0)
            _log($"fencing of node {NodeId}: {parsed.Count} endpoints, {reinserted} re-inserted, {conflicted.Count} conflicted");
        return conflicted;
    }

    private async Task<(NodeInfoRecord Record, long Version)?> ReadInfoAsync(CancellationToken ct)
    {
        var entry = await _store.GetAsync(_keys.NodeInfo(NodeId), ct).ConfigureAwait(false);
        return entry is null ? null : (Decode(entry, ClusterJsonContext.Default.NodeInfoRecord), entry.Version);
    }

    internal static ReadOnlyMemory<byte> Encode<T>(T value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type) =>
        JsonSerializer.SerializeToUtf8Bytes(value, type);

    internal static T Decode<T>(KvEntry entry, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type)
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

    /// <summary>Ends the liveness: nodes/&lt;node&gt; and every other ephemeral key of this process go at once.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        _liveness.Recreated -= OnLivenessRecreatedAsync;
        await _liveness.DisposeAsync().ConfigureAwait(false);
    }

    [GeneratedRegex("^[a-z0-9-]{1,63}$")]
    private static partial Regex NodeIdPattern();

    private sealed class NoHostNetworks : IHostNetworkView
    {
        public static readonly NoHostNetworks Instance = new();
        public IReadOnlyList<HostReservedNetwork> GetReservedNetworks(bool v6) => [];
    }
}
