using System.Net;
using System.Net.Sockets;
using Skein.Driver.Firewall;
using Skein.Ipam;

namespace Skein.Driver.Tests.Firewall;

/// <summary>
/// The exact iptables-restore text the firewall writes for given listings (golden text), without a kernel.
/// The kernel tests prove that this text does what it should and that it reads back unchanged.
/// </summary>
public sealed class IptablesFirewallScriptTests
{
    private const string BridgeA = "skbr-a000000001";

    /// <summary>A filter table that already holds skein's chains and jump, as the kernel lists them.</summary>
    private const string BaseFilter = """
        -P INPUT ACCEPT
        -P FORWARD DROP
        -P OUTPUT ACCEPT
        -N DOCKER-USER
        -N SKEIN-ACCEPT
        -N SKEIN-BRIDGED
        -N SKEIN-FORWARD
        -N SKEIN-ISOLATION
        -N SKEIN-ISOLATION-IN
        -N SKEIN-ISOLATION-OUT
        -A FORWARD -j DOCKER-USER
        -A FORWARD -j SKEIN-FORWARD
        -A FORWARD -i docker0 ! -o docker0 -j ACCEPT
        -A DOCKER-USER -j RETURN
        -A SKEIN-FORWARD -i skbr-+ -o skbr-+ -m physdev --physdev-is-bridged -j SKEIN-BRIDGED
        -A SKEIN-FORWARD -j SKEIN-ISOLATION
        -A SKEIN-FORWARD -j SKEIN-ACCEPT
        -A SKEIN-ISOLATION-IN -i skbr-+ -j DROP
        -A SKEIN-ISOLATION-IN -i docker0 -j DROP
        -A SKEIN-ISOLATION-IN -i br-+ -j DROP
        -A SKEIN-ISOLATION-OUT -o skbr-+ -j DROP
        -A SKEIN-ISOLATION-OUT -o docker0 -j DROP
        -A SKEIN-ISOLATION-OUT -o br-+ -j DROP
        """;

    private const string BaseNat = """
        -P PREROUTING ACCEPT
        -P INPUT ACCEPT
        -P OUTPUT ACCEPT
        -P POSTROUTING ACCEPT
        -N SKEIN-DNAT
        -N SKEIN-POSTROUTING
        -A PREROUTING -m addrtype --dst-type LOCAL -j SKEIN-DNAT
        -A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j SKEIN-DNAT
        -A POSTROUTING -j SKEIN-POSTROUTING
        """;

    private static readonly NetworkFirewall NetworkA =
        new(BridgeA, [IPNetwork.Parse("10.201.1.0/24"), IPNetwork.Parse("fd00:201:1::/64")], Internal: false);

    private static readonly EndpointPorts EndpointE1 = new("e1", BridgeA, IPAddress.Parse("10.201.1.2"), IPAddress.Parse("fd00:201:1::2"),
    [
        new PortMapping(ProtocolType.Tcp, 80, 8080, 0, null),
        new PortMapping(ProtocolType.Udp, 53, 5353, 5360, IPAddress.Parse("192.0.2.1")),
    ]);

    private static (IptablesFirewall Firewall, ScriptedIptables Iptables) Make(
        string filter = ScriptedIptables.DockerFilter, string nat = ScriptedIptables.EmptyNat, string? filter6 = null, bool ipv6 = true)
    {
        var iptables = new ScriptedIptables(filter, nat, filter6);
        return (new IptablesFirewall(new IptablesOptions { EnableIpv6 = ipv6 }, iptables), iptables);
    }

    private static string Lines(string text) => text.Replace("\r\n", "\n").TrimEnd('\n') + "\n";

    [Fact]
    public void ApplyNetwork_on_a_host_with_only_dockers_rules_creates_chains_jumps_and_the_networks_rules()
    {
        var (firewall, iptables) = Make();

        firewall.ApplyNetwork(NetworkA);

        Assert.Equal(Lines("""
            *filter
            :SKEIN-ISOLATION - [0:0]
            :SKEIN-ACCEPT - [0:0]
            :SKEIN-BRIDGED - [0:0]
            :SKEIN-FORWARD - [0:0]
            :SKEIN-ISOLATION-OUT - [0:0]
            :SKEIN-ISOLATION-IN - [0:0]
            -A SKEIN-FORWARD -i skbr-+ -o skbr-+ -m physdev --physdev-is-bridged -j SKEIN-BRIDGED
            -A SKEIN-FORWARD -j SKEIN-ISOLATION
            -A SKEIN-FORWARD -j SKEIN-ACCEPT
            -A SKEIN-ISOLATION-OUT -o skbr-+ -j DROP
            -A SKEIN-ISOLATION-OUT -o docker0 -j DROP
            -A SKEIN-ISOLATION-OUT -o br-+ -j DROP
            -A SKEIN-ISOLATION-IN -i skbr-+ -j DROP
            -A SKEIN-ISOLATION-IN -i docker0 -j DROP
            -A SKEIN-ISOLATION-IN -i br-+ -j DROP
            -I FORWARD 2 -j SKEIN-FORWARD
            -A SKEIN-ISOLATION -i skbr-a000000001 ! -o skbr-a000000001 -m comment --comment "skein:skbr-a000000001" -j SKEIN-ISOLATION-OUT
            -A SKEIN-ISOLATION ! -i skbr-a000000001 -o skbr-a000000001 -m comment --comment "skein:skbr-a000000001" -j SKEIN-ISOLATION-IN
            -A SKEIN-ACCEPT -i skbr-a000000001 -o skbr-a000000001 -m comment --comment "skein:skbr-a000000001" -j ACCEPT
            -A SKEIN-BRIDGED -i skbr-a000000001 -o skbr-a000000001 -m comment --comment "skein:skbr-a000000001" -j ACCEPT
            -A SKEIN-ACCEPT -o skbr-a000000001 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "skein:skbr-a000000001" -j ACCEPT
            -A SKEIN-ACCEPT -i skbr-a000000001 ! -o skbr-a000000001 -m comment --comment "skein:skbr-a000000001" -j ACCEPT
            COMMIT
            *nat
            :SKEIN-DNAT - [0:0]
            :SKEIN-POSTROUTING - [0:0]
            -A PREROUTING -m addrtype --dst-type LOCAL -j SKEIN-DNAT
            -A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j SKEIN-DNAT
            -A POSTROUTING -j SKEIN-POSTROUTING
            -A SKEIN-POSTROUTING -s 10.201.1.0/24 ! -o skbr-a000000001 -m comment --comment "skein:skbr-a000000001" -j MASQUERADE
            COMMIT
            """), iptables.RestoreInput("iptables-restore"));
        // IPv6: the same filter rules, no nat table at all.
        var ipv6 = iptables.RestoreInput("ip6tables-restore");
        Assert.DoesNotContain("*nat", ipv6);
        Assert.Contains("-A SKEIN-ACCEPT -i skbr-a000000001 ! -o skbr-a000000001 -m comment --comment \"skein:skbr-a000000001\" -j ACCEPT", ipv6);
    }

