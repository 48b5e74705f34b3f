using System.Net;
using System.Net.Sockets;

namespace Skein.Driver.Firewall;

/// <summary>
/// Turns networks and endpoints into rules, in the text form <c>iptables -S</c> prints. Pure: no commands run here.
///
/// Layout (mirrors Docker 20.10's bridge driver, in skein's own chains):
/// <code>
/// filter FORWARD         -j SKEIN-FORWARD                   (right after -j DOCKER-USER)
/// filter SKEIN-FORWARD   bridged frames of skein bridges -j SKEIN-BRIDGED; -j SKEIN-ISOLATION; -j SKEIN-ACCEPT
/// filter SKEIN-BRIDGED   per network: its bridged frames ACCEPT (or DROP without inter-container connectivity)
/// filter SKEIN-ISOLATION per network: leaving the bridge -> ISOLATION-OUT, entering it -> ISOLATION-IN
///                        (an internal network drops both outright)
/// filter SKEIN-ACCEPT    per network: intra-bridge, egress, replies; per endpoint: published container ports
/// nat    PREROUTING      -m addrtype --dst-type LOCAL -j SKEIN-DNAT
/// nat    OUTPUT          ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j SKEIN-DNAT
/// nat    POSTROUTING     -j SKEIN-POSTROUTING               (egress masquerade, hairpin masquerade)
/// raw    PREROUTING      -j SKEIN-LOCALNET                  (only with PublishOnLoopback; OUTPUT then DNATs 127/8 too)
/// filter INPUT           -p udp --dport 4789 -j SKEIN-VXLAN (only once VXLAN peers are applied)
/// </code>
/// Every owned rule either drops, jumps to a chain that only drops, or accepts traffic that no drop in an owned
/// chain could match; isolation runs before the accepts. So the order of rules inside an owned chain never
/// matters, and one network's rules can be replaced without touching any other's.
/// </summary>
internal sealed class FirewallRuleBuilder(SkeinChains chains, IptablesOptions options)
{
    private const int SctpProtocolNumber = 132;

    public SkeinChains Chains { get; } = chains;

    private string AllSkeinBridges => options.BridgeNamePrefix + "+";

    /// <summary>
    /// Whether SKEIN-FORWARD decides bridged frames itself (needs the kernel's physdev match;
    /// <see cref="IptablesFirewall"/> turns it off when the kernel refuses it).
    /// </summary>
    public bool BridgedShortcut { get; set; } = true;

    private string BridgedFrames => $"-i {AllSkeinBridges} -o {AllSkeinBridges} -m physdev --physdev-is-bridged";

    public static string NetworkOwner(string bridgeName) => "skein:" + bridgeName;
    public static string EndpointOwner(string endpointId) => "skein:ep:" + endpointId;

    /// <summary>The jump from FORWARD, exactly as listed.</summary>
    public string ForwardJumpLine => $"-A FORWARD -j {Chains.Forward}";

    /// <summary>Docker's jump that must stay ahead of skein's (decisions #16).</summary>
    public const string DockerUserJumpLine = "-A FORWARD -j DOCKER-USER";

    /// <summary>
    /// The nat jumps into skein's chains (IPv4 only), each appended to its built-in chain. The host's own
    /// connections to its loopback are DNAT'd only with <see cref="IptablesOptions.PublishOnLoopback"/>.
    /// </summary>
    public IReadOnlyList<FirewallRule> NatJumps =>
    [
        new(IptablesTable.Nat, "PREROUTING", $"-m addrtype --dst-type LOCAL -j {Chains.Dnat}"),
        new(IptablesTable.Nat, "OUTPUT", options.PublishOnLoopback
            ? $"-m addrtype --dst-type LOCAL -j {Chains.Dnat}"
            : $"! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j {Chains.Dnat}"),
        new(IptablesTable.Nat, "POSTROUTING", $"-j {Chains.Postrouting}"),
    ];

    /// <summary>The raw-table guard that goes with <see cref="IptablesOptions.PublishOnLoopback"/>.</summary>
    public FirewallRule LoopbackGuardJump => new(IptablesTable.Raw, "PREROUTING", $"-j {Chains.LoopbackGuard}");

    /// <summary>The fixed content of one static chain, in order.</summary>
    public IReadOnlyList<FirewallRule> StaticRules(string chain)
    {
        var rules = new List<FirewallRule>();
        if (chain == Chains.Forward)
        {
            // A bridged frame (br_netfilter passes it through FORWARD with one bridge as both -i and -o) can match no
            // isolation rule, which all need a packet crossing a bridge's edge, and no accept but its network's
            // intra-bridge one: SKEIN-BRIDGED holds just those, one per network. Without this every bridged frame
            // walked the isolation and accept rules of every network on the host (5 per network: with 40 other
            // networks, multi-host iperf3 fell to 0.67 of swarm's). A frame SKEIN-BRIDGED does not decide (a bridge
            // no network record owns) goes on as before. Routed traffic between two ports of one bridge (a DNAT
            // hairpin) is not bridged and takes the full path.
            if (BridgedShortcut) rules.Add(Filter(chain, $"{BridgedFrames} -j {Chains.Bridged}"));
            rules.Add(Filter(chain, $"-j {Chains.Isolation}"));
            rules.Add(Filter(chain, $"-j {Chains.Accept}"));
        }
        else if (chain == Chains.IsolationOut)
        {
            rules.Add(Filter(chain, $"-o {AllSkeinBridges} -j DROP"));
            foreach (var docker in options.DockerBridgePatterns) rules.Add(Filter(chain, $"-o {docker} -j DROP"));
        }
        else if (chain == Chains.LoopbackGuard)
        {
            rules.Add(new FirewallRule(IptablesTable.Raw, chain, $"-d 127.0.0.0/8 -i {AllSkeinBridges} -j DROP"));
        }
        else if (chain == Chains.IsolationIn)
        {
            rules.Add(Filter(chain, $"-i {AllSkeinBridges} -j DROP"));
            foreach (var docker in options.DockerBridgePatterns) rules.Add(Filter(chain, $"-i {docker} -j DROP"));
        }
        return rules;
    }

