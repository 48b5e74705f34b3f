using System.Text.Json;
using System.Text.Json.Nodes;
using Skein.Ipam.Allocation;
using Skein.Ipam.Store;

namespace Skein.Ipam.Cluster;

/// <summary>
/// Garbage collection of dead nodes (cluster-store §4.9). Candidates race for the ephemeral gc/leader key;
/// the leader watches nodes/ and measures each node's absence on its own monotonic clock (a new leader
/// starts from zero). A node absent for reclaimAfter loses its container slots (blocks it owns or borrowed
/// into), its place in pools/*.users and networks/*.members, and nodeinfo records the reclaim so the node
/// fences itself when it comes back. Every write is conditional and every step idempotent, so two leaders at
/// once, or a leader that dies half-way, do no harm.
/// </summary>
public sealed class DeadNodeCollector
{
    private readonly IClusterStore _store;
    private readonly NodeMembership _membership;
    private readonly StoreKeys _keys;
    private readonly TimeSpan _reclaimAfter;
    private readonly TimeProvider _time;
    private readonly Action<string> _log;
    private readonly Dictionary<string, long> _absentSince = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private volatile bool _leader;

    public DeadNodeCollector(IClusterStore store, NodeMembership membership, string keyRoot, TimeSpan reclaimAfter, TimeProvider time, Action<string> log)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(membership);
        ArgumentNullException.ThrowIfNull(time);
        ArgumentNullException.ThrowIfNull(log);
        if (keyRoot is null)
            throw SkeinException.Invalid("the key root is missing (use \"\" when the store applies the root)");
        if (reclaimAfter <= TimeSpan.Zero)
            throw SkeinException.Invalid($"reclaim-after must be positive, not {reclaimAfter}");
        _store = store;
        _membership = membership;
        _keys = new StoreKeys(keyRoot, membership.NodeId);
        _reclaimAfter = reclaimAfter;
        _time = time;
        _log = log;
    }

    /// <summary>How often the leader collects (cluster-store §4.9: every 60 s).</summary>
    public TimeSpan Interval { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>How often a candidate that is not the leader checks whether gc/leader is free.</summary>
    public TimeSpan CampaignInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Whether this node held gc/leader at its last check.</summary>
    public bool IsLeader => _leader;

    /// <summary>Leader election on gc/leader and periodic collection, until <paramref name="ct"/> is cancelled.</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var watch = Task.Run(() => WatchNodesAsync(stop.Token), CancellationToken.None);
        try
        {
            while (!ct.IsCancellationRequested)
            {
                try
                {
                    bool leader = await TryLeadAsync(ct).ConfigureAwait(false);
                    if (leader != _leader)
                    {
                        _log(leader ? $"node {_membership.NodeId} is the garbage-collection leader" : $"node {_membership.NodeId} is no longer the garbage-collection leader");
                        if (!leader)
                        {
                            lock (_gate)
                                _absentSince.Clear();
                        }
                        _leader = leader;
                    }
                    if (leader)
                        await CollectOnceAsync(ct).ConfigureAwait(false);
                }
                catch (Exception e) when (e is SkeinException or StoreUnavailableException or StoreAuthException or StoreRejectedException or LivenessLostException)
                {
                    _log($"garbage collection on node {_membership.NodeId}: {e.Message}; retrying");
                }
                await WaitAsync(_leader ? Interval : CampaignInterval, ct).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        finally
        {
            _leader = false;
            await stop.CancelAsync().ConfigureAwait(false);
            try
            {
                await watch.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
        }
    }

    private Task WaitAsync(TimeSpan delay, CancellationToken ct) => Task.Delay(delay, _time, ct);

    /// <summary>Holds gc/leader (create-if-absent, ephemeral) or finds it held by this same incarnation.</summary>
    private async Task<bool> TryLeadAsync(CancellationToken ct)
    {
        var current = await _store.GetAsync(_keys.GcLeader, ct).ConfigureAwait(false);
        if (current is not null)
            return IsMine(current);
        var record = new LeaderRecord { Node = _membership.NodeId, Incarnation = _membership.Incarnation };
        var result = await _store.PutAsync(_keys.GcLeader, NodeMembership.Encode(record, ClusterJsonContext.Default.LeaderRecord),
            Precondition.Absent, ephemeral: true, ct).ConfigureAwait(false);
        return result.Outcome == WriteOutcome.Applied || (result.Current is { } holder && IsMine(holder));
    }

    private bool IsMine(KvEntry entry)
    {
        try
        {
            var holder = JsonSerializer.Deserialize(entry.Value.Span, ClusterJsonContext.Default.LeaderRecord);
            return holder is not null && holder.Node == _membership.NodeId && holder.Incarnation == _membership.Incarnation;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>Starts the absence clock of a node the moment its key disappears (while this node leads).</summary>
    private async Task WatchNodesAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                var live = new HashSet<string>(StringComparer.Ordinal);
                await foreach (var update in _store.WatchPrefixAsync(_keys.Nodes, ct).ConfigureAwait(false))
                {
                    switch (update)
                    {
                        case WatchUpdate.Snapshot snapshot:
                            live = snapshot.Entries.Keys.Select(NodeOf).ToHashSet(StringComparer.Ordinal);
                            lock (_gate)
                            {
                                foreach (var node in live)
                                    _absentSince.Remove(node);
                            }
                            break;
                        case WatchUpdate.Upsert upsert:
                            live.Add(NodeOf(upsert.Entry.Key));
                            lock (_gate)
                                _absentSince.Remove(NodeOf(upsert.Entry.Key));
                            break;
                        case WatchUpdate.Removed removed:
                            string gone = NodeOf(removed.Key);
                            live.Remove(gone);
                            if (_leader && gone != _membership.NodeId)
                            {
                                lock (_gate)
                                    _absentSince.TryAdd(gone, _time.GetTimestamp());
                            }
                            break;
                    }
                }
                return; // the store was disposed
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                _log($"garbage collection: watching {_keys.Nodes} failed ({e.Message}); retrying");
                await Task.Delay(TimeSpan.FromSeconds(1), _time, ct).ConfigureAwait(false);
            }
        }
    }

    private string NodeOf(string key) => key[_keys.Nodes.Length..];

    /// <summary>
    /// One collection pass, as if this node were the leader: notes which known nodes are absent (on this
    /// collector's monotonic clock), and reclaims those absent for reclaimAfter. Returns how many were reclaimed.
    /// </summary>
    public async Task<int> CollectOnceAsync(CancellationToken ct)
    {
        var (liveKeys, _) = await _store.ListAsync(_keys.Nodes, keysOnly: true, ct).ConfigureAwait(false);
        var live = liveKeys.Select(e => NodeOf(e.Key)).ToHashSet(StringComparer.Ordinal);
        var residue = await NodesWithResidueAsync(ct).ConfigureAwait(false);
        var (infoKeys, _) = await _store.ListAsync(_keys.NodeInfos, keysOnly: true, ct).ConfigureAwait(false);
        // Only nodes that ran NodeMembership (and so have nodeinfo) are candidates: a node using the store's
        // IPAM without membership has no nodes/ key to prove it is alive, and must never be reclaimed.
        var known = infoKeys.Select(e => e.Key[_keys.NodeInfos.Length..]).ToHashSet(StringComparer.Ordinal);
        known.Remove(_membership.NodeId);

        long now = _time.GetTimestamp();
        List<string> due;
        lock (_gate)
        {
            foreach (var node in _absentSince.Keys.Where(live.Contains).ToList())
                _absentSince.Remove(node);
            foreach (var node in known.Where(n => !live.Contains(n)))
                _absentSince.TryAdd(node, now);
            due = _absentSince.Where(a => _time.GetElapsedTime(a.Value, now) >= _reclaimAfter).Select(a => a.Key).Order(StringComparer.Ordinal).ToList();
        }

        int reclaimed = 0;
        foreach (var node in due)
        {
            if (await ReclaimAsync(node, residue.Contains(node), ct).ConfigureAwait(false))
                reclaimed++;
        }
        return reclaimed;
    }

    /// <summary>Nodes that still hold affinity entries, pool claims or network memberships.</summary>
    private async Task<HashSet<string>> NodesWithResidueAsync(CancellationToken ct)
    {
        var nodes = new HashSet<string>(StringComparer.Ordinal);
        var (affinities, _) = await _store.ListAsync(_keys.Affinities, keysOnly: true, ct).ConfigureAwait(false);
        foreach (var entry in affinities)
        {
            string rest = entry.Key[_keys.Affinities.Length..];
            int slash = rest.IndexOf('/');
            if (slash > 0)
                nodes.Add(rest[..slash]);
        }
        var (pools, _) = await _store.ListAsync(_keys.Pools, keysOnly: false, ct).ConfigureAwait(false);
        foreach (var entry in pools)
        {
            var record = IpamStoreAccess.Decode(entry, IpamStoreJsonContext.Default.PoolRecord);
            nodes.UnionWith(record.Users.Keys);
        }
        var (networks, _) = await _store.ListAsync(_keys.Networks, keysOnly: false, ct).ConfigureAwait(false);
        foreach (var entry in networks)
        {
            if (MembersOf(entry) is { } members)
                nodes.UnionWith(members.Select(m => m.Key));
        }
        return nodes;
    }

    private async Task<bool> ReclaimAsync(string node, bool hasResidue, CancellationToken ct)
    {
        if (await _store.GetAsync(_keys.Node(node), ct).ConfigureAwait(false) is not null)
        {
            lock (_gate)
                _absentSince.Remove(node);
            return false; // it came back
        }
        var infoEntry = await _store.GetAsync(_keys.NodeInfo(node), ct).ConfigureAwait(false);
        var info = infoEntry is null ? null : NodeMembership.Decode(infoEntry, ClusterJsonContext.Default.NodeInfoRecord);
        long incarnation = info?.Incarnation ?? 0;
        if (!hasResidue && info?.ReclaimedIncarnation is { } done && done >= incarnation)
            return false; // reclaimed already

        var ipam = _membership.Ipam;
        int slots = await ipam.ReclaimBlocksOfAsync(node, ct).ConfigureAwait(false);
        int pools = await ipam.RemovePoolUserEverywhereAsync(node, ct).ConfigureAwait(false);
        int networks = await RemoveNetworkMemberAsync(node, ct).ConfigureAwait(false);
        await RecordReclaimAsync(node, ct).ConfigureAwait(false);
        lock (_gate)
            _absentSince.Remove(node);
        _log($"reclaimed dead node {node} (incarnation {incarnation}, absent for at least {_reclaimAfter.TotalSeconds:0} s): " +
             $"{slots} addresses freed, removed from {pools} pools and {networks} networks");
        return true;
    }

    private static JsonObject? MembersOf(KvEntry entry)
    {
        try
        {
            return JsonNode.Parse(entry.Value.Span) is JsonObject root && root["members"] is JsonObject members ? members : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>
    /// Removes the node's property from networks/&lt;net&gt;.members (helper A2's record), leaving the rest of
    /// the JSON as it was. A network left without members stays: its last member's DeleteNetwork, or a later
    /// sweep, removes it.
    /// </summary>
    private async Task<int> RemoveNetworkMemberAsync(string node, CancellationToken ct)
    {
        var (entries, _) = await _store.ListAsync(_keys.Networks, keysOnly: false, ct).ConfigureAwait(false);
        int changed = 0;
        foreach (var listed in entries)
        {
            if (listed.Key.IndexOf('/', _keys.Networks.Length) >= 0)
                continue;
            KvEntry? entry = listed;
            for (int attempt = 1; entry is not null; attempt++)
            {
                if (JsonNode.Parse(entry.Value.Span) is not JsonObject root || root["members"] is not JsonObject members || !members.ContainsKey(node))
                    break;
                members.Remove(node);
                var value = System.Text.Encoding.UTF8.GetBytes(root.ToJsonString());
                var result = await _store.PutAsync(entry.Key, value, Precondition.VersionIs(entry.Version), ephemeral: false, ct).ConfigureAwait(false);
                if (result.Outcome == WriteOutcome.Applied)
                {
                    changed++;
                    break;
                }
                if (attempt >= 16)
                    throw new SkeinException(ErrorKind.Unavailable, $"{entry.Key} kept changing while skein removed node {node} from its members; the next pass continues");
                entry = await _store.GetAsync(listed.Key, ct).ConfigureAwait(false);
            }
        }
        return changed;
    }

    private async Task RecordReclaimAsync(string node, CancellationToken ct)
    {
        string key = _keys.NodeInfo(node);
        for (int attempt = 1; ; attempt++)
        {
            var entry = await _store.GetAsync(key, ct).ConfigureAwait(false);
            var info = entry is null ? new NodeInfoRecord() : NodeMembership.Decode(entry, ClusterJsonContext.Default.NodeInfoRecord);
            var updated = info with
            {
                W = $"{_membership.NodeId}/{_membership.Incarnation}/gc",
                ReclaimedAt = _time.GetUtcNow().ToUnixTimeSeconds(),
                ReclaimedIncarnation = info.Incarnation,
            };
            var result = await _store.PutAsync(key, NodeMembership.Encode(updated, ClusterJsonContext.Default.NodeInfoRecord),
                entry is null ? Precondition.Absent : Precondition.VersionIs(entry.Version), ephemeral: false, ct).ConfigureAwait(false);
            if (result.Outcome == WriteOutcome.Applied)
                return;
            if (attempt >= 16)
                throw new SkeinException(ErrorKind.Unavailable, $"{key} kept changing while skein recorded the reclaim of node {node}; the next pass continues");
        }
    }
}