    [Fact]
    public void A_kernel_without_the_physdev_match_gets_the_forward_chain_without_the_bridged_frame_shortcut()
    {
        var log = new List<string>();
        var iptables = new ScriptedIptables { RefusePhysdev = true };
        var firewall = new IptablesFirewall(new IptablesOptions { EnableIpv6 = false, Log = log.Add }, iptables);

        firewall.ApplyNetwork(NetworkA);

        Assert.Equal(2, iptables.Restores.Count);
        Assert.Contains("-A SKEIN-FORWARD -i skbr-+ -o skbr-+ -m physdev --physdev-is-bridged -j SKEIN-BRIDGED", iptables.Restores[0].Input);
        var second = iptables.Restores[1].Input;
        Assert.DoesNotContain("physdev", second);
        Assert.Contains("-A SKEIN-FORWARD -j SKEIN-ISOLATION\n-A SKEIN-FORWARD -j SKEIN-ACCEPT\n", second);
        Assert.Contains("-A SKEIN-ACCEPT -i skbr-a000000001 -o skbr-a000000001 -m comment --comment \"skein:skbr-a000000001\" -j ACCEPT", second);
        Assert.Contains(log, l => l.Contains("physdev match is refused", StringComparison.Ordinal));
    }

    [Fact]
    public void ApplyPortMappings_writes_dnat_forward_accept_and_hairpin_per_port_and_only_the_filter_accept_for_ipv6()
    {
        var (firewall, iptables) = Make(BaseFilter, BaseNat);

        firewall.ApplyPortMappings(EndpointE1);

        Assert.Equal(Lines("""
            *filter
            -A SKEIN-ACCEPT -d 10.201.1.2/32 ! -i skbr-a000000001 -o skbr-a000000001 -p tcp -m tcp --dport 80 -m comment --comment "skein:ep:e1" -j ACCEPT
            -A SKEIN-ACCEPT -d 10.201.1.2/32 ! -i skbr-a000000001 -o skbr-a000000001 -p udp -m udp --dport 53 -m comment --comment "skein:ep:e1" -j ACCEPT
            COMMIT
            *nat
            -A SKEIN-DNAT -p tcp -m tcp --dport 8080 -m comment --comment "skein:ep:e1" -j DNAT --to-destination 10.201.1.2:80
            -A SKEIN-POSTROUTING -s 10.201.1.2/32 -d 10.201.1.2/32 -p tcp -m tcp --dport 80 -m comment --comment "skein:ep:e1" -j MASQUERADE
            -A SKEIN-DNAT -d 192.0.2.1/32 -p udp -m udp --dport 5353:5360 -m comment --comment "skein:ep:e1" -j DNAT --to-destination 10.201.1.2:53
            -A SKEIN-POSTROUTING -s 10.201.1.2/32 -d 10.201.1.2/32 -p udp -m udp --dport 53 -m comment --comment "skein:ep:e1" -j MASQUERADE
            COMMIT
            """), iptables.RestoreInput("iptables-restore"));
        Assert.Equal(Lines("""
            *filter
            -A SKEIN-ACCEPT -d fd00:201:1::2/128 ! -i skbr-a000000001 -o skbr-a000000001 -p tcp -m tcp --dport 80 -m comment --comment "skein:ep:e1" -j ACCEPT
            -A SKEIN-ACCEPT -d fd00:201:1::2/128 ! -i skbr-a000000001 -o skbr-a000000001 -p udp -m udp --dport 53 -m comment --comment "skein:ep:e1" -j ACCEPT
            COMMIT
            """), iptables.RestoreInput("ip6tables-restore"));
    }

