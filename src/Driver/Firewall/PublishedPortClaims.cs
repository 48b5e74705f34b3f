using System.Net;
using Skein.Ipam;

namespace Skein.Driver.Firewall;

/// <summary>One host port range an endpoint publishes on one protocol, at one host address or all of them (null).</summary>
internal readonly record struct HostPortClaim(string Protocol, int First, int Last, IPAddress? HostIP, string Owner)
{
    public bool Overlaps(HostPortClaim other) =>
        Protocol == other.Protocol
        && First <= other.Last && other.First <= Last
        && (HostIP is null || other.HostIP is null || HostIP.Equals(other.HostIP));

    public override string ToString() =>
        $"{(HostIP is null ? "0.0.0.0" : HostIP.ToString())}:{(First == Last ? $"{First}" : $"{First}-{Last}")}/{Protocol}";
}

/// <summary>
/// Refuses a second endpoint publishing a host port that another endpoint already has, as Docker refuses a port
/// that is already allocated; otherwise the first DNAT rule would silently win. The claims of other endpoints
/// are read back from their DNAT rules, so this holds across restarts without any state of its own.
/// </summary>
internal static class PublishedPortClaims
{
    /// <summary>Only mappings that get an IPv4 DNAT claim a host port: skein does no IPv6 NAT.</summary>
    public static IEnumerable<HostPortClaim> ClaimsOf(EndpointPorts endpoint) =>
        endpoint.Ports.Where(p => FirewallRuleBuilder.ServesIpv4(p.HostIP)).Select(p => new HostPortClaim(
            FirewallRuleBuilder.ProtocolName(p.Protocol),
            p.HostPort,
            Math.Max(p.HostPort, p.HostPortEnd),
            p.HostIP is { } ip && !FirewallRuleBuilder.Normalize(ip).Equals(IPAddress.Any) ? FirewallRuleBuilder.Normalize(ip) : null,
            FirewallRuleBuilder.EndpointOwner(endpoint.EndpointId)));

    /// <summary>Two mappings of one endpoint that claim the same host port.</summary>
    public static void RefuseOverlapWithin(EndpointPorts endpoint)
    {
        var claims = ClaimsOf(endpoint).ToList();
        for (var i = 0; i < claims.Count; i++)
            for (var j = i + 1; j < claims.Count; j++)
                if (claims[i].Overlaps(claims[j]))
                    throw SkeinException.Conflict($"firewall: endpoint {endpoint.EndpointId} publishes host port {claims[i]} twice (also as {claims[j]})");
    }

    /// <summary>Another endpoint's DNAT rule that already claims one of this endpoint's host ports.</summary>
    public static void RefuseOverlapWithOthers(EndpointPorts endpoint, IReadOnlyList<ListedRule> dnatRules)
    {
        var owner = FirewallRuleBuilder.EndpointOwner(endpoint.EndpointId);
        var mine = ClaimsOf(endpoint).ToList();
        foreach (var rule in dnatRules)
        {
            if (rule.Comment is not { } other || other == owner || !other.StartsWith(FirewallRuleBuilder.EndpointOwner(""), StringComparison.Ordinal))
                continue;
            if (Parse(rule) is not { } theirs) continue;
            foreach (var claim in mine)
            {
                if (claim.Overlaps(theirs))
                    throw SkeinException.Conflict(
                        $"firewall: host port {claim} of endpoint {endpoint.EndpointId} is already published by endpoint {other["skein:ep:".Length..]} ({theirs})");
            }
        }
    }

    /// <summary>Reads a claim back from a DNAT rule as skein writes them: [-d ADDR/32] -p PROTO ... --dport N[:M].</summary>
    internal static HostPortClaim? Parse(ListedRule rule)
    {
        var tokens = IptablesListing.Tokenize(rule.Line);
        string? protocol = null, ports = null;
        IPAddress? hostIP = null;
        for (var i = 0; i + 1 < tokens.Count; i++)
        {
            switch (tokens[i])
            {
                case "-p": protocol = tokens[i + 1]; break;
                case "--dport": ports = tokens[i + 1]; break;
                case "-d" when i == 0 || tokens[i - 1] != "!":
                    var address = tokens[i + 1].Split('/')[0];
                    if (IPAddress.TryParse(address, out var parsed)) hostIP = parsed;
                    break;
            }
        }
        if (protocol is null || ports is null) return null;
        var range = ports.Split(':');
        if (!int.TryParse(range[0], out var first)) return null;
        var last = first;
        if (range.Length == 2 && !int.TryParse(range[1], out last)) return null;
        return new HostPortClaim(protocol, first, last, hostIP, rule.Comment ?? "");
    }
}
