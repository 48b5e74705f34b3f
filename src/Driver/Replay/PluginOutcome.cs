using System.Text.Json;
using System.Text.Json.Nodes;

namespace Skein.Driver.Replay;

/// <summary>How the engine would read a plugin's reply: a success with a JSON object, or a failure
/// with the text the user would see. <see cref="FormProblem"/> names a reply the engine could not
/// read, or a failure not in the form decisions.md #8 prescribes (non-200 with "Err").</summary>
public sealed record PluginOutcome(bool Succeeded, JsonObject? Body, string ErrorText, string? FormProblem)
{
    public static PluginOutcome From(PluginReply reply)
    {
        JsonObject? body = null;
        string? parseProblem = null;
        if (reply.Body.Length == 0)
        {
            parseProblem = "empty body (the engine's JSON decoder fails on it)";
        }
        else
        {
            try
            {
                body = JsonNode.Parse(reply.Body) as JsonObject;
                if (body is null)
                    parseProblem = "body is JSON but not an object";
            }
            catch (JsonException e)
            {
                parseProblem = $"body is not JSON ({e.Message}): {Excerpt(reply.BodyText)}";
            }
        }

        var err = RecordedWorld.Str(body, "Err");
        var error = RecordedWorld.Str(body, "Error");
        if (reply.Status == 200)
        {
            if (parseProblem is not null)
                return new PluginOutcome(false, null, "", $"HTTP 200 with {parseProblem}");
            if (err.Length > 0 || error.Length > 0)
                return new PluginOutcome(false, body, err.Length > 0 ? err : error,
                    err.Length > 0 ? null : "failure reported as HTTP 200 with \"Error\"; decisions.md #8 wants a non-200 status with \"Err\"");
            return new PluginOutcome(true, body, "", null);
        }

        if (parseProblem is not null)
            return new PluginOutcome(false, null, Excerpt(reply.BodyText), $"HTTP {reply.Status} with {parseProblem}; the engine shows only \"Err\"");
        if (err.Length == 0)
            return new PluginOutcome(false, body, error, $"HTTP {reply.Status} without an \"Err\" text");
        return new PluginOutcome(false, body, err, null);
    }

    private static string Excerpt(string text) => text.Length <= 120 ? text : text[..120] + "...";
}
