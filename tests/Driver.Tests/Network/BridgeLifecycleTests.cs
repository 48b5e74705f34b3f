using System.Net;
using System.Text.Json.Nodes;
using Skein.Driver.Network;
using Skein.Driver.Tests.TestSupport;
using static Skein.Driver.Tests.TestSupport.TraceBodies;

namespace Skein.Driver.Tests.Network;

/// <summary>
/// The whole plugin in-process against a scratch namespace, driven with the traces' exact bodies; the kernel is
/// checked with iproute2, an independent reader.
/// </summary>
public sealed class BridgeLifecycleTests
{
    [SkippableFact]
    public async Task Basic_trace_builds_and_removes_exactly_its_links()
    {
        Skip.IfNot(PluginTestHost.IsSupported, PluginTestHost.SkipReason);
        await using var host = await PluginTestHost.StartAsync();
        var net = NewId();
        var ep = NewId();
        var bridge = LinkNames.Bridge(net);
        var hostVeth = LinkNames.HostVeth(ep);
        var containerVeth = LinkNames.ContainerVeth(ep);

        Assert.Equal("{}", (await host.CallOkAsync("NetworkDriver.CreateNetwork", CreateNetwork(net))).Body);
        var bridgeLink = host.Link(bridge)!;
        Assert.Equal("bridge", bridgeLink["linkinfo"]?["info_kind"]?.GetValue<string>() ?? KindOf(host, bridge));
        Assert.Equal(1500, bridgeLink["mtu"]!.GetValue<int>());
        Assert.Contains("UP", bridgeLink["flags"]!.AsArray().Select(f => f!.GetValue<string>()));
        Assert.Equal(["10.123.0.1/24"], host.Addresses(bridge));
        Assert.Equal("1", host.Ns.Exec("cat", $"/proc/sys/net/ipv4/conf/{bridge}/forwarding").Trim());

        var created = await host.CallOkAsync("NetworkDriver.CreateEndpoint", CreateEndpoint(net, ep));
        // Docker gave the MAC: echoing anything back would make the engine roll the endpoint back.
        Assert.Equal("{}", created.Body);
        var hostSide = host.Link(hostVeth)!;
        Assert.Equal(bridge, hostSide["master"]!.GetValue<string>());
        Assert.Contains("UP", hostSide["flags"]!.AsArray().Select(f => f!.GetValue<string>()));
        // Hairpin, read back by iproute2: a container must reach its own published port through the host address.
        var port = JsonNode.Parse(host.Ns.BridgeJson("-d", "link", "show"))!.AsArray()
            .Single(p => p!["ifname"]!.GetValue<string>() == hostVeth)!;
        Assert.True(port["hairpin"]!.GetValue<bool>(), $"hairpin is off on {hostVeth}: {port.ToJsonString()}");
        var containerSide = host.Link(containerVeth)!;
        Assert.Equal("02:42:45:9b:78:95", containerSide["address"]!.GetValue<string>());
        Assert.Equal(1500, containerSide["mtu"]!.GetValue<int>());

        var joined = (await host.CallOkAsync("NetworkDriver.Join", Join(net, ep))).Json!;
        Assert.Equal(containerVeth, joined["InterfaceName"]!["SrcName"]!.GetValue<string>());
        Assert.Equal("eth", joined["InterfaceName"]!["DstPrefix"]!.GetValue<string>());
        Assert.Equal("10.123.0.1", joined["Gateway"]!.GetValue<string>());
        Assert.False(joined["DisableGatewayService"]!.GetValue<bool>());
        Assert.Null(joined["GatewayIPv6"]);

        await host.CallOkAsync("NetworkDriver.ProgramExternalConnectivity", ProgramExternalConnectivity(net, ep));
        var info = (await host.CallOkAsync("NetworkDriver.EndpointOperInfo", Endpoint(net, ep))).Json!;
        Assert.IsType<JsonObject>(info["Value"]);
        await host.CallOkAsync("NetworkDriver.RevokeExternalConnectivity", Endpoint(net, ep));
        await host.CallOkAsync("NetworkDriver.Leave", Endpoint(net, ep));
        await host.CallOkAsync("NetworkDriver.DeleteEndpoint", Endpoint(net, ep));
        await LinkWait.AssertGoneAsync(host, hostVeth, containerVeth);
        Assert.NotNull(host.Link(bridge));

        await host.CallOkAsync("NetworkDriver.DeleteNetwork", NetworkBody(net));
        Assert.Empty(host.SkeinLinkNames());
        Assert.Empty(host.Runtime.Driver.Networks);
        Assert.Empty(host.Runtime.Driver.Endpoints);
    }

