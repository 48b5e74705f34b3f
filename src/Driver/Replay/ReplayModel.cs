using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;

namespace Skein.Driver.Replay;

/// <summary>A trace call made ready for the plugin under test, or the reason it is not sent.</summary>
public sealed class ReplayStep(TraceCall call)
{
    public TraceCall Call { get; } = call;

    /// <summary>Non-null: the call is not sent (it depends on something that failed or was refused).</summary>
    public string? SkipReason { get; init; }

    /// <summary>The body to send, with IDs, pools, addresses and MACs substituted.</summary>
    public JsonObject? Body { get; init; }

    /// <summary>Non-null: the model says the plugin must refuse this call, and why.</summary>
    public string? ExpectedFailure { get; init; }

    internal Action<PluginOutcome, StepChecks>? Check { get; init; }
}

public enum StepVerdict { Passed, Failed, Skipped }

/// <summary>The outcome of one replayed call: verdict, a short detail, every violated invariant, and
/// notes that are worth reading but break no rule.</summary>
public sealed record StepResult(TraceCall Call, StepVerdict Verdict, string Detail, IReadOnlyList<string> Violations, IReadOnlyList<string> Notes);

/// <summary>Collects what one call's checks found.</summary>
internal sealed class StepChecks
{
    public List<string> Violations { get; } = [];
    public List<string> Notes { get; } = [];
    public string Detail { get; set; } = "";

    public void Require(bool condition, string violation)
    {
        if (!condition)
            Violations.Add(violation);
    }
}

/// <summary>
/// The harness's own model of what a correct plugin must do with a trace: it substitutes fresh IDs,
/// the plugin's own pools, addresses and MACs into each recorded call, predicts which calls must fail
/// (a static address already held, a pool overlapping one still held), skips what depends on a
/// refused call, and checks every answer against protocol invariants, never against the recording.
/// </summary>
public sealed class ReplayModel
{
    public const string GatewayRequestType = "com.docker.network.gateway";
    public const string MacOption = "com.docker.network.endpoint.macaddress";

    private readonly List<TraceCall> calls;
    private RecordedWorld world;
    private readonly Random random;
    private string localSpace = "";
    private string globalSpace = "";
    private readonly Dictionary<int, LivePool> pools = [];
    private readonly Dictionary<string, LiveNetwork> networks = [];
    private readonly Dictionary<string, LiveEndpoint> endpoints = [];
    private readonly Dictionary<string, string> macs = new(StringComparer.OrdinalIgnoreCase);

    public ReplayModel(IReadOnlyList<TraceCall> calls, Random? random = null)
    {
        this.calls = [.. calls];
        this.random = random ?? Random.Shared;
        world = new RecordedWorld(this.calls);
    }

    public IReadOnlyList<TraceCall> Calls => calls;

    /// <summary>Maps the recording's address spaces (rec-local / rec-global) onto the plugin's.</summary>
    public void UseAddressSpaces(string local, string global)
    {
        localSpace = local;
        globalSpace = global;
    }

    private string MapSpace(string recorded) => recorded switch
    {
        "rec-local" when localSpace.Length > 0 => localSpace,
        "rec-global" when globalSpace.Length > 0 => globalSpace,
        _ => recorded,
    };

    public ReplayStep Prepare(TraceCall call) => call.Method switch
    {
        "IpamDriver.RequestPool" => PrepareRequestPool(call),
        "IpamDriver.RequestAddress" => PrepareRequestAddress(call),
        "IpamDriver.ReleaseAddress" => PrepareReleaseAddress(call),
        "IpamDriver.ReleasePool" => PrepareReleasePool(call),
        "NetworkDriver.CreateNetwork" => PrepareCreateNetwork(call),
        "NetworkDriver.DeleteNetwork" => PrepareDeleteNetwork(call),
        "NetworkDriver.CreateEndpoint" => PrepareCreateEndpoint(call),
        "NetworkDriver.Join" => PrepareEndpointCall(call, CheckJoin),
        "NetworkDriver.DeleteEndpoint" => PrepareEndpointCall(call, (outcome, _, endpoint) => endpoint.Deleted |= outcome.Succeeded),
        "NetworkDriver.Leave" or "NetworkDriver.ProgramExternalConnectivity" or "NetworkDriver.RevokeExternalConnectivity" or
            "NetworkDriver.EndpointOperInfo" => PrepareEndpointCall(call, null),
        _ => PrepareOther(call),
    };

