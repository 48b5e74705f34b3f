using System.Net;
using System.Net.Sockets;
using Skein.Driver.Firewall;
using Xunit.Abstractions;

namespace Skein.Driver.Tests.Firewall;

/// <summary>
/// The firewall against a real kernel, in a lab that rebuilds dockerd's situation inside scratch namespaces
/// (FORWARD policy DROP, DOCKER-USER, br_netfilter). Traffic is real: ping, TCP and UDP between namespaces.
/// </summary>
public sealed class IptablesFirewallKernelTests(FirewallLabFixture fixture, ITestOutputHelper output) : IClassFixture<FirewallLabFixture>
{
    private const int ContainerTcpPort = 80;
    private const int ContainerUdpPort = 53;

    private FirewallLab Begin(out IptablesFirewall firewall)
    {
        Skip.If(fixture.SkipReason is not null, fixture.SkipReason);
        var lab = fixture.Lab;
        firewall = lab.NewFirewall(output.WriteLine);
        firewall.Reconcile([], []);
        Assert.DoesNotContain("skein:", lab.AllRules());
        return lab;
    }

    private static IPEndPoint At(IPAddress address, int port) => new(address, port);

    private EndpointPorts PortsOfA1(FirewallLab lab, params PortMapping[] ports) =>
        new("a1a1a1a1", lab.NetworkA.BridgeName, lab.A1.IPv4, lab.A1.IPv6, ports);

    private static PortMapping Tcp(ushort host, ushort container, IPAddress? hostIP = null, ushort hostEnd = 0) =>
        new(ProtocolType.Tcp, container, host, hostEnd, hostIP);

    private static PortMapping Udp(ushort host, ushort container) => new(ProtocolType.Udp, container, host, 0, null);

    [SkippableFact]
    public void The_lab_drops_forwarded_traffic_as_dockerd_does_until_the_network_is_applied()
    {
        var lab = Begin(out var firewall);
        Assert.Equal("1", lab.Host.Sysctl("net.bridge.bridge-nf-call-iptables"));
        Assert.Contains("-P FORWARD DROP", lab.Rules());

        Assert.Null(NetProbe.TcpPeerSeenBy(lab.A1.Ns, lab.A2.Ns, 7001, At(lab.A2.IPv4, 7001), NetProbe.Blocked));

        firewall.ApplyNetwork(lab.NetworkA);

        Assert.True(NetProbe.Pings(lab.A1.Ns, lab.A2.IPv4));
        Assert.True(NetProbe.Pings(lab.A2.Ns, lab.A1.IPv6!));
        // Traffic that stays on the bridge is not masqueraded.
        Assert.Equal(lab.A1.IPv4, NetProbe.TcpPeerSeenBy(lab.A1.Ns, lab.A2.Ns, 7002, At(lab.A2.IPv4, 7002), NetProbe.Allowed)?.Address);
    }

    [SkippableFact]
    public void Egress_is_masqueraded_to_the_host_address()
    {
        var lab = Begin(out var firewall);
        firewall.ApplyNetwork(lab.NetworkA);

        var seen = NetProbe.TcpPeerSeenBy(lab.A1.Ns, lab.Outside, 9000, At(FirewallLab.OutsideAddress, 9000), NetProbe.Allowed);
        Assert.Equal(FirewallLab.HostOutside, seen?.Address);

        // The outside cannot open connections to a container that publishes nothing.
        Assert.Null(NetProbe.TcpPeerSeenBy(lab.Outside, lab.A1.Ns, 7003, At(lab.A1.IPv4, 7003), NetProbe.Blocked));
    }