    [SkippableFact]
    public async Task Every_call_repeated_gives_the_same_answer_and_the_same_kernel_state()
    {
        Skip.IfNot(PluginTestHost.IsSupported, PluginTestHost.SkipReason);
        await using var host = await PluginTestHost.StartAsync();
        var net = NewId();
        var ep = NewId();
        var calls = new (string Call, string Body)[]
        {
            ("NetworkDriver.CreateNetwork", CreateNetworkWithOptions(net)),
            ("NetworkDriver.CreateEndpoint", CreateEndpoint(net, ep, "10.50.1.1/16", "", ports: PublishedPorts, exposed: ExposedPorts)),
            ("NetworkDriver.Join", Join(net, ep, PublishedPorts, ExposedPorts)),
            ("NetworkDriver.ProgramExternalConnectivity", ProgramExternalConnectivity(net, ep, PublishedPorts, ExposedPorts)),
        };
        foreach (var (call, body) in calls)
        {
            var first = await host.CallOkAsync(call, body);
            var links = host.SkeinLinkNames();
            var rules = host.FirewallRules();
            var second = await host.CallOkAsync(call, body);
            Assert.Equal(first.Body, second.Body);
            Assert.Equal(links, host.SkeinLinkNames());
            Assert.Equal(Normalise(rules), Normalise(host.FirewallRules()));
        }
        foreach (var (call, body) in new[]
                 {
                     ("NetworkDriver.RevokeExternalConnectivity", Endpoint(net, ep)),
                     ("NetworkDriver.Leave", Endpoint(net, ep)),
                     ("NetworkDriver.DeleteEndpoint", Endpoint(net, ep)),
                     ("NetworkDriver.DeleteNetwork", NetworkBody(net)),
                 })
        {
            Assert.Equal("{}", (await host.CallOkAsync(call, body)).Body);
            Assert.Equal("{}", (await host.CallOkAsync(call, body)).Body);
        }
        await LinkWait.AssertNoSkeinLinksAsync(host);
    }

    [SkippableFact]
    public async Task A_missing_MAC_is_generated_once_returned_and_applied()
    {
        Skip.IfNot(PluginTestHost.IsSupported, PluginTestHost.SkipReason);
        await using var host = await PluginTestHost.StartAsync();
        var net = NewId();
        var ep = NewId();
        await host.CallOkAsync("NetworkDriver.CreateNetwork", CreateNetwork(net));
        var body = CreateEndpoint(net, ep, mac: "");
        var reply = (await host.CallOkAsync("NetworkDriver.CreateEndpoint", body)).Json!;
        var mac = reply["Interface"]!["MacAddress"]!.GetValue<string>();
        Assert.StartsWith("02:", mac);
        // Only the empty field is filled: the addresses Docker sent are not echoed.
        Assert.Null(reply["Interface"]!["Address"]);
        Assert.Equal(mac, host.Link(LinkNames.ContainerVeth(ep))!["address"]!.GetValue<string>());
        var again = (await host.CallOkAsync("NetworkDriver.CreateEndpoint", body)).Json!;
        Assert.Equal(mac, again["Interface"]!["MacAddress"]!.GetValue<string>());
    }

    [SkippableFact]
    public async Task The_MTU_option_and_its_skein_alias_set_bridge_and_veths()
    {
        Skip.IfNot(PluginTestHost.IsSupported, PluginTestHost.SkipReason);
        await using var host = await PluginTestHost.StartAsync();
        var docker = NewId();
        var alias = NewId();
        var ep = NewId();
        await host.CallOkAsync("NetworkDriver.CreateNetwork", CreateNetwork(docker, generic: """{"com.docker.network.driver.mtu": "1400"}"""));
        await host.CallOkAsync("NetworkDriver.CreateNetwork", CreateNetwork(alias, "10.125.0.0/24", "10.125.0.1/24", """{"skein.mtu": "9000"}"""));
        Assert.Equal(1400, host.Link(LinkNames.Bridge(docker))!["mtu"]!.GetValue<int>());
        Assert.Equal(9000, host.Link(LinkNames.Bridge(alias))!["mtu"]!.GetValue<int>());
        await host.CallOkAsync("NetworkDriver.CreateEndpoint", CreateEndpoint(docker, ep));
        Assert.Equal(1400, host.Link(LinkNames.HostVeth(ep))!["mtu"]!.GetValue<int>());
        Assert.Equal(1400, host.Link(LinkNames.ContainerVeth(ep))!["mtu"]!.GetValue<int>());

        var tooSmall = await host.CallAsync("NetworkDriver.CreateNetwork", CreateNetwork(NewId(), "10.126.0.0/24", "10.126.0.1/24", """{"com.docker.network.driver.mtu": "60"}"""));
        Assert.Equal(HttpStatusCode.BadRequest, tooSmall.Status);
        Assert.Contains("com.docker.network.driver.mtu", tooSmall.Err);
    }

