using Skein.Driver.Network;
using Skein.Driver.Network.State;
using Skein.Driver.Tests.TestSupport;
using Skein.Ipam.Store.Embedded;
using static Skein.Driver.Tests.TestSupport.TraceBodies;

namespace Skein.Driver.Tests.Network;

/// <summary>
/// Plugin restarts against the same namespace and state: what went missing is rebuilt, what no record owns is
/// removed, and calls for networks and endpoints created before the restart are answered.
/// </summary>
public sealed class RecoveryTests
{
    [SkippableFact]
    public async Task A_bridge_deleted_while_skein_was_down_is_rebuilt_and_its_ports_reattached()
    {
        Skip.IfNot(PluginTestHost.IsSupported, PluginTestHost.SkipReason);
        await using var host = await PluginTestHost.StartAsync();
        var net = NewId();
        var ep = NewId();
        var bridge = LinkNames.Bridge(net);
        await host.CallOkAsync("NetworkDriver.CreateNetwork", CreateNetwork(net));
        await host.CallOkAsync("NetworkDriver.CreateEndpoint", CreateEndpoint(net, ep));
        var rulesBefore = host.FirewallRules();
        Assert.Contains(bridge, rulesBefore);

        await host.RestartAsync(whileStopped: () =>
        {
            host.Ns.Exec("ip", "link", "del", bridge);
            // dockerd restarting rebuilds its chains; here the namespace's rules are simply gone.
            host.Ns.Exec("iptables", "-F", "FORWARD");
        });

        var rebuilt = host.Link(bridge);
        Assert.NotNull(rebuilt);
        Assert.Equal(["10.123.0.1/24"], host.Addresses(bridge));
        Assert.Contains("UP", rebuilt!["flags"]!.AsArray().Select(f => f!.GetValue<string>()));
        Assert.Equal("1", host.Ns.Exec("cat", $"/proc/sys/net/ipv4/conf/{bridge}/forwarding").Trim());
        Assert.Equal(bridge, host.Link(LinkNames.HostVeth(ep))!["master"]!.GetValue<string>());
        Assert.Contains(bridge, host.FirewallRules());

        // The network and endpoint from before the restart still answer.
        var joined = (await host.CallOkAsync("NetworkDriver.Join", Join(net, ep))).Json!;
        Assert.Equal(LinkNames.ContainerVeth(ep), joined["InterfaceName"]!["SrcName"]!.GetValue<string>());
        await host.CallOkAsync("NetworkDriver.Leave", Endpoint(net, ep));
        await host.CallOkAsync("NetworkDriver.DeleteEndpoint", Endpoint(net, ep));
        await host.CallOkAsync("NetworkDriver.DeleteNetwork", NetworkBody(net));
        await LinkWait.AssertNoSkeinLinksAsync(host);
    }

    [SkippableFact]
    public async Task Links_of_skein_shape_that_no_record_owns_are_deleted_at_start_and_nothing_else()
    {
        Skip.IfNot(PluginTestHost.IsSupported, PluginTestHost.SkipReason);
        await using var host = await PluginTestHost.StartAsync();
        var net = NewId();
        var ep = NewId();
        await host.CallOkAsync("NetworkDriver.CreateNetwork", CreateNetwork(net));
        await host.CallOkAsync("NetworkDriver.CreateEndpoint", CreateEndpoint(net, ep));

        await host.RestartAsync(whileStopped: () =>
        {
            host.Ns.Exec("ip", "link", "add", "skbr-0123456789", "type", "bridge");
            host.Ns.Exec("ip", "link", "add", "skv0123456789ab", "type", "veth", "peer", "name", "skc0123456789ab");
            host.Ns.Exec("ip", "link", "add", "skc00000000000f", "type", "bridge");
            host.Ns.Exec("ip", "link", "add", "keepme0", "type", "bridge");
            host.Ns.Exec("ip", "link", "add", "skbr-notmine", "type", "bridge");
        });

        var names = host.LinkNames();
        Assert.DoesNotContain("skbr-0123456789", names);
        Assert.DoesNotContain("skv0123456789ab", names);
        Assert.DoesNotContain("skc0123456789ab", names);
        Assert.DoesNotContain("skc00000000000f", names);
        Assert.Contains("keepme0", names);
        Assert.Contains("skbr-notmine", names);
        Assert.Contains(LinkNames.Bridge(net), names);
        Assert.Contains(LinkNames.HostVeth(ep), names);
        Assert.Contains(LinkNames.ContainerVeth(ep), names);
    }

