using Microsoft.Extensions.Logging;
using Skein.Ipam;
using Skein.Ipam.Store;

namespace Skein.Driver.Overlay.Control;

/// <summary>
/// VNIs handed out by the registry: well above Docker's own overlay ranges (the classic driver counted up from 256,
/// swarm's allocator from 4096), up to the 24-bit maximum.
/// </summary>
public sealed record VniRange(int First, int Last)
{
    public static readonly VniRange Default = new(0x10000, 0xFFFFFF);

    public int Size => Last - First + 1;

    public static VniRange Parse(int first, int last) =>
        first >= 1 && last <= 0xFFFFFF && first <= last
            ? new VniRange(first, last)
            : throw SkeinException.Invalid($"VNI range {first}-{last} must lie within 1-16777215 with the first not above the last");

    /// <summary>Where a name starts probing: FNV-1a of the name, the same on every host and every run.</summary>
    public int Start(string net)
    {
        ulong hash = 14695981039346656037;
        foreach (var c in net)
        {
            hash ^= c;
            hash *= 1099511628211;
        }
        return First + (int)(hash % (ulong)Size);
    }

    public int Next(int vni) => vni == Last ? First : vni + 1;
}

/// <summary>
/// The cluster network registry of cluster-store §4.7: networks/&lt;net&gt; holds the VNI, the agreed settings and
/// the members (node → Docker network ids), vnis/&lt;vni&gt; makes the VNI unique. Both are created in one
/// transaction; membership changes are single-key compare-and-swaps; the last member to leave deletes both.
/// Every call is idempotent: the engine repeats calls after transport failures and in rollbacks.
/// </summary>
public sealed class NetworkRegistry(IClusterStore store, ClusterKeys keys, string nodeId, VniRange vnis, ILogger log)
{
    /// <summary>Bound on compare-and-swap rounds; each round re-reads, so only heavy contention reaches it.</summary>
    public int MaxAttempts { get; init; } = 16;
    /// <summary>VNI candidates tried per round before giving up on the range.</summary>
    public int MaxProbes { get; init; } = 256;

    public async Task<NetworkRegistration?> GetAsync(string net, CancellationToken ct)
    {
        var entry = await store.GetAsync(keys.Network(net), ct).ConfigureAwait(false);
        return entry is null ? null : ClusterJsonContext.Decode(entry.Key, entry.Value, ClusterJsonContext.Default.NetworkRegistration);
    }

    /// <summary>
    /// Adds this node's Docker network to the logical network, creating it (with a fresh VNI) when absent.
    /// <paramref name="isStale"/> says whether another Docker network id this node registered earlier is gone locally
    /// (a crash between the engine's delete and ours): such an id is replaced instead of refusing the new one.
    /// </summary>
    public async Task<NetworkRegistration> JoinAsync(string net, string dockerNetworkId, ClusterNetworkSettings settings, Func<string, bool> isStale, CancellationToken ct)
    {
        for (var attempt = 1; attempt <= MaxAttempts; attempt++)
        {
            var entry = await store.GetAsync(keys.Network(net), ct).ConfigureAwait(false);
            if (entry is null)
            {
                if (await TryCreateAsync(net, dockerNetworkId, settings, ct).ConfigureAwait(false) is { } created)
                    return created;
                continue;
            }
            var current = ClusterJsonContext.Decode(entry.Key, entry.Value, ClusterJsonContext.Default.NetworkRegistration);
            if (current.Settings.FirstDifference(settings) is var (setting, registered, requested))
                throw SkeinException.Conflict($"cluster network '{net}' already exists with {setting} {registered}; this host asked for {requested}. Create it with the same settings on every host");
            var mine = current.Members.GetValueOrDefault(nodeId) ?? [];
            if (mine.Contains(dockerNetworkId))
                return current;
            var others = mine.Where(id => !isStale(id)).ToList();
            if (others.Count > 0)
                throw SkeinException.Conflict($"cluster network '{net}' is already Docker network {others[0][..Math.Min(12, others[0].Length)]} on this host; one Docker network per cluster network per host");
            var members = new Dictionary<string, List<string>>(current.Members, StringComparer.Ordinal) { [nodeId] = [dockerNetworkId] };
            var updated = current with { Members = members };
            var put = await store.PutAsync(keys.Network(net), ClusterJsonContext.Encode(updated, ClusterJsonContext.Default.NetworkRegistration),
                Precondition.VersionIs(entry.Version), ephemeral: false, ct).ConfigureAwait(false);
            if (put.Outcome == WriteOutcome.Applied)
            {
                log.LogInformation("joined cluster network {Net} (VNI {Vni}) as Docker network {Network}", net, updated.Vni, Short(dockerNetworkId));
                return updated;
            }
            await BackoffAsync(attempt, ct).ConfigureAwait(false);
        }
        throw new SkeinException(ErrorKind.Unavailable, $"cluster network '{net}' kept changing in the store while this host joined it; try again");
    }

