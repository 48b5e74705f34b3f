using Skein.Driver.Firewall;

namespace Skein.Driver.Tests.Firewall;

/// <summary>
/// Stands in for iptables without a kernel: answers <c>-S</c> from listing texts the test gives, records every
/// restore batch, and can refuse batches the way iptables-restore does.
/// </summary>
internal sealed class ScriptedIptables : ICommandRunner
{
    public const string DockerFilter = """
        -P INPUT ACCEPT
        -P FORWARD DROP
        -P OUTPUT ACCEPT
        -N DOCKER-USER
        -A FORWARD -j DOCKER-USER
        -A DOCKER-USER -j RETURN
        """;

    public const string EmptyNat = """
        -P PREROUTING ACCEPT
        -P INPUT ACCEPT
        -P OUTPUT ACCEPT
        -P POSTROUTING ACCEPT
        """;

    private readonly Dictionary<(string Command, string Table), string> _listings = new();

    public ScriptedIptables(string filter = DockerFilter, string nat = EmptyNat, string? filter6 = null, string? raw = null)
    {
        if (raw is not null) _listings[("iptables", "raw")] = raw;
        _listings[("iptables", "filter")] = filter;
        _listings[("iptables", "nat")] = nat;
        _listings[("ip6tables", "filter")] = filter6 ?? filter;
    }

    public List<IReadOnlyList<string>> Commands { get; } = [];
    public List<(string Command, string Input)> Restores { get; } = [];

    /// <summary>Refuse every batch that uses the physdev match, as a kernel without xt_physdev does.</summary>
    public bool RefusePhysdev { get; set; }

    /// <summary>Refuse this many restore batches, as iptables-restore does a rule that does not match.</summary>
    public int RefuseRestores { get; set; }

    public string RestoreInput(string command) => Restores.Single(r => r.Command == command).Input;

    public CommandResult Run(IReadOnlyList<string> argv, string? standardInput, TimeSpan timeout)
    {
        Commands.Add(argv);
        var command = argv[0];
        if (argv.Count == 2 && argv[1] == "--version") return new(0, "iptables v1.8.9 (nf_tables)\n", "");
        if (argv is [_, "-w", "-t", var table, "-S"])
            return _listings.TryGetValue((command, table), out var text) ? new(0, text + "\n", "") : new(1, "", $"table '{table}' does not exist\n");
        if (argv is [_, "--noflush", "-w"] && standardInput is not null)
        {
            Restores.Add((command, standardInput));
            if (RefusePhysdev && standardInput.Contains("physdev", StringComparison.Ordinal))
            {
                var line = Array.FindIndex(standardInput.Split('\n'), l => l.Contains("physdev", StringComparison.Ordinal)) + 1;
                return new(1, "", $"Warning: Extension physdev revision 0 not supported, missing kernel module?\n{command}: line {line} failed\n");
            }
            if (RefuseRestores > 0)
            {
                RefuseRestores--;
                return new(1, "", $"{command}: line 2 failed: Bad rule (does a matching rule exist in that chain?).\n");
            }
            return new(0, "", "");
        }
        return new(2, "", $"scripted iptables does not know `{string.Join(' ', argv)}`\n");
    }
}