    [SkippableFact]
    public void Published_tcp_and_udp_ports_reach_the_container_and_are_gone_after_removal()
    {
        var lab = Begin(out var firewall);
        firewall.ApplyNetwork(lab.NetworkA);
        firewall.ApplyPortMappings(PortsOfA1(lab, Tcp(8080, ContainerTcpPort), Udp(5353, ContainerUdpPort)));

        // From the outside: the container sees the real client.
        Assert.Equal(FirewallLab.OutsideAddress,
            NetProbe.TcpPeerSeenBy(lab.Outside, lab.A1.Ns, ContainerTcpPort, At(FirewallLab.HostOutside, 8080), NetProbe.Allowed)?.Address);
        var udp = NetProbe.UdpExchange(lab.Outside, lab.A1.Ns, ContainerUdpPort, At(FirewallLab.HostOutside, 5353), NetProbe.Allowed);
        Assert.Equal(FirewallLab.OutsideAddress, udp.ServerSawFrom?.Address);
        Assert.True(udp.Answered);
        // From the host itself (nat OUTPUT), from a neighbour on the bridge, and from the container to itself (hairpin).
        Assert.NotNull(NetProbe.TcpPeerSeenBy(lab.Host, lab.A1.Ns, ContainerTcpPort, At(FirewallLab.HostOutside, 8080), NetProbe.Allowed));
        Assert.NotNull(NetProbe.TcpPeerSeenBy(lab.A2.Ns, lab.A1.Ns, ContainerTcpPort, At(FirewallLab.HostOutside, 8080), NetProbe.Allowed));
        Assert.Equal(IPAddress.Parse("10.201.1.1"),
            NetProbe.TcpPeerSeenBy(lab.A1.Ns, lab.A1.Ns, ContainerTcpPort, At(FirewallLab.HostOutside, 8080), NetProbe.Allowed)?.Address);

        firewall.RemovePortMappings("a1a1a1a1");

        Assert.Null(NetProbe.TcpPeerSeenBy(lab.Outside, lab.A1.Ns, ContainerTcpPort, At(FirewallLab.HostOutside, 8080), NetProbe.Blocked));
        Assert.Null(NetProbe.UdpExchange(lab.Outside, lab.A1.Ns, ContainerUdpPort, At(FirewallLab.HostOutside, 5353), NetProbe.Blocked).ServerSawFrom);
        Assert.DoesNotContain("skein:ep:", lab.AllRules());
        firewall.RemovePortMappings("a1a1a1a1");
    }

    [SkippableFact]
    public void A_host_address_restricts_a_published_port_and_a_host_port_range_forwards_every_port_in_it()
    {
        var lab = Begin(out var firewall);
        firewall.ApplyNetwork(lab.NetworkA);
        firewall.ApplyPortMappings(PortsOfA1(lab, Tcp(8081, ContainerTcpPort, FirewallLab.HostOutside), Tcp(8100, ContainerTcpPort, hostEnd: 8102)));

        Assert.NotNull(NetProbe.TcpPeerSeenBy(lab.Outside, lab.A1.Ns, ContainerTcpPort, At(FirewallLab.HostOutside, 8081), NetProbe.Allowed));
        Assert.Null(NetProbe.TcpPeerSeenBy(lab.Outside, lab.A1.Ns, ContainerTcpPort, At(FirewallLab.HostOutsideSecond, 8081), NetProbe.Blocked));
        Assert.NotNull(NetProbe.TcpPeerSeenBy(lab.Outside, lab.A1.Ns, ContainerTcpPort, At(FirewallLab.HostOutsideSecond, 8101), NetProbe.Allowed));
        Assert.NotNull(NetProbe.TcpPeerSeenBy(lab.Outside, lab.A1.Ns, ContainerTcpPort, At(FirewallLab.HostOutside, 8102), NetProbe.Allowed));
        Assert.Null(NetProbe.TcpPeerSeenBy(lab.Outside, lab.A1.Ns, ContainerTcpPort, At(FirewallLab.HostOutside, 8103), NetProbe.Blocked));
    }

