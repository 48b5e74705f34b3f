using System.Diagnostics;
using Skein.Driver.Replay;

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
    private Process? process;

    public string SocketPath { get; } = socketPath;
    public string StateDir { get; } = stateDir;
    public string LogPath { get; } = logPath;
    public string StoreUrl { get; } = storeUrl;
    public int? Pid => process is { HasExited: false } p ? p.Id : null;

    public async Task<TimeSpan> StartAsync(TimeSpan? within = null)
    {
        if (Pid is not null)
            throw new InvalidOperationException("skein is already running");
        var (file, prefix) = SkeinProcess.Resolve() ?? throw new InvalidOperationException("no skein binary: set SKEIN_BINARY or build src/Driver");
        var pid = await dockerdPid();
        Directory.CreateDirectory(StateDir);
        File.Delete(SocketPath);
        File.AppendAllText(LogPath, $"--- {DateTime.UtcNow:O} starting skein (store {StoreUrl})\n");
        var info = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        // exec twice (sh, then nsenter, which does not fork for these namespaces): the pid we hold is skein's.
        foreach (var a in new[] { "-c", "exec \"$@\" >>\"$SKEIN_TEST_LOG\" 2>&1 </dev/null", "sh", "/usr/bin/nsenter", "-t", pid.ToString(), "-n", "-m", "-u", "--", file })
            info.ArgumentList.Add(a);
        foreach (var a in prefix.Concat(["serve", "--socket", SocketPath, "--state-dir", StateDir, "--store", StoreUrl]))
            info.ArgumentList.Add(a);
        info.Environment["SKEIN_TEST_LOG"] = LogPath;
        foreach (var (k, v) in environment)
            info.Environment[k] = v;
        var clock = Stopwatch.StartNew();
        process = Process.Start(info) ?? throw new InvalidOperationException("cannot start skein");
        var deadline = within ?? TimeSpan.FromSeconds(30);
        while (true)
        {
            if (process.HasExited)
                throw new InvalidOperationException($"skein exited with {process.ExitCode} during start; log:\n{Tail()}");
            if (File.Exists(SocketPath) && await AnswersAsync())
                return clock.Elapsed;
            if (clock.Elapsed > deadline)
                throw new TimeoutException($"skein did not answer on {SocketPath} within {deadline.TotalSeconds:0} s; log:\n{Tail()}");
            await Task.Delay(25);
        }
    }

    private async Task<bool> AnswersAsync()
    {
        try
        {
            await using var client = new PluginSocketClient(SocketPath, TimeSpan.FromSeconds(2));
            return (await client.PostAsync("/IpamDriver.GetDefaultAddressSpaces", null)).Status == 200;
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or TimeoutException)
        {
            return false;
        }
    }

    /// <summary>kill -9 (<paramref name="hard"/>) or TERM with a grace period, then reap.</summary>
    public async Task StopAsync(bool hard = false)
    {
        if (process is null)
            return;
        if (!process.HasExited)
        {
            if (hard)
            {
                process.Kill();
            }
            else
            {
                await Shell.RunAsync("/bin/kill", "-TERM", process.Id.ToString());
                using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                try
                {
                    await process.WaitForExitAsync(grace.Token);
                }
                catch (OperationCanceledException)
                {
                    process.Kill();
                }
            }
        }
        await process.WaitForExitAsync();
        if (Directory.Exists(Path.GetDirectoryName(LogPath)))
            File.AppendAllText(LogPath, $"--- {DateTime.UtcNow:O} skein stopped ({(hard ? "SIGKILL" : "TERM")}), exit {process.ExitCode}\n");
        process.Dispose();
        process = null;
    }

    public string Tail(int lines = 40)
    {
        if (!File.Exists(LogPath))
            return "(no log)";
        var all = File.ReadAllLines(LogPath);
        return string.Join('\n', all.Skip(Math.Max(0, all.Length - lines)));
    }

    public async ValueTask DisposeAsync() => await StopAsync();
}
