using System.Diagnostics;

namespace Skein.Driver.Tests.TestSupport;

/// <summary>Runs external commands for tests (never used by src/).</summary>
public static class NetNsCommand
{
    public sealed record Result(int ExitCode, string StandardOutput, string StandardError);

    public static bool Exists(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin")
            .Split(':')
            .Concat(["/usr/sbin", "/sbin"])
            .Any(dir => File.Exists(System.IO.Path.Combine(dir, name)));

    public static string Run(string file, params string[] args)
    {
        var result = TryRun(file, args);
        if (result.ExitCode != 0)
            throw new InvalidOperationException($"`{file} {string.Join(' ', args)}` exited {result.ExitCode}: {result.StandardError.Trim()}");
        return result.StandardOutput;
    }

    public static Result TryRun(string file, params string[] args)
    {
        var start = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in args) start.ArgumentList.Add(arg);
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"cannot start {file}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(60_000))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"`{file} {string.Join(' ', args)}` did not finish within 60 s");
        }
        return new Result(process.ExitCode, stdout.Result, stderr.Result);
    }
}