    [SkippableFact]
    public void An_internal_network_reaches_nothing_outside_its_bridge_and_nothing_reaches_it()
    {
        var lab = Begin(out var firewall);
        firewall.ApplyNetwork(lab.NetworkA);
        firewall.ApplyNetwork(lab.NetworkI);

        Assert.True(NetProbe.Pings(lab.I1.Ns, lab.I2.IPv4));
        Assert.Null(NetProbe.TcpPeerSeenBy(lab.I1.Ns, lab.Outside, 9001, At(FirewallLab.OutsideAddress, 9001), NetProbe.Blocked));
        Assert.Null(NetProbe.TcpPeerSeenBy(lab.Outside, lab.I1.Ns, 7004, At(lab.I1.IPv4, 7004), NetProbe.Blocked));
        Assert.Null(NetProbe.UdpExchange(lab.I1.Ns, lab.A1.Ns, 7005, At(lab.A1.IPv4, 7005), NetProbe.Blocked).ServerSawFrom);
        Assert.Null(NetProbe.UdpExchange(lab.A1.Ns, lab.I1.Ns, 7006, At(lab.I1.IPv4, 7006), NetProbe.Blocked).ServerSawFrom);
        Assert.DoesNotContain(lab.NetworkI.BridgeName, lab.Rules("nat"));
        // Control: the same probe from the non-internal network does leave.
        Assert.NotNull(NetProbe.TcpPeerSeenBy(lab.A1.Ns, lab.Outside, 9001, At(FirewallLab.OutsideAddress, 9001), NetProbe.Allowed));
    }

    [SkippableFact]
    public void Bridged_frames_go_straight_to_the_accepts_past_the_isolation_walk_and_icc_off_still_drops_them()
    {
        var lab = Begin(out var firewall);
        firewall.ApplyNetwork(lab.NetworkA);
        firewall.ApplyNetwork(lab.NetworkB);
        firewall.ApplyNetwork(lab.NetworkI);
        lab.Iptables("-Z", "SKEIN-FORWARD");

        Assert.True(NetProbe.Pings(lab.A1.Ns, lab.A2.IPv4));

        // Per packet, the isolation walk costs two rules per network on the host: bridged frames must not pay it.
        var counters = ForwardCounters(lab);
        Assert.Equal(["SKEIN-BRIDGED", "SKEIN-ISOLATION", "SKEIN-ACCEPT"], counters.Select(c => c.Target));
        Assert.True(counters[0].Packets > 0, $"the bridged-frame jump saw no packet:\n{lab.Iptables("-L", "SKEIN-FORWARD", "-v", "-x", "-n")}");
        Assert.Equal(0, counters[1].Packets);

        // A network without inter-container connectivity still drops its bridged frames, and only its own.
        firewall.ApplyNetwork(lab.NetworkA with { InterContainerConnectivity = false });
        Assert.False(NetProbe.Pings(lab.A1.Ns, lab.A2.IPv4));
        Assert.True(NetProbe.Pings(lab.I1.Ns, lab.I2.IPv4));
        firewall.ApplyNetwork(lab.NetworkA);
        Assert.True(NetProbe.Pings(lab.A1.Ns, lab.A2.IPv4));
        // Isolation between networks is unchanged (routed, not bridged, so never on the shortcut).
        Assert.Null(NetProbe.UdpExchange(lab.A1.Ns, lab.B1.Ns, 7011, At(lab.B1.IPv4, 7011), NetProbe.Blocked).ServerSawFrom);
    }

    private static List<(string Target, long Packets)> ForwardCounters(FirewallLab lab) =>
        lab.Iptables("-L", "SKEIN-FORWARD", "-v", "-x", "-n")
            .Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Skip(2)
            .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Select(f => (f[2], long.Parse(f[0], System.Globalization.CultureInfo.InvariantCulture)))
            .ToList();

