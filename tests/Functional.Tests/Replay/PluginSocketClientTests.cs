using Skein.Driver.Replay;

namespace Skein.Functional.Tests.Replay;

/// <summary>The harness's HTTP client and the command line, over a real Unix socket to a fake plugin.</summary>
public class PluginSocketClientTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Sends_what_the_engine_sends_and_reads_both_body_framings(bool chunked)
    {
        var plugin = new FakePlugin();
        await using var server = new FakePluginServer(plugin.Handle) { Chunked = chunked };
        await using var client = new PluginSocketClient(server.SocketPath);

        var activate = await client.PostAsync("/Plugin.Activate", null);
        var spaces = await client.PostAsync("/IpamDriver.GetDefaultAddressSpaces", null);

        Assert.Equal(200, activate.Status);
        Assert.Contains("IpamDriver", activate.BodyText);
        Assert.Contains("fake-local", spaces.BodyText);
        var head = server.RequestHeads[0].Split("\r\n");
        Assert.Equal("POST /Plugin.Activate HTTP/1.1", head[0]);
        Assert.Contains("Host: ", head);
        Assert.Contains("Accept: application/vnd.docker.plugins.v1.2+json", head);
        Assert.Contains("Content-Length: 0", head);
        Assert.DoesNotContain(head, h => h.StartsWith("Content-Type", StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public async Task The_command_passes_a_correct_plugin_and_fails_a_wrong_one()
    {
        var good = new FakePlugin();
        await using (var server = new FakePluginServer(good.Handle))
        {
            var output = new StringWriter();
            var code = await ReplayCommand.RunAsync([.. Traces.All.Select(Traces.PathOf), "--socket", server.SocketPath], output, new StringWriter());
            Assert.True(code == 0, output.ToString());
            Assert.Matches(@"replay: \d+ passed, 0 failed, 5 skipped\s*$", output.ToString());
        }

        var bad = new FakePlugin(FakeBug.AcceptsOverlappingPool);
        await using (var server = new FakePluginServer(bad.Handle))
        {
            var output = new StringWriter();
            var code = await ReplayCommand.RunAsync([Traces.PathOf("errors.jsonl"), "--socket", server.SocketPath], output, new StringWriter());
            Assert.Equal(1, code);
            Assert.Matches(@"replay: \d+ passed, [1-9]\d* failed", output.ToString());
        }
    }

    [Fact]
    public async Task Bad_usage_and_an_absent_plugin_are_reported_plainly()
    {
        var error = new StringWriter();
        Assert.Equal(2, await ReplayCommand.RunAsync([], new StringWriter(), error));
        Assert.Contains("no trace file", error.ToString());

        error = new StringWriter();
        Assert.Equal(2, await ReplayCommand.RunAsync(["/nonexistent/trace.jsonl"], new StringWriter(), error));
        Assert.Contains("cannot read trace /nonexistent/trace.jsonl", error.ToString());

        var output = new StringWriter();
        var code = await ReplayCommand.RunAsync([Traces.PathOf("basic.jsonl"), "--socket", "/nonexistent/skein.sock"], output, new StringWriter());
        Assert.Equal(1, code);
        Assert.Contains("cannot talk to the plugin at /nonexistent/skein.sock", output.ToString());
    }
}