    /// <summary>Checks one answer; the step must come from <see cref="Prepare"/> and must have been sent.</summary>
    public StepResult Observe(ReplayStep step, PluginOutcome outcome)
    {
        if (step.SkipReason is not null)
            throw new InvalidOperationException("a skipped step has no answer to observe");
        var checks = new StepChecks();
        if (outcome.FormProblem is not null)
            checks.Violations.Add(outcome.FormProblem);
        if (step.ExpectedFailure is { } why)
        {
            if (outcome.Succeeded)
                checks.Violations.Add($"must fail ({why}) but the plugin accepted it");
            else
                checks.Detail = $"refused as expected ({why}): \"{outcome.ErrorText}\"";
        }
        else if (!outcome.Succeeded)
        {
            checks.Violations.Add($"failed: \"{outcome.ErrorText}\"");
        }
        if (!outcome.Succeeded && outcome.ErrorText.StartsWith(step.Call.Method + ":", StringComparison.Ordinal))
            checks.Notes.Add($"the error text starts with \"{step.Call.Method}:\", which the engine already prefixes: users read it twice");
        step.Check?.Invoke(outcome, checks);
        var verdict = checks.Violations.Count == 0 ? StepVerdict.Passed : StepVerdict.Failed;
        return new StepResult(step.Call, verdict, checks.Detail, checks.Violations, checks.Notes);
    }

    // ------------------------------------------------------------------------------------ IPAM

    private ReplayStep PrepareRequestPool(TraceCall call)
    {
        var index = world.PoolOfLine(call.Line) ?? throw new InvalidOperationException($"line {call.Line}: RequestPool not indexed");
        var recorded = world.Pools[index];
        var body = Clone(call.Body);
        var space = MapSpace(recorded.AddressSpace);
        body["AddressSpace"] = space;

        string? expectFailure = null;
        var isExplicit = recorded.RequestedPool.Length > 0;
        IPNetwork requested = default;
        if (isExplicit && IpMath.TryParseNetwork(recorded.RequestedPool, out requested))
        {
            var held = HeldPools(space).FirstOrDefault(p => IpMath.Overlaps(p.Pool, requested));
            if (held is not null)
                expectFailure = $"{recorded.RequestedPool} overlaps pool {held.Pool} of line {held.Recorded.Line}, still held";
        }

        return new ReplayStep(call)
        {
            Body = body,
            ExpectedFailure = expectFailure,
            Check = (outcome, checks) =>
            {
                var live = new LivePool(recorded, space, isExplicit);
                pools[index] = live;
                if (!outcome.Succeeded)
                {
                    live.DeadReason = expectFailure is not null
                        ? $"its RequestPool (line {call.Line}) was refused, as it must be"
                        : $"its RequestPool (line {call.Line}) failed";
                    if (expectFailure is not null && !outcome.ErrorText.Contains(recorded.RequestedPool, StringComparison.Ordinal))
                        checks.Notes.Add($"the error text does not name the pool {recorded.RequestedPool}");
                    return;
                }
                var poolId = RecordedWorld.Str(outcome.Body, "PoolID");
                var poolText = RecordedWorld.Str(outcome.Body, "Pool");
                checks.Require(poolId.Length > 0, "reply has no PoolID");
                if (!IpMath.TryParseNetwork(poolText, out var pool))
                {
                    checks.Violations.Add($"reply Pool \"{poolText}\" is not a network in CIDR form");
                    live.DeadReason = $"its RequestPool (line {call.Line}) answered no usable pool";
                    return;
                }
                live.PoolId = poolId;
                live.Pool = pool;
                checks.Detail = $"PoolID={poolId} Pool={pool}";
                checks.Require((pool.BaseAddress.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6) == recorded.V6,
                    $"pool {pool} is not of the requested family (V6={recorded.V6})");
                if (isExplicit)
                    checks.Require(pool.Equals(requested), $"asked for pool {recorded.RequestedPool}, got {pool}");
                else
                {
                    var clash = HeldPools(space).FirstOrDefault(p => p != live && IpMath.Overlaps(p.Pool, pool));
                    checks.Require(clash is null, $"chose pool {pool}, which overlaps pool {clash?.Pool} of line {clash?.Recorded.Line}, still held");
                }
                if (recorded.SubPool.Length > 0)
                {
                    if (IpMath.TryParseNetwork(recorded.SubPool, out var sub) && pool.Contains(sub.BaseAddress))
                        live.SubPool = isExplicit ? sub : new IPNetwork(IpMath.Translate(sub.BaseAddress, ParsedOr(recorded.AnsweredPool, pool), pool), sub.PrefixLength);
                    else
                        checks.Notes.Add($"sub-pool {recorded.SubPool} is not inside {pool}; not checking dynamic addresses against it");
                }
            },
        };
    }