    [SkippableFact]
    public void Two_skein_networks_and_dockers_bridge_are_isolated_from_each_other()
    {
        var lab = Begin(out var firewall);
        firewall.ApplyNetwork(lab.NetworkA);
        firewall.ApplyNetwork(lab.NetworkB);

        // Both leave for the outside, so what follows fails because of isolation.
        Assert.NotNull(NetProbe.TcpPeerSeenBy(lab.A1.Ns, lab.Outside, 9002, At(FirewallLab.OutsideAddress, 9002), NetProbe.Allowed));
        Assert.NotNull(NetProbe.TcpPeerSeenBy(lab.B1.Ns, lab.Outside, 9002, At(FirewallLab.OutsideAddress, 9002), NetProbe.Allowed));
        // (The lab's Docker-like rules let docker0 out but not its replies back in: one way only.)
        Assert.NotNull(NetProbe.UdpExchange(lab.D1.Ns, lab.Outside, 9003, At(FirewallLab.OutsideAddress, 9003), NetProbe.Allowed, oneWay: true).ServerSawFrom);

        // One-way UDP: a dropped first packet cannot be mistaken for a dropped reply.
        Assert.Null(NetProbe.UdpExchange(lab.A1.Ns, lab.B1.Ns, 7007, At(lab.B1.IPv4, 7007), NetProbe.Blocked).ServerSawFrom);
        Assert.Null(NetProbe.UdpExchange(lab.B1.Ns, lab.A1.Ns, 7008, At(lab.A1.IPv4, 7008), NetProbe.Blocked).ServerSawFrom);
        Assert.Null(NetProbe.UdpExchange(lab.A1.Ns, lab.D1.Ns, 7009, At(lab.D1.IPv4, 7009), NetProbe.Blocked).ServerSawFrom);
        Assert.Null(NetProbe.UdpExchange(lab.D1.Ns, lab.A1.Ns, 7010, At(lab.A1.IPv4, 7010), NetProbe.Blocked).ServerSawFrom);
    }

    [SkippableFact]
    public void A_host_port_already_published_by_another_endpoint_is_refused_and_the_first_keeps_working()
    {
        var lab = Begin(out var firewall);
        firewall.ApplyNetwork(lab.NetworkA);
        firewall.ApplyPortMappings(PortsOfA1(lab, Tcp(8080, ContainerTcpPort)));
        var before = lab.AllRules();

        var error = Assert.Throws<Skein.Ipam.SkeinException>(() => firewall.ApplyPortMappings(
            new EndpointPorts("a2a2a2a2", lab.NetworkA.BridgeName, lab.A2.IPv4, null, [Tcp(8080, ContainerTcpPort, FirewallLab.HostOutside)])));

        Assert.Equal(Skein.Ipam.ErrorKind.Conflict, error.Kind);
        Assert.Equal(before, lab.AllRules());
        Assert.NotNull(NetProbe.TcpPeerSeenBy(lab.Outside, lab.A1.Ns, ContainerTcpPort, At(FirewallLab.HostOutside, 8080), NetProbe.Allowed));
    }

    [SkippableFact]
    public void The_vxlan_filter_admits_listed_vteps_only_survives_reconcile_and_goes_away_when_removed()
    {
        var lab = Begin(out var firewall);
        const int VxlanPort = 4789;
        (IPEndPoint?, bool) FromPeer() => NetProbe.UdpExchange(lab.Outside, lab.Host, VxlanPort, At(FirewallLab.HostOutside, VxlanPort), NetProbe.Allowed, FirewallLab.OutsideAddress);
        (IPEndPoint?, bool) FromStranger(TimeSpan timeout) => NetProbe.UdpExchange(lab.Outside, lab.Host, VxlanPort, At(FirewallLab.HostOutside, VxlanPort), timeout, FirewallLab.OutsideStranger);
        Assert.NotNull(FromStranger(NetProbe.Allowed).Item1);

        firewall.ApplyVxlanPeers(VxlanPort, [FirewallLab.OutsideAddress, IPAddress.Parse("fd00:18::2")]);
        try
        {
            Assert.Equal(FirewallLab.OutsideAddress, FromPeer().Item1?.Address);
            Assert.Null(FromStranger(NetProbe.Blocked).Item1);
            firewall.Reconcile([lab.NetworkA], []);
            lab.Iptables("-D", "INPUT", "-p", "udp", "-m", "udp", "--dport", "4789", "-j", "SKEIN-VXLAN");
            firewall.EnsureBaseChains();
            Assert.Null(FromStranger(NetProbe.Blocked).Item1);
            Assert.StartsWith("-A INPUT -p udp -m udp --dport 4789 -j SKEIN-VXLAN", lab.Rules().Split('\n').First(l => l.StartsWith("-A INPUT")));
            Assert.Contains("-A SKEIN-VXLAN -s fd00:18::2/128 -j RETURN", lab.Rules("filter", ipv6: true));
        }
        finally
        {
            firewall.RemoveVxlanPeers();
        }

        Assert.NotNull(FromStranger(NetProbe.Allowed).Item1);
        Assert.DoesNotContain("VXLAN", lab.AllRules());
        firewall.RemoveVxlanPeers();
    }

