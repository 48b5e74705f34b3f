using System.Text;
using System.Text.Json.Nodes;
using CsCheck;
using Skein.Driver.Tests.TestSupport;
using static Skein.Driver.Tests.TestSupport.TraceBodies;

namespace Skein.Driver.Tests.Plugin;

/// <summary>
/// Thousands of generated bodies sent to every call. Invalid by construction (one invalidating change to a valid
/// body): always a 4xx with Err (and Error for IPAM), never a write to the store, and links and firewall unchanged
/// at the end. Random bodies of any shape: never an empty or non-JSON reply, never a failure without Err.
/// </summary>
public sealed class BadInputPropertyTests
{
    private enum Kind { Id, Text, Object, Array, Bool, Int, Cidr }

    private sealed record Field(string[] Path, Kind Kind, bool Required);

    private sealed record Template(string Call, string Body, Field[] Fields);

    private abstract record Mutation
    {
        public sealed record Truncate(int Fraction) : Mutation;
        public sealed record NotAnObject(string Text) : Mutation;
        public sealed record WrongType(int Field, int Replacement) : Mutation;
        public sealed record HostileId(int Field, int Variant, int Position) : Mutation;
        public sealed record Remove(int Field) : Mutation;
        public sealed record BadCidr(int Field, int Variant) : Mutation;
    }

    private static readonly string[] HostileChars = ["A", "/", ".", "..", " ", "-", "_", "é", "\u0000", "\n", "%2e", "\u202e", "😀", "*"];
    private static readonly string[] BadCidrs = ["banana", "10.0.0.0/33", "300.1.1.1/24", "10.1.2/24", "10.0.0.1", "fd00::/129", "10.0.0.0/-1", "10.0.0.0/24/1", "::ffff:10.0.0.1/200", "0x0a.0.0.1/8", "10.0.0.0/ 24", "1e1.0.0.0/8"];
    private static readonly JsonNode?[] WrongValues = [JsonValue.Create(42), JsonValue.Create(true), JsonValue.Create("x"), new JsonObject(), new JsonArray(), JsonValue.Create(-1.5)];

    private static Template[] Templates(string net, string ep, string fresh, string freshEp, string poolId)
    {
        Field Id(string name) => new([name], Kind.Id, true);
        return
        [
            new("NetworkDriver.CreateNetwork", CreateNetwork(fresh, "10.230.0.0/24", "10.230.0.1/24"),
                [Id("NetworkID"), new(["Options"], Kind.Object, false), new(["IPv4Data"], Kind.Array, false), new(["IPv4Data", "0", "Pool"], Kind.Cidr, true), new(["IPv4Data", "0", "Gateway"], Kind.Cidr, false)]),
            new("NetworkDriver.CreateEndpoint", CreateEndpoint(net, freshEp),
                [Id("NetworkID"), Id("EndpointID"), new(["Interface"], Kind.Object, false), new(["Interface", "Address"], Kind.Cidr, false), new(["Options"], Kind.Object, false)]),
            new("NetworkDriver.Join", Join(net, ep), [Id("NetworkID"), Id("EndpointID"), new(["SandboxKey"], Kind.Text, false), new(["Options"], Kind.Object, false)]),
            new("NetworkDriver.ProgramExternalConnectivity", ProgramExternalConnectivity(net, ep), [Id("NetworkID"), Id("EndpointID"), new(["Options"], Kind.Object, false)]),
            new("NetworkDriver.Leave", Endpoint(net, ep), [Id("NetworkID"), Id("EndpointID")]),
            new("NetworkDriver.RevokeExternalConnectivity", Endpoint(net, ep), [Id("NetworkID"), Id("EndpointID")]),
            new("NetworkDriver.DeleteEndpoint", Endpoint(net, ep), [Id("NetworkID"), Id("EndpointID")]),
            new("NetworkDriver.EndpointOperInfo", Endpoint(net, ep), [Id("NetworkID"), Id("EndpointID")]),
            new("NetworkDriver.DeleteNetwork", NetworkBody(net), [Id("NetworkID")]),
            new("NetworkDriver.FreeNetwork", NetworkBody(net), [Id("NetworkID")]),
            new("NetworkDriver.AllocateNetwork", """{"NetworkID": "n0x1", "Options": {"a": "b"}, "IPv4Data": [{"Pool": "10.0.1.0/24", "Gateway": "10.0.1.1/24"}]}""",
                [Id("NetworkID"), new(["Options"], Kind.Object, false), new(["IPv4Data"], Kind.Array, false), new(["IPv4Data", "0", "Pool"], Kind.Cidr, true)]),
            new("NetworkDriver.DiscoverNew", """{"DiscoveryType": 1, "DiscoveryData": {"Address": "192.0.2.10", "Self": true}}""", [new(["DiscoveryType"], Kind.Int, false)]),
            new("NetworkDriver.GwAllocCheck", """{"Options": {"com.docker.network.enable_ipv6": false}}""", [new(["Options"], Kind.Object, false)]),
            new("IpamDriver.RequestPool", """{"AddressSpace": "LocalDefault", "Pool": "10.231.0.0/24", "SubPool": "", "Options": {}, "V6": false}""",
                [new(["AddressSpace"], Kind.Text, false), new(["Pool"], Kind.Cidr, false), new(["Options"], Kind.Object, false), new(["V6"], Kind.Bool, false)]),
            new("IpamDriver.RequestAddress", $$$"""{"PoolID": "{{{poolId}}}", "Address": "", "Options": {"com.docker.network.endpoint.macaddress": "02:42:0a:e6:00:09"}}""",
                [new(["PoolID"], Kind.Text, true), new(["Address"], Kind.Text, false), new(["Options"], Kind.Object, false)]),
            new("IpamDriver.ReleaseAddress", $$"""{"PoolID": "{{poolId}}", "Address": "10.229.0.1"}""", [new(["PoolID"], Kind.Text, true), new(["Address"], Kind.Text, true)]),
            new("IpamDriver.ReleasePool", $$"""{"PoolID": "{{poolId}}"}""", [new(["PoolID"], Kind.Text, true)]),
        ];
    }