    public IEnumerable<FirewallRule> NetworkRules(NetworkFirewall network, IpFamily family)
    {
        var bridge = network.BridgeName;
        var comment = Comment(NetworkOwner(bridge));

        if (network.Internal)
        {
            // Nothing crosses the bridge's edge in either direction; the host itself (INPUT/OUTPUT) is not FORWARD.
            yield return Filter(Chains.Isolation, $"-i {bridge} ! -o {bridge} {comment} -j DROP");
            yield return Filter(Chains.Isolation, $"! -i {bridge} -o {bridge} {comment} -j DROP");
        }
        else
        {
            yield return Filter(Chains.Isolation, $"-i {bridge} ! -o {bridge} {comment} -j {Chains.IsolationOut}");
            yield return Filter(Chains.Isolation, $"! -i {bridge} -o {bridge} {comment} -j {Chains.IsolationIn}");
        }

        var intraBridge = network.InterContainerConnectivity ? "ACCEPT" : "DROP";
        yield return Filter(Chains.Accept, $"-i {bridge} -o {bridge} {comment} -j {intraBridge}");
        yield return Filter(Chains.Bridged, $"-i {bridge} -o {bridge} {comment} -j {intraBridge}");

        if (network.Internal) yield break;

        yield return Filter(Chains.Accept, $"-o {bridge} -m conntrack --ctstate RELATED,ESTABLISHED {comment} -j ACCEPT");
        yield return Filter(Chains.Accept, $"-i {bridge} ! -o {bridge} {comment} -j ACCEPT");

        if (family != IpFamily.V4) yield break;
        foreach (var subnet in network.Subnets.Where(s => s.BaseAddress.AddressFamily == AddressFamily.InterNetwork).Distinct())
            yield return Nat(Chains.Postrouting, $"-s {subnet} ! -o {bridge} {comment} -j MASQUERADE");
        // The host's connection to 127.0.0.1:PORT, DNAT'd to a container: the container cannot answer 127.0.0.1.
        if (options.PublishOnLoopback)
            yield return Nat(Chains.Postrouting, $"-s 127.0.0.0/8 -o {bridge} {comment} -j MASQUERADE");
    }

    public IEnumerable<FirewallRule> EndpointRules(EndpointPorts endpoint, IpFamily family)
    {
        var bridge = endpoint.BridgeName;
        var comment = Comment(EndpointOwner(endpoint.EndpointId));
        var seen = new HashSet<FirewallRule>();
        var container = family == IpFamily.V4 ? endpoint.ContainerIPv4 : endpoint.ContainerIPv6;
        if (container is null) yield break;
        var hostBits = family == IpFamily.V4 ? 32 : 128;

        foreach (var port in endpoint.Ports)
        {
            var protocol = ProtocolName(port.Protocol);
            var toContainer = $"-p {protocol} -m {protocol} --dport {port.ContainerPort}";
            var accept = Filter(Chains.Accept, $"-d {container}/{hostBits} ! -i {bridge} -o {bridge} {toContainer} {comment} -j ACCEPT");
            if (seen.Add(accept)) yield return accept;

            if (family != IpFamily.V4 || !ServesIpv4(port.HostIP)) continue;

            var hostAddress = port.HostIP is { } ip && Normalize(ip) is var v4 && !v4.Equals(IPAddress.Any) ? $"-d {v4}/32 " : "";
            var hostPorts = port.HostPortEnd > port.HostPort ? $"{port.HostPort}:{port.HostPortEnd}" : $"{port.HostPort}";
            var dnat = Nat(Chains.Dnat,
                $"{hostAddress}-p {protocol} -m {protocol} --dport {hostPorts} {comment} -j DNAT --to-destination {container}:{port.ContainerPort}");
            if (seen.Add(dnat)) yield return dnat;

            // A container reaching its own published port through the host: without this its reply would go
            // straight back to itself, bypassing the DNAT that the connection went through.
            var hairpin = Nat(Chains.Postrouting, $"-s {container}/32 -d {container}/32 {toContainer} {comment} -j MASQUERADE");
            if (seen.Add(hairpin)) yield return hairpin;
        }
    }

    /// <summary>An IPv4 DNAT applies when the binding names no address, any IPv4 address, or 0.0.0.0.</summary>
    internal static bool ServesIpv4(IPAddress? hostIP) =>
        hostIP is null || Normalize(hostIP).AddressFamily == AddressFamily.InterNetwork;

    internal static IPAddress Normalize(IPAddress address) =>
        address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;

    internal static string ProtocolName(ProtocolType protocol) => protocol switch
    {
        ProtocolType.Tcp => "tcp",
        ProtocolType.Udp => "udp",
        (ProtocolType)SctpProtocolNumber => "sctp",
        _ => throw new ArgumentOutOfRangeException(nameof(protocol), protocol, "only tcp, udp and sctp ports can be published"),
    };

    internal static bool IsPublishable(ProtocolType protocol) =>
        protocol is ProtocolType.Tcp or ProtocolType.Udp || (int)protocol == SctpProtocolNumber;

    private static string Comment(string owner) => $"-m comment --comment \"{owner}\"";

    private static FirewallRule Filter(string chain, string spec) => new(IptablesTable.Filter, chain, spec);
    private static FirewallRule Nat(string chain, string spec) => new(IptablesTable.Nat, chain, spec);
}