    [Fact]
    public void An_ipv6_host_address_gets_no_ipv4_dnat_and_duplicate_container_ports_give_one_accept()
    {
        var (firewall, iptables) = Make(BaseFilter, BaseNat, ipv6: false);

        firewall.ApplyPortMappings(new EndpointPorts("e2", BridgeA, IPAddress.Parse("10.201.1.3"), null,
        [
            new PortMapping(ProtocolType.Tcp, 80, 8080, 0, IPAddress.Parse("2001:db8::1")),
            new PortMapping(ProtocolType.Tcp, 80, 8081, 0, IPAddress.Any),
        ]));

        Assert.Equal(Lines("""
            *filter
            -A SKEIN-ACCEPT -d 10.201.1.3/32 ! -i skbr-a000000001 -o skbr-a000000001 -p tcp -m tcp --dport 80 -m comment --comment "skein:ep:e2" -j ACCEPT
            COMMIT
            *nat
            -A SKEIN-DNAT -p tcp -m tcp --dport 8081 -m comment --comment "skein:ep:e2" -j DNAT --to-destination 10.201.1.3:80
            -A SKEIN-POSTROUTING -s 10.201.1.3/32 -d 10.201.1.3/32 -p tcp -m tcp --dport 80 -m comment --comment "skein:ep:e2" -j MASQUERADE
            COMMIT
            """), iptables.RestoreInput("iptables-restore"));
        Assert.DoesNotContain(iptables.Commands, c => c[0].StartsWith("ip6tables", StringComparison.Ordinal));
    }

    [Fact]
    public void An_internal_network_without_icc_drops_at_its_edge_and_between_its_containers_and_is_not_masqueraded()
    {
        var (firewall, iptables) = Make(BaseFilter, BaseNat, ipv6: false);

        firewall.ApplyNetwork(new NetworkFirewall("skbr-c000000003", [IPNetwork.Parse("10.201.3.0/24")], Internal: true, InterContainerConnectivity: false));

        Assert.Equal(Lines("""
            *filter
            -A SKEIN-ISOLATION -i skbr-c000000003 ! -o skbr-c000000003 -m comment --comment "skein:skbr-c000000003" -j DROP
            -A SKEIN-ISOLATION ! -i skbr-c000000003 -o skbr-c000000003 -m comment --comment "skein:skbr-c000000003" -j DROP
            -A SKEIN-ACCEPT -i skbr-c000000003 -o skbr-c000000003 -m comment --comment "skein:skbr-c000000003" -j DROP
            -A SKEIN-BRIDGED -i skbr-c000000003 -o skbr-c000000003 -m comment --comment "skein:skbr-c000000003" -j DROP
            COMMIT
            """), iptables.RestoreInput("iptables-restore"));
    }

    [Fact]
    public void Applying_what_is_already_there_reads_and_writes_nothing()
    {
        var applied = BaseFilter + "\n" + """
            -A SKEIN-ACCEPT -i skbr-a000000001 ! -o skbr-a000000001 -m comment --comment "skein:skbr-a000000001" -j ACCEPT
            -A SKEIN-ISOLATION -i skbr-a000000001 ! -o skbr-a000000001 -m comment --comment "skein:skbr-a000000001" -j SKEIN-ISOLATION-OUT
            -A SKEIN-ISOLATION ! -i skbr-a000000001 -o skbr-a000000001 -m comment --comment "skein:skbr-a000000001" -j SKEIN-ISOLATION-IN
            -A SKEIN-ACCEPT -i skbr-a000000001 -o skbr-a000000001 -m comment --comment "skein:skbr-a000000001" -j ACCEPT
            -A SKEIN-BRIDGED -i skbr-a000000001 -o skbr-a000000001 -m comment --comment "skein:skbr-a000000001" -j ACCEPT
            -A SKEIN-ACCEPT -o skbr-a000000001 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "skein:skbr-a000000001" -j ACCEPT
            """;
        var nat = BaseNat + "\n" + """
            -A SKEIN-POSTROUTING -s 10.201.1.0/24 ! -o skbr-a000000001 -m comment --comment "skein:skbr-a000000001" -j MASQUERADE
            """;
        var (firewall, iptables) = Make(applied, nat, ipv6: false);

        firewall.ApplyNetwork(NetworkA);
        firewall.EnsureBaseChains();

        Assert.Empty(iptables.Restores);
    }

    [Fact]
    public void Reapplying_a_changed_network_replaces_exactly_its_own_rules_in_one_batch()
    {
        var filter = BaseFilter + "\n" + """
            -A SKEIN-ACCEPT -i skbr-a000000001 -o skbr-a000000001 -m comment --comment "skein:skbr-a000000001" -j ACCEPT
            -A SKEIN-BRIDGED -i skbr-a000000001 -o skbr-a000000001 -m comment --comment "skein:skbr-a000000001" -j ACCEPT
            -A SKEIN-ACCEPT -i skbr-a0000000012 -o skbr-a0000000012 -m comment --comment "skein:skbr-a0000000012" -j ACCEPT
            -A SKEIN-BRIDGED -i skbr-a0000000012 -o skbr-a0000000012 -m comment --comment "skein:skbr-a0000000012" -j ACCEPT
            """;
        var (firewall, iptables) = Make(filter, BaseNat, ipv6: false);

        firewall.ApplyNetwork(NetworkA with { Internal = true });

        Assert.Equal(Lines("""
            *filter
            -D SKEIN-ACCEPT -i skbr-a000000001 -o skbr-a000000001 -m comment --comment "skein:skbr-a000000001" -j ACCEPT
            -D SKEIN-BRIDGED -i skbr-a000000001 -o skbr-a000000001 -m comment --comment "skein:skbr-a000000001" -j ACCEPT
            -A SKEIN-ISOLATION -i skbr-a000000001 ! -o skbr-a000000001 -m comment --comment "skein:skbr-a000000001" -j DROP
            -A SKEIN-ISOLATION ! -i skbr-a000000001 -o skbr-a000000001 -m comment --comment "skein:skbr-a000000001" -j DROP
            -A SKEIN-ACCEPT -i skbr-a000000001 -o skbr-a000000001 -m comment --comment "skein:skbr-a000000001" -j ACCEPT
            -A SKEIN-BRIDGED -i skbr-a000000001 -o skbr-a000000001 -m comment --comment "skein:skbr-a000000001" -j ACCEPT
            COMMIT
            """), iptables.RestoreInput("iptables-restore"));
    }

