using Skein.Driver.Firewall;

namespace Skein.Driver.Tests.Firewall;

/// <summary>Passes commands on to a real or scripted runner and remembers each one, with its standard input.</summary>
internal sealed class RecordingRunner(ICommandRunner inner) : ICommandRunner
{
    public List<(IReadOnlyList<string> Argv, string? Input)> Calls { get; } = [];

    public IEnumerable<string> RestoreInputs => Calls.Where(c => c.Input is not null).Select(c => c.Input!);

    public CommandResult Run(IReadOnlyList<string> argv, string? standardInput, TimeSpan timeout)
    {
        Calls.Add((argv, standardInput));
        return inner.Run(argv, standardInput, timeout);
    }
}
