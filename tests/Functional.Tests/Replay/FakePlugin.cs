using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Skein.Driver.Replay;

namespace Skein.Functional.Tests.Replay;

/// <summary>Ways a fake plugin can be wrong, each of which the replay must catch.</summary>
public enum FakeBug
{
    None,
    AcceptsOverlappingPool,
    AcceptsHeldStaticAddress,
    DuplicateDynamicAddress,
    IgnoresSubPool,
    AddressWithoutPrefix,
    GatewayOnInternalNetwork,
    NeverFreesPools,
    LeaksReleasedAddresses,
    ErrorAsHttp200,
    NoSrcName,
    EchoesInterfaceAddress,
    PrefixesCallName,
}

/// <summary>
/// A small in-memory plugin, correct unless told to have one <see cref="FakeBug"/>: enough IPAM and
/// driver behaviour to answer every call of the shared traces. It is the replay harness's test
/// double, not a model of skein.
/// </summary>
public sealed class FakePlugin(FakeBug bug = FakeBug.None)
{
    private sealed record Pool(string Id, IPNetwork Network, IPNetwork? Sub, HashSet<IPAddress> Held);

    private readonly Dictionary<string, Pool> pools = [];
    private readonly HashSet<IPAddress> leaked = [];
    private readonly Dictionary<string, (string? Gateway, string? Gateway6, bool Internal)> networks = [];
    private int nextPool;

    public List<(string Path, string Body)> Calls { get; } = [];

    public PluginReply Handle(string path, string body)
    {
        Calls.Add((path, body));
        var request = body.Length == 0 ? new JsonObject() : (JsonNode.Parse(body) as JsonObject ?? []);
        try
        {
            return path switch
            {
                "/Plugin.Activate" => Ok(new JsonObject { ["Implements"] = new JsonArray("NetworkDriver", "IpamDriver") }),
                "/NetworkDriver.GetCapabilities" => Ok(new JsonObject { ["Scope"] = "local", ["ConnectivityScope"] = "local" }),
                "/IpamDriver.GetCapabilities" => Ok(new JsonObject { ["RequiresMACAddress"] = true }),
                "/IpamDriver.GetDefaultAddressSpaces" => Ok(new JsonObject { ["LocalDefaultAddressSpace"] = "fake-local", ["GlobalDefaultAddressSpace"] = "fake-global" }),
                "/IpamDriver.RequestPool" => RequestPool(request),
                "/IpamDriver.RequestAddress" => RequestAddress(request),
                "/IpamDriver.ReleaseAddress" => ReleaseAddress(request),
                "/IpamDriver.ReleasePool" => ReleasePool(request),
                "/NetworkDriver.CreateNetwork" => CreateNetwork(request),
                "/NetworkDriver.DeleteNetwork" => Ok([]),
                "/NetworkDriver.CreateEndpoint" => CreateEndpoint(request),
                "/NetworkDriver.Join" => Join(request),
                _ => Ok([]),
            };
        }
        catch (InvalidOperationException e) when (bug == FakeBug.PrefixesCallName)
        {
            return new PluginReply(500, "application/json", Encoding.UTF8.GetBytes(new JsonObject { ["Err"] = path.TrimStart('/') + ": " + e.Message }.ToJsonString()));
        }
        catch (InvalidOperationException e)
        {
            return bug == FakeBug.ErrorAsHttp200
                ? new PluginReply(200, "application/json", Encoding.UTF8.GetBytes(new JsonObject { ["Error"] = e.Message }.ToJsonString()))
                : new PluginReply(500, "application/json", Encoding.UTF8.GetBytes(new JsonObject { ["Err"] = e.Message }.ToJsonString()));
        }
    }

    private PluginReply RequestPool(JsonObject request)
    {
        var asked = Str(request, "Pool");
        IPNetwork network;
        if (asked.Length > 0)
        {
            network = IPNetwork.Parse(asked);
            if (bug != FakeBug.AcceptsOverlappingPool && pools.Values.Any(p => IpMath.Overlaps(p.Network, network)))
                throw new InvalidOperationException($"pool {asked} overlaps a pool in use");
        }
        else
        {
            do
                network = IPNetwork.Parse($"10.{200 + nextPool++}.0.0/24");
            while (pools.Values.Any(p => IpMath.Overlaps(p.Network, network)));
        }
        var sub = Str(request, "SubPool") is { Length: > 0 } s ? IPNetwork.Parse(s) : (IPNetwork?)null;
        var id = $"fake/{network}/{sub}#{pools.Count}-{Guid.NewGuid():N}";
        pools[id] = new Pool(id, network, sub, []);
        return Ok(new JsonObject { ["PoolID"] = id, ["Pool"] = network.ToString(), ["Data"] = new JsonObject() });
    }