    [SkippableFact]
    public void Publishing_on_loopback_reaches_the_container_from_the_hosts_127_0_0_1_and_keeps_containers_off_the_hosts_loopback()
    {
        var lab = Begin(out _);
        var bridge = lab.NetworkA.BridgeName;
        var firewall = new IptablesFirewall(lab.Options(output.WriteLine, publishOnLoopback: true));
        // What skein's driver sets through netlink on its bridges when loopback publishing is on.
        lab.Host.MustExec("sysctl", "-q", "-w", $"net.ipv4.conf.{bridge}.route_localnet=1");
        using var attacker = lab.AddTemporaryContainer("x1", bridge, "10.201.1.9").Ns;
        // A container that sends to 127.0.0.99 through its gateway, as a hostile one can.
        attacker.MustExec("sysctl", "-q", "-w", "net.ipv4.conf.eth0.route_localnet=1");
        attacker.Ip("route", "del", "local", "127.0.0.0/8", "dev", "lo", "table", "local");
        attacker.Ip("route", "add", "127.0.0.99/32", "via", "10.201.1.1", "dev", "eth0");
        var hostLoopback = At(IPAddress.Parse("127.0.0.99"), 7777);
        try
        {
            // Control: with route_localnet on and no guard, the container does reach the host's loopback.
            Assert.NotNull(NetProbe.TcpPeerSeenBy(attacker, lab.Host, 7777, hostLoopback, NetProbe.Allowed));

            firewall.ApplyNetwork(lab.NetworkA);
            firewall.ApplyPortMappings(PortsOfA1(lab, Tcp(8080, ContainerTcpPort)));

            Assert.Equal(IPAddress.Parse("10.201.1.1"),
                NetProbe.TcpPeerSeenBy(lab.Host, lab.A1.Ns, ContainerTcpPort, At(IPAddress.Loopback, 8080), NetProbe.Allowed)?.Address);
            Assert.NotNull(NetProbe.TcpPeerSeenBy(lab.Outside, lab.A1.Ns, ContainerTcpPort, At(FirewallLab.HostOutside, 8080), NetProbe.Allowed));
            Assert.Null(NetProbe.TcpPeerSeenBy(attacker, lab.Host, 7777, hostLoopback, NetProbe.Blocked));
            Assert.True(firewall.Inspect().NatJumpsInPlace);

            // Back to the default: the OUTPUT jump returns to its non-loopback form.
            lab.NewFirewall(output.WriteLine).EnsureBaseChains();
            Assert.Contains("-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j SKEIN-DNAT", lab.Rules("nat"));
            Assert.Single(lab.Rules("nat").Split('\n'), l => l.StartsWith("-A OUTPUT"));
        }
        finally
        {
            lab.Host.MustExec("sysctl", "-q", "-w", $"net.ipv4.conf.{bridge}.route_localnet=0");
            lab.Iptables("-t", "raw", "-D", "PREROUTING", "-j", "SKEIN-LOCALNET");
            lab.Iptables("-t", "raw", "-F", "SKEIN-LOCALNET");
            lab.Iptables("-t", "raw", "-X", "SKEIN-LOCALNET");
        }
    }

