using System.Text;
using Skein.Driver.Replay;

namespace Skein.Functional.Tests.Replay;

/// <summary>Hands calls straight to a <see cref="FakePlugin"/>, no socket.</summary>
public sealed class InMemoryTransport(FakePlugin plugin) : IPluginTransport
{
    public string Target => "in-memory fake plugin";

    public Task<PluginReply> PostAsync(string path, byte[]? body, IEnumerable<KeyValuePair<string, string>>? headers = null, CancellationToken cancel = default) =>
        Task.FromResult(plugin.Handle(path, body is null ? "" : Encoding.UTF8.GetString(body)));
}

public static class Traces
{
    public static readonly string[] All = ["basic.jsonl", "options.jsonl", "ipv6.jsonl", "internal.jsonl", "errors.jsonl"];

    public static string Directory => Path.Combine(AppContext.BaseDirectory, "TestData", "traces");

    public static string PathOf(string name) => Path.Combine(Directory, name);

    public static IReadOnlyList<TraceCall> Read(string name) => TraceReader.ReadFile(PathOf(name));

    /// <summary>Replays one trace against a fake plugin; returns every step and the printed report.</summary>
    public static async Task<(IReadOnlyList<StepResult> Results, ReplaySummary Summary, string Report)> ReplayAsync(string name, FakePlugin plugin, bool reuseCheck = true)
    {
        var output = new StringWriter();
        var runner = new ReplayRunner(new InMemoryTransport(plugin), output);
        var summary = await runner.RunAsync(name, Read(name), reuseCheck, random: new Random(1234));
        return (runner.Results, summary, output.ToString());
    }
}