    private static Gen<Mutation> MutationGen => Gen.Frequency(
        (2, Gen.Int[0, 99].Select(f => (Mutation)new Mutation.Truncate(f))),
        (1, Gen.Char[' ', '~'].Array[0, 12].Select(c => (Mutation)new Mutation.NotAnObject(new string(c)))),
        (3, Gen.Select(Gen.Int[0, 9], Gen.Int[0, WrongValues.Length - 1], (f, r) => (Mutation)new Mutation.WrongType(f, r))),
        (3, Gen.Select(Gen.Int[0, 9], Gen.Int[0, HostileChars.Length + 2], Gen.Int[0, 63], (f, v, p) => (Mutation)new Mutation.HostileId(f, v, p))),
        (1, Gen.Int[0, 9].Select(f => (Mutation)new Mutation.Remove(f))),
        (2, Gen.Select(Gen.Int[0, 9], Gen.Int[0, BadCidrs.Length - 1], (f, v) => (Mutation)new Mutation.BadCidr(f, v))));

    /// <summary>Applies the mutation; null when it does not apply to this template (the sample is skipped).</summary>
    private static string? Apply(Template template, Mutation mutation)
    {
        var body = JsonNode.Parse(template.Body)!.AsObject();
        Field? Pick(int index, Func<Field, bool> applicable)
        {
            var candidates = template.Fields.Where(applicable).ToArray();
            return candidates.Length == 0 ? null : candidates[index % candidates.Length];
        }
        switch (mutation)
        {
            case Mutation.Truncate t:
                var text = template.Body;
                var cut = text.LastIndexOf('}') * t.Fraction / 100;
                return text[..cut];
            case Mutation.NotAnObject n:
                var trimmed = n.Text.TrimStart();
                return trimmed.StartsWith('{') ? "[" + n.Text : n.Text.Length == 0 ? "" : n.Text;
            case Mutation.WrongType w:
            {
                var field = Pick(w.Field, _ => true);
                if (field is null)
                    return null;
                var replacement = WrongValues[w.Replacement]?.DeepClone();
                if (!IsWrongFor(field.Kind, replacement))
                    replacement = field.Kind == Kind.Int ? JsonValue.Create("x") : JsonValue.Create(42);
                return Set(body, field.Path, replacement) ? body.ToJsonString() : null;
            }
            case Mutation.HostileId h:
            {
                var field = Pick(h.Field, f => f.Kind == Kind.Id);
                if (field is null)
                    return null;
                var id = NewId();
                var hostile = h.Variant switch
                {
                    var v when v < HostileChars.Length => id[..Math.Min(h.Position, 63)] + HostileChars[v] + id[Math.Min(h.Position, 63)..][..Math.Max(0, 63 - Math.Min(h.Position, 63))],
                    var v when v == HostileChars.Length => id + "a",
                    _ => "",
                };
                return Set(body, field.Path, JsonValue.Create(hostile)) ? body.ToJsonString() : null;
            }
            case Mutation.Remove r:
            {
                var field = Pick(r.Field, f => f.Required && f.Path.Length == 1);
                if (field is null)
                    return null;
                body.Remove(field.Path[0]);
                return body.ToJsonString();
            }
            case Mutation.BadCidr c:
            {
                var field = Pick(c.Field, f => f.Kind == Kind.Cidr);
                if (field is null)
                    return null;
                return Set(body, field.Path, JsonValue.Create(BadCidrs[c.Variant])) ? body.ToJsonString() : null;
            }
        }
        return null;
    }