    private ReplayStep PrepareRequestAddress(TraceCall call)
    {
        if (LiveOf(call, out var live, out var skip) is false)
            return new ReplayStep(call) { SkipReason = skip };
        var body = Clone(call.Body);
        body["PoolID"] = live.PoolId;
        var options = body["Options"] as JsonObject;
        var kind = AddressKindOf(options);
        if (options?[MacOption] is JsonValue macValue && macValue.TryGetValue(out string? mac))
            options[MacOption] = MapMac(mac);

        var requestedText = RecordedWorld.Str(call.Body, "Address");
        IPAddress? requested = null;
        string? expectFailure = null;
        if (requestedText.Length > 0)
        {
            if (!IpMath.TryParseBareAddress(requestedText, out var recordedAddress))
                return new ReplayStep(call) { SkipReason = $"trace asks for \"{requestedText}\", not a bare address" };
            requested = TranslateStatic(live, recordedAddress);
            body["Address"] = requested.ToString();
            if (live.Held.TryGetValue(requested, out var holder))
                expectFailure = $"{requested} is already held ({holder})";
        }
        var recordedAnswer = call.RecordedStatus == 200 && IpMath.TryParseAddressWithPrefix(RecordedWorld.Str(call.RecordedResponse, "Address"), out var ra, out _)
            ? ra.ToString()
            : requestedText;

        return new ReplayStep(call)
        {
            Body = body,
            ExpectedFailure = expectFailure,
            Check = (outcome, checks) =>
            {
                if (!outcome.Succeeded)
                {
                    if (expectFailure is not null && requested is not null && !outcome.ErrorText.Contains(requested.ToString(), StringComparison.Ordinal))
                        checks.Notes.Add($"the error text does not name the address {requested}");
                    return;
                }
                var answer = RecordedWorld.Str(outcome.Body, "Address");
                if (!IpMath.TryParseAddressWithPrefix(answer, out var address, out var prefix))
                {
                    checks.Violations.Add($"reply Address \"{answer}\" is not in the form ip/len");
                    return;
                }
                checks.Detail = $"Address={answer}";
                checks.Require(prefix == live.Pool.PrefixLength, $"Address {answer} carries /{prefix}, the pool is /{live.Pool.PrefixLength}");
                checks.Require(live.Pool.Contains(address), $"Address {address} is outside pool {live.Pool}");
                if (requested is not null)
                {
                    checks.Require(address.Equals(requested), $"asked for {requested}, got {address}");
                }
                else
                {
                    var range = live.SubPool ?? live.Pool;
                    checks.Require(range.Contains(address), $"dynamic Address {address} is outside the sub-pool {range}");
                    checks.Require(!IpMath.IsNetworkAddress(live.Pool, address), $"dynamic Address {address} is the network address of {live.Pool}");
                    checks.Require(!IpMath.IsIPv4Broadcast(live.Pool, address), $"dynamic Address {address} is the broadcast address of {live.Pool}");
                    if (live.Held.TryGetValue(address, out var holder))
                        checks.Violations.Add($"dynamic Address {address} is already held ({holder})");
                }
                var description = $"{kind.ToString().ToLowerInvariant()}, line {call.Line}";
                live.Held.TryAdd(address, description);
                if (expectFailure is null)
                {
                    live.ActualOf[recordedAnswer] = address;
                    if (!live.EverHeld.Any(e => e.Address.Equals(address)))
                        live.EverHeld.Add((address, kind));
                }
                if (kind == AddressKind.Gateway)
                    live.GatewayCidr = answer;
            },
        };
    }