    [Fact]
    public void Removing_deletes_only_rules_carrying_exactly_that_owners_comment()
    {
        var filter = BaseFilter + "\n" + """
            -A SKEIN-ACCEPT -i skbr-a000000001 -o skbr-a000000001 -m comment --comment "skein:skbr-a000000001" -j ACCEPT
            -A SKEIN-BRIDGED -i skbr-a000000001 -o skbr-a000000001 -m comment --comment "skein:skbr-a000000001" -j ACCEPT
            -A SKEIN-ACCEPT -d 10.201.1.2/32 ! -i skbr-a000000001 -o skbr-a000000001 -p tcp -m tcp --dport 80 -m comment --comment "skein:ep:e1" -j ACCEPT
            -A SKEIN-ACCEPT -d 10.201.1.3/32 ! -i skbr-a000000001 -o skbr-a000000001 -p tcp -m tcp --dport 80 -m comment --comment "skein:ep:e10" -j ACCEPT
            """;
        var (firewall, iptables) = Make(filter, BaseNat, ipv6: false);

        firewall.RemovePortMappings("e1");
        firewall.RemovePortMappings("e3");
        firewall.RemoveNetwork("skbr-b000000002");

        Assert.Equal(Lines("""
            *filter
            -D SKEIN-ACCEPT -d 10.201.1.2/32 ! -i skbr-a000000001 -o skbr-a000000001 -p tcp -m tcp --dport 80 -m comment --comment "skein:ep:e1" -j ACCEPT
            COMMIT
            """), iptables.RestoreInput("iptables-restore"));
    }

    [Fact]
    public void Removing_on_a_host_skein_never_touched_creates_nothing()
    {
        var (firewall, iptables) = Make();

        firewall.RemoveNetwork(BridgeA);
        firewall.RemovePortMappings("e1");

        Assert.Empty(iptables.Restores);
    }

    [Fact]
    public void Publishing_on_loopback_dnats_the_hosts_loopback_masquerades_it_and_guards_loopback_from_bridges()
    {
        var raw = """
            -P PREROUTING ACCEPT
            -P OUTPUT ACCEPT
            """;
        var iptables = new ScriptedIptables(BaseFilter, BaseNat, raw: raw);
        var firewall = new IptablesFirewall(new IptablesOptions { PublishOnLoopback = true, EnableIpv6 = false }, iptables);

        firewall.ApplyNetwork(NetworkA);

        Assert.Equal(Lines("""
            *filter
            -A SKEIN-ISOLATION -i skbr-a000000001 ! -o skbr-a000000001 -m comment --comment "skein:skbr-a000000001" -j SKEIN-ISOLATION-OUT
            -A SKEIN-ISOLATION ! -i skbr-a000000001 -o skbr-a000000001 -m comment --comment "skein:skbr-a000000001" -j SKEIN-ISOLATION-IN
            -A SKEIN-ACCEPT -i skbr-a000000001 -o skbr-a000000001 -m comment --comment "skein:skbr-a000000001" -j ACCEPT
            -A SKEIN-BRIDGED -i skbr-a000000001 -o skbr-a000000001 -m comment --comment "skein:skbr-a000000001" -j ACCEPT
            -A SKEIN-ACCEPT -o skbr-a000000001 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "skein:skbr-a000000001" -j ACCEPT
            -A SKEIN-ACCEPT -i skbr-a000000001 ! -o skbr-a000000001 -m comment --comment "skein:skbr-a000000001" -j ACCEPT
            COMMIT
            *nat
            -D OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j SKEIN-DNAT
            -A OUTPUT -m addrtype --dst-type LOCAL -j SKEIN-DNAT
            -A SKEIN-POSTROUTING -s 10.201.1.0/24 ! -o skbr-a000000001 -m comment --comment "skein:skbr-a000000001" -j MASQUERADE
            -A SKEIN-POSTROUTING -s 127.0.0.0/8 -o skbr-a000000001 -m comment --comment "skein:skbr-a000000001" -j MASQUERADE
            COMMIT
            *raw
            :SKEIN-LOCALNET - [0:0]
            -A SKEIN-LOCALNET -d 127.0.0.0/8 -i skbr-+ -j DROP
            -A PREROUTING -j SKEIN-LOCALNET
            COMMIT
            """), iptables.RestoreInput("iptables-restore"));
    }

    [Fact]
    public void Once_the_tables_were_read_removing_an_endpoint_that_published_nothing_runs_no_command()
    {
        var (firewall, iptables) = Make(BaseFilter, BaseNat);
        firewall.EnsureBaseChains();
        var afterFirstRead = iptables.Commands.Count;

        firewall.RemovePortMappings("e7");
        firewall.RemoveNetwork("skbr-b000000002");
        Assert.Equal(afterFirstRead, iptables.Commands.Count);

        // What skein publishes is looked up again when removed.
        firewall.ApplyPortMappings(EndpointE1);
        var afterApply = iptables.Commands.Count;
        firewall.RemovePortMappings("e1");
        Assert.True(iptables.Commands.Count > afterApply);
    }

