using System.Diagnostics;
using Skein.Driver.Replay;

namespace Skein.Functional.Tests.Infrastructure;

/// <summary>
/// One skein instance inside a test network namespace (entered with nsenter, so skein and the
/// iptables it runs program that namespace only), with its own socket, state dir and log. Start,
/// stop, kill -9 and restart it like an operator would.
/// </summary>
public sealed class SkeinProcess(string netns, string socketPath, string stateDir, string logPath) : IAsyncDisposable
{
    private Process? process;

    public string Netns { get; } = netns;
    public string SocketPath { get; } = socketPath;
    public string StateDir { get; } = stateDir;
    public string LogPath { get; } = logPath;
    public int? Pid => process is { HasExited: false } p ? p.Id : null;

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
        var (file, prefix) = Resolve() ?? throw new InvalidOperationException("no skein binary: set SKEIN_BINARY or build src/Driver");
        Directory.CreateDirectory(StateDir);
        File.AppendAllText(LogPath, $"--- {DateTime.UtcNow:O} starting skein\n");
        var info = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        // exec twice: the pid we hold is skein's own, so kill -9 hits skein and nothing else.
        foreach (var a in new[] { "-c", "exec \"$@\" >>\"$SKEIN_TEST_LOG\" 2>&1 </dev/null", "sh", "/usr/bin/nsenter", $"--net=/run/netns/{Netns}", "--", file })
            info.ArgumentList.Add(a);
        foreach (var a in prefix.Concat(["serve", "--socket", SocketPath, "--state-dir", StateDir]).Concat(extraArgs))
            info.ArgumentList.Add(a);
        info.Environment["SKEIN_TEST_LOG"] = LogPath;
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
        File.AppendAllText(LogPath, $"--- {DateTime.UtcNow:O} skein stopped ({(hard ? "SIGKILL" : "TERM")}), exit {process.ExitCode}\n");
        process.Dispose();
        process = null;
    }

    public async Task RestartAsync(bool hard = false)
    {
        await StopAsync(hard);
        await StartAsync();
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