    private ReplayStep PrepareReleaseAddress(TraceCall call)
    {
        if (LiveOf(call, out var live, out var skip) is false)
            return new ReplayStep(call) { SkipReason = skip };
        var recorded = RecordedWorld.Str(call.Body, "Address");
        if (!live.ActualOf.TryGetValue(recorded, out var actual))
            return new ReplayStep(call) { SkipReason = $"{recorded} was never handed out in this replay (its request failed or was skipped)" };
        var body = Clone(call.Body);
        body["PoolID"] = live.PoolId;
        body["Address"] = actual.ToString();
        return new ReplayStep(call)
        {
            Body = body,
            Check = (outcome, checks) =>
            {
                checks.Detail = $"Address={actual}";
                if (!outcome.Succeeded)
                    return;
                live.Held.Remove(actual);
                live.ActualOf.Remove(recorded);
            },
        };
    }

    private ReplayStep PrepareReleasePool(TraceCall call)
    {
        if (LiveOf(call, out var live, out var skip) is false)
            return new ReplayStep(call) { SkipReason = skip };
        var body = Clone(call.Body);
        body["PoolID"] = live.PoolId;
        return new ReplayStep(call)
        {
            Body = body,
            Check = (outcome, checks) =>
            {
                checks.Detail = $"PoolID={live.PoolId}";
                if (outcome.Succeeded)
                    live.Released = true;
            },
        };
    }

    // ---------------------------------------------------------------------------- NetworkDriver

    private ReplayStep PrepareCreateNetwork(TraceCall call)
    {
        var recordedId = RecordedWorld.Str(call.Body, "NetworkID");
        var network = new LiveNetwork(NewId(), RecordedWorld.Bool(call.Body?["Options"] as JsonObject, "com.docker.network.internal"));
        networks[recordedId] = network;
        var body = Clone(call.Body);
        body["NetworkID"] = network.Id;

        var entryPools = world.CreateNetworkPools(call.Line);
        var entries = RecordedWorld.DataEntries(body).ToList();
        for (var i = 0; i < entries.Count; i++)
        {
            var data = entries[i];
            var index = i < entryPools.Count ? entryPools[i] : -1;
            if (index < 0)
                return Dead(call, network, $"no RequestPool in the trace for pool {RecordedWorld.Str(data, "Pool")}");
            if (!pools.TryGetValue(index, out var live))
                return Dead(call, network, $"its pool's RequestPool (line {world.Pools[index].Line}) was not replayed");
            if (live.DeadReason is { } reason)
                return Dead(call, network, $"pool {RecordedWorld.Str(data, "Pool")}: {reason}");
            data["AddressSpace"] = live.Space;
            data["Pool"] = live.Pool.ToString();
            if (data["Gateway"] is not null)
            {
                if (live.GatewayCidr is null)
                    return Dead(call, network, $"the gateway of pool {live.Pool} was never handed out in this replay");
                data["Gateway"] = live.GatewayCidr;
            }
            if (data["AuxAddresses"] is JsonObject aux)
            {
                foreach (var name in aux.Select(kv => kv.Key).ToList())
                {
                    var recordedAux = RecordedWorld.Str(aux, name);
                    if (!IpMath.TryParseAddressWithPrefix(recordedAux, out var ra, out _) || !live.ActualOf.TryGetValue(ra.ToString(), out var actual))
                        return Dead(call, network, $"aux address {name}={recordedAux} was never handed out in this replay");
                    aux[name] = $"{actual}/{live.Pool.PrefixLength}";
                }
            }
            if (i < CountOf(body, "IPv4Data"))
                network.V4 ??= live;
            else
                network.V6 ??= live;
        }
        return new ReplayStep(call)
        {
            Body = body,
            Check = (outcome, checks) =>
            {
                checks.Detail = $"NetworkID={Short(network.Id)}{(network.Internal ? " internal" : "")}";
                if (!outcome.Succeeded)
                    network.DeadReason = $"its CreateNetwork (line {call.Line}) failed";
            },
        };
    }

