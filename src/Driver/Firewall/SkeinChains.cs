namespace Skein.Driver.Firewall;

/// <summary>
/// The names of skein's chains. "Static" chains hold a fixed rule list and are rewritten whole whenever they differ;
/// "owned" chains hold per-network and per-endpoint rules whose order does not matter (see FirewallRuleBuilder).
/// </summary>
internal sealed class SkeinChains(string prefix)
{
    /// <summary>filter, static: FORWARD jumps here (right after DOCKER-USER); it runs isolation, then the accepts.</summary>
    public string Forward { get; } = prefix + "-FORWARD";

    /// <summary>filter, owned: per network, sends traffic crossing its bridge's edge to the two checks below.</summary>
    public string Isolation { get; } = prefix + "-ISOLATION";

    /// <summary>filter, static: drops traffic that leaves a skein bridge for another skein or Docker bridge.</summary>
    public string IsolationOut { get; } = prefix + "-ISOLATION-OUT";

    /// <summary>filter, static: drops traffic that enters a skein bridge from another skein or Docker bridge.</summary>
    public string IsolationIn { get; } = prefix + "-ISOLATION-IN";

    /// <summary>
    /// filter, owned: per network, the verdict on its bridged frames (container to container on one bridge):
    /// SKEIN-FORWARD sends them here first, past the isolation and accept walks.
    /// </summary>
    public string Bridged { get; } = prefix + "-BRIDGED";

    /// <summary>filter, owned: intra-bridge, egress, reply and published-port accepts.</summary>
    public string Accept { get; } = prefix + "-ACCEPT";

    /// <summary>nat, owned: published ports, reached from PREROUTING and OUTPUT for local destinations.</summary>
    public string Dnat { get; } = prefix + "-DNAT";

    /// <summary>nat, owned: masquerade of each network's egress and of hairpin connections.</summary>
    public string Postrouting { get; } = prefix + "-POSTROUTING";

    /// <summary>filter, static per peer list: INPUT sends VXLAN datagrams here; listed VTEPs return, the rest drop.</summary>
    public string Vxlan { get; } = prefix + "-VXLAN";

    /// <summary>raw, static: raw PREROUTING jumps here; drops packets from skein bridges to the host's loopback.</summary>
    public string LoopbackGuard { get; } = prefix + "-LOCALNET";

    public IReadOnlyList<string> OwnedFilterChains => [Isolation, Accept, Bridged];
    public IReadOnlyList<string> StaticFilterChains => [Forward, IsolationOut, IsolationIn];
    public IReadOnlyList<string> OwnedNatChains => [Dnat, Postrouting];

    public bool IsSkeinChain(string chain) =>
        chain == Forward || chain == Isolation || chain == Bridged || chain == IsolationOut || chain == IsolationIn
        || chain == Accept || chain == Dnat || chain == Postrouting || chain == Vxlan || chain == LoopbackGuard;
}