    [SkippableFact]
    public async Task Internal_network_returns_no_gateway_and_disables_the_gateway_service()
    {
        Skip.IfNot(PluginTestHost.IsSupported, PluginTestHost.SkipReason);
        await using var host = await PluginTestHost.StartAsync();
        var net = NewId();
        var ep = NewId();
        await host.CallOkAsync("NetworkDriver.CreateNetwork", CreateInternalNetwork(net));
        await host.CallOkAsync("NetworkDriver.CreateEndpoint", CreateEndpoint(net, ep, "10.124.0.2/24"));
        var joined = (await host.CallOkAsync("NetworkDriver.Join", Join(net, ep))).Json!;
        Assert.Null(joined["Gateway"]);
        Assert.True(joined["DisableGatewayService"]!.GetValue<bool>());
        // internal.jsonl revokes an endpoint that was never programmed.
        await host.CallOkAsync("NetworkDriver.RevokeExternalConnectivity", Endpoint(net, ep));
    }

    [SkippableFact]
    public async Task Dual_stack_network_puts_both_gateways_on_the_bridge_without_DAD()
    {
        Skip.IfNot(PluginTestHost.IsSupported, PluginTestHost.SkipReason);
        await using var host = await PluginTestHost.StartAsync();
        var net = NewId();
        var ep = NewId();
        await host.CallOkAsync("NetworkDriver.CreateNetwork", CreateDualStackNetwork(net));
        var bridge = LinkNames.Bridge(net);
        Assert.Contains("10.60.0.1/24", host.Addresses(bridge));
        Assert.Contains("fd60::1/64", host.Addresses(bridge));
        var v6 = host.Ns.IpJson("-6", "addr", "show", "dev", bridge);
        Assert.Contains("\"nodad\":true", v6.Replace(" ", ""));
        await host.CallOkAsync("NetworkDriver.CreateEndpoint", CreateEndpoint(net, ep, "10.60.0.2/24", addressV6: "fd60::1:5/64"));
        var joined = (await host.CallOkAsync("NetworkDriver.Join", Join(net, ep))).Json!;
        Assert.Equal("10.60.0.1", joined["Gateway"]!.GetValue<string>());
        Assert.Equal("fd60::1", joined["GatewayIPv6"]!.GetValue<string>());
    }

    [SkippableFact]
    public async Task IPv6_disabled_on_the_host_gives_a_clear_error_and_leaves_nothing()
    {
        Skip.IfNot(PluginTestHost.IsSupported, PluginTestHost.SkipReason);
        await using var host = await PluginTestHost.StartAsync();
        host.Ns.Exec("sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1");
        var reply = await host.CallAsync("NetworkDriver.CreateNetwork", CreateDualStackNetwork(NewId()));
        Assert.Equal(HttpStatusCode.Conflict, reply.Status);
        Assert.Contains("disable_ipv6", reply.Err);
        Assert.Empty(host.SkeinLinkNames());
        Assert.Empty(host.Runtime.Driver.Networks);
    }