    [Fact]
    public void After_a_failure_the_tables_are_read_again_before_anything_is_skipped()
    {
        var (firewall, iptables) = Make(BaseFilter, BaseNat, ipv6: false);
        firewall.EnsureBaseChains();
        iptables.RefuseRestores = 2;
        Assert.Throws<FirewallCommandException>(() => firewall.ApplyPortMappings(EndpointE1));
        var afterFailure = iptables.Commands.Count;

        firewall.RemovePortMappings("e1");

        Assert.True(iptables.Commands.Count > afterFailure);
    }

    [Fact]
    public void Reconcile_rewrites_owned_chains_that_differ_whole_and_keeps_those_that_match()
    {
        var filter = BaseFilter + "\n" + """
            -A SKEIN-ISOLATION -i skbr-a000000001 ! -o skbr-a000000001 -m comment --comment "skein:skbr-a000000001" -j SKEIN-ISOLATION-OUT
            -A SKEIN-ISOLATION ! -i skbr-a000000001 -o skbr-a000000001 -m comment --comment "skein:skbr-a000000001" -j SKEIN-ISOLATION-IN
            -A SKEIN-ACCEPT -s 192.0.2.79/32 -j ACCEPT
            -A SKEIN-ACCEPT -i skbr-z000000009 -o skbr-z000000009 -m comment --comment "skein:skbr-z000000009" -j ACCEPT
            -A SKEIN-BRIDGED -i skbr-z000000009 -o skbr-z000000009 -m comment --comment "skein:skbr-z000000009" -j ACCEPT
            """;
        var (firewall, iptables) = Make(filter, BaseNat, ipv6: false);

        firewall.Reconcile([NetworkA], [EndpointE1 with { Ports = [EndpointE1.Ports[0]] }]);

        Assert.Equal(Lines("""
            *filter
            :SKEIN-ACCEPT - [0:0]
            :SKEIN-BRIDGED - [0:0]
            -A SKEIN-ACCEPT -i skbr-a000000001 -o skbr-a000000001 -m comment --comment "skein:skbr-a000000001" -j ACCEPT
            -A SKEIN-ACCEPT -o skbr-a000000001 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "skein:skbr-a000000001" -j ACCEPT
            -A SKEIN-ACCEPT -i skbr-a000000001 ! -o skbr-a000000001 -m comment --comment "skein:skbr-a000000001" -j ACCEPT
            -A SKEIN-ACCEPT -d 10.201.1.2/32 ! -i skbr-a000000001 -o skbr-a000000001 -p tcp -m tcp --dport 80 -m comment --comment "skein:ep:e1" -j ACCEPT
            -A SKEIN-BRIDGED -i skbr-a000000001 -o skbr-a000000001 -m comment --comment "skein:skbr-a000000001" -j ACCEPT
            COMMIT
            *nat
            :SKEIN-DNAT - [0:0]
            :SKEIN-POSTROUTING - [0:0]
            -A SKEIN-DNAT -p tcp -m tcp --dport 8080 -m comment --comment "skein:ep:e1" -j DNAT --to-destination 10.201.1.2:80
            -A SKEIN-POSTROUTING -s 10.201.1.0/24 ! -o skbr-a000000001 -m comment --comment "skein:skbr-a000000001" -j MASQUERADE
            -A SKEIN-POSTROUTING -s 10.201.1.2/32 -d 10.201.1.2/32 -p tcp -m tcp --dport 80 -m comment --comment "skein:ep:e1" -j MASQUERADE
            COMMIT
            """), iptables.RestoreInput("iptables-restore"));
    }

    [Theory]
    // No DOCKER-USER: skein's jump goes first.
    [InlineData("-A FORWARD -i eth9 -j ACCEPT", "-I FORWARD 1 -j SKEIN-FORWARD")]
    // DOCKER-USER first: skein's jump goes right after it.
    [InlineData("-A FORWARD -j DOCKER-USER|-A FORWARD -i docker0 ! -o docker0 -j ACCEPT", "-I FORWARD 2 -j SKEIN-FORWARD")]
    // skein's jump ahead of DOCKER-USER: moved behind it.
    [InlineData("-A FORWARD -j SKEIN-FORWARD|-A FORWARD -j DOCKER-USER", "-D FORWARD -j SKEIN-FORWARD|-I FORWARD 2 -j SKEIN-FORWARD")]
    // dockerd put its own rules between: skein's jump moves up to right after DOCKER-USER.
    [InlineData("-A FORWARD -j DOCKER-USER|-A FORWARD -j DOCKER-ISOLATION-STAGE-1|-A FORWARD -j SKEIN-FORWARD",
        "-D FORWARD -j SKEIN-FORWARD|-I FORWARD 2 -j SKEIN-FORWARD")]
    // Twice: one is left, in the right place.
    [InlineData("-A FORWARD -j SKEIN-FORWARD|-A FORWARD -j DOCKER-USER|-A FORWARD -j SKEIN-FORWARD",
        "-D FORWARD -j SKEIN-FORWARD|-D FORWARD -j SKEIN-FORWARD|-I FORWARD 2 -j SKEIN-FORWARD")]
    public void The_forward_jump_is_placed_right_after_DOCKER_USER(string forwardRules, string expected)
    {
        var filter = BaseFilter.Replace("-A FORWARD -j DOCKER-USER\n-A FORWARD -j SKEIN-FORWARD\n-A FORWARD -i docker0 ! -o docker0 -j ACCEPT\n", "")
            + "\n" + forwardRules.Replace('|', '\n');
        var (firewall, iptables) = Make(filter, BaseNat, ipv6: false);

        firewall.EnsureBaseChains();

        Assert.Equal(Lines("*filter\n" + expected.Replace('|', '\n') + "\nCOMMIT"), iptables.RestoreInput("iptables-restore"));
    }