    [SkippableFact]
    public void Applying_twice_changes_nothing_and_runs_no_write()
    {
        var lab = Begin(out _);
        var recorder = new RecordingRunner(ProcessCommandRunner.Instance);
        var firewall = new IptablesFirewall(lab.Options(output.WriteLine), recorder);
        var ports = PortsOfA1(lab, Tcp(8080, ContainerTcpPort), Udp(5353, ContainerUdpPort), Tcp(8100, ContainerTcpPort, FirewallLab.HostOutside, 8102));
        firewall.ApplyNetwork(lab.NetworkA);
        firewall.ApplyNetwork(lab.NetworkI);
        firewall.ApplyPortMappings(ports);
        var before = lab.AllRules();
        recorder.Calls.Clear();

        firewall.EnsureBaseChains();
        firewall.ApplyNetwork(lab.NetworkA);
        firewall.ApplyNetwork(lab.NetworkI);
        firewall.ApplyPortMappings(ports);
        firewall.Reconcile([lab.NetworkA, lab.NetworkI], [ports]);

        Assert.Equal(before, lab.AllRules());
        // Every rule skein renders reads back from the kernel character for character, so nothing is rewritten.
        Assert.Empty(recorder.RestoreInputs);
    }

    [SkippableFact]
    public void Remove_network_removes_exactly_that_networks_rules()
    {
        var lab = Begin(out var firewall);
        firewall.ApplyNetwork(lab.NetworkA);
        firewall.ApplyNetwork(lab.NetworkB);
        var bRules = lab.AllRules().Split('\n').Where(l => l.Contains(lab.NetworkB.BridgeName)).ToList();

        firewall.RemoveNetwork(lab.NetworkA.BridgeName);
        firewall.RemoveNetwork(lab.NetworkA.BridgeName);

        var after = lab.AllRules();
        Assert.DoesNotContain(lab.NetworkA.BridgeName, after);
        Assert.Equal(bRules, after.Split('\n').Where(l => l.Contains(lab.NetworkB.BridgeName)).ToList());
        Assert.True(NetProbe.Pings(lab.B1.Ns, IPAddress.Parse("10.201.2.1")));
        Assert.Null(NetProbe.TcpPeerSeenBy(lab.A1.Ns, lab.A2.Ns, 7011, At(lab.A2.IPv4, 7011), NetProbe.Blocked));
    }

    [SkippableFact]
    public void Reconcile_deletes_rules_no_record_owns_and_leaves_foreign_rules_alone()
    {
        var lab = Begin(out var firewall);
        string[] foreignForward = ["-A", "FORWARD", "-s", "192.0.2.77/32", "-j", "ACCEPT"];
        string[] foreignNat = ["-t", "nat", "-A", "POSTROUTING", "-s", "192.0.2.77/32", "-j", "MASQUERADE"];
        string[] foreignDockerUser = ["-I", "DOCKER-USER", "1", "-s", "192.0.2.78/32", "-j", "DROP"];
        lab.Iptables(foreignForward);
        lab.Iptables(foreignNat);
        lab.Iptables(foreignDockerUser);
        try
        {
            var keep = PortsOfA1(lab, Tcp(8080, ContainerTcpPort));
            var orphan = new EndpointPorts("0ff0ff", lab.NetworkB.BridgeName, lab.B1.IPv4, null, [Tcp(8090, ContainerTcpPort)]);
            firewall.ApplyNetwork(lab.NetworkA);
            firewall.ApplyNetwork(lab.NetworkB);
            firewall.ApplyPortMappings(keep);
            firewall.ApplyPortMappings(orphan);
            // A rule someone put inside a skein chain is not owned by any record either.
            lab.Iptables("-A", "SKEIN-ACCEPT", "-s", "192.0.2.79/32", "-j", "ACCEPT");
            string ForeignLines() => string.Join('\n', lab.AllRules().Split('\n').Where(l => !l.Contains("SKEIN")));
            var foreignBefore = ForeignLines();

            firewall.Reconcile([lab.NetworkA], [keep]);

            var after = lab.AllRules();
            Assert.DoesNotContain(lab.NetworkB.BridgeName, after);
            Assert.DoesNotContain("skein:ep:0ff0ff", after);
            Assert.DoesNotContain("192.0.2.79", after);
            Assert.Contains("skein:ep:a1a1a1a1", after);
            Assert.Equal(foreignBefore, ForeignLines());
            Assert.Contains("-A FORWARD -s 192.0.2.77/32 -j ACCEPT", after);
            Assert.True(NetProbe.Pings(lab.A1.Ns, lab.A2.IPv4));
            Assert.NotNull(NetProbe.TcpPeerSeenBy(lab.Outside, lab.A1.Ns, ContainerTcpPort, At(FirewallLab.HostOutside, 8080), NetProbe.Allowed));
            Assert.Null(NetProbe.TcpPeerSeenBy(lab.Outside, lab.B1.Ns, ContainerTcpPort, At(FirewallLab.HostOutside, 8090), NetProbe.Blocked));
        }
        finally
        {
            lab.Iptables([.. foreignForward.Select(a => a == "-A" ? "-D" : a)]);
            lab.Iptables([.. foreignNat.Select(a => a == "-A" ? "-D" : a)]);
            lab.Iptables("-D", "DOCKER-USER", "-s", "192.0.2.78/32", "-j", "DROP");
        }
    }