    [SkippableFact]
    public async Task Published_ports_are_programmed_at_ProgramExternalConnectivity_and_removed_at_revoke()
    {
        Skip.IfNot(PluginTestHost.IsSupported, PluginTestHost.SkipReason);
        await using var host = await PluginTestHost.StartAsync();
        var net = NewId();
        var ep = NewId();
        await host.CallOkAsync("NetworkDriver.CreateNetwork", CreateNetworkWithOptions(net));
        await host.CallOkAsync("NetworkDriver.CreateEndpoint", CreateEndpoint(net, ep, "10.50.1.1/16", "02:42:3a:10:65:c6", ports: PublishedPorts, exposed: ExposedPorts));
        await host.CallOkAsync("NetworkDriver.Join", Join(net, ep, PublishedPorts, ExposedPorts));
        Assert.DoesNotContain("18081", host.FirewallRules());
        await host.CallOkAsync("NetworkDriver.ProgramExternalConnectivity", ProgramExternalConnectivity(net, ep, PublishedPorts, ExposedPorts));
        var rules = host.FirewallRules();
        Assert.Contains("--dport 18081", rules);
        Assert.Contains("--dport 18082", rules);
        Assert.Contains("10.50.1.1", rules);

        await host.CallOkAsync("NetworkDriver.RevokeExternalConnectivity", Endpoint(net, ep));
        Assert.DoesNotContain("18081", host.FirewallRules());
        Assert.DoesNotContain("18082", host.FirewallRules());

        // The same port published by a second endpoint while the first holds it is a conflict named in Err.
        await host.CallOkAsync("NetworkDriver.ProgramExternalConnectivity", ProgramExternalConnectivity(net, ep, PublishedPorts, ExposedPorts));
        var other = NewId();
        await host.CallOkAsync("NetworkDriver.CreateEndpoint", CreateEndpoint(net, other, "10.50.1.2/16", "02:42:3a:10:65:c7"));
        var clash = await host.CallAsync("NetworkDriver.ProgramExternalConnectivity", ProgramExternalConnectivity(net, other, PublishedPorts, ExposedPorts));
        Assert.Equal(HttpStatusCode.Conflict, clash.Status);
        Assert.Contains("18081/tcp", clash.Err);

        // Leave removes them too (decisions #10).
        await host.CallOkAsync("NetworkDriver.Leave", Endpoint(net, ep));
        Assert.DoesNotContain("18081", host.FirewallRules());
    }

    [SkippableFact]
    public async Task A_host_port_of_zero_gets_a_free_ephemeral_port_that_is_kept_on_retry()
    {
        Skip.IfNot(PluginTestHost.IsSupported, PluginTestHost.SkipReason);
        await using var host = await PluginTestHost.StartAsync();
        var net = NewId();
        var ep = NewId();
        const string dynamic = """[{"Proto": 6, "IP": "", "Port": 80, "HostIP": "", "HostPort": 0, "HostPortEnd": 0}]""";
        await host.CallOkAsync("NetworkDriver.CreateNetwork", CreateNetwork(net));
        await host.CallOkAsync("NetworkDriver.CreateEndpoint", CreateEndpoint(net, ep));
        await host.CallOkAsync("NetworkDriver.ProgramExternalConnectivity", ProgramExternalConnectivity(net, ep, dynamic));
        var chosen = Assert.Single(host.Runtime.Driver.Endpoints.Single().PortMappings).HostPort;
        Assert.InRange(chosen, BridgeDriver.DynamicPortFirst, BridgeDriver.DynamicPortLast);
        Assert.Contains($"--dport {chosen}", host.FirewallRules());
        await host.CallOkAsync("NetworkDriver.ProgramExternalConnectivity", ProgramExternalConnectivity(net, ep, dynamic));
        Assert.Equal(chosen, host.Runtime.Driver.Endpoints.Single().PortMappings.Single().HostPort);
        // A repeated Join must not replace the resolved port with the request's 0 (the reconciler programs records).
        await host.CallOkAsync("NetworkDriver.Join", Join(net, ep, dynamic));
        Assert.Equal(chosen, host.Runtime.Driver.Endpoints.Single().PortMappings.Single().HostPort);
        await host.Runtime.Driver.ReconcileAsync(CancellationToken.None);
        Assert.Contains($"--dport {chosen}", host.FirewallRules());
    }

    private static string KindOf(PluginTestHost host, string link) =>
        System.Text.Json.Nodes.JsonNode.Parse(host.Ns.IpJson("-d", "link", "show", link))![0]!["linkinfo"]!["info_kind"]!.GetValue<string>();

    /// <summary>iptables-save prints counters and a timestamp; compare rules only.</summary>
    private static string Normalise(string rules) =>
        string.Join('\n', rules.Split('\n').Where(l => !l.StartsWith('#')).Select(l => l.StartsWith(':') ? l.Split(' ')[0] : l));
}