    [Fact]
    public void A_damaged_static_chain_is_rewritten_and_a_duplicate_nat_jump_removed()
    {
        var filter = BaseFilter.Replace("-A SKEIN-ISOLATION-OUT -o docker0 -j DROP\n", "");
        var nat = BaseNat + "\n-A POSTROUTING -j SKEIN-POSTROUTING";
        var (firewall, iptables) = Make(filter, nat, ipv6: false);

        firewall.EnsureBaseChains();

        Assert.Equal(Lines("""
            *filter
            :SKEIN-ISOLATION-OUT - [0:0]
            -A SKEIN-ISOLATION-OUT -o skbr-+ -j DROP
            -A SKEIN-ISOLATION-OUT -o docker0 -j DROP
            -A SKEIN-ISOLATION-OUT -o br-+ -j DROP
            COMMIT
            *nat
            -D POSTROUTING -j SKEIN-POSTROUTING
            COMMIT
            """), iptables.RestoreInput("iptables-restore"));
    }

    [Fact]
    public void A_refused_batch_is_retried_once_then_raised_with_command_exit_code_stderr_and_the_failing_line()
    {
        var (firewall, iptables) = Make(ipv6: false);
        iptables.RefuseRestores = 2;

        var error = Assert.Throws<FirewallCommandException>(() => firewall.ApplyNetwork(NetworkA));

        Assert.Equal("iptables-restore --noflush -w", error.Command);
        Assert.Equal(1, error.ExitCode);
        Assert.Contains("line 2 failed", error.StandardError);
        Assert.Equal(":SKEIN-ISOLATION - [0:0]", error.FailedInputLine);
        Assert.Contains("[input: :SKEIN-ISOLATION - [0:0]]", error.Message);
        Assert.Equal(2, iptables.Restores.Count);
    }

    [Fact]
    public void A_race_with_another_writer_is_survived_by_one_retry()
    {
        var (firewall, iptables) = Make(ipv6: false);
        iptables.RefuseRestores = 1;

        firewall.ApplyNetwork(NetworkA);

        Assert.Equal(2, iptables.Restores.Count);
    }

    [Fact]
    public void The_command_prefix_comes_before_every_command()
    {
        var iptables = new ScriptedIptablesBehindPrefix();
        var firewall = new IptablesFirewall(new IptablesOptions { CommandPrefix = ["nsenter", "--net=/run/netns/x"], EnableIpv6 = false }, iptables);

        firewall.ApplyNetwork(NetworkA);

        Assert.All(iptables.Commands, c => Assert.Equal(["nsenter", "--net=/run/netns/x"], c.Take(2)));
        Assert.Contains(iptables.Commands, c => c[2] == "iptables-restore");
    }

    [Fact]
    public void A_host_port_another_endpoint_publishes_is_refused_as_a_conflict_before_anything_is_written()
    {
        var nat = BaseNat + "\n" + """
            -A SKEIN-DNAT -p tcp -m tcp --dport 8080 -m comment --comment "skein:ep:e1" -j DNAT --to-destination 10.201.1.2:80
            -A SKEIN-DNAT -d 192.0.2.1/32 -p udp -m udp --dport 5353:5360 -m comment --comment "skein:ep:e1" -j DNAT --to-destination 10.201.1.2:53
            """;
        var (firewall, iptables) = Make(BaseFilter, nat);
        EndpointPorts Publishing(params PortMapping[] ports) => new("e2", BridgeA, IPAddress.Parse("10.201.1.3"), null, ports);

        var error = Assert.Throws<SkeinException>(() => firewall.ApplyPortMappings(Publishing(new PortMapping(ProtocolType.Tcp, 81, 8080, 0, IPAddress.Parse("192.0.2.9")))));
        Assert.Equal(ErrorKind.Conflict, error.Kind);
        Assert.Contains("host port 192.0.2.9:8080/tcp of endpoint e2 is already published by endpoint e1 (0.0.0.0:8080/tcp)", error.Message);
        Assert.Throws<SkeinException>(() => firewall.ApplyPortMappings(Publishing(new PortMapping(ProtocolType.Udp, 53, 5300, 5353, null))));
        Assert.Empty(iptables.Restores);

        // Another protocol, another host address, a port outside the range, or the same endpoint again: fine.
        firewall.ApplyPortMappings(Publishing(new PortMapping(ProtocolType.Udp, 80, 8080, 0, null), new(ProtocolType.Udp, 53, 5353, 0, IPAddress.Parse("192.0.2.2")),
            new(ProtocolType.Udp, 53, 5361, 0, null), new(ProtocolType.Tcp, 80, 8080, 0, IPAddress.Parse("2001:db8::1"))));
        firewall.ApplyPortMappings(EndpointE1);
        // e2: one IPv4 batch (it has no IPv6 address); e1: its IPv4 filter rules and its IPv6 accepts.
        Assert.Equal(["iptables-restore", "iptables-restore", "ip6tables-restore"], iptables.Restores.Select(r => r.Command));
    }

