using Skein.Functional.Tests.Infrastructure;
using Skein.Functional.Tests.Replay;

namespace Skein.Functional.Tests.EndToEnd;

/// <summary>`skein replay` of every shared trace against a real skein in a scratch namespace.</summary>
public class ReplayAgainstSkeinTests(PluginOnlyHost host) : IClassFixture<PluginOnlyHost>
{
    public static TheoryData<string> AllTraces => [.. Traces.All];

    [SkippableTheory]
    [MemberData(nameof(AllTraces))]
    public async Task Every_trace_replays_without_a_violation(string trace)
    {
        host.RequireReady();
        var (file, prefix) = SkeinProcess.Resolve()!.Value;
        var linksBefore = await host.HostLinksAsync();

        var result = await Shell.RunAsync(file, [.. prefix, "replay", Traces.PathOf(trace), "--socket", host.Skein.SocketPath], TimeSpan.FromSeconds(120));

        Assert.True(result.Ok, $"{result}\nskein log:\n{host.Skein.Tail()}");
        Assert.Matches(@"replay: \d+ passed, 0 failed", result.Stdout);
        // everything the trace created it also deleted: no link left behind in the namespace
        // skein deletes a veth pair just after answering DeleteEndpoint: allow it a bounded moment.
        var linksAfter = await host.HostLinksAsync();
        for (var wait = 0; wait < 100 && !linksAfter.SetEquals(linksBefore); wait++)
        {
            await Task.Delay(100);
            linksAfter = await host.HostLinksAsync();
        }
        Assert.Equal(linksBefore, linksAfter);
    }
}
