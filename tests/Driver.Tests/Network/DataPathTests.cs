using Skein.Driver.Network;
using Skein.Driver.Tests.TestSupport;
using static Skein.Driver.Tests.TestSupport.TraceBodies;

namespace Skein.Driver.Tests.Network;

/// <summary>
/// Does what Docker does after Join (moves SrcName into the container's namespace, renames it, configures it) with
/// namespaces the test owns, then sends traffic between them through skein's bridge and firewall.
/// </summary>
public sealed class DataPathTests
{
    [SkippableFact]
    public async Task Two_containers_on_one_network_reach_each_other_and_survive_a_plugin_restart()
    {
        Skip.IfNot(PluginTestHost.IsSupported, PluginTestHost.SkipReason);
        await using var host = await PluginTestHost.StartAsync();
        using var a = NetNs.Create();
        using var b = NetNs.Create();
        // dockerd's host: FORWARD policy DROP, so the bridge needs skein's own forwarding rules.
        host.Ns.Exec("iptables", "-P", "FORWARD", "DROP");
        host.Ns.Exec("sysctl", "-q", "-w", "net.ipv4.ip_forward=1");
        var net = NewId();
        var epA = NewId();
        var epB = NewId();
        await host.CallOkAsync("NetworkDriver.CreateNetwork", CreateNetwork(net));
        await JoinLikeDocker(host, a, net, epA, "10.123.0.2/24", "02:42:0a:7b:00:02");
        await JoinLikeDocker(host, b, net, epB, "10.123.0.3/24", "02:42:0a:7b:00:03");

        Assert.Equal(0, a.TryExec("ping", "-c", "1", "-W", "2", "10.123.0.3").ExitCode);
        Assert.Equal(0, b.TryExec("ping", "-c", "1", "-W", "2", "10.123.0.1").ExitCode);

        // A restart must neither recreate nor delete links of joined endpoints whose container side is elsewhere.
        await host.RestartAsync();
        Assert.Equal(LinkNames.Bridge(net), host.Link(LinkNames.HostVeth(epA))!["master"]!.GetValue<string>());
        Assert.Null(host.Link(LinkNames.ContainerVeth(epA)));
        Assert.Equal(0, a.TryExec("ping", "-c", "1", "-W", "2", "10.123.0.3").ExitCode);

        // The container stops: Docker moves the link back under its SrcName, then Leave and DeleteEndpoint.
        a.Exec("ip", "link", "set", "eth0", "down");
        a.Exec("ip", "link", "set", "eth0", "name", LinkNames.ContainerVeth(epA));
        a.Exec("ip", "link", "set", LinkNames.ContainerVeth(epA), "netns", host.Ns.Name);
        await host.CallOkAsync("NetworkDriver.Leave", Endpoint(net, epA));
        await host.CallOkAsync("NetworkDriver.DeleteEndpoint", Endpoint(net, epA));
        await LinkWait.AssertGoneAsync(host, LinkNames.HostVeth(epA), LinkNames.ContainerVeth(epA));

        // The other container's namespace dies: its pair goes with it; DeleteEndpoint still succeeds.
        b.Dispose();
        await host.CallOkAsync("NetworkDriver.Leave", Endpoint(net, epB));
        await host.CallOkAsync("NetworkDriver.DeleteEndpoint", Endpoint(net, epB));
        await host.CallOkAsync("NetworkDriver.DeleteNetwork", NetworkBody(net));
        await LinkWait.AssertNoSkeinLinksAsync(host);
    }

    [SkippableFact]
    public async Task Two_skein_networks_are_isolated_from_each_other()
    {
        Skip.IfNot(PluginTestHost.IsSupported, PluginTestHost.SkipReason);
        await using var host = await PluginTestHost.StartAsync();
        using var a = NetNs.Create();
        using var b = NetNs.Create();
        host.Ns.Exec("iptables", "-P", "FORWARD", "DROP");
        host.Ns.Exec("sysctl", "-q", "-w", "net.ipv4.ip_forward=1");
        var netA = NewId();
        var netB = NewId();
        await host.CallOkAsync("NetworkDriver.CreateNetwork", CreateNetwork(netA));
        await host.CallOkAsync("NetworkDriver.CreateNetwork", CreateNetwork(netB, "10.124.0.0/24", "10.124.0.1/24"));
        await JoinLikeDocker(host, a, netA, NewId(), "10.123.0.2/24", "02:42:0a:7b:00:02");
        await JoinLikeDocker(host, b, netB, NewId(), "10.124.0.2/24", "02:42:0a:7c:00:02");
        Assert.Equal(0, a.TryExec("ping", "-c", "1", "-W", "2", "10.123.0.1").ExitCode);
        Assert.NotEqual(0, a.TryExec("ping", "-c", "1", "-W", "1", "10.124.0.2").ExitCode);
    }

    private static async Task JoinLikeDocker(PluginTestHost host, NetNs container, string net, string ep, string address, string mac)
    {
        await host.CallOkAsync("NetworkDriver.CreateEndpoint", CreateEndpoint(net, ep, address, mac));
        var joined = (await host.CallOkAsync("NetworkDriver.Join", Join(net, ep))).Json!;
        var source = joined["InterfaceName"]!["SrcName"]!.GetValue<string>();
        var gateway = joined["Gateway"]!.GetValue<string>();
        host.Ns.Exec("ip", "link", "set", source, "netns", container.Name);
        container.Exec("ip", "link", "set", source, "name", "eth0");
        container.Exec("ip", "addr", "add", address, "dev", "eth0");
        container.Exec("ip", "link", "set", "eth0", "up");
        container.Exec("ip", "route", "add", "default", "via", gateway);
        await host.CallOkAsync("NetworkDriver.ProgramExternalConnectivity", ProgramExternalConnectivity(net, ep));
    }
}