    private static int CountOf(JsonObject body, string key) => body[key] is JsonArray a ? a.Count : 0;

    private static ReplayStep Dead(TraceCall call, LiveNetwork network, string reason)
    {
        network.DeadReason = reason;
        return new ReplayStep(call) { SkipReason = reason };
    }

    private ReplayStep PrepareDeleteNetwork(TraceCall call)
    {
        var recordedId = RecordedWorld.Str(call.Body, "NetworkID");
        if (!networks.TryGetValue(recordedId, out var network))
            network = networks[recordedId] = new LiveNetwork(NewId(), false);
        if (network.DeadReason is { } reason)
            return new ReplayStep(call) { SkipReason = $"network {Short(recordedId)}: {reason}" };
        var body = Clone(call.Body);
        body["NetworkID"] = network.Id;
        return new ReplayStep(call)
        {
            Body = body,
            Check = (outcome, checks) =>
            {
                checks.Detail = $"NetworkID={Short(network.Id)}";
                if (outcome.Succeeded)
                    network.DeadReason = $"it was deleted (line {call.Line})";
            },
        };
    }

    private ReplayStep PrepareCreateEndpoint(TraceCall call)
    {
        var recordedNetwork = RecordedWorld.Str(call.Body, "NetworkID");
        var recordedEndpoint = RecordedWorld.Str(call.Body, "EndpointID");
        if (!networks.TryGetValue(recordedNetwork, out var network))
            network = networks[recordedNetwork] = new LiveNetwork(NewId(), false);
        var endpoint = new LiveEndpoint(NewId(), network);
        endpoints[recordedEndpoint] = endpoint;
        if (network.DeadReason is { } reason)
            return SkipEndpoint(call, endpoint, $"network {Short(recordedNetwork)}: {reason}");

        var body = Clone(call.Body);
        body["NetworkID"] = network.Id;
        body["EndpointID"] = endpoint.Id;
        var given = new List<string>();
        if (body["Interface"] is JsonObject iface)
        {
            foreach (var (key, pool) in new[] { ("Address", network.V4), ("AddressIPv6", network.V6) })
            {
                var recordedAddress = RecordedWorld.Str(iface, key);
                if (recordedAddress.Length == 0)
                    continue;
                if (pool is null || !IpMath.TryParseAddressWithPrefix(recordedAddress, out var ra, out _) || !pool.ActualOf.TryGetValue(ra.ToString(), out var actual))
                    return SkipEndpoint(call, endpoint, $"its address {recordedAddress} was never handed out in this replay");
                iface[key] = $"{actual}/{pool.Pool.PrefixLength}";
                given.Add(key);
            }
            var mac = RecordedWorld.Str(iface, "MacAddress");
            if (mac.Length > 0)
            {
                iface["MacAddress"] = MapMac(mac);
                given.Add("MacAddress");
            }
        }
        if (body["Options"] is JsonObject options && RecordedWorld.Str(options, MacOption) is { Length: > 0 } encoded)
        {
            // A user-given --mac-address also reaches CreateEndpoint as base64 of the six bytes.
            try
            {
                var bytes = Convert.FromBase64String(encoded);
                var mapped = MapMac(string.Join(':', bytes.Select(b => b.ToString("x2", CultureInfo.InvariantCulture))));
                options[MacOption] = Convert.ToBase64String(mapped.Split(':').Select(h => byte.Parse(h, NumberStyles.HexNumber, CultureInfo.InvariantCulture)).ToArray());
            }
            catch (FormatException)
            {
                // Not a MAC in base64: send it as recorded.
            }
        }

        return new ReplayStep(call)
        {
            Body = body,
            Check = (outcome, checks) =>
            {
                checks.Detail = $"EndpointID={Short(endpoint.Id)}";
                if (!outcome.Succeeded)
                {
                    endpoint.DeadReason = $"its CreateEndpoint (line {call.Line}) failed";
                    return;
                }
                // libnetwork refuses a driver that returns an interface field the engine already set.
                if (outcome.Body?["Interface"] is JsonObject answered)
                    foreach (var key in given)
                        checks.Require(RecordedWorld.Str(answered, key).Length == 0,
                            $"reply sets Interface.{key} although the engine gave it (the engine fails the endpoint)");
            },
        };
    }