    [SkippableFact]
    public async Task Records_written_before_a_crash_that_hit_before_the_kernel_work_are_completed_at_start()
    {
        Skip.IfNot(PluginTestHost.IsSupported, PluginTestHost.SkipReason);
        await using var host = await PluginTestHost.StartAsync();
        var net = NewId();
        var ep = NewId();

        // A crash right after the records were written: the store holds them, the kernel holds nothing.
        await host.RestartAsync(whileStopped: () => WriteRecords(host.StateDir, net, ep).GetAwaiter().GetResult());

        var bridge = LinkNames.Bridge(net);
        Assert.Equal(["10.77.0.1/24"], host.Addresses(bridge));
        Assert.Equal(bridge, host.Link(LinkNames.HostVeth(ep))!["master"]!.GetValue<string>());
        Assert.Equal("02:42:0a:4d:00:02", host.Link(LinkNames.ContainerVeth(ep))!["address"]!.GetValue<string>());

        // The engine's retry of the interrupted CreateEndpoint converges instead of failing.
        await host.CallOkAsync("NetworkDriver.CreateEndpoint", CreateEndpoint(net, ep, "10.77.0.2/24", "02:42:0a:4d:00:02"));
        await host.CallOkAsync("NetworkDriver.DeleteNetwork", NetworkBody(net));
        await LinkWait.AssertNoSkeinLinksAsync(host);
    }

    [SkippableFact]
    public async Task A_crash_after_deleting_the_record_but_before_the_links_leaves_nothing_after_restart()
    {
        Skip.IfNot(PluginTestHost.IsSupported, PluginTestHost.SkipReason);
        await using var host = await PluginTestHost.StartAsync();
        var net = NewId();
        var ep = NewId();
        await host.CallOkAsync("NetworkDriver.CreateNetwork", CreateNetwork(net));
        await host.CallOkAsync("NetworkDriver.CreateEndpoint", CreateEndpoint(net, ep));

        // Delete the records behind the plugin's back while it is down: the kernel still has everything.
        await host.RestartAsync(whileStopped: () => DeleteRecords(host.StateDir, net, ep).GetAwaiter().GetResult());

        Assert.Empty(host.SkeinLinkNames());
        Assert.DoesNotContain(LinkNames.Bridge(net), host.FirewallRules());
    }

    private static async Task WriteRecords(string stateDir, string net, string ep)
    {
        await using var store = await EmbeddedStore.OpenAsync(Path.Combine(stateDir, "store"));
        var state = new DriverStateStore(store);
        await state.PutNetworkAsync(new NetworkRecord
        {
            NetworkId = net, BridgeName = LinkNames.Bridge(net), Mtu = 1500, Internal = false, EnableIPv6 = false,
            IPv4Subnets = ["10.77.0.0/24"], IPv6Subnets = [], IPv4Gateways = ["10.77.0.1/24"], IPv6Gateways = [],
            GenericOptions = new Dictionary<string, string>(), CreatedAt = DateTimeOffset.UtcNow,
        }, CancellationToken.None);
        await state.PutEndpointAsync(new EndpointRecord
        {
            EndpointId = ep, NetworkId = net, HostVeth = LinkNames.HostVeth(ep), ContainerVeth = LinkNames.ContainerVeth(ep),
            MacAddress = "02:42:0a:4d:00:02", MacGenerated = false, IPv4Address = "10.77.0.2/24", CreatedAt = DateTimeOffset.UtcNow,
        }, CancellationToken.None);
    }

    private static async Task DeleteRecords(string stateDir, string net, string ep)
    {
        await using var store = await EmbeddedStore.OpenAsync(Path.Combine(stateDir, "store"));
        var state = new DriverStateStore(store);
        await state.DeleteEndpointAsync(ep, CancellationToken.None);
        await state.DeleteNetworkAsync(net, CancellationToken.None);
    }
}