    private static bool IsWrongFor(Kind kind, JsonNode? value) => (kind, value) switch
    {
        (Kind.Id or Kind.Text or Kind.Cidr, JsonValue v) => !v.TryGetValue<string>(out _),
        (Kind.Id or Kind.Text or Kind.Cidr, JsonObject or JsonArray) => true,
        (Kind.Object, JsonObject) => false,
        // plugin-protocol §1.4: a map may arrive as null, [] or {}; the IPAM parser takes [] as an empty map.
        (Kind.Object, JsonArray { Count: 0 }) => false,
        (Kind.Array, JsonArray) => false,
        (Kind.Bool, JsonValue v) => !v.TryGetValue<bool>(out _),
        (Kind.Int, JsonValue v) => !v.TryGetValue<int>(out _) && !v.TryGetValue<double>(out _),
        (Kind.Object or Kind.Array or Kind.Bool or Kind.Int, _) => value is not null,
        _ => false,
    };

    private static bool Set(JsonObject body, string[] path, JsonNode? value)
    {
        JsonNode? node = body;
        for (var i = 0; i < path.Length - 1; i++)
            node = node is JsonArray a ? a[int.Parse(path[i])] : node?[path[i]];
        switch (node)
        {
            case JsonObject o:
                o[path[^1]] = value;
                return true;
            case JsonArray a:
                a[int.Parse(path[^1])] = value;
                return true;
            default:
                return false;
        }
    }

    [SkippableFact]
    public async Task Invalid_bodies_are_refused_with_Err_and_change_no_state()
    {
        Skip.IfNot(PluginTestHost.IsSupported, PluginTestHost.SkipReason);
        await using var host = await PluginTestHost.StartAsync();
        var net = NewId();
        var ep = NewId();
        await host.CallOkAsync("NetworkDriver.CreateNetwork", CreateNetwork(net, "10.229.0.0/24", "10.229.0.1/24"));
        await host.CallOkAsync("NetworkDriver.CreateEndpoint", CreateEndpoint(net, ep, "10.229.0.2/24"));
        await host.CallOkAsync("NetworkDriver.Join", Join(net, ep));
        var pool = (await host.CallOkAsync("IpamDriver.RequestPool", """{"AddressSpace": "LocalDefault", "Pool": "10.229.0.0/24", "SubPool": "", "Options": {}, "V6": false}""")).Json!;
        var poolId = pool["PoolID"]!.GetValue<string>();
        await host.CallOkAsync("IpamDriver.RequestAddress", $$$"""{"PoolID": "{{{poolId}}}", "Address": "", "Options": {"RequestAddressType": "com.docker.network.gateway"}}""");
        var templates = Templates(net, ep, NewId(), NewId(), poolId);
        var before = await StateSnapshot.TakeAsync(host);
        var store = host.Runtime.ClusterStore;
        var (entriesBefore, revisionBefore) = await store.ListAsync("", keysOnly: true, CancellationToken.None);
        var sent = 0;
        // Collected rather than thrown: a shrunk counter-example would only show the last sample, not the writer.
        var storeChanges = new System.Collections.Concurrent.ConcurrentQueue<string>();

        await Gen.Select(Gen.Int[0, templates.Length - 1], MutationGen).SampleAsync(async (index, mutation) =>
        {
            var template = templates[index];
            var body = Apply(template, mutation);
            if (body is null)
                return;
            Interlocked.Increment(ref sent);
            var reply = await host.CallAsync(template.Call, body);
            var context = $"{template.Call} {mutation} body {Shorten(body)} → {Shorten(reply.ToString())}";
            Assert.True((int)reply.Status is >= 400 and < 500, $"not a 4xx: {context}");
            Assert.False(string.IsNullOrWhiteSpace(reply.Err), $"no Err: {context}");
            if (template.Call.StartsWith("IpamDriver.", StringComparison.Ordinal))
                Assert.True(reply.Json?["Error"]?.GetValue<string>() == reply.Err, $"IPAM reply without Error: {context}");
            var (entries, revision) = await store.ListAsync("", keysOnly: true, CancellationToken.None);
            if (revision != revisionBefore)
            {
                var changed = entries.Select(e => $"{e.Key}@{e.Version}").Except(entriesBefore.Select(e => $"{e.Key}@{e.Version}"))
                    .Concat(entriesBefore.Select(e => $"-{e.Key}@{e.Version}").Except(entries.Select(e => $"-{e.Key}@{e.Version}")));
                storeChanges.Enqueue($"the store changed (revision {revisionBefore} → {revision}: {string.Join(", ", changed)}): {context}");
                revisionBefore = revision;
                entriesBefore = entries;
            }
        }, iter: 3000, threads: 4);

        Assert.True(storeChanges.IsEmpty, string.Join("\n", storeChanges.Take(5)));
        Assert.True(sent > 2000, $"only {sent} samples applied");
        Assert.Equal(before, await StateSnapshot.TakeAsync(host));
    }