    private static ReplayStep SkipEndpoint(TraceCall call, LiveEndpoint endpoint, string reason)
    {
        endpoint.DeadReason = reason;
        return new ReplayStep(call) { SkipReason = reason };
    }

    private ReplayStep PrepareEndpointCall(TraceCall call, Action<PluginOutcome, StepChecks, LiveEndpoint>? check)
    {
        var recordedNetwork = RecordedWorld.Str(call.Body, "NetworkID");
        if (!networks.TryGetValue(recordedNetwork, out var network))
            network = networks[recordedNetwork] = new LiveNetwork(NewId(), false);
        var endpoint = endpoints.GetValueOrDefault(RecordedWorld.Str(call.Body, "EndpointID"));
        if (endpoint is null)
        {
            endpoint = new LiveEndpoint(NewId(), network);
            endpoints[RecordedWorld.Str(call.Body, "EndpointID")] = endpoint;
        }
        if (network.DeadReason is { } networkReason && endpoint.DeadReason is null)
            return new ReplayStep(call) { SkipReason = $"network {Short(recordedNetwork)}: {networkReason}" };
        if (endpoint.DeadReason is { } reason)
            return new ReplayStep(call) { SkipReason = $"endpoint: {reason}" };
        var body = Clone(call.Body);
        body["NetworkID"] = network.Id;
        body["EndpointID"] = endpoint.Id;
        return new ReplayStep(call)
        {
            Body = body,
            Check = (outcome, checks) =>
            {
                checks.Detail = $"EndpointID={Short(endpoint.Id)}";
                check?.Invoke(outcome, checks, endpoint);
            },
        };
    }

    private static void CheckJoin(PluginOutcome outcome, StepChecks checks, LiveEndpoint endpoint)
    {
        if (!outcome.Succeeded)
            return;
        var body = outcome.Body;
        var name = body?["InterfaceName"] as JsonObject;
        var source = RecordedWorld.Str(name, "SrcName");
        var prefix = RecordedWorld.Str(name, "DstPrefix");
        checks.Require(source.Length > 0, "reply has no InterfaceName.SrcName (the engine fails the join)");
        checks.Require(prefix.Length > 0, "reply has no InterfaceName.DstPrefix");
        checks.Detail += $" SrcName={source}";
        var gateway = RecordedWorld.Str(body, "Gateway");
        var gateway6 = RecordedWorld.Str(body, "GatewayIPv6");
        var network = endpoint.Network;
        if (network is null)
            return;
        if (network.Internal)
        {
            checks.Require(gateway.Length == 0, $"internal network, yet the reply sets Gateway {gateway} (a default route out of a network that must reach nothing)");
            checks.Require(gateway6.Length == 0, $"internal network, yet the reply sets GatewayIPv6 {gateway6}");
            return;
        }
        if (network.V4?.GatewayCidr is { } v4 && IpMath.TryParseAddressWithPrefix(v4, out var expected4, out _))
            checks.Require(gateway == expected4.ToString(), $"Gateway is \"{gateway}\", the network's gateway is {expected4}");
        if (network.V6?.GatewayCidr is { } v6 && IpMath.TryParseAddressWithPrefix(v6, out var expected6, out _))
        {
            if (gateway6.Length == 0)
                checks.Notes.Add($"no GatewayIPv6 (the network's IPv6 gateway is {expected6}); containers get no IPv6 default route");
            else
                checks.Require(IPAddress.TryParse(gateway6, out var got6) && got6.Equals(expected6), $"GatewayIPv6 is \"{gateway6}\", the network's IPv6 gateway is {expected6}");
        }
    }