    [SkippableFact]
    public void EnsureBaseChains_puts_back_a_deleted_jump_and_a_damaged_chain_right_after_DOCKER_USER()
    {
        var lab = Begin(out var firewall);
        firewall.ApplyNetwork(lab.NetworkA);
        firewall.ApplyNetwork(lab.NetworkB);

        lab.Iptables("-D", "FORWARD", "-j", "SKEIN-FORWARD");
        lab.Ip6tables("-D", "FORWARD", "-j", "SKEIN-FORWARD");
        lab.Iptables("-F", "SKEIN-ISOLATION-OUT");
        Assert.Null(NetProbe.TcpPeerSeenBy(lab.A1.Ns, lab.A2.Ns, 7012, At(lab.A2.IPv4, 7012), NetProbe.Blocked));
        Assert.False(firewall.Inspect().ForwardJumpInPlace);

        firewall.EnsureBaseChains();

        Assert.True(NetProbe.Pings(lab.A1.Ns, lab.A2.IPv4));
        Assert.True(NetProbe.Pings(lab.A1.Ns, lab.A2.IPv6!));
        Assert.Null(NetProbe.UdpExchange(lab.A1.Ns, lab.B1.Ns, 7013, At(lab.B1.IPv4, 7013), NetProbe.Blocked).ServerSawFrom);
        AssertForwardStartsWith(lab.Rules(), "-A FORWARD -j DOCKER-USER", "-A FORWARD -j SKEIN-FORWARD");
        AssertForwardStartsWith(lab.Rules("filter", ipv6: true), "-A FORWARD -j DOCKER-USER", "-A FORWARD -j SKEIN-FORWARD");

        // dockerd restarting: its accepts and its jumps go back on top, DOCKER-USER first.
        lab.Iptables("-D", "FORWARD", "-j", "DOCKER-USER");
        lab.Iptables("-I", "FORWARD", "1", "-i", "docker0", "-o", "docker0", "-j", "ACCEPT");
        lab.Iptables("-I", "FORWARD", "1", "-j", "DOCKER-USER");
        try
        {
            Assert.False(firewall.Inspect().ForwardJumpInPlace);
            firewall.EnsureBaseChains();
            AssertForwardStartsWith(lab.Rules(), "-A FORWARD -j DOCKER-USER", "-A FORWARD -j SKEIN-FORWARD");
            Assert.Single(lab.Rules().Split('\n'), l => l == "-A FORWARD -j SKEIN-FORWARD");
            Assert.True(firewall.Inspect().ForwardJumpInPlace);
        }
        finally
        {
            lab.Iptables("-D", "FORWARD", "-i", "docker0", "-o", "docker0", "-j", "ACCEPT");
        }
    }

