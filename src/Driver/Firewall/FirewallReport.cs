namespace Skein.Driver.Firewall;

/// <summary>Which kernel interface the <c>iptables</c> command drives.</summary>
public enum FirewallBackend
{
    Unknown,
    /// <summary>iptables-nft: rules live in nf_tables (Debian bookworm's default, and dockerd's there).</summary>
    Nftables,
    /// <summary>iptables-legacy: the old x_tables interface.</summary>
    Legacy,
}

/// <summary>
/// The firewall's state as <c>skein doctor</c> shows it. Kernel switches are null when they cannot be read; they
/// are reported, not judged (the start-up checks judge them). <see cref="Problems"/> says, in words, each firewall
/// fault that keeps skein's networks from working as on Docker's bridge.
/// </summary>
public sealed record FirewallReport(
    FirewallBackend Backend,
    string IptablesVersion,
    string? ForwardPolicy,
    bool DockerUserPresent,
    bool ForwardJumpInPlace,
    bool NatJumpsInPlace,
    bool? Ipv6ForwardJumpInPlace,
    bool? IpForward,
    bool? BridgeNfCallIptables,
    bool? BridgeNfCallIp6tables,
    IReadOnlyList<string> Problems)
{
    /// <summary>
    /// skein uses nf_tables but this namespace also holds iptables-legacy tables (iptables-nft says so): a sign that
    /// dockerd, or something else, programs the other backend, where skein's accepts do not count (decisions #16).
    /// </summary>
    public bool LegacyTablesAlsoPresent { get; init; }

    public bool Healthy => Problems.Count == 0;
}
