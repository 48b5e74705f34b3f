namespace Skein.Driver.Firewall;

/// <summary>How <see cref="IptablesFirewall"/> reaches iptables and names what it creates.</summary>
public sealed class IptablesOptions
{
    /// <summary>
    /// Prepended to every command, e.g. <c>["nsenter", "--net=/run/netns/X"]</c> to program another network
    /// namespace. Empty: the commands run in skein's own namespace.
    /// </summary>
    public IReadOnlyList<string> CommandPrefix { get; init; } = [];

    /// <summary>Prefix of every chain skein owns (SKEIN-FORWARD, SKEIN-DNAT, ...). Upper-case letters, digits, '-'.</summary>
    public string ChainPrefix { get; init; } = "SKEIN";

    /// <summary>Program the filter rules through ip6tables too (no IPv6 NAT, as Docker 20.10 without --ip6tables).</summary>
    public bool EnableIpv6 { get; init; } = true;

    /// <summary>Every skein bridge name starts with this; <c>prefix+</c> is how rules match all of them.</summary>
    public string BridgeNamePrefix { get; init; } = "skbr-";

    /// <summary>
    /// Interface patterns (iptables syntax, '+' as a trailing wildcard) of Docker's own bridges, isolated from
    /// skein's networks in both directions as Docker isolates its networks from each other.
    /// </summary>
    public IReadOnlyList<string> DockerBridgePatterns { get; init; } = ["docker0", "br-+"];

    /// <summary>
    /// Also publish ports on the host's loopback (<c>curl 127.0.0.1:8080</c> on the host), as Docker does with its
    /// userland proxy. Needs <c>route_localnet=1</c> on each skein bridge (set through netlink, decisions #13) so
    /// that a DNAT'd packet with source 127.0.0.1 may leave through it; skein masquerades such packets and, in the raw
    /// table, drops packets arriving on a skein bridge for 127.0.0.0/8, which route_localnet would otherwise let
    /// containers send to the host's loopback services.
    /// </summary>
    public bool PublishOnLoopback { get; init; }

    /// <summary>Receives one line per change made, and per problem noticed.</summary>
    public Action<string>? Log { get; init; }

    /// <summary>
    /// Reads a sysctl by its dotted name (e.g. <c>net.ipv4.ip_forward</c>), null when it does not exist.
    /// Null here: read <c>/proc/sys</c> of skein's own namespace. A caller using <see cref="CommandPrefix"/>
    /// to target another namespace supplies a reader for that namespace.
    /// </summary>
    public Func<string, string?>? ReadSysctl { get; init; }

    /// <summary>How long one iptables command may run (it may wait for the xtables lock) before it is killed.</summary>
    public TimeSpan CommandTimeout { get; init; } = TimeSpan.FromSeconds(30);

    public string IptablesCommand { get; init; } = "iptables";
    public string Ip6tablesCommand { get; init; } = "ip6tables";
    public string IptablesRestoreCommand { get; init; } = "iptables-restore";
    public string Ip6tablesRestoreCommand { get; init; } = "ip6tables-restore";
}
