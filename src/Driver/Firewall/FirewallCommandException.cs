namespace Skein.Driver.Firewall;

/// <summary>
/// iptables refused or failed. Carries the command line, its exit code and what it printed on stderr; for a
/// restore batch, the failing input line is quoted in the message too.
/// </summary>
public sealed class FirewallCommandException(string command, int exitCode, string standardError, string? failedInputLine = null)
    : Exception(Describe(command, exitCode, standardError, failedInputLine))
{
    public string Command { get; } = command;
    public int ExitCode { get; } = exitCode;
    public string StandardError { get; } = standardError;
    public string? FailedInputLine { get; } = failedInputLine;

    private static string Describe(string command, int exitCode, string standardError, string? failedInputLine)
    {
        var text = $"firewall command `{command}` failed (exit {exitCode})";
        var stderr = standardError.Trim();
        if (stderr.Length > 0) text += $": {stderr}";
        if (failedInputLine is not null) text += $" [input: {failedInputLine}]";
        return text;
    }
}
