using System.Text.Json;
using System.Text.Json.Nodes;

namespace Skein.Driver.Replay;

/// <summary>One recorded plugin call: a line of a trace file (the JSONL format of the shared traces).</summary>
/// <param name="Line">1-based line number in the trace file, used in every report line.</param>
/// <param name="Path">URL path the engine posted to, e.g. <c>/IpamDriver.RequestPool</c>.</param>
/// <param name="Headers">Request headers exactly as recorded (the engine's, not ours).</param>
/// <param name="Body">Recorded request body; null where the engine sent none.</param>
/// <param name="RecordedStatus">What the recording stub answered. Informational only: never a reference.</param>
/// <param name="RecordedResponse">The stub's reply body. Used only to learn the stub's IDs and addresses.</param>
public sealed record TraceCall(
    int Line,
    string Path,
    IReadOnlyList<KeyValuePair<string, string>> Headers,
    JsonObject? Body,
    int RecordedStatus,
    JsonObject? RecordedResponse)
{
    /// <summary>Set on calls the harness adds itself (the reuse check after a trace), shown in the report.</summary>
    public string? Origin { get; init; }

    /// <summary>The method name without the leading slash, e.g. <c>IpamDriver.RequestPool</c>.</summary>
    public string Method => Path.TrimStart('/');
}

/// <summary>Reads trace files; every malformed line is reported with its number and what is wrong.</summary>
public static class TraceReader
{
    public static IReadOnlyList<TraceCall> ReadFile(string path) => Parse(File.ReadAllLines(path), System.IO.Path.GetFileName(path));

    public static IReadOnlyList<TraceCall> Parse(IEnumerable<string> lines, string sourceName = "trace")
    {
        var calls = new List<TraceCall>();
        var number = 0;
        foreach (var text in lines)
        {
            number++;
            if (string.IsNullOrWhiteSpace(text))
                continue;
            calls.Add(ParseLine(text, number, sourceName));
        }
        return calls;
    }

    private static TraceCall ParseLine(string text, int number, string sourceName)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(text);
        }
        catch (JsonException e)
        {
            throw new TraceFormatException($"{sourceName} line {number}: not valid JSON ({e.Message})");
        }
        if (node is not JsonObject line)
            throw new TraceFormatException($"{sourceName} line {number}: expected a JSON object");

        if (line["path"] is not JsonValue pathValue || !pathValue.TryGetValue(out string? path) || !path.StartsWith('/'))
            throw new TraceFormatException($"{sourceName} line {number}: \"path\" must be a string starting with '/'");

        var headers = new List<KeyValuePair<string, string>>();
        JsonObject? body = null;
        if (line["request"] is JsonObject request)
        {
            if (request["headers"] is JsonObject headerObject)
            {
                foreach (var (name, value) in headerObject)
                {
                    if (value is JsonValue v && v.TryGetValue(out string? s))
                        headers.Add(new(name, s));
                    else
                        throw new TraceFormatException($"{sourceName} line {number}: header \"{name}\" must be a string");
                }
            }
            body = request["body"] switch
            {
                null => null,
                JsonObject o => o,
                _ => throw new TraceFormatException($"{sourceName} line {number}: request.body must be an object or null"),
            };
        }
        else if (line["request"] is not null)
        {
            throw new TraceFormatException($"{sourceName} line {number}: \"request\" must be an object");
        }

        var status = 200;
        if (line["status"] is JsonValue statusValue && !statusValue.TryGetValue(out status))
            throw new TraceFormatException($"{sourceName} line {number}: \"status\" must be an integer");

        var response = line["response"] as JsonObject;
        return new TraceCall(number, path, headers, body, status, response);
    }
}

public sealed class TraceFormatException(string message) : Exception(message);