    [Fact]
    public void Reconcile_with_two_records_claiming_one_host_port_programs_both_and_logs_the_conflict()
    {
        var log = new List<string>();
        var iptables = new ScriptedIptables(BaseFilter, BaseNat);
        var firewall = new IptablesFirewall(new IptablesOptions { EnableIpv6 = false, Log = log.Add }, iptables);

        firewall.Reconcile([NetworkA], [EndpointE1, EndpointE1 with { EndpointId = "e2", ContainerIPv4 = IPAddress.Parse("10.201.1.3") }]);

        Assert.Contains(log, l => l.Contains("conflict: host port 0.0.0.0:8080/tcp (skein:ep:e1) overlaps 0.0.0.0:8080/tcp (skein:ep:e2)"));
        Assert.Contains("--to-destination 10.201.1.3:80", iptables.RestoreInput("iptables-restore"));
    }

    [Fact]
    public void One_endpoint_publishing_a_host_port_twice_is_a_conflict()
    {
        var (firewall, iptables) = Make();

        var error = Assert.Throws<SkeinException>(() => firewall.ApplyPortMappings(EndpointE1 with
        {
            Ports = [new(ProtocolType.Tcp, 80, 8080, 8090, null), new(ProtocolType.Tcp, 81, 8085, 0, IPAddress.Parse("192.0.2.1"))],
        }));

        Assert.Equal(ErrorKind.Conflict, error.Kind);
        Assert.Contains("publishes host port 0.0.0.0:8080-8090/tcp twice", error.Message);
        Assert.Empty(iptables.Commands);
    }

    [Fact]
    public void The_vxlan_filter_lets_listed_vteps_through_first_in_INPUT_and_drops_the_rest_per_family()
    {
        var (firewall, iptables) = Make(BaseFilter, BaseNat);

        firewall.ApplyVxlanPeers(4789, [IPAddress.Parse("198.18.0.2"), IPAddress.Parse("fd00:18::2"), IPAddress.Parse("198.18.0.1"), IPAddress.Parse("198.18.0.2")]);

        Assert.Equal(Lines("""
            *filter
            :SKEIN-VXLAN - [0:0]
            -A SKEIN-VXLAN -s 198.18.0.1/32 -j RETURN
            -A SKEIN-VXLAN -s 198.18.0.2/32 -j RETURN
            -A SKEIN-VXLAN -j DROP
            -I INPUT 1 -p udp -m udp --dport 4789 -j SKEIN-VXLAN
            COMMIT
            """), iptables.RestoreInput("iptables-restore"));
        Assert.Equal(Lines("""
            *filter
            :SKEIN-VXLAN - [0:0]
            -A SKEIN-VXLAN -s fd00:18::2/128 -j RETURN
            -A SKEIN-VXLAN -j DROP
            -I INPUT 1 -p udp -m udp --dport 4789 -j SKEIN-VXLAN
            COMMIT
            """), iptables.RestoreInput("ip6tables-restore"));
    }

    [Fact]
    public void A_new_vxlan_port_moves_the_jump_and_removal_deletes_jump_and_chain()
    {
        var filter = BaseFilter + "\n" + """
            -N SKEIN-VXLAN
            -A INPUT -p udp -m udp --dport 4789 -j SKEIN-VXLAN
            -A SKEIN-VXLAN -s 198.18.0.1/32 -j RETURN
            -A SKEIN-VXLAN -j DROP
            """;
        var (firewall, iptables) = Make(filter, BaseNat, ipv6: false);

        firewall.ApplyVxlanPeers(4790, [IPAddress.Parse("198.18.0.1")]);
        firewall.RemoveVxlanPeers();

        Assert.Equal(
        [
            Lines("""
                *filter
                -D INPUT -p udp -m udp --dport 4789 -j SKEIN-VXLAN
                -I INPUT 1 -p udp -m udp --dport 4790 -j SKEIN-VXLAN
                COMMIT
                """),
            Lines("""
                *filter
                :SKEIN-VXLAN - [0:0]
                -D INPUT -p udp -m udp --dport 4789 -j SKEIN-VXLAN
                -X SKEIN-VXLAN
                COMMIT
                """),
        ], iptables.Restores.Select(r => r.Input));
    }

    [Fact]
    public void Vxlan_peers_that_cannot_be_programmed_are_refused()
    {
        var (firewall, iptables) = Make(ipv6: false);

        Assert.Equal(ErrorKind.Invalid, Assert.Throws<SkeinException>(() => firewall.ApplyVxlanPeers(0, [])).Kind);
        Assert.Contains("IPv6 firewall is off", Assert.Throws<SkeinException>(() => firewall.ApplyVxlanPeers(4789, [IPAddress.Parse("fd00::1")])).Message);
        Assert.Empty(iptables.Commands);
    }

