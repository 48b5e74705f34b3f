using System.Diagnostics;
using Skein.Driver.Replay;

namespace Skein.Functional.Tests.Infrastructure;

/// <summary>
/// The life of one skein process for the test harnesses (<see cref="SkeinProcess"/>, <see cref="MultiHostSkein"/>):
/// started through nsenter with "exec" twice (sh, then nsenter, which does not fork for the namespaces it enters) so
/// the pid held is skein's own and kill -9 hits skein and nothing else; ready when a call that needs the whole
/// start-up answers; stopped with TERM and a grace period, or kill -9; its output appended to one log.
/// </summary>
internal sealed class SkeinLaunch(string socketPath, string logPath)
{
    private Process? process;

    public int? Pid => process is { HasExited: false } p ? p.Id : null;

    /// <param name="enter">nsenter's arguments that choose the namespaces (before "--").</param>
    /// <param name="serveArgs">Everything after the binary (and its prefix arguments).</param>
    public async Task<TimeSpan> StartAsync(IEnumerable<string> enter, IEnumerable<string> serveArgs, IReadOnlyDictionary<string, string>? environment,
        string banner, TimeSpan? within)
    {
        if (Pid is not null)
            throw new InvalidOperationException("skein is already running");
        var (file, prefix) = SkeinProcess.Resolve() ?? throw new InvalidOperationException("no skein binary: set SKEIN_BINARY or build src/Driver");
        File.AppendAllText(logPath, $"--- {DateTime.UtcNow:O} {banner}\n");
        var info = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        foreach (var a in new[] { "-c", "exec \"$@\" >>\"$SKEIN_TEST_LOG\" 2>&1 </dev/null", "sh", "/usr/bin/nsenter" }.Concat(enter).Append("--").Append(file))
            info.ArgumentList.Add(a);
        foreach (var a in prefix.Concat(serveArgs))
            info.ArgumentList.Add(a);
        info.Environment["SKEIN_TEST_LOG"] = logPath;
        foreach (var (k, v) in environment ?? new Dictionary<string, string>())
            info.Environment[k] = v;
        var clock = Stopwatch.StartNew();
        process = Process.Start(info) ?? throw new InvalidOperationException("cannot start skein");
        var deadline = within ?? TimeSpan.FromSeconds(30);
        while (true)
        {
            if (process.HasExited)
                throw new InvalidOperationException($"skein exited with {process.ExitCode} during start; log:\n{Tail()}");
            if (File.Exists(socketPath) && await AnswersAsync())
                return clock.Elapsed;
            if (clock.Elapsed > deadline)
                throw new TimeoutException($"skein did not answer on {socketPath} within {deadline.TotalSeconds:0} s; log:\n{Tail()}");
            await Task.Delay(25);
        }
    }

    /// <summary>skein listens before its start-up is done and holds calls until then: a call that needs all of it.</summary>
    private async Task<bool> AnswersAsync()
    {
        try
        {
            await using var client = new PluginSocketClient(socketPath, TimeSpan.FromSeconds(2));
            return (await client.PostAsync("/IpamDriver.GetDefaultAddressSpaces", null)).Status == 200;
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or TimeoutException)
        {
            return false;
        }
    }

    /// <summary>kill -9 (<paramref name="hard"/>) or TERM with a grace period, then reap.</summary>
    public async Task StopAsync(bool hard)
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
        // The lab's directory may already be gone when a fixture disposes its hosts last.
        if (Directory.Exists(Path.GetDirectoryName(logPath)))
            File.AppendAllText(logPath, $"--- {DateTime.UtcNow:O} skein stopped ({(hard ? "SIGKILL" : "TERM")}), exit {process.ExitCode}\n");
        process.Dispose();
        process = null;
    }

    public string Tail(int lines = 40)
    {
        if (!File.Exists(logPath))
            return "(no log)";
        var all = File.ReadAllLines(logPath);
        return string.Join('\n', all.Skip(Math.Max(0, all.Length - lines)));
    }
}