    [SkippableFact]
    public void DOCKER_USER_rules_take_precedence_over_skeins()
    {
        var lab = Begin(out var firewall);
        firewall.ApplyNetwork(lab.NetworkA);
        string[] userDrop = ["DOCKER-USER", "-s", "10.201.1.2/32", "-d", "10.201.1.3/32", "-j", "DROP"];
        lab.Iptables(["-I", .. userDrop]);
        try
        {
            firewall.EnsureBaseChains();
            Assert.Null(NetProbe.TcpPeerSeenBy(lab.A1.Ns, lab.A2.Ns, 7014, At(lab.A2.IPv4, 7014), NetProbe.Blocked));
        }
        finally
        {
            lab.Iptables(["-D", .. userDrop]);
        }
        Assert.NotNull(NetProbe.TcpPeerSeenBy(lab.A1.Ns, lab.A2.Ns, 7014, At(lab.A2.IPv4, 7014), NetProbe.Allowed));
    }

    [SkippableFact]
    public void Inspect_reports_backend_policy_jumps_and_kernel_switches()
    {
        var lab = Begin(out var firewall);

        var report = firewall.Inspect();

        output.WriteLine(report.ToString());
        var expectedBackend = TestShell.MustRun(lab.Backend.Iptables, "--version").Contains("nf_tables") ? FirewallBackend.Nftables : FirewallBackend.Legacy;
        Assert.Equal(expectedBackend, report.Backend);
        Assert.Equal("DROP", report.ForwardPolicy);
        Assert.True(report.DockerUserPresent);
        Assert.True(report.ForwardJumpInPlace);
        Assert.True(report.NatJumpsInPlace);
        Assert.True(report.Ipv6ForwardJumpInPlace);
        Assert.True(report.IpForward);
        Assert.True(report.BridgeNfCallIptables);
        Assert.Empty(report.Problems);

        Assert.False(report.LegacyTablesAlsoPresent);
        lab.Iptables("-t", "nat", "-D", "POSTROUTING", "-j", "SKEIN-POSTROUTING");
        var damaged = firewall.Inspect();
        Assert.False(damaged.NatJumpsInPlace);
        Assert.Contains(damaged.Problems, p => p.Contains("nat table"));
        firewall.EnsureBaseChains();
        Assert.True(firewall.Inspect().Healthy);
    }

    [SkippableFact]
    public void Inspect_warns_when_the_other_backend_holds_tables_too()
    {
        var lab = Begin(out var firewall);
        Skip.IfNot(TestShell.MustRun("iptables", "--version").Contains("nf_tables"), "needs iptables on nf_tables");
        Skip.IfNot(TestShell.HasCommand("iptables-legacy"), "needs iptables-legacy to create legacy tables");
        using var scratch = FirewallScratchNamespace.Create("mix");
        scratch.MustExec("iptables-legacy", "-w", "-N", "DOCKER-USER");
        var mixed = new IptablesFirewall(new IptablesOptions { CommandPrefix = ["nsenter", $"--net={scratch.Path}"], ReadSysctl = scratch.Sysctl });

        var report = mixed.Inspect();

        Assert.True(report.LegacyTablesAlsoPresent);
        Assert.Contains(report.Problems, p => p.Contains("iptables-legacy tables exist"));
        Assert.False(firewall.Inspect().LegacyTablesAlsoPresent);
    }

    [SkippableFact]
    public void A_refused_batch_raises_the_command_exit_code_and_stderr_and_changes_nothing()
    {
        var lab = Begin(out _);
        // A bridge name the kernel accepts but a broken iptables binary path does not: use a restore command that fails.
        var options = lab.Options(output.WriteLine);
        var broken = new IptablesFirewall(new IptablesOptions
        {
            CommandPrefix = options.CommandPrefix,
            ReadSysctl = options.ReadSysctl,
            IptablesRestoreCommand = "false",
        });
        var before = lab.AllRules();

        var error = Assert.Throws<FirewallCommandException>(() => broken.ApplyNetwork(lab.NetworkA));

        Assert.Contains("false --noflush -w", error.Command);
        Assert.Equal(1, error.ExitCode);
        Assert.Equal(before, lab.AllRules());
    }

    private static void AssertForwardStartsWith(string rules, params string[] expected)
    {
        var forward = rules.Split('\n').Where(l => l.StartsWith("-A FORWARD ", StringComparison.Ordinal)).Take(expected.Length);
        Assert.Equal(expected, forward);
    }
}
