using System.Net;

namespace Skein.Driver.Firewall;

/// <summary>
/// What the firewall needs to know about one skein network.
/// <paramref name="Subnets"/> are the networks' IPv4 and IPv6 pools; IPv4 ones are masqueraded unless
/// <paramref name="Internal"/>. With <paramref name="InterContainerConnectivity"/> off, containers on the
/// bridge cannot reach each other (Docker's <c>com.docker.network.bridge.enable_icc=false</c>).
/// </summary>
public sealed record NetworkFirewall(
    string BridgeName,
    IReadOnlyList<IPNetwork> Subnets,
    bool Internal,
    bool InterContainerConnectivity = true);
