using System.Net;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Skein.Ipam.Addressing;
using Skein.Ipam.Allocation;
using Skein.Ipam.Protocol;
using Skein.Ipam.Tests.TestSupport;

namespace Skein.Ipam.Tests.Allocation;

/// <summary>
/// Replays the IPAM calls of the recorded 20.10.24 traces (copied into Traces/) through the request
/// parser and the service. The stub's PoolIDs, address space and dynamic addresses are mapped to
/// what skein answers; the checks are protocol invariants, never the stub's answers.
/// </summary>
public sealed class TraceReplayTests
{
    private static string TraceDirectory([CallerFilePath] string here = "") => Path.Combine(Path.GetDirectoryName(here)!, "Traces");

    /// <summary>errors.jsonl: line 10 (10.70.0.9 again) and 11 (the same pool again) must fail; the second network's later calls are never sent.</summary>
    private static readonly Dictionary<string, (int[] MustFail, int[] NotSent, string[] FailText)> Expectations = new()
    {
        ["errors.jsonl"] = ([10, 11], [12, 21, 22], ["Address already in use", "Pool overlaps with other one on this address space"]),
    };

    [Theory]
    [InlineData("basic.jsonl")]
    [InlineData("errors.jsonl")]
    [InlineData("internal.jsonl")]
    [InlineData("ipv6.jsonl")]
    [InlineData("options.jsonl")]
    public async Task Replays_every_ipam_call_of_the_trace(string file)
    {
        await using var env = await IpamTestEnvironment.CreateAsync();
        var ipam = env.NewService();
        var expectations = Expectations.GetValueOrDefault(file, ([], [], []));
        var poolIds = new Dictionary<string, string>(StringComparer.Ordinal);
        var addresses = new Dictionary<string, string>(StringComparer.Ordinal);
        var live = new Dictionary<string, string>(StringComparer.Ordinal); // address → PoolID holding it
        int calls = 0, failures = 0;

        string[] lines = await File.ReadAllLinesAsync(Path.Combine(TraceDirectory(), file));
        for (int number = 1; number <= lines.Length; number++)
        {
            var line = JsonNode.Parse(lines[number - 1])!;
            string path = line["path"]!.GetValue<string>();
            if (!path.StartsWith("/IpamDriver.", StringComparison.Ordinal) || expectations.NotSent.Contains(number))
                continue;
            var body = line["request"]!["body"] as JsonObject;
            var response = line["response"] as JsonObject;
            calls++;
            bool mustFail = expectations.MustFail.Contains(number);
            try
            {
                switch (path)
                {
                    case "/IpamDriver.RequestPool":
                    {
                        body!["AddressSpace"] = "LocalDefault";
                        var request = IpamRequestParser.ParseRequestPool(Bytes(body));
                        var reply = await ipam.RequestPoolAsync(request, CancellationToken.None);
                        var pool = IpPrefix.Parse(reply.Pool, "reply");
                        if (!string.IsNullOrEmpty(request.Pool))
                            Assert.Equal(request.Pool, reply.Pool);
                        Assert.Equal(request.V6, pool.IsV6);
                        Assert.StartsWith("LocalDefault/" + reply.Pool, reply.PoolID);
                        poolIds[response!["PoolID"]!.GetValue<string>()] = reply.PoolID;
                        break;
                    }
                    case "/IpamDriver.RequestAddress":
                    {
                        string stubPoolId = body!["PoolID"]!.GetValue<string>();
                        body["PoolID"] = poolIds[stubPoolId];
                        var request = IpamRequestParser.ParseRequestAddress(Bytes(body));
                        var reply = await ipam.RequestAddressAsync(request, CancellationToken.None);
                        var id = PoolId.Parse(request.PoolID);
                        string ip = reply.Address.Split('/')[0];
                        Assert.Equal($"{ip}/{id.Pool.Length}", reply.Address);
                        Assert.True(id.Pool.Contains(IPAddress.Parse(ip)), $"line {number}: {reply.Address} outside {id.Pool}");
                        bool gateway = request.Options?.ContainsKey(IpamLabels.RequestAddressType) == true;
                        if (!string.IsNullOrEmpty(request.Address))
                            Assert.Equal(request.Address, ip);
                        else if (!gateway)
                            Assert.True(id.Window.Contains(IPAddress.Parse(ip)), $"line {number}: {reply.Address} outside the window {id.Window}");
                        Assert.False(live.ContainsKey(ip), $"line {number}: {ip} handed out twice");
                        live[ip] = request.PoolID!;
                        addresses[response!["Address"]!.GetValue<string>().Split('/')[0]] = ip;
                        break;
                    }
                    case "/IpamDriver.ReleaseAddress":
                    {
                        body!["PoolID"] = poolIds[body["PoolID"]!.GetValue<string>()];
                        body["Address"] = addresses[body["Address"]!.GetValue<string>()];
                        var request = IpamRequestParser.ParseReleaseAddress(Bytes(body));
                        await ipam.ReleaseAddressAsync(request, CancellationToken.None);
                        live.Remove(request.Address!);
                        break;
                    }
                    case "/IpamDriver.ReleasePool":
                        body!["PoolID"] = poolIds[body["PoolID"]!.GetValue<string>()];
                        await ipam.ReleasePoolAsync(IpamRequestParser.ParseReleasePool(Bytes(body)), CancellationToken.None);
                        break;
                    default:
                        Assert.Fail($"line {number}: unexpected IPAM call {path}");
                        break;
                }
                Assert.False(mustFail, $"line {number} ({path}) must fail but succeeded");
            }
            catch (SkeinException e) when (mustFail)
            {
                failures++;
                Assert.Contains(expectations.FailText[Array.IndexOf(expectations.MustFail, number)], e.Message);
            }
        }

        Assert.True(calls > 5);
        Assert.Equal(expectations.MustFail.Length, failures);
        // Every trace tears its networks down: nothing may be left behind.
        Assert.Empty(await env.KeysAsync());
    }

    private static byte[] Bytes(JsonObject body) => Encoding.UTF8.GetBytes(body.ToJsonString() + "\n");

    [Fact]
    public void The_traces_are_the_shared_recordings()
    {
        foreach (string file in Directory.GetFiles(TraceDirectory(), "*.jsonl"))
        {
            foreach (string line in File.ReadLines(file))
                Assert.Equal(JsonValueKind.Object, JsonDocument.Parse(line).RootElement.ValueKind);
        }
        Assert.Equal(5, Directory.GetFiles(TraceDirectory(), "*.jsonl").Length);
    }
}
