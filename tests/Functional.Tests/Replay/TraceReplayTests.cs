using System.Text.Json.Nodes;
using Skein.Driver.Replay;

namespace Skein.Functional.Tests.Replay;

/// <summary>The replay harness against a fake plugin: a correct one passes every shared trace, and
/// each kind of wrong answer is caught on the line where it happens.</summary>
public class TraceReplayTests
{
    public static TheoryData<string> AllTraces => [.. Traces.All];

    [Theory]
    [MemberData(nameof(AllTraces))]
    public async Task A_correct_plugin_passes_every_trace(string trace)
    {
        var (results, summary, report) = await Traces.ReplayAsync(trace, new FakePlugin());

        Assert.True(summary.Failed == 0, report);
        Assert.Equal(results.Count(r => r.Verdict == StepVerdict.Passed), summary.Passed);
        Assert.Contains($"replay: {trace}: {summary}", report);
        // every call of the trace is either replayed or deliberately skipped, and the reuse check ran
        Assert.Equal(Traces.Read(trace).Count, results.Count(r => r.Call.Origin is null));
        Assert.Contains(results, r => r.Call.Origin == "reuse check" && r.Call.Method == "IpamDriver.RequestPool" || trace is "basic.jsonl" or "internal.jsonl");
    }

    [Fact]
    public async Task Errors_trace_expects_the_two_refusals_and_skips_the_refused_network()
    {
        var (results, summary, report) = await Traces.ReplayAsync("errors.jsonl", new FakePlugin());

        Assert.True(summary.Failed == 0, report);
        var byLine = results.Where(r => r.Call.Origin is null).ToDictionary(r => r.Call.Line);
        Assert.Contains("refused as expected", byLine[10].Detail);
        Assert.Contains("10.70.0.9 is already held", byLine[10].Detail);
        Assert.Contains("refused as expected", byLine[11].Detail);
        Assert.Contains("overlaps pool 10.70.0.0/24", byLine[11].Detail);
        int[] skipped = [12, 13, 21, 22, 23];
        foreach (var line in skipped)
            Assert.True(byLine[line].Verdict == StepVerdict.Skipped, $"line {line}: {byLine[line].Verdict} {byLine[line].Detail}");
        foreach (var line in byLine.Keys.Except(skipped))
            Assert.True(byLine[line].Verdict == StepVerdict.Passed, $"line {line}: {byLine[line].Verdict} {byLine[line].Detail}");
        // the first network's teardown (17-20) went to the plugin's first pool, not to the refused one
        Assert.Equal(StepVerdict.Passed, byLine[19].Verdict);
    }

    [Theory]
    [InlineData(FakeBug.AcceptsOverlappingPool, "errors.jsonl", 11, "must fail")]
    [InlineData(FakeBug.AcceptsHeldStaticAddress, "errors.jsonl", 10, "must fail (10.70.0.9 is already held")]
    [InlineData(FakeBug.DuplicateDynamicAddress, "basic.jsonl", 10, "is already held")]
    [InlineData(FakeBug.IgnoresSubPool, "options.jsonl", 15, "outside the sub-pool 10.50.1.0/24")]
    [InlineData(FakeBug.AddressWithoutPrefix, "basic.jsonl", 2, "not in the form ip/len")]
    [InlineData(FakeBug.GatewayOnInternalNetwork, "internal.jsonl", 6, "internal network, yet the reply sets Gateway")]
    [InlineData(FakeBug.ErrorAsHttp200, "errors.jsonl", 10, "HTTP 200 with \"Error\"")]
    [InlineData(FakeBug.NoSrcName, "basic.jsonl", 6, "no InterfaceName.SrcName")]
    [InlineData(FakeBug.EchoesInterfaceAddress, "basic.jsonl", 5, "Interface.Address although the engine gave it")]
    public async Task A_wrong_answer_fails_its_line(FakeBug bug, string trace, int line, string violation)
    {
        var (results, summary, report) = await Traces.ReplayAsync(trace, new FakePlugin(bug));

        Assert.True(summary.Failed > 0, report);
        var step = results.Single(r => r.Call.Origin is null && r.Call.Line == line);
        Assert.Equal(StepVerdict.Failed, step.Verdict);
        Assert.Contains(step.Violations, v => v.Contains(violation, StringComparison.Ordinal));
        Assert.Contains("FAIL", report);
    }

    [Theory]
    [InlineData(FakeBug.NeverFreesPools, "IpamDriver.RequestPool")]
    [InlineData(FakeBug.LeaksReleasedAddresses, "IpamDriver.RequestAddress")]
    public async Task The_reuse_check_catches_what_a_release_did_not_free(FakeBug bug, string failingMethod)
    {
        var (results, summary, report) = await Traces.ReplayAsync("options.jsonl", new FakePlugin(bug));

        Assert.True(summary.Failed > 0, report);
        Assert.All(results.Where(r => r.Call.Origin is null), r => Assert.NotEqual(StepVerdict.Failed, r.Verdict));
        Assert.Contains(results, r => r.Call.Origin == "reuse check" && r.Call.Method == failingMethod && r.Verdict == StepVerdict.Failed);

        var (_, withoutCheck, _) = await Traces.ReplayAsync("options.jsonl", new FakePlugin(bug), reuseCheck: false);
        Assert.Equal(0, withoutCheck.Failed);
    }

