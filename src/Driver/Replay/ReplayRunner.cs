using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Skein.Driver.Replay;

public sealed record ReplaySummary(int Passed, int Failed, int Skipped)
{
    public static ReplaySummary operator +(ReplaySummary a, ReplaySummary b) =>
        new(a.Passed + b.Passed, a.Failed + b.Failed, a.Skipped + b.Skipped);

    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{Passed} passed, {Failed} failed, {Skipped} skipped");
}

/// <summary>Sends a trace's calls to a plugin through the model and prints one report line per call.</summary>
public sealed class ReplayRunner(IPluginTransport client, TextWriter output)
{
    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Every step of the last run, in order, for callers that inspect more than the summary.</summary>
    public IReadOnlyList<StepResult> Results => results;

    private List<StepResult> results = [];

    public async Task<ReplaySummary> RunAsync(string traceName, IReadOnlyList<TraceCall> calls, bool reuseCheck, CancellationToken cancel = default, Random? random = null)
    {
        var model = new ReplayModel(calls, random);
        results = [];
        output.WriteLine($"replay: {traceName}: {calls.Count} calls against {client.Target}");

        try
        {
            foreach (var path in HandshakeChecks.Paths)
            {
                var reply = await client.PostAsync(path, null, cancel: cancel);
                Report(results, HandshakeChecks.Check(path, PluginOutcome.From(reply), model));
            }
            await ReplayAsync(model, model.Calls.ToList(), results, cancel);
            if (reuseCheck)
                await ReplayAsync(model, model.AppendReuseCheck(), results, cancel);
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or TimeoutException)
        {
            var failed = new StepResult(new TraceCall(0, "/", [], null, 0, null) { Origin = "transport" }, StepVerdict.Failed, "",
                [$"cannot talk to the plugin at {client.Target}: {e.Message}; replay aborted"], []);
            Report(results, failed);
        }

        var summary = new ReplaySummary(
            results.Count(r => r.Verdict == StepVerdict.Passed),
            results.Count(r => r.Verdict == StepVerdict.Failed),
            results.Count(r => r.Verdict == StepVerdict.Skipped));
        output.WriteLine($"replay: {traceName}: {summary}");
        return summary;
    }

    private async Task ReplayAsync(ReplayModel model, IReadOnlyList<TraceCall> calls, List<StepResult> results, CancellationToken cancel)
    {
        foreach (var call in calls)
        {
            var step = model.Prepare(call);
            if (step.SkipReason is { } reason)
            {
                Report(results, new StepResult(call, StepVerdict.Skipped, reason, [], []));
                continue;
            }
            var reply = await client.PostAsync(call.Path, Serialize(step.Body), call.Headers.Count > 0 ? call.Headers : null, cancel);
            Report(results, model.Observe(step, PluginOutcome.From(reply)));
        }
    }

    /// <summary>Encodes a body as the engine's json.Encoder does: compact, with a trailing newline.</summary>
    public static byte[]? Serialize(JsonObject? body)
    {
        if (body is null)
            return null;
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, WriterOptions))
            body.WriteTo(writer);
        buffer.WriteByte((byte)'\n');
        return buffer.ToArray();
    }

    private void Report(List<StepResult> results, StepResult result)
    {
        results.Add(result);
        var where = result.Call.Origin switch
        {
            null => result.Call.Line.ToString(CultureInfo.InvariantCulture),
            "handshake" => "-",
            _ => "+" + result.Call.Line.ToString(CultureInfo.InvariantCulture),
        };
        var verdict = result.Verdict switch
        {
            StepVerdict.Passed => "ok  ",
            StepVerdict.Failed => "FAIL",
            _ => "skip",
        };
        output.WriteLine($"  {where,4} {result.Call.Method,-42} {verdict} {result.Detail}");
        foreach (var violation in result.Violations)
            output.WriteLine($"       violation: {violation}");
        foreach (var note in result.Notes)
            output.WriteLine($"       note: {note}");
    }
}
