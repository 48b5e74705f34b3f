namespace Skein.Driver.Replay;

/// <summary>
/// <c>skein replay TRACE.jsonl... [--socket PATH] [--no-reuse-check] [--timeout SECONDS]</c>: replays
/// recorded engine traffic against a running plugin and checks protocol invariants (see
/// <see cref="ReplayModel"/>). Exit code 0: every check held; 1: a violation; 2: bad usage or
/// unreadable trace.
/// </summary>
public static class ReplayCommand
{
    public const string DefaultSocket = "/run/docker/plugins/skein.sock";

    public const string Usage =
        "usage: skein replay TRACE.jsonl [TRACE.jsonl...] [--socket PATH] [--no-reuse-check] [--timeout SECONDS]\n" +
        "  --socket PATH      plugin socket (default: $SKEIN_SOCKET, else " + DefaultSocket + ")\n" +
        "  --no-reuse-check   skip re-requesting released pools and addresses after each trace\n" +
        "  --timeout SECONDS  time allowed per call (default 30)";

    public static Task<int> RunAsync(string[] args) => RunAsync(args, Console.Out, Console.Error);

    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, CancellationToken cancel = default)
    {
        var traces = new List<string>();
        var socket = Environment.GetEnvironmentVariable("SKEIN_SOCKET") is { Length: > 0 } fromEnv ? fromEnv : DefaultSocket;
        var reuseCheck = true;
        var timeout = TimeSpan.FromSeconds(30);
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--socket" when i + 1 < args.Length:
                    socket = args[++i];
                    break;
                case "--no-reuse-check":
                    reuseCheck = false;
                    break;
                case "--timeout" when i + 1 < args.Length && double.TryParse(args[i + 1], System.Globalization.CultureInfo.InvariantCulture, out var seconds) && seconds > 0:
                    timeout = TimeSpan.FromSeconds(seconds);
                    i++;
                    break;
                case "-h" or "--help":
                    output.WriteLine(Usage);
                    return 0;
                case var flag when flag.StartsWith("--", StringComparison.Ordinal):
                    error.WriteLine($"replay: unknown or incomplete option \"{flag}\"");
                    error.WriteLine(Usage);
                    return 2;
                default:
                    traces.Add(args[i]);
                    break;
            }
        }
        if (traces.Count == 0)
        {
            error.WriteLine("replay: no trace file given");
            error.WriteLine(Usage);
            return 2;
        }

        var loaded = new List<(string Name, IReadOnlyList<TraceCall> Calls)>();
        foreach (var path in traces)
        {
            try
            {
                loaded.Add((Path.GetFileName(path), TraceReader.ReadFile(path)));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or TraceFormatException)
            {
                error.WriteLine($"replay: cannot read trace {path}: {e.Message}");
                return 2;
            }
        }

        await using var client = new PluginSocketClient(socket, timeout);
        var total = new ReplaySummary(0, 0, 0);
        foreach (var (name, calls) in loaded)
            total += await new ReplayRunner(client, output).RunAsync(name, calls, reuseCheck, cancel);
        output.WriteLine($"replay: {total}");
        return total.Failed == 0 ? 0 : 1;
    }
}