    public static TheoryData<string, Action<IFirewall>> BadInputs => new()
    {
        { "bridge name is empty", f => f.RemoveNetwork("") },
        { "not a skein bridge name", f => f.RemoveNetwork("docker0") },
        { "not a skein bridge name", f => f.RemoveNetwork("skbr-") },
        { "longer than 15", f => f.RemoveNetwork("skbr-0123456789a") },
        { "may only hold", f => f.ApplyNetwork(NetworkA with { BridgeName = "skbr-a\n-F" }) },
        { "may only hold", f => f.ApplyNetwork(NetworkA with { BridgeName = "skbr-a b" }) },
        { "endpoint id 'E1'", f => f.RemovePortMappings("E1") },
        { "endpoint id", f => f.ApplyPortMappings(EndpointE1 with { EndpointId = "e1\" -j ACCEPT" }) },
        { "protocol Icmp", f => f.ApplyPortMappings(EndpointE1 with { Ports = [new(ProtocolType.Icmp, 80, 8080, 0, null)] }) },
        { "container port 0", f => f.ApplyPortMappings(EndpointE1 with { Ports = [new(ProtocolType.Tcp, 0, 8080, 0, null)] }) },
        { "host port 0", f => f.ApplyPortMappings(EndpointE1 with { Ports = [new(ProtocolType.Tcp, 80, 0, 0, null)] }) },
        { "ends (8079) before it starts (8080)", f => f.ApplyPortMappings(EndpointE1 with { Ports = [new(ProtocolType.Tcp, 80, 8080, 8079, null)] }) },
        { "no address", f => f.ApplyPortMappings(EndpointE1 with { ContainerIPv4 = null, ContainerIPv6 = null }) },
        { "not an IPv4 address", f => f.ApplyPortMappings(EndpointE1 with { ContainerIPv4 = IPAddress.Parse("fd00::2") }) },
        { "not an IPv6 address", f => f.ApplyPortMappings(EndpointE1 with { ContainerIPv6 = IPAddress.Parse("10.0.0.2") }) },
        { "more than one network record", f => f.Reconcile([NetworkA, NetworkA with { Internal = true }], []) },
        { "more than one record", f => f.Reconcile([], [EndpointE1, EndpointE1]) },
        { "not a skein bridge name", f => f.Reconcile([NetworkA, NetworkA with { BridgeName = "eth0" }], []) },
    };

    [Theory]
    [MemberData(nameof(BadInputs))]
    public void Bad_input_is_refused_with_a_message_naming_it_before_any_command_runs(string expectedText, Action<IFirewall> call)
    {
        var (firewall, iptables) = Make();

        var error = Assert.Throws<SkeinException>(() => call(firewall));

        Assert.Equal(ErrorKind.Invalid, error.Kind);
        Assert.Contains(expectedText, error.Message);
        Assert.Empty(iptables.Commands);
    }

    [Theory]
    [InlineData("skein")]
    [InlineData("SKEIN-WAY-TOO-LONG-PREFIX")]
    [InlineData("SK EIN")]
    [InlineData("")]
    public void A_chain_prefix_iptables_cannot_take_is_refused(string prefix)
    {
        Assert.Throws<ArgumentException>(() => new IptablesFirewall(new IptablesOptions { ChainPrefix = prefix }));
    }

    [Fact]
    public void Another_chain_prefix_renames_every_chain_and_jump()
    {
        var iptables = new ScriptedIptables();
        var firewall = new IptablesFirewall(new IptablesOptions { ChainPrefix = "SKEIN2", EnableIpv6 = false }, iptables);

        firewall.ApplyNetwork(NetworkA);

        var text = iptables.RestoreInput("iptables-restore");
        Assert.Contains("-I FORWARD 2 -j SKEIN2-FORWARD", text);
        Assert.Contains("-j SKEIN2-ISOLATION-OUT", text);
        Assert.DoesNotContain("SKEIN-", text);
    }

    [Fact]
    public void Inspect_names_each_firewall_problem_in_words_and_reports_kernel_switches_as_read()
    {
        var iptables = new ScriptedIptables(ScriptedIptables.DockerFilter, ScriptedIptables.EmptyNat);
        var firewall = new IptablesFirewall(new IptablesOptions
        {
            ReadSysctl = name => name == "net.ipv4.ip_forward" ? "0" : "1",
        }, iptables);

        var report = firewall.Inspect();

        Assert.Equal(FirewallBackend.Nftables, report.Backend);
        Assert.Equal("DROP", report.ForwardPolicy);
        Assert.True(report.DockerUserPresent);
        Assert.False(report.ForwardJumpInPlace);
        Assert.False(report.IpForward);
        Assert.True(report.BridgeNfCallIptables);
        Assert.Contains(report.Problems, p => p.Contains("right after DOCKER-USER"));
        Assert.Contains(report.Problems, p => p.Contains("nat table"));
        Assert.DoesNotContain(report.Problems, p => p.Contains("ip_forward"));
        Assert.Contains(report.Problems, p => p.Contains("ip6tables FORWARD"));
        Assert.Empty(iptables.Restores);
    }

    [Fact]
    public void Listing_parser_reads_quoted_comments_with_spaces_and_escaped_quotes()
    {
        var listing = IptablesListing.Parse("""
            -P FORWARD DROP
            -N X
            -A X -s 10.0.0.0/8 -m comment --comment "a b \"c\"" -j ACCEPT
            -A X -m comment --comment skein:plain -j DROP
            """);

        Assert.Equal("DROP", listing.PolicyOf("FORWARD"));
        Assert.True(listing.HasChain("X"));
        Assert.Equal(["a b \"c\"", "skein:plain"], listing.RulesOf("X").Select(r => r.Comment));
        Assert.Equal("-D X -m comment --comment skein:plain -j DROP", listing.RulesOf("X")[1].DeleteLine);
    }

    /// <summary>Answers like <see cref="ScriptedIptables"/> for commands that come behind a two-word prefix.</summary>
    private sealed class ScriptedIptablesBehindPrefix : ICommandRunner
    {
        private readonly ScriptedIptables _inner = new();
        public List<IReadOnlyList<string>> Commands { get; } = [];

        public CommandResult Run(IReadOnlyList<string> argv, string? standardInput, TimeSpan timeout)
        {
            Commands.Add(argv);
            return _inner.Run(argv.Skip(2).ToList(), standardInput, timeout);
        }
    }
}
