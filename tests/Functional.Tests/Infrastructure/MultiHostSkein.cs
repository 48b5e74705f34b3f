namespace Skein.Functional.Tests.Infrastructure;

/// <summary>
/// The skein of one lab host, run inside that host's dockerd's network, mount and uts namespaces
/// (nsenter -t DOCKERD -n -m -u) so it programs that host's links and can open the sandbox keys
/// that exist only in the dockerd's mount namespace. Multi-host settings go in through the agreed
/// environment variables (SKEIN_ADVERTISE_ADDR, SKEIN_NODE_ID, SKEIN_RECLAIM_AFTER), the way a
/// managed plugin is configured. Start, TERM, kill -9 and start again like an operator would.
/// </summary>
public sealed class MultiHostSkein(Func<Task<int>> dockerdPid, string socketPath, string stateDir, string logPath,
    string storeUrl, IReadOnlyDictionary<string, string> environment) : IAsyncDisposable
{
    private readonly SkeinLaunch launch = new(socketPath, logPath);

    public string SocketPath { get; } = socketPath;
    public string StateDir { get; } = stateDir;
    public string LogPath { get; } = logPath;
    public string StoreUrl { get; } = storeUrl;
    public int? Pid => launch.Pid;

    public async Task<TimeSpan> StartAsync(TimeSpan? within = null)
    {
        if (Pid is not null)
            throw new InvalidOperationException("skein is already running");
        var pid = await dockerdPid();
        Directory.CreateDirectory(StateDir);
        File.Delete(SocketPath);
        return await launch.StartAsync(["-t", pid.ToString(), "-n", "-m", "-u"],
            ["serve", "--socket", SocketPath, "--state-dir", StateDir, "--store", StoreUrl], environment,
            $"starting skein (store {StoreUrl})", within);
    }

    /// <summary>kill -9 (<paramref name="hard"/>) or TERM with a grace period, then reap.</summary>
    public Task StopAsync(bool hard = false) => launch.StopAsync(hard);

    public string Tail(int lines = 40) => launch.Tail(lines);

    public async ValueTask DisposeAsync() => await StopAsync();
}