    private async Task<NetworkRegistration?> TryCreateAsync(string net, string dockerNetworkId, ClusterNetworkSettings settings, CancellationToken ct)
    {
        var vni = vnis.Start(net);
        for (var probe = 0; probe < Math.Min(MaxProbes, vnis.Size); probe++, vni = vnis.Next(vni))
        {
            if (await store.GetAsync(keys.Vni(vni), ct).ConfigureAwait(false) is not null)
                continue;
            var record = new NetworkRegistration
            {
                Vni = vni,
                Settings = settings,
                Members = new Dictionary<string, List<string>>(StringComparer.Ordinal) { [nodeId] = [dockerNetworkId] },
            };
            var result = await store.CommitAsync(
            [
                new TxnOp.Put(keys.Network(net), ClusterJsonContext.Encode(record, ClusterJsonContext.Default.NetworkRegistration), Precondition.Absent),
                new TxnOp.Put(keys.Vni(vni), ClusterJsonContext.Encode(new VniRegistration { Net = net }, ClusterJsonContext.Default.VniRegistration), Precondition.Absent),
            ], ct).ConfigureAwait(false);
            if (result.Applied)
            {
                log.LogInformation("created cluster network {Net} with VNI {Vni} (Docker network {Network})", net, vni, Short(dockerNetworkId));
                return record;
            }
            // Op 0 lost: another host created the network meanwhile, read it. Op 1 lost: the VNI was just taken.
            if (result.FailedOpIndex != 1)
                return null;
        }
        throw SkeinException.Conflict($"no free VNI for cluster network '{net}' among {Math.Min(MaxProbes, vnis.Size)} candidates from {vnis.Start(net)} in {vnis.First}-{vnis.Last}");
    }

    /// <summary>
    /// Removes this node's Docker network from the logical network; the last member deletes the network and its VNI.
    /// Success when the network or the membership is already gone.
    /// </summary>
    public async Task LeaveAsync(string net, string dockerNetworkId, CancellationToken ct)
    {
        for (var attempt = 1; attempt <= MaxAttempts; attempt++)
        {
            var entry = await store.GetAsync(keys.Network(net), ct).ConfigureAwait(false);
            if (entry is null)
                return;
            var current = ClusterJsonContext.Decode(entry.Key, entry.Value, ClusterJsonContext.Default.NetworkRegistration);
            if (!current.Members.TryGetValue(nodeId, out var mine) || !mine.Contains(dockerNetworkId))
                return;
            var members = new Dictionary<string, List<string>>(current.Members, StringComparer.Ordinal);
            var rest = mine.Where(id => id != dockerNetworkId).ToList();
            if (rest.Count > 0)
                members[nodeId] = rest;
            else
                members.Remove(nodeId);

            bool applied;
            if (members.Count == 0)
            {
                var result = await store.CommitAsync(
                [
                    new TxnOp.Delete(keys.Network(net), Precondition.VersionIs(entry.Version)),
                    new TxnOp.Delete(keys.Vni(current.Vni), Precondition.None),
                ], ct).ConfigureAwait(false);
                applied = result.Applied;
                if (applied)
                    log.LogInformation("deleted cluster network {Net} and VNI {Vni}: its last member left", net, current.Vni);
            }
            else
            {
                var put = await store.PutAsync(keys.Network(net), ClusterJsonContext.Encode(current with { Members = members }, ClusterJsonContext.Default.NetworkRegistration),
                    Precondition.VersionIs(entry.Version), ephemeral: false, ct).ConfigureAwait(false);
                applied = put.Outcome == WriteOutcome.Applied;
                if (applied)
                    log.LogInformation("left cluster network {Net}; {Members} host(s) remain", net, members.Count);
            }
            if (applied)
                return;
            await BackoffAsync(attempt, ct).ConfigureAwait(false);
        }
        throw new SkeinException(ErrorKind.Unavailable, $"cluster network '{net}' kept changing in the store while this host left it; try again");
    }

    private static Task BackoffAsync(int attempt, CancellationToken ct) =>
        Task.Delay(TimeSpan.FromMilliseconds(Random.Shared.Next(5, 10 + 20 * Math.Min(attempt, 10))), ct);

    private static string Short(string id) => id.Length > 12 ? id[..12] : id;
}
