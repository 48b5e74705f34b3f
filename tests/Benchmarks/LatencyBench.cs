using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Skein.Driver.Replay;

namespace Skein.Benchmarks;

/// <summary>
/// Plugin call latency over the Unix socket, the way the engine calls: one client for p50/p99, then
/// 64 concurrent clients for throughput, each figure next to skein's own /Plugin.Activate (a handler
/// that does nothing) measured in the same run, because on a 2-core machine the absolute numbers
/// mostly measure the machine (decisions.md, "Benchmarks: what the goals mean").
///   scripted-latency --socket PATH [--pool 10.201.0.0/16] [--iterations 2000] [--endpoint-iterations 300]
///                    [--clients 64] [--seconds 5]
/// Run skein in a scratch network namespace: CreateEndpoint makes real veth pairs.
/// </summary>
internal static class LatencyBench
{
    private const string Mac = "com.docker.network.endpoint.macaddress";

    public static async Task<int> RunAsync(string[] args)
    {
        var socket = ScriptedEntry.Option(args, "--socket", "/run/docker/plugins/skein.sock");
        var poolText = ScriptedEntry.Option(args, "--pool", "10.201.0.0/16");
        var iterations = int.Parse(ScriptedEntry.Option(args, "--iterations", "2000"), CultureInfo.InvariantCulture);
        var endpointIterations = int.Parse(ScriptedEntry.Option(args, "--endpoint-iterations", "300"), CultureInfo.InvariantCulture);
        var clients = int.Parse(ScriptedEntry.Option(args, "--clients", "64"), CultureInfo.InvariantCulture);
        var seconds = double.Parse(ScriptedEntry.Option(args, "--seconds", "5"), CultureInfo.InvariantCulture);

        await using var setup = new PluginSocketClient(socket);
        var spaces = await CallAsync(setup, "/IpamDriver.GetDefaultAddressSpaces", null);
        var space = spaces["LocalDefaultAddressSpace"]!.GetValue<string>();
        var pool = await CallAsync(setup, "/IpamDriver.RequestPool", new JsonObject { ["AddressSpace"] = space, ["Pool"] = poolText, ["SubPool"] = "", ["Options"] = new JsonObject(), ["V6"] = false });
        var poolId = pool["PoolID"]!.GetValue<string>();
        var gateway = (await CallAsync(setup, "/IpamDriver.RequestAddress", new JsonObject { ["PoolID"] = poolId, ["Address"] = "", ["Options"] = new JsonObject { ["RequestAddressType"] = "com.docker.network.gateway" } }))["Address"]!.GetValue<string>();
        var networkId = NewId();
        await CallAsync(setup, "/NetworkDriver.CreateNetwork", new JsonObject
        {
            ["NetworkID"] = networkId,
            ["Options"] = new JsonObject { ["com.docker.network.enable_ipv6"] = false, ["com.docker.network.generic"] = new JsonObject() },
            ["IPv4Data"] = new JsonArray(new JsonObject { ["AddressSpace"] = space, ["Gateway"] = gateway, ["Pool"] = poolText }),
            ["IPv6Data"] = new JsonArray(),
        });

        var context = new BenchContext(poolId, networkId);
        var activate = new Operation("Plugin.Activate (trivial handler)", c => TimeAsync(() => CallAsync(c, "/Plugin.Activate", null)), 1);
        var requestAddress = new Operation("IpamDriver.RequestAddress", c => RequestAddressOnceAsync(c, context), 2);
        var endpointJoin = new Operation("CreateEndpoint+Join", c => EndpointJoinOnceAsync(c, context), 6);

        Console.WriteLine($"skein plugin latency over {socket} ({Environment.ProcessorCount} cores, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC)");
        try
        {
            // warm-up: JIT on our side, first-call paths on skein's
            await SingleClientAsync(socket, activate, 200);
            await SingleClientAsync(socket, requestAddress, 200);
            await SingleClientAsync(socket, endpointJoin, 30);

            var single = new List<(Operation Op, List<double> Ms)>
            {
                (activate, await SingleClientAsync(socket, activate, iterations)),
                (requestAddress, await SingleClientAsync(socket, requestAddress, iterations)),
                (endpointJoin, await SingleClientAsync(socket, endpointJoin, endpointIterations)),
            };
            Console.WriteLine("single client                          n      p50 ms   p99 ms");
            foreach (var (op, ms) in single)
                Console.WriteLine($"  {op.Name,-34} {ms.Count,6} {ScriptedEntry.Percentile(ms, 50),8:0.000} {ScriptedEntry.Percentile(ms, 99),8:0.000}");

            var concurrent = new List<(Operation Op, double PerSecond, List<double> Ms)>();
            foreach (var op in new[] { activate, requestAddress, endpointJoin })
            {
                var (rate, ms) = await ConcurrentAsync(socket, op, clients, TimeSpan.FromSeconds(seconds));
                concurrent.Add((op, rate, ms));
            }
            var trivial = concurrent[0].PerSecond;
            double CallRatio(int i) => concurrent[i].PerSecond * concurrent[i].Op.CallsPerOp / trivial;
            Console.WriteLine($"{clients} concurrent clients, {seconds:0} s each   ops/s   p50 ms   p99 ms   calls/s vs trivial");
            foreach (var (i, (op, rate, ms)) in concurrent.Index())
                Console.WriteLine($"  {op.Name,-34} {rate,8:0} {ScriptedEntry.Percentile(ms, 50),8:0.00} {ScriptedEntry.Percentile(ms, 99),8:0.00}   {CallRatio(i):0.00}");
            Console.WriteLine("  (an op of RequestAddress also makes an untimed ReleaseAddress: 2 calls; CreateEndpoint+Join also");
            Console.WriteLine("   RequestAddress, Leave, DeleteEndpoint, ReleaseAddress: 6 calls. The ratio compares call rates.)");

            Console.WriteLine($"RESULT single_request_address_p50_ms={ScriptedEntry.Percentile(single[1].Ms, 50):0.000} p99_ms={ScriptedEntry.Percentile(single[1].Ms, 99):0.000} trivial_p50_ms={ScriptedEntry.Percentile(single[0].Ms, 50):0.000} trivial_p99_ms={ScriptedEntry.Percentile(single[0].Ms, 99):0.000}");
            Console.WriteLine($"RESULT single_endpoint_join_p50_ms={ScriptedEntry.Percentile(single[2].Ms, 50):0.000} p99_ms={ScriptedEntry.Percentile(single[2].Ms, 99):0.000}");
            Console.WriteLine($"RESULT concurrent{clients}_request_address_ops_per_s={concurrent[1].PerSecond:0} p99_ms={ScriptedEntry.Percentile(concurrent[1].Ms, 99):0.00} trivial_calls_per_s={trivial:0} call_rate_ratio={CallRatio(1):0.00}");
            Console.WriteLine($"RESULT concurrent{clients}_endpoint_join_ops_per_s={concurrent[2].PerSecond:0} p99_ms={ScriptedEntry.Percentile(concurrent[2].Ms, 99):0.00} call_rate_ratio={CallRatio(2):0.00}");
        }
        finally
        {
            await CallAsync(setup, "/NetworkDriver.DeleteNetwork", new JsonObject { ["NetworkID"] = networkId });
            await CallAsync(setup, "/IpamDriver.ReleaseAddress", new JsonObject { ["PoolID"] = poolId, ["Address"] = gateway.Split('/')[0] });
            await CallAsync(setup, "/IpamDriver.ReleasePool", new JsonObject { ["PoolID"] = poolId });
        }
        return 0;
    }

