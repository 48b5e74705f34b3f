using System.Net;
using System.Net.Sockets;
using Skein.Ipam;

namespace Skein.Driver.Firewall;

public sealed partial class IptablesFirewall
{
    /// <summary>The VXLAN filter last applied, re-asserted with the base chains; null when there is none.</summary>
    private VxlanFilter? _vxlan;

    private sealed record VxlanFilter(ushort UdpPort, IReadOnlyList<IPAddress> Peers);

    public void ApplyVxlanPeers(ushort udpPort, IReadOnlyCollection<IPAddress> peers)
    {
        if (udpPort == 0) throw SkeinException.Invalid("firewall: VXLAN UDP port 0 is not a port");
        if (peers is null) throw SkeinException.Invalid("firewall: VXLAN peer list is missing");
        var normalized = new List<IPAddress>();
        foreach (var peer in peers)
        {
            if (peer is null) throw SkeinException.Invalid("firewall: VXLAN peer list holds an empty address");
            var address = FirewallRuleBuilder.Normalize(peer);
            if (address.AddressFamily == AddressFamily.InterNetworkV6 && !_options.EnableIpv6)
                throw SkeinException.Invalid($"firewall: VXLAN peer {address} is IPv6 but skein's IPv6 firewall is off");
            if (address.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
                throw SkeinException.Invalid($"firewall: VXLAN peer '{peer}' is neither IPv4 nor IPv6");
            normalized.Add(address);
        }
        var filter = new VxlanFilter(udpPort, normalized.Distinct().OrderBy(a => a.ToString(), StringComparer.Ordinal).ToList());
        lock (_gate)
        {
            Transact($"apply {filter.Peers.Count} VXLAN peer(s) on udp/{udpPort}", ensureBase: false, (family, tables, script) =>
                PlanVxlan(family, tables[IptablesTable.Filter], script, filter));
            _vxlan = filter;
        }
    }

    public void RemoveVxlanPeers()
    {
        lock (_gate)
        {
            Transact("remove VXLAN filter", ensureBase: false, (_, tables, script) =>
            {
                var filter = tables[IptablesTable.Filter];
                foreach (var jump in VxlanJumps(filter)) script.Delete(IptablesTable.Filter, jump);
                if (!filter.HasChain(_chains.Vxlan)) return;
                script.DeclareChain(IptablesTable.Filter, _chains.Vxlan);
                script.AppendRaw(IptablesTable.Filter, $"-X {_chains.Vxlan}");
            });
            _vxlan = null;
        }
    }

    /// <summary>The chain holds one RETURN per peer of the family and a final DROP; INPUT jumps there first.</summary>
    private void PlanVxlan(IpFamily family, IptablesListing filter, RestoreScript script, VxlanFilter vxlan)
    {
        var chain = _chains.Vxlan;
        var wanted = new List<FirewallRule>();
        var peerFamily = family == IpFamily.V4 ? AddressFamily.InterNetwork : AddressFamily.InterNetworkV6;
        var hostBits = family == IpFamily.V4 ? 32 : 128;
        foreach (var peer in vxlan.Peers.Where(p => p.AddressFamily == peerFamily))
            wanted.Add(new FirewallRule(IptablesTable.Filter, chain, $"-s {peer}/{hostBits} -j RETURN"));
        wanted.Add(new FirewallRule(IptablesTable.Filter, chain, "-j DROP"));
        if (!filter.HasChain(chain) || !filter.RulesOf(chain).Select(r => r.Line).SequenceEqual(wanted.Select(r => r.AppendLine)))
        {
            script.DeclareChain(IptablesTable.Filter, chain);
            foreach (var rule in wanted) script.Append(rule);
        }

        var jumpSpec = $"-p udp -m udp --dport {vxlan.UdpPort} -j {chain}";
        var jumps = VxlanJumps(filter);
        if (jumps.Count == 1 && jumps[0].Line == $"-A INPUT {jumpSpec}") return;
        foreach (var jump in jumps) script.Delete(IptablesTable.Filter, jump);
        // First in INPUT: an earlier accept (of established traffic, say) must not let a stranger's VXLAN in.
        script.Insert(IptablesTable.Filter, "INPUT", 1, jumpSpec);
    }

    private List<ListedRule> VxlanJumps(IptablesListing filter) =>
        filter.RulesOf("INPUT").Where(r => r.Line.EndsWith($" -j {_chains.Vxlan}", StringComparison.Ordinal)).ToList();
}
