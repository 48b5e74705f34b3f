namespace Skein.Functional.Tests.Infrastructure;

/// <summary>
/// One skein instance inside a test network namespace (entered with nsenter, so skein and the
/// iptables it runs program that namespace only), with its own socket, state dir and log. Start,
/// stop, kill -9 and restart it like an operator would.
/// </summary>
public sealed class SkeinProcess(string netns, string socketPath, string stateDir, string logPath) : IAsyncDisposable
{
    private readonly SkeinLaunch launch = new(socketPath, logPath);

    public string Netns { get; } = netns;
    public string SocketPath { get; } = socketPath;
    public string StateDir { get; } = stateDir;
    public string LogPath { get; } = logPath;
    public int? Pid => launch.Pid;

    /// <summary>The skein to test: $SKEIN_BINARY (CI: the NativeAOT publish output), else the build
    /// output next to this test assembly (the project references src/Driver).</summary>
    public static (string File, string[] PrefixArgs)? Resolve()
    {
        if (Environment.GetEnvironmentVariable("SKEIN_BINARY") is { Length: > 0 } fromEnv)
            return File.Exists(fromEnv) ? (fromEnv, []) : null;
        var apphost = Path.Combine(AppContext.BaseDirectory, "skein");
        if (File.Exists(apphost))
            return (apphost, []);
        var dll = Path.Combine(AppContext.BaseDirectory, "skein.dll");
        var dotnet = new[] { Environment.GetEnvironmentVariable("DOTNET_HOST_PATH"), "/usr/share/dotnet/dotnet", "/usr/bin/dotnet", "/usr/local/bin/dotnet" }
            .FirstOrDefault(p => !string.IsNullOrEmpty(p) && File.Exists(p));
        return File.Exists(dll) && dotnet is not null ? (dotnet, [dll]) : null;
    }

    public string Describe() => Resolve() is { } b ? string.Join(' ', [b.File, .. b.PrefixArgs]) : "(no skein binary)";

    /// <summary>Starts skein and waits until it is fully up; returns the time that took. skein listens
    /// before its start-up (store, firewall base chains, reconciliation) is done and holds calls until
    /// then, so readiness is a call that needs all of it, not /Plugin.Activate.</summary>
    public async Task<TimeSpan> StartAsync(TimeSpan? within = null, params string[] extraArgs)
    {
        if (Pid is not null)
            throw new InvalidOperationException("skein is already running");
        Directory.CreateDirectory(StateDir);
        return await launch.StartAsync([$"--net=/run/netns/{Netns}"],
            ["serve", "--socket", SocketPath, "--state-dir", StateDir, .. extraArgs], null, "starting skein", within);
    }

    /// <summary>kill -9 (<paramref name="hard"/>) or TERM with a grace period, then reap.</summary>
    public Task StopAsync(bool hard = false) => launch.StopAsync(hard);

    public async Task RestartAsync(bool hard = false)
    {
        await StopAsync(hard);
        await StartAsync();
    }

    public string Tail(int lines = 40) => launch.Tail(lines);

    public async ValueTask DisposeAsync() => await StopAsync();
}
