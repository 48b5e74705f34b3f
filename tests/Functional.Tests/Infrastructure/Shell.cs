using System.Diagnostics;
using System.Text;

namespace Skein.Functional.Tests.Infrastructure;

/// <summary>What a finished command printed and returned.</summary>
public sealed record CommandResult(string Command, int ExitCode, string Stdout, string Stderr)
{
    public bool Ok => ExitCode == 0;

    public string Output => Stdout + Stderr;

    /// <summary>Throws with the full command and its output when it did not succeed.</summary>
    public CommandResult EnsureOk()
    {
        if (!Ok)
            throw new CommandFailedException(this);
        return this;
    }

    public override string ToString() => $"`{Command}` exited {ExitCode}\n--- stdout\n{Stdout}\n--- stderr\n{Stderr}";
}

public sealed class CommandFailedException(CommandResult result) : Exception(result.ToString())
{
    public CommandResult Result { get; } = result;
}

/// <summary>Runs programs with explicit argument lists (no shell quoting) and a hard time limit.</summary>
public static class Shell
{
    public static async Task<CommandResult> RunAsync(string file, IEnumerable<string> args, TimeSpan? timeout = null, IDictionary<string, string>? env = null)
    {
        var info = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in args)
            info.ArgumentList.Add(a);
        if (env is not null)
            foreach (var (k, v) in env)
                info.Environment[k] = v;
        var command = file + " " + string.Join(' ', info.ArgumentList.Select(a => a.Contains(' ') ? $"'{a}'" : a));
        using var process = Process.Start(info) ?? throw new InvalidOperationException($"cannot start {file}");
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cancel = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(120));
        try
        {
            await process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            return new CommandResult(command, -1, await stdout, await stderr + $"\n(killed after {(timeout ?? TimeSpan.FromSeconds(120)).TotalSeconds:0} s)");
        }
        return new CommandResult(command, process.ExitCode, await stdout, await stderr);
    }

    public static Task<CommandResult> RunAsync(string file, params string[] args) => RunAsync(file, args, null);

    /// <summary>Polls <paramref name="probe"/> until it returns true or the time is up.</summary>
    public static async Task<bool> EventuallyAsync(Func<Task<bool>> probe, TimeSpan within, TimeSpan? every = null)
    {
        var end = DateTime.UtcNow + within;
        while (true)
        {
            if (await probe())
                return true;
            if (DateTime.UtcNow >= end)
                return false;
            await Task.Delay(every ?? TimeSpan.FromMilliseconds(300));
        }
    }
}

/// <summary>Appends a line-oriented log for a whole fixture, so a failing test can show what happened.</summary>
public sealed class FixtureLog(string path)
{
    private readonly object gate = new();

    public string Path { get; } = path;

    public void Write(string line)
    {
        lock (gate)
            File.AppendAllText(Path, $"{DateTime.UtcNow:HH:mm:ss.fff} {line}\n", Encoding.UTF8);
    }
}