    [SkippableFact]
    public async Task Any_body_to_any_call_gets_a_JSON_answer_and_failures_carry_Err()
    {
        Skip.IfNot(PluginTestHost.IsSupported, PluginTestHost.SkipReason);
        await using var host = await PluginTestHost.StartAsync();
        var ids = new[] { NewId(), NewId(), "n0x1", "ABC", "../x", "" };
        string[] calls =
        [
            "Plugin.Activate", "NetworkDriver.GetCapabilities", "NetworkDriver.CreateNetwork", "NetworkDriver.DeleteNetwork",
            "NetworkDriver.CreateEndpoint", "NetworkDriver.DeleteEndpoint", "NetworkDriver.Join", "NetworkDriver.Leave",
            "NetworkDriver.ProgramExternalConnectivity", "NetworkDriver.RevokeExternalConnectivity", "NetworkDriver.EndpointOperInfo",
            "NetworkDriver.DiscoverNew", "NetworkDriver.DiscoverDelete", "NetworkDriver.AllocateNetwork", "NetworkDriver.FreeNetwork",
            "NetworkDriver.GwAllocCheck", "IpamDriver.GetCapabilities", "IpamDriver.GetDefaultAddressSpaces", "IpamDriver.RequestPool",
            "IpamDriver.ReleasePool", "IpamDriver.RequestAddress", "IpamDriver.ReleaseAddress", "NetworkDriver.Nope",
        ];
        string[] names = ["NetworkID", "EndpointID", "Options", "IPv4Data", "IPv6Data", "Interface", "Address", "AddressIPv6", "MacAddress", "Pool", "Gateway", "PoolID", "V6", "SandboxKey", "DiscoveryType", "com.docker.network.portmap", "com.docker.network.generic", "Proto", "Port", "HostPort"];
        string[] strings = ["10.240.0.0/24", "10.240.0.1/24", "10.240.0.2/24", "fd40::/64", "02:42:0a:f0:00:02", "LocalDefault", "LocalDefault/10.240.0.0/24", "1400", "", "x"];

        Gen<JsonNode?> Value(int depth) => depth <= 0
            ? Gen.Frequency(
                (3, Gen.Int[0, ids.Length - 1].Select(i => (JsonNode?)JsonValue.Create(ids[i]))),
                (3, Gen.Int[0, strings.Length - 1].Select(i => (JsonNode?)JsonValue.Create(strings[i]))),
                (1, Gen.Int[-5, 70000].Select(i => (JsonNode?)JsonValue.Create(i))),
                (1, Gen.Bool.Select(b => (JsonNode?)JsonValue.Create(b))),
                (1, Gen.Const<JsonNode?>(() => null)))
            : Gen.Frequency(
                (4, Value(0)),
                (2, Gen.Select(Gen.Int[0, names.Length - 1].Array[0, 5], Value(depth - 1).Array[5], (keys, values) =>
                {
                    var o = new JsonObject();
                    for (var i = 0; i < keys.Length; i++)
                        o[names[keys[i]]] = values[i]?.DeepClone();
                    return (JsonNode?)o;
                })),
                (1, Value(depth - 1).Array[0, 3].Select(items => (JsonNode?)new JsonArray(items.Select(x => x?.DeepClone()).ToArray()))));

        var bodies = Gen.Frequency(
            (6, Value(3).Select(v => v?.ToJsonString() ?? "null")),
            (1, Gen.Byte.Array[0, 40].Select(b => Encoding.Latin1.GetString(b))));

        await Gen.Select(Gen.Int[0, calls.Length - 1], bodies).SampleAsync(async (index, body) =>
        {
            var reply = await host.CallAsync(calls[index], body);
            var context = $"{calls[index]} {Shorten(body)} → {Shorten(reply.ToString())}";
            Assert.True(reply.Json is JsonObject, $"reply is not a JSON object: {context}");
            if (!reply.Ok)
                Assert.False(string.IsNullOrWhiteSpace(reply.Err), $"failure without Err: {context}");
            Assert.True(reply.Status != System.Net.HttpStatusCode.InternalServerError || reply.Err!.Contains("step", StringComparison.Ordinal) || reply.Err.Contains("netlink", StringComparison.Ordinal),
                $"500 that is not a kernel refusal: {context}");
        }, iter: 2000, threads: 4);
    }

    private static string Shorten(string text) => text.Length > 300 ? text[..300] + "…" : text;
}
