using System.Net;
using System.Net.Sockets;
using Skein.Driver.Firewall;
using Xunit.Abstractions;

namespace Skein.Driver.Tests.Firewall;

/// <summary>
/// The main behaviours again with the lab's "dockerd" and skein both on iptables-legacy (decisions #16: skein uses
/// whichever backend dockerd uses), proving the rendered rules also read back unchanged from the legacy backend.
/// </summary>
public sealed class IptablesFirewallLegacyKernelTests(LegacyFirewallLabFixture fixture, ITestOutputHelper output)
    : IClassFixture<LegacyFirewallLabFixture>
{
    private FirewallLab Begin(out IptablesFirewall firewall, RecordingRunner? recorder = null)
    {
        Skip.If(fixture.SkipReason is not null, fixture.SkipReason);
        var lab = fixture.Lab;
        firewall = recorder is null
            ? new IptablesFirewall(lab.Options(output.WriteLine))
            : new IptablesFirewall(lab.Options(output.WriteLine), recorder);
        firewall.Reconcile([], []);
        return lab;
    }

    private static EndpointPorts PortsOfA1(FirewallLab lab) =>
        new("a1a1a1a1", lab.NetworkA.BridgeName, lab.A1.IPv4, lab.A1.IPv6,
            [new PortMapping(ProtocolType.Tcp, 80, 8080, 0, null), new PortMapping(ProtocolType.Udp, 53, 5353, 0, null)]);

    [SkippableFact]
    public void Forwarding_masquerade_published_ports_and_isolation_work_on_the_legacy_backend()
    {
        var lab = Begin(out var firewall);
        // Nothing landed in the other backend.
        Assert.DoesNotContain(TestShell.MustRun("nsenter", $"--net={lab.Host.Path}", "iptables-nft", "-S").Split('\n'), l => l.StartsWith("-A"));
        firewall.ApplyNetwork(lab.NetworkA);
        firewall.ApplyNetwork(lab.NetworkB);
        firewall.ApplyNetwork(lab.NetworkI);
        firewall.ApplyPortMappings(PortsOfA1(lab));

        Assert.True(NetProbe.Pings(lab.A1.Ns, lab.A2.IPv4));
        Assert.Equal(FirewallLab.HostOutside,
            NetProbe.TcpPeerSeenBy(lab.A1.Ns, lab.Outside, 9000, new IPEndPoint(FirewallLab.OutsideAddress, 9000), NetProbe.Allowed)?.Address);
        Assert.NotNull(NetProbe.TcpPeerSeenBy(lab.Outside, lab.A1.Ns, 80, new IPEndPoint(FirewallLab.HostOutside, 8080), NetProbe.Allowed));
        Assert.True(NetProbe.UdpExchange(lab.Outside, lab.A1.Ns, 53, new IPEndPoint(FirewallLab.HostOutside, 5353), NetProbe.Allowed).Answered);
        Assert.Null(NetProbe.UdpExchange(lab.A1.Ns, lab.B1.Ns, 7020, new IPEndPoint(lab.B1.IPv4, 7020), NetProbe.Blocked).ServerSawFrom);
        Assert.Null(NetProbe.TcpPeerSeenBy(lab.I1.Ns, lab.Outside, 9001, new IPEndPoint(FirewallLab.OutsideAddress, 9001), NetProbe.Blocked));

        firewall.RemovePortMappings("a1a1a1a1");
        Assert.Null(NetProbe.TcpPeerSeenBy(lab.Outside, lab.A1.Ns, 80, new IPEndPoint(FirewallLab.HostOutside, 8080), NetProbe.Blocked));
    }

    [SkippableFact]
    public void Rules_read_back_unchanged_from_the_legacy_backend_so_reapplying_writes_nothing()
    {
        var recorder = new RecordingRunner(ProcessCommandRunner.Instance);
        var lab = Begin(out var firewall, recorder);
        firewall.ApplyNetwork(lab.NetworkA);
        firewall.ApplyNetwork(lab.NetworkI);
        firewall.ApplyPortMappings(PortsOfA1(lab));
        var before = lab.AllRules();
        recorder.Calls.Clear();

        firewall.EnsureBaseChains();
        firewall.ApplyNetwork(lab.NetworkA);
        firewall.ApplyNetwork(lab.NetworkI);
        firewall.ApplyPortMappings(PortsOfA1(lab));
        firewall.Reconcile([lab.NetworkA, lab.NetworkI], [PortsOfA1(lab)]);

        Assert.Empty(recorder.RestoreInputs);
        Assert.Equal(before, lab.AllRules());
    }

    [SkippableFact]
    public void Inspect_reports_the_legacy_backend()
    {
        var lab = Begin(out var firewall);

        var report = firewall.Inspect();

        Assert.Equal(FirewallBackend.Legacy, report.Backend);
        Assert.Equal("DROP", report.ForwardPolicy);
        Assert.True(report.ForwardJumpInPlace);
        Assert.Empty(report.Problems);
        Assert.Contains("-A FORWARD -j DOCKER-USER\n-A FORWARD -j SKEIN-FORWARD", lab.Rules());
    }
}