    private sealed record BenchContext(string PoolId, string NetworkId);

    /// <summary>One measured operation; returns its latency in ms. Set-up and clean-up calls it needs
    /// are made but not timed.</summary>
    private sealed record Operation(string Name, Func<PluginSocketClient, Task<double>> Once, int CallsPerOp);

    private static async Task<double> RequestAddressOnceAsync(PluginSocketClient client, BenchContext context)
    {
        JsonObject? reply = null;
        var ms = await TimeAsync(async () => reply = await CallAsync(client, "/IpamDriver.RequestAddress",
            new JsonObject { ["PoolID"] = context.PoolId, ["Address"] = "", ["Options"] = new JsonObject { [Mac] = NewMac() } }));
        var address = reply!["Address"]!.GetValue<string>().Split('/')[0];
        await CallAsync(client, "/IpamDriver.ReleaseAddress", new JsonObject { ["PoolID"] = context.PoolId, ["Address"] = address });
        return ms;
    }

    private static async Task<double> EndpointJoinOnceAsync(PluginSocketClient client, BenchContext context)
    {
        var mac = NewMac();
        var address = (await CallAsync(client, "/IpamDriver.RequestAddress",
            new JsonObject { ["PoolID"] = context.PoolId, ["Address"] = "", ["Options"] = new JsonObject { [Mac] = mac } }))["Address"]!.GetValue<string>();
        var endpointId = NewId();
        var ids = new JsonObject { ["NetworkID"] = context.NetworkId, ["EndpointID"] = endpointId };
        var ms = await TimeAsync(async () =>
        {
            await CallAsync(client, "/NetworkDriver.CreateEndpoint", new JsonObject
            {
                ["NetworkID"] = context.NetworkId,
                ["EndpointID"] = endpointId,
                ["Interface"] = new JsonObject { ["Address"] = address, ["AddressIPv6"] = "", ["MacAddress"] = mac },
                ["Options"] = new JsonObject { ["com.docker.network.endpoint.exposedports"] = new JsonArray(), ["com.docker.network.portmap"] = new JsonArray() },
            });
            await CallAsync(client, "/NetworkDriver.Join", new JsonObject
            {
                ["NetworkID"] = context.NetworkId,
                ["EndpointID"] = endpointId,
                ["SandboxKey"] = "/var/run/docker/netns/bench",
                ["Options"] = new JsonObject { ["com.docker.network.endpoint.exposedports"] = new JsonArray(), ["com.docker.network.portmap"] = new JsonArray() },
            });
        });
        await CallAsync(client, "/NetworkDriver.Leave", (JsonObject)ids.DeepClone());
        await CallAsync(client, "/NetworkDriver.DeleteEndpoint", (JsonObject)ids.DeepClone());
        await CallAsync(client, "/IpamDriver.ReleaseAddress", new JsonObject { ["PoolID"] = context.PoolId, ["Address"] = address.Split('/')[0] });
        return ms;
    }