    private ReplayStep PrepareOther(TraceCall call)
    {
        var body = call.Body is null ? null : Clone(call.Body);
        if (body is not null)
        {
            var recordedNetwork = RecordedWorld.Str(call.Body, "NetworkID");
            if (recordedNetwork.Length > 0)
            {
                if (!networks.TryGetValue(recordedNetwork, out var network))
                    network = networks[recordedNetwork] = new LiveNetwork(NewId(), false);
                body["NetworkID"] = network.Id;
            }
            var recordedEndpoint = RecordedWorld.Str(call.Body, "EndpointID");
            if (recordedEndpoint.Length > 0)
            {
                if (!endpoints.TryGetValue(recordedEndpoint, out var endpoint))
                    endpoint = endpoints[recordedEndpoint] = new LiveEndpoint(NewId(), null);
                body["EndpointID"] = endpoint.Id;
            }
        }
        return new ReplayStep(call) { Body = body };
    }

    // ------------------------------------------------------------------------------- reuse check

    /// <summary>
    /// After the trace: for every explicit pool the trace released, ask for it again and for every
    /// address it held (gateway, aux, static and dynamic ones, now as static requests), then release
    /// it all. A plugin that leaks a released address or pool fails here. The calls are appended to
    /// <see cref="Calls"/> and returned, to be replayed like the trace's own.
    /// </summary>
    public IReadOnlyList<TraceCall> AppendReuseCheck()
    {
        var added = new List<TraceCall>();
        var line = calls.Count == 0 ? 1 : calls.Max(c => c.Line) + 1;
        var probed = new HashSet<string>();
        foreach (var live in pools.Values.OrderBy(p => p.Recorded.Index).ToList())
        {
            if (live.DeadReason is not null || !live.Released || !live.Explicit || live.EverHeld.Count == 0)
                continue;
            var key = $"{live.Space}|{live.Pool}|{live.Recorded.SubPool}";
            if (!probed.Add(key) || HeldPools(live.Space).Any(p => IpMath.Overlaps(p.Pool, live.Pool)))
                continue;
            var recordedId = $"reuse-check/{live.Pool}/{live.Recorded.SubPool}";
            TraceCall Call(string method, JsonObject body, JsonObject? response) =>
                new(line++, "/" + method, PluginSocketClient.EngineHeaders, body, 200, response) { Origin = "reuse check" };

            added.Add(Call("IpamDriver.RequestPool",
                new JsonObject { ["AddressSpace"] = live.Recorded.AddressSpace, ["Pool"] = live.Recorded.RequestedPool, ["SubPool"] = live.Recorded.SubPool, ["Options"] = new JsonObject(), ["V6"] = live.Recorded.V6 },
                new JsonObject { ["PoolID"] = recordedId, ["Pool"] = live.Recorded.AnsweredPool }));
            foreach (var (address, kind) in live.EverHeld)
            {
                JsonObject? options = kind switch
                {
                    AddressKind.Gateway => new JsonObject { ["RequestAddressType"] = GatewayRequestType },
                    AddressKind.Endpoint => new JsonObject { [MacOption] = RandomMac() },
                    _ => null,
                };
                added.Add(Call("IpamDriver.RequestAddress",
                    new JsonObject { ["PoolID"] = recordedId, ["Address"] = address.ToString(), ["Options"] = options },
                    new JsonObject { ["Address"] = $"{address}/{live.Pool.PrefixLength}" }));
            }
            foreach (var (address, _) in live.EverHeld)
                added.Add(Call("IpamDriver.ReleaseAddress", new JsonObject { ["PoolID"] = recordedId, ["Address"] = address.ToString() }, new JsonObject()));
            added.Add(Call("IpamDriver.ReleasePool", new JsonObject { ["PoolID"] = recordedId }, new JsonObject()));
        }
        calls.AddRange(added);
        world = new RecordedWorld(calls);
        return added;
    }

    // -------------------------------------------------------------------------------- plumbing