    [Fact]
    public async Task Ids_pools_addresses_and_macs_are_substituted_consistently()
    {
        var plugin = new FakePlugin();
        var (_, summary, report) = await Traces.ReplayAsync("options.jsonl", plugin);
        Assert.True(summary.Failed == 0, report);

        var recorded = Traces.Read("options.jsonl");
        var recordedNetworks = recorded.Select(c => RecordedStr(c.Body, "NetworkID")).Where(s => s.Length > 0).ToHashSet();
        var recordedEndpoints = recorded.Select(c => RecordedStr(c.Body, "EndpointID")).Where(s => s.Length > 0).ToHashSet();
        var sent = plugin.Calls.Where(c => c.Body.Length > 0).Select(c => (c.Path, Body: JsonNode.Parse(c.Body)!.AsObject())).ToList();

        var networkIds = sent.Select(c => RecordedStr(c.Body, "NetworkID")).Where(s => s.Length > 0).Distinct().ToList();
        Assert.Equal(recordedNetworks.Count, networkIds.Count);
        Assert.All(networkIds, id => Assert.Matches("^[0-9a-f]{64}$", id));
        Assert.Empty(networkIds.Intersect(recordedNetworks));
        var endpointIds = sent.Select(c => RecordedStr(c.Body, "EndpointID")).Where(s => s.Length > 0).Distinct().ToList();
        Assert.Equal(recordedEndpoints.Count, endpointIds.Count);
        Assert.Empty(endpointIds.Intersect(recordedEndpoints));

        // pool ids are the plugin's, never the stub's; the address space is the plugin's
        Assert.All(sent.Where(c => c.Body["PoolID"] is not null), c => Assert.StartsWith("fake/", RecordedStr(c.Body, "PoolID")));
        Assert.All(sent.Where(c => c.Path == "/IpamDriver.RequestPool"), c => Assert.Equal("fake-local", RecordedStr(c.Body, "AddressSpace")));

        // the second, dynamic network lives where the plugin put it (10.200.0.0/24), with the plugin's gateway
        var second = sent.Where(c => c.Path == "/NetworkDriver.CreateNetwork").ElementAt(1).Body["IPv4Data"]![0]!;
        Assert.Equal("10.200.0.0/24", second["Pool"]!.GetValue<string>());
        Assert.Equal("10.200.0.1/24", second["Gateway"]!.GetValue<string>());
        Assert.Equal("fake-local", second["AddressSpace"]!.GetValue<string>());

        // the user's --mac-address: fresh, but the same in RequestAddress, Interface and the base64 option
        var staticEndpoint = sent.First(c => c.Path == "/NetworkDriver.CreateEndpoint").Body;
        var mac = staticEndpoint["Interface"]!["MacAddress"]!.GetValue<string>();
        Assert.NotEqual("02:42:0a:32:01:4d", mac);
        var fromOption = string.Join(':', Convert.FromBase64String(staticEndpoint["Options"]![ReplayModel.MacOption]!.GetValue<string>()).Select(b => b.ToString("x2")));
        Assert.Equal(mac, fromOption);
        Assert.Contains(sent, c => c.Path == "/IpamDriver.RequestAddress" && c.Body["Options"]?[ReplayModel.MacOption]?.GetValue<string>() == mac);

        // sandbox keys are kept as recorded; aux addresses sent in CIDR form
        Assert.Contains(sent, c => c.Path == "/NetworkDriver.Join" && RecordedStr(c.Body, "SandboxKey") == "/tmp/dk/exec/netns/85b97c372a6e");
        var aux = sent.First(c => c.Path == "/NetworkDriver.CreateNetwork").Body["IPv4Data"]![0]!["AuxAddresses"]!;
        Assert.Equal("10.50.0.10/16", aux["host1"]!.GetValue<string>());
    }

    [Fact]
    public async Task An_error_text_that_repeats_the_call_name_is_noted_but_not_a_violation()
    {
        var (results, summary, report) = await Traces.ReplayAsync("errors.jsonl", new FakePlugin(FakeBug.PrefixesCallName));

        Assert.True(summary.Failed == 0, report);
        var line10 = results.Single(r => r.Call.Origin is null && r.Call.Line == 10);
        Assert.Contains(line10.Notes, n => n.Contains("users read it twice", StringComparison.Ordinal));
        Assert.Contains("note: the error text starts with \"IpamDriver.RequestAddress:\"", report);
    }

    [Fact]
    public void The_recording_is_untangled_where_the_stub_reused_a_pool_id()
    {
        var world = new RecordedWorld(Traces.Read("errors.jsonl"));

        Assert.Equal(2, world.Pools.Count);
        foreach (var line in new[] { 2, 4, 10, 17, 18, 19 })
            Assert.Equal(0, world.PoolOfLine(line));
        foreach (var line in new[] { 11, 12, 21, 22 })
            Assert.Equal(1, world.PoolOfLine(line));
        Assert.Equal([1], world.CreateNetworkPools(13));
    }

    [Fact]
    public void A_malformed_trace_line_is_named()
    {
        var e = Assert.Throws<TraceFormatException>(() => TraceReader.Parse(["{\"path\": \"/Plugin.Activate\"}", "", "{not json"], "x.jsonl"));
        Assert.Contains("x.jsonl line 3", e.Message);
        var e2 = Assert.Throws<TraceFormatException>(() => TraceReader.Parse(["{\"path\": 5}"], "y.jsonl"));
        Assert.Contains("y.jsonl line 1: \"path\"", e2.Message);
    }

    private static string RecordedStr(JsonObject? o, string key) => o?[key] is JsonValue v && v.TryGetValue(out string? s) ? s : "";
}
