using System.Text.Json.Nodes;

namespace Skein.Driver.Replay;

/// <summary>
/// The calls the engine makes before any trace line (the traces start after activation): each is
/// sent with an empty body, as the engine does, and its answer checked.
/// </summary>
public static class HandshakeChecks
{
    public static readonly IReadOnlyList<string> Paths =
    [
        "/Plugin.Activate",
        "/NetworkDriver.GetCapabilities",
        "/IpamDriver.GetCapabilities",
        "/IpamDriver.GetDefaultAddressSpaces",
    ];

    /// <summary>Checks one handshake answer; fills in the plugin's address spaces when that is the call.</summary>
    public static StepResult Check(string path, PluginOutcome outcome, ReplayModel? model)
    {
        var call = new TraceCall(0, path, PluginSocketClient.EngineHeaders, null, 200, null) { Origin = "handshake" };
        var violations = new List<string>();
        var notes = new List<string>();
        var detail = "";
        if (outcome.FormProblem is not null)
            violations.Add(outcome.FormProblem);
        if (!outcome.Succeeded)
        {
            violations.Add($"failed: \"{outcome.ErrorText}\"");
            return new StepResult(call, StepVerdict.Failed, detail, violations, notes);
        }
        var body = outcome.Body!;
        switch (path)
        {
            case "/Plugin.Activate":
            {
                var implements = (body["Implements"] as JsonArray)?.Select(n => n is JsonValue v && v.TryGetValue(out string? s) ? s : "").ToList() ?? [];
                detail = $"Implements=[{string.Join(", ", implements)}]";
                foreach (var needed in new[] { "NetworkDriver", "IpamDriver" })
                    if (!implements.Contains(needed))
                        violations.Add($"Implements lacks {needed}");
                break;
            }
            case "/NetworkDriver.GetCapabilities":
            {
                var scope = RecordedWorld.Str(body, "Scope");
                var connectivity = RecordedWorld.Str(body, "ConnectivityScope");
                detail = $"Scope={scope} ConnectivityScope={connectivity}";
                if (scope is not ("local" or "global"))
                    violations.Add($"Scope is \"{scope}\", must be \"local\" or \"global\"");
                if (connectivity.Length > 0 && connectivity is not ("local" or "global"))
                    violations.Add($"ConnectivityScope is \"{connectivity}\", must be \"local\", \"global\" or absent");
                break;
            }
            case "/IpamDriver.GetCapabilities":
                detail = $"RequiresMACAddress={RecordedWorld.Bool(body, "RequiresMACAddress")} RequiresRequestReplay={RecordedWorld.Bool(body, "RequiresRequestReplay")}";
                break;
            case "/IpamDriver.GetDefaultAddressSpaces":
            {
                var local = RecordedWorld.Str(body, "LocalDefaultAddressSpace");
                var global = RecordedWorld.Str(body, "GlobalDefaultAddressSpace");
                detail = $"local={local} global={global}";
                if (local.Length == 0)
                    violations.Add("LocalDefaultAddressSpace is empty");
                if (global.Length == 0)
                    violations.Add("GlobalDefaultAddressSpace is empty");
                if (local.Length > 0 && local == global)
                    notes.Add("local and global address spaces are the same name");
                model?.UseAddressSpaces(local, global);
                break;
            }
        }
        return new StepResult(call, violations.Count == 0 ? StepVerdict.Passed : StepVerdict.Failed, detail, violations, notes);
    }
}