    private PluginReply RequestAddress(JsonObject request)
    {
        var pool = pools.GetValueOrDefault(Str(request, "PoolID")) ?? throw new InvalidOperationException("unknown pool");
        var asked = Str(request, "Address");
        IPAddress address;
        if (asked.Length > 0)
        {
            address = IPAddress.Parse(asked);
            if ((pool.Held.Contains(address) || leaked.Contains(address)) && bug != FakeBug.AcceptsHeldStaticAddress)
                throw new InvalidOperationException($"address {asked} already in use");
        }
        else
        {
            var range = bug == FakeBug.IgnoresSubPool ? pool.Network : pool.Sub ?? pool.Network;
            var n = IpMath.ToNumber(range.BaseAddress) + 1;
            if (bug == FakeBug.IgnoresSubPool && pool.Sub is { } subRange && range.Contains(subRange.BaseAddress))
                n = IpMath.ToNumber(pool.Network.BaseAddress) + 2; // a low address, outside most sub-pools
            var v6 = range.BaseAddress.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6;
            while (bug != FakeBug.DuplicateDynamicAddress && pool.Held.Contains(IpMath.FromNumber(n, v6)))
                n++;
            address = IpMath.FromNumber(n, v6);
        }
        pool.Held.Add(address);
        var text = bug == FakeBug.AddressWithoutPrefix ? address.ToString() : $"{address}/{pool.Network.PrefixLength}";
        return Ok(new JsonObject { ["Address"] = text, ["Data"] = new JsonObject() });
    }

    private PluginReply ReleaseAddress(JsonObject request)
    {
        var pool = pools.GetValueOrDefault(Str(request, "PoolID")) ?? throw new InvalidOperationException("unknown pool");
        var address = IPAddress.Parse(Str(request, "Address"));
        pool.Held.Remove(address);
        if (bug == FakeBug.LeaksReleasedAddresses)
            leaked.Add(address);
        return Ok([]);
    }

    private PluginReply ReleasePool(JsonObject request)
    {
        if (!pools.ContainsKey(Str(request, "PoolID")))
            throw new InvalidOperationException("unknown pool");
        if (bug != FakeBug.NeverFreesPools)
            pools.Remove(Str(request, "PoolID"));
        return Ok([]);
    }

    private PluginReply CreateNetwork(JsonObject request)
    {
        var isInternal = request["Options"]?["com.docker.network.internal"]?.GetValue<bool>() == true;
        var v4 = (request["IPv4Data"] as JsonArray)?.FirstOrDefault()?["Gateway"]?.GetValue<string>();
        var v6 = (request["IPv6Data"] as JsonArray)?.FirstOrDefault()?["Gateway"]?.GetValue<string>();
        networks[Str(request, "NetworkID")] = (v4?.Split('/')[0], v6?.Split('/')[0], isInternal);
        return Ok([]);
    }

    private PluginReply CreateEndpoint(JsonObject request)
    {
        if (bug == FakeBug.EchoesInterfaceAddress)
            return Ok(new JsonObject { ["Interface"] = new JsonObject { ["Address"] = request["Interface"]?["Address"]?.GetValue<string>() } });
        return Ok(new JsonObject { ["Interface"] = new JsonObject() });
    }

    private PluginReply Join(JsonObject request)
    {
        var network = networks.GetValueOrDefault(Str(request, "NetworkID"));
        var reply = new JsonObject { ["InterfaceName"] = new JsonObject { ["SrcName"] = bug == FakeBug.NoSrcName ? "" : "fk" + Str(request, "EndpointID")[..8], ["DstPrefix"] = "eth" } };
        if (!network.Internal || bug == FakeBug.GatewayOnInternalNetwork)
        {
            if (network.Gateway is not null)
                reply["Gateway"] = network.Gateway;
            if (network.Gateway6 is not null)
                reply["GatewayIPv6"] = network.Gateway6;
        }
        return Ok(reply);
    }

    private static PluginReply Ok(JsonObject body) => new(200, "application/json", Encoding.UTF8.GetBytes(body.ToJsonString()));

    private static string Str(JsonObject o, string key) => o[key] is JsonValue v && v.TryGetValue(out string? s) ? s : "";
}
