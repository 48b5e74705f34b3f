using System.Diagnostics;

namespace Skein.Driver.Firewall;

/// <summary>What one external command did.</summary>
internal readonly record struct CommandResult(int ExitCode, string StandardOutput, string StandardError);

/// <summary>Runs an external command; the seam that lets tests see exactly what the firewall would run.</summary>
internal interface ICommandRunner
{
    CommandResult Run(IReadOnlyList<string> argv, string? standardInput, TimeSpan timeout);
}

/// <summary>Runs commands as child processes, without a shell (arguments are never re-parsed).</summary>
internal sealed class ProcessCommandRunner : ICommandRunner
{
    public static readonly ProcessCommandRunner Instance = new();

    public CommandResult Run(IReadOnlyList<string> argv, string? standardInput, TimeSpan timeout)
    {
        var start = new ProcessStartInfo(argv[0])
        {
            RedirectStandardInput = standardInput is not null,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        for (var i = 1; i < argv.Count; i++) start.ArgumentList.Add(argv[i]);
        // iptables prints localized messages otherwise; skein matches none of them, but logs read better in C.
        start.Environment["LC_ALL"] = "C";

        using var process = new Process { StartInfo = start };
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new FirewallCommandException(string.Join(' ', argv), -1, $"cannot start: {e.Message}");
        }
        // Read both streams concurrently: a child blocked on a full stderr pipe would never exit.
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (standardInput is not null)
        {
            try
            {
                process.StandardInput.Write(standardInput);
                process.StandardInput.Close();
            }
            catch (IOException)
            {
                // The child exited before reading all its input; its exit code and stderr say why.
            }
        }
        if (!process.WaitForExit(timeout))
        {
            try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            throw new FirewallCommandException(string.Join(' ', argv), -1, $"timed out after {timeout.TotalSeconds:0} s");
        }
        process.WaitForExit();
        return new CommandResult(process.ExitCode, stdout.GetAwaiter().GetResult(), stderr.GetAwaiter().GetResult());
    }
}
