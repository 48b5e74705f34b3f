using System.Text.Json.Nodes;

namespace Skein.Driver.Replay;

/// <summary>A pool as the recording saw it: one successful (or refused) RequestPool line.</summary>
public sealed record RecordedPool(int Index, int Line, string? RecordedPoolId, string AnsweredPool, string RequestedPool, string SubPool, string AddressSpace, bool V6);

/// <summary>
/// Replays the recording's own view of pools before the live replay starts, to tell apart pools that
/// the recording stub gave the same PoolID (errors.jsonl answers two RequestPools for 10.70.0.0/24
/// with one id). Every pool-referring line is tied to one <see cref="RecordedPool"/> instance:
/// gateway and aux requests to the newest one with that id, CreateNetwork data to the newest one
/// not yet bound to a network, releases to the one holding the address, and where two hold it, to
/// the pool of the network the engine deletes right after (its teardown order is: releases,
/// ReleasePool, DeleteNetwork).
/// </summary>
public sealed class RecordedWorld
{
    private readonly List<RecordedPool> pools = [];
    private readonly Dictionary<int, int> poolOfLine = [];
    private readonly Dictionary<int, List<int>> createNetworkEntries = [];
    private readonly Dictionary<string, List<int>> poolsOfNetwork = [];

    public IReadOnlyList<RecordedPool> Pools => pools;

    public RecordedWorld(IReadOnlyList<TraceCall> calls)
    {
        var boundNetwork = new Dictionary<int, string>();
        var released = new HashSet<int>();
        var held = new Dictionary<int, HashSet<string>>();

        for (var i = 0; i < calls.Count; i++)
        {
            var call = calls[i];
            var body = call.Body;
            switch (call.Method)
            {
                case "IpamDriver.RequestPool":
                {
                    var index = pools.Count;
                    var requested = Str(body, "Pool");
                    var answered = call.RecordedStatus == 200 ? Str(call.RecordedResponse, "Pool") : "";
                    pools.Add(new RecordedPool(index, call.Line,
                        call.RecordedStatus == 200 ? Str(call.RecordedResponse, "PoolID") : null,
                        answered.Length > 0 ? answered : requested, requested, Str(body, "SubPool"),
                        Str(body, "AddressSpace"), Bool(body, "V6")));
                    held[index] = [];
                    poolOfLine[call.Line] = index;
                    break;
                }
                case "IpamDriver.RequestAddress":
                {
                    var id = Str(body, "PoolID");
                    var candidates = Live(id, released);
                    if (candidates.Count == 0)
                        break;
                    var options = body?["Options"] as JsonObject;
                    var isEndpoint = options?["com.docker.network.endpoint.macaddress"] is not null;
                    // An endpoint address goes to a pool that already serves a network; gateway and
                    // aux requests come before CreateNetwork, right after their RequestPool.
                    var chosen = isEndpoint
                        ? candidates.LastOrDefault(p => boundNetwork.ContainsKey(p), candidates[^1])
                        : candidates[^1];
                    poolOfLine[call.Line] = chosen;
                    if (call.RecordedStatus == 200 && IpMath.TryParseAddressWithPrefix(Str(call.RecordedResponse, "Address"), out var address, out _))
                        held[chosen].Add(address.ToString());
                    break;
                }
                case "NetworkDriver.CreateNetwork":
                {
                    var networkId = Str(body, "NetworkID");
                    var entries = new List<int>();
                    foreach (var data in DataEntries(body))
                    {
                        var pool = IpMath.Canonical(Str(data, "Pool"));
                        var space = Str(data, "AddressSpace");
                        var match = -1;
                        for (var p = pools.Count - 1; p >= 0; p--)
                        {
                            if (released.Contains(p) || boundNetwork.ContainsKey(p) || pools[p].AddressSpace != space ||
                                IpMath.Canonical(pools[p].AnsweredPool) != pool)
                                continue;
                            match = p;
                            break;
                        }
                        entries.Add(match);
                        if (match >= 0)
                            boundNetwork[match] = networkId;
                    }
                    createNetworkEntries[call.Line] = entries;
                    poolsOfNetwork[networkId] = entries.Where(e => e >= 0).ToList();
                    break;
                }
                case "IpamDriver.ReleaseAddress":
                {
                    var id = Str(body, "PoolID");
                    var address = Str(body, "Address");
                    var holders = Live(id, released).Where(p => held[p].Contains(address)).ToList();
                    var chosen = holders.Count == 1 ? holders[0] : PoolOfNextReleasePool(calls, i, id, released);
                    if (chosen < 0)
                        break;
                    poolOfLine[call.Line] = chosen;
                    held[chosen].Remove(address);
                    break;
                }
                case "IpamDriver.ReleasePool":
                {
                    var id = Str(body, "PoolID");
                    var chosen = ResolveReleasePool(calls, i, id, released);
                    if (chosen < 0)
                        break;
                    poolOfLine[call.Line] = chosen;
                    released.Add(chosen);
                    break;
                }
            }
        }
    }

    /// <summary>The recorded pool a RequestPool/RequestAddress/ReleaseAddress/ReleasePool line refers to.</summary>
    public int? PoolOfLine(int line) => poolOfLine.TryGetValue(line, out var p) ? p : null;

    /// <summary>For a CreateNetwork line: the recorded pool of each IPv4Data entry, then each IPv6Data
    /// entry (-1 where no pool of the trace matches).</summary>
    public IReadOnlyList<int> CreateNetworkPools(int line) => createNetworkEntries.TryGetValue(line, out var e) ? e : [];

    public IReadOnlyList<int> PoolsOfNetwork(string recordedNetworkId) =>
        poolsOfNetwork.TryGetValue(recordedNetworkId, out var p) ? p : [];

    public static IEnumerable<JsonObject> DataEntries(JsonObject? body)
    {
        foreach (var key in new[] { "IPv4Data", "IPv6Data" })
            if (body?[key] is JsonArray array)
                foreach (var item in array)
                    if (item is JsonObject data)
                        yield return data;
    }

    private List<int> Live(string id, HashSet<int> released) =>
        pools.Where(p => p.RecordedPoolId == id && !released.Contains(p.Index)).Select(p => p.Index).ToList();

    private int PoolOfNextReleasePool(IReadOnlyList<TraceCall> calls, int from, string id, HashSet<int> released)
    {
        for (var j = from + 1; j < calls.Count; j++)
            if (calls[j].Method == "IpamDriver.ReleasePool" && Str(calls[j].Body, "PoolID") == id)
                return ResolveReleasePool(calls, j, id, released);
        var live = Live(id, released);
        return live.Count > 0 ? live[^1] : -1;
    }

    private int ResolveReleasePool(IReadOnlyList<TraceCall> calls, int at, string id, HashSet<int> released)
    {
        var live = Live(id, released);
        if (live.Count <= 1)
            return live.Count == 1 ? live[0] : -1;
        for (var j = at + 1; j < calls.Count; j++)
        {
            if (calls[j].Method != "NetworkDriver.DeleteNetwork")
                continue;
            var owned = PoolsOfNetwork(Str(calls[j].Body, "NetworkID")).Where(live.Contains).ToList();
            if (owned.Count > 0)
                return owned[0];
            break;
        }
        return live[^1];
    }

    internal static string Str(JsonObject? o, string key) =>
        o?[key] is JsonValue v && v.TryGetValue(out string? s) ? s : "";

    internal static bool Bool(JsonObject? o, string key) =>
        o?[key] is JsonValue v && v.TryGetValue(out bool b) && b;
}
