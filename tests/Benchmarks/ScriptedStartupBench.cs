using System.Diagnostics;
using System.Globalization;
using Skein.Driver.Replay;

namespace Skein.Benchmarks;

/// <summary>
/// Time from exec to a socket that answers /Plugin.Activate, then to one that answers a call needing the
/// whole start-up (store, firewall, reconciliation: GetDefaultAddressSpaces), and resident memory once idle, of a skein
/// binary (meant for the NativeAOT publish output), started fresh several times in a scratch network
/// namespace with an empty state directory each time.
///   scripted-startup --binary PATH --netns NAME --dir DIR [--runs 10] [--idle-seconds 3]
/// </summary>
internal static class ScriptedStartupBench
{
    public static async Task<int> RunAsync(string[] args)
    {
        var binary = ScriptedEntry.Option(args, "--binary", "");
        var netns = ScriptedEntry.Option(args, "--netns", "");
        var dir = ScriptedEntry.Option(args, "--dir", "");
        var runs = int.Parse(ScriptedEntry.Option(args, "--runs", "10"), CultureInfo.InvariantCulture);
        var idle = double.Parse(ScriptedEntry.Option(args, "--idle-seconds", "3"), CultureInfo.InvariantCulture);
        if (binary.Length == 0 || netns.Length == 0 || dir.Length == 0)
        {
            Console.Error.WriteLine("usage: scripted-startup --binary PATH --netns NAME --dir DIR [--runs 10] [--idle-seconds 3]");
            return 2;
        }

        var listeningMs = new List<double>();
        var readyMs = new List<double>();
        var rssKb = new List<double>();
        for (var run = 0; run < runs; run++)
        {
            var socket = Path.Combine(dir, "startup.sock");
            var state = Path.Combine(dir, $"startup-state-{run}");
            var info = new ProcessStartInfo("/usr/bin/nsenter") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
            foreach (var a in new[] { $"--net=/run/netns/{netns}", "--", binary, "serve", "--socket", socket, "--state-dir", state })
                info.ArgumentList.Add(a);
            var clock = Stopwatch.StartNew();
            using var process = Process.Start(info)!;
            _ = process.StandardError.ReadToEndAsync();
            _ = process.StandardOutput.ReadToEndAsync();
            foreach (var (path, times) in new[] { ("/Plugin.Activate", listeningMs), ("/IpamDriver.GetDefaultAddressSpaces", readyMs) })
            {
                while (true)
                {
                    if (process.HasExited)
                        throw new InvalidOperationException($"{binary} exited with {process.ExitCode} before its socket answered {path}");
                    if (File.Exists(socket) && await AnswersAsync(socket, path))
                        break;
                    if (clock.Elapsed > TimeSpan.FromSeconds(30))
                        throw new TimeoutException($"{binary} did not answer {path} within 30 s");
                    await Task.Delay(1);
                }
                times.Add(clock.Elapsed.TotalMilliseconds);
            }
            await Task.Delay(TimeSpan.FromSeconds(idle));
            rssKb.Add(ReadRssKb(process.Id));
            process.Kill();
            await process.WaitForExitAsync();
            if (Directory.Exists(state))
                Directory.Delete(state, recursive: true);
        }
        listeningMs.Sort();
        readyMs.Sort();
        rssKb.Sort();
        Console.WriteLine($"skein start-up ({runs} cold starts of {binary})");
        Console.WriteLine($"  start to socket answering:   median {ScriptedEntry.Percentile(listeningMs, 50):0.0} ms (min {listeningMs[0]:0.0}, max {listeningMs[^1]:0.0})");
        Console.WriteLine($"  start to fully ready:        median {ScriptedEntry.Percentile(readyMs, 50):0.0} ms (min {readyMs[0]:0.0}, max {readyMs[^1]:0.0})");
        Console.WriteLine($"  idle RSS after {idle:0} s:          median {ScriptedEntry.Percentile(rssKb, 50) / 1024:0.0} MiB (min {rssKb[0] / 1024:0.0}, max {rssKb[^1] / 1024:0.0})");
        Console.WriteLine($"RESULT startup_socket_ms={ScriptedEntry.Percentile(listeningMs, 50):0.0} startup_ready_ms={ScriptedEntry.Percentile(readyMs, 50):0.0} idle_rss_mib={ScriptedEntry.Percentile(rssKb, 50) / 1024:0.0}");
        return 0;
    }

    private static async Task<bool> AnswersAsync(string socket, string path)
    {
        try
        {
            await using var client = new PluginSocketClient(socket, TimeSpan.FromSeconds(5));
            return (await client.PostAsync(path, null)).Status == 200;
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or TimeoutException)
        {
            return false;
        }
    }

    private static double ReadRssKb(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
        return double.NaN;
    }
}