    private IEnumerable<LivePool> HeldPools(string space) =>
        pools.Values.Where(p => p.DeadReason is null && !p.Released && p.PoolId.Length > 0 && p.Space == space);

    private bool LiveOf(TraceCall call, out LivePool live, out string skipReason)
    {
        live = null!;
        skipReason = "";
        if (world.PoolOfLine(call.Line) is not { } index)
        {
            skipReason = $"no RequestPool in the trace answered PoolID {RecordedWorld.Str(call.Body, "PoolID")}";
            return false;
        }
        if (!pools.TryGetValue(index, out var found))
        {
            skipReason = $"its RequestPool (line {world.Pools[index].Line}) was not replayed";
            return false;
        }
        if (found.DeadReason is { } reason)
        {
            skipReason = $"pool {RecordedWorld.Str(call.Body, "PoolID")}: {reason}";
            return false;
        }
        live = found;
        return true;
    }

    private static IPAddress TranslateStatic(LivePool live, IPAddress recorded)
    {
        // A static address in a pool the plugin chose itself moves with the pool; in an explicit pool
        // it is the user's and is kept.
        if (live.Explicit || !IpMath.TryParseNetwork(live.Recorded.AnsweredPool, out var recordedPool) || !recordedPool.Contains(recorded))
            return recorded;
        return IpMath.Translate(recorded, recordedPool, live.Pool);
    }

    private static IPNetwork ParsedOr(string text, IPNetwork fallback) =>
        IpMath.TryParseNetwork(text, out var n) ? n : fallback;

    private static AddressKind AddressKindOf(JsonObject? options)
    {
        if (RecordedWorld.Str(options, "RequestAddressType") == GatewayRequestType)
            return AddressKind.Gateway;
        return options?[MacOption] is not null ? AddressKind.Endpoint : AddressKind.Aux;
    }

    private static JsonObject Clone(JsonObject? body) => body?.DeepClone() as JsonObject ?? [];

    private string NewId()
    {
        Span<byte> bytes = stackalloc byte[32];
        random.NextBytes(bytes);
        return Convert.ToHexStringLower(bytes);
    }

    private string RandomMac()
    {
        Span<byte> bytes = stackalloc byte[5];
        random.NextBytes(bytes);
        return "02:" + string.Join(':', bytes.ToArray().Select(b => b.ToString("x2", CultureInfo.InvariantCulture)));
    }

    /// <summary>Fresh locally administered MACs per run, the same one for every mention of a recorded MAC.</summary>
    private string MapMac(string recorded)
    {
        if (!macs.TryGetValue(recorded, out var mapped))
            macs[recorded] = mapped = RandomMac();
        return mapped;
    }

    private static string Short(string id) => id.Length > 12 ? id[..12] : id;

    private enum AddressKind { Gateway, Aux, Endpoint }

    private sealed class LivePool(RecordedPool recorded, string space, bool isExplicit)
    {
        public RecordedPool Recorded { get; } = recorded;
        public string Space { get; } = space;
        public bool Explicit { get; } = isExplicit;
        public string PoolId { get; set; } = "";
        public IPNetwork Pool { get; set; }
        public IPNetwork? SubPool { get; set; }
        public string? GatewayCidr { get; set; }
        public string? DeadReason { get; set; }
        public bool Released { get; set; }
        public Dictionary<IPAddress, string> Held { get; } = [];
        public Dictionary<string, IPAddress> ActualOf { get; } = [];
        public List<(IPAddress Address, AddressKind Kind)> EverHeld { get; } = [];
    }

    private sealed class LiveNetwork(string id, bool isInternal)
    {
        public string Id { get; } = id;
        public bool Internal { get; } = isInternal;
        public LivePool? V4 { get; set; }
        public LivePool? V6 { get; set; }
        public string? DeadReason { get; set; }
    }

    private sealed class LiveEndpoint(string id, LiveNetwork? network)
    {
        public string Id { get; } = id;
        public LiveNetwork? Network { get; } = network;
        public string? DeadReason { get; set; }
        public bool Deleted { get; set; }
    }
}