    private static async Task<List<double>> SingleClientAsync(string socket, Operation op, int count)
    {
        await using var client = new PluginSocketClient(socket);
        var ms = new List<double>(count);
        for (var i = 0; i < count; i++)
            ms.Add(await op.Once(client));
        ms.Sort();
        return ms;
    }

    private static async Task<(double PerSecond, List<double> Ms)> ConcurrentAsync(string socket, Operation op, int clients, TimeSpan duration)
    {
        var all = new List<double>();
        var start = new TaskCompletionSource();
        var stopAt = DateTime.MaxValue;
        // connect one by one before the clock starts (a burst of 64 connects can overrun a listen backlog)
        var connected = new List<PluginSocketClient>();
        for (var i = 0; i < clients; i++)
        {
            var client = new PluginSocketClient(socket, TimeSpan.FromSeconds(60));
            await client.PostAsync("/Plugin.Activate", null);
            connected.Add(client);
        }
        var workers = connected.Select(async client =>
        {
            await start.Task;
            var mine = new List<double>();
            while (DateTime.UtcNow < stopAt)
                mine.Add(await op.Once(client));
            await client.DisposeAsync();
            return mine;
        }).ToList();
        await Task.Delay(200);
        var clock = Stopwatch.StartNew();
        stopAt = DateTime.UtcNow + duration;
        start.SetResult();
        foreach (var list in await Task.WhenAll(workers))
            all.AddRange(list);
        var elapsed = clock.Elapsed.TotalSeconds;
        all.Sort();
        return (all.Count / elapsed, all);
    }

    private static async Task<double> TimeAsync(Func<Task> action)
    {
        var started = Stopwatch.GetTimestamp();
        await action();
        return Stopwatch.GetElapsedTime(started).TotalMilliseconds;
    }

    private static async Task<JsonObject> CallAsync(PluginSocketClient client, string path, JsonObject? body)
    {
        var reply = await client.PostAsync(path, body is null ? null : Encoding.UTF8.GetBytes(body.ToJsonString()));
        var parsed = reply.Body.Length > 0 ? JsonNode.Parse(reply.Body) as JsonObject : null;
        if (reply.Status != 200 || parsed?["Err"] is JsonValue { } err && err.GetValue<string>().Length > 0)
            throw new InvalidOperationException($"{path} failed: HTTP {reply.Status} {reply.BodyText}");
        return parsed ?? [];
    }

    private static string NewId() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));

    private static string NewMac() => "02:" + string.Join(':', RandomNumberGenerator.GetBytes(5).Select(b => b.ToString("x2", CultureInfo.InvariantCulture)));
}
