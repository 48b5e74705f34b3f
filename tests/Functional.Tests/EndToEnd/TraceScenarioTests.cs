using System.Net;
using Skein.Functional.Tests.Infrastructure;

namespace Skein.Functional.Tests.EndToEnd;

/// <summary>The docker commands behind each shared trace, run for real against skein.</summary>
public class TraceScenarioTests(TestHost host) : IClassFixture<TestHost>
{
    [SkippableFact]
    public async Task Basic_two_containers_get_distinct_addresses_and_ping_each_other()
    {
        host.RequireReady();
        var linksBefore = await host.HostLinksAsync();
        var rulesBefore = await host.HostIptablesRulesAsync();
        await using (var scope = host.Scope())
        {
            var net = await scope.NetworkAsync("b1");
            var subnet = IPNetwork.Parse(await host.DockerOkAsync("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}}{{end}}", net));
            var c1 = await scope.RunAsync("c1", net);
            var c2 = await scope.RunAsync("c2", net);
            var ip1 = IPAddress.Parse(await scope.IPv4Async(c1, net));
            var ip2 = IPAddress.Parse(await scope.IPv4Async(c2, net));

            Assert.NotEqual(ip1, ip2);
            Assert.True(subnet.Contains(ip1) && subnet.Contains(ip2), $"{ip1}, {ip2} not in {subnet}");
            Assert.True(await scope.PingsAsync(c1, ip2.ToString()), $"{c1} cannot ping {c2} at {ip2}");
            Assert.True(await scope.PingsAsync(c2, ip1.ToString()), $"{c2} cannot ping {c1} at {ip1}");
            Assert.Contains($"inet {ip1}/{subnet.PrefixLength}", await scope.ExecOkAsync(c1, "ip", "addr", "show", "eth0"));
        }
        // network rm removed exactly what skein created
        // skein deletes a veth pair just after answering DeleteEndpoint: allow it a bounded moment.
        var linksAfter = await host.HostLinksAsync();
        for (var wait = 0; wait < 100 && !linksAfter.SetEquals(linksBefore); wait++)
        {
            await Task.Delay(100);
            linksAfter = await host.HostLinksAsync();
        }
        Assert.Equal(linksBefore, linksAfter);
        Assert.Equal(rulesBefore, await host.HostIptablesRulesAsync());
    }

    [SkippableFact]
    public async Task Options_subnet_range_gateway_aux_mtu_static_ip_and_mac_are_honoured()
    {
        host.RequireReady();
        await using var scope = host.Scope();
        var net = await scope.NetworkAsync("opt",
            "--subnet", "10.50.0.0/16", "--ip-range", "10.50.1.0/24", "--gateway", "10.50.0.254",
            "--aux-address", "host1=10.50.0.10", "--aux-address", "host2=10.50.0.11",
            "-o", "foo=bar", "-o", "com.docker.network.driver.mtu=1400", "--ipam-opt", "pool-hint=x", "--label", "l1=v1");
        var other = await scope.NetworkAsync("dflt");

        var fixedOne = await scope.RunAsync("fixed", net, ["--ip", "10.50.1.77", "--mac-address", "02:42:0a:32:01:4d"]);
        var eth0 = await scope.ExecOkAsync(fixedOne, "ip", "addr", "show", "eth0");
        Assert.Contains("inet 10.50.1.77/16", eth0);
        Assert.Contains("link/ether 02:42:0a:32:01:4d", eth0);
        Assert.Equal("1400", (await scope.ExecOkAsync(fixedOne, "cat", "/sys/class/net/eth0/mtu")).Trim());
        Assert.Contains("default via 10.50.0.254", await scope.ExecOkAsync(fixedOne, "ip", "route"));

        var dynamic = await scope.RunAsync("dyn", net);
        var dynamicIp = IPAddress.Parse(await scope.IPv4Async(dynamic, net));
        Assert.True(IPNetwork.Parse("10.50.1.0/24").Contains(dynamicIp), $"{dynamicIp} outside --ip-range");
        Assert.NotEqual(IPAddress.Parse("10.50.1.77"), dynamicIp);
        Assert.True(await scope.PingsAsync(dynamic, "10.50.1.77"));
        Assert.True(await scope.PingsAsync(dynamic, "10.50.0.254"), "gateway not reachable");

        // --network-alias resolves through the engine's embedded DNS on a skein network
        var aliased = await scope.RunAsync("db", net, ["--network-alias", "db"]);
        var aliasedIp = await scope.IPv4Async(aliased, net);
        var lookup = await scope.ExecAsync(dynamic, "nslookup", "db");
        Assert.True(lookup.Ok && lookup.Stdout.Contains(aliasedIp), $"alias db did not resolve to {aliasedIp}: {lookup}");
        Assert.True(await scope.PingsAsync(dynamic, "db"), "ping by network alias failed");

        // dockerd itself refuses a static address on a network without a user subnet
        var refused = await host.DockerAsync("network", "connect", "--ip", "10.123.0.99", other, dynamic);
        Assert.False(refused.Ok);
        Assert.Contains("user configured subnets", refused.Stderr);
        (await host.DockerAsync("network", "connect", other, dynamic)).EnsureOk();
        Assert.NotEmpty(await scope.IPv4Async(dynamic, other));
        (await host.DockerAsync("network", "disconnect", other, dynamic)).EnsureOk();

        // stop/start keeps the static address and MAC
        await host.DockerOkAsync("stop", "-t", "1", fixedOne);
        await host.DockerOkAsync("start", fixedOne);
        eth0 = await scope.ExecOkAsync(fixedOne, "ip", "addr", "show", "eth0");
        Assert.Contains("inet 10.50.1.77/16", eth0);
        Assert.Contains("link/ether 02:42:0a:32:01:4d", eth0);
        Assert.True(await scope.PingsAsync(dynamic, "10.50.1.77"));
    }

    [SkippableFact]
    public async Task The_skein_mtu_option_sets_the_container_mtu()
    {
        host.RequireReady();
        await using var scope = host.Scope();
        var net = await scope.NetworkAsync("mtu", "-o", "skein.mtu=1300");
        var c = await scope.RunAsync("c", net);
        Assert.Equal("1300", (await scope.ExecOkAsync(c, "cat", "/sys/class/net/eth0/mtu")).Trim());
    }

    [SkippableFact]
    public async Task Aux_addresses_are_never_handed_out()
    {
        host.RequireReady();
        await using var scope = host.Scope();
        // a /29 has six usable addresses: .1 the gateway, .2 and .3 reserved, so exactly three containers fit
        var net = await scope.NetworkAsync("aux", "--subnet", "10.51.0.0/29", "--aux-address", "a=10.51.0.2", "--aux-address", "b=10.51.0.3");
        var given = new List<string>();
        for (var i = 0; i < 3; i++)
            given.Add(await scope.IPv4Async(await scope.RunAsync($"a{i}", net), net));
        var fourth = await scope.TryRunAsync("a3", net);

        Assert.Equal(["10.51.0.4", "10.51.0.5", "10.51.0.6"], given.Order());
        Assert.False(fourth.Ok, "a fourth container got an address from a full pool");
        Assert.Contains("IpamDriver.RequestAddress", fourth.Stderr);
    }

    [SkippableFact]
    public async Task IPv6_dual_stack_with_static_ip6_pings_over_both_families()
    {
        host.RequireReady();
        await using var scope = host.Scope();
        var net = await scope.NetworkAsync("v6", "--ipv6", "--subnet", "10.60.0.0/24", "--subnet", "fd60::/64", "--ip-range", "fd60::100/120");
        var fixedOne = await scope.RunAsync("s", net, ["--ip6", "fd60::1:5"]);
        var dynamic = await scope.RunAsync("d", net);

        Assert.Equal("fd60::1:5", await scope.IPv6Async(fixedOne, net));
        var dynamic6 = IPAddress.Parse(await scope.IPv6Async(dynamic, net));
        Assert.True(IPNetwork.Parse("fd60::100/120").Contains(dynamic6), $"{dynamic6} outside --ip-range fd60::100/120");
        Assert.Contains("inet6 fd60::1:5/64", await scope.ExecOkAsync(fixedOne, "ip", "-6", "addr", "show", "eth0"));
        Assert.True(await scope.PingsAsync(dynamic, "fd60::1:5", 10), "ping6 to the static IPv6 address failed");
        Assert.True(await scope.PingsAsync(fixedOne, dynamic6.ToString(), 10), "ping6 to the dynamic IPv6 address failed");
        Assert.True(await scope.PingsAsync(dynamic, await scope.IPv4Async(fixedOne, net)), "IPv4 ping on the dual-stack network failed");
        // the engine shows no gateway it did not get from the user: read the container's default route
        var routes6 = await scope.ExecOkAsync(dynamic, "ip", "-6", "route");
        var defaultRoute = routes6.Split('\n').FirstOrDefault(l => l.StartsWith("default via ", StringComparison.Ordinal));
        Assert.True(defaultRoute is not null, $"no IPv6 default route in the container:\n{routes6}");
        var v6Gateway = defaultRoute.Split(' ')[2];
        Assert.True(IPNetwork.Parse("fd60::100/120").Contains(IPAddress.Parse(v6Gateway)), $"dynamic IPv6 gateway {v6Gateway} outside the --ip-range fd60::100/120");
        Assert.True(await scope.PingsAsync(dynamic, v6Gateway, 10), $"IPv6 gateway {v6Gateway} does not answer");
    }

    [SkippableFact]
    public async Task Internal_network_connects_its_containers_and_nothing_else()
    {
        host.RequireReady();
        await using var scope = host.Scope();
        var net = await scope.NetworkAsync("int", "--internal", "--attachable");
        var a = await scope.RunAsync("a", net);
        var b = await scope.RunAsync("b", net);

        Assert.True(await scope.PingsAsync(a, await scope.IPv4Async(b, net)), "containers on one internal network cannot ping");
        Assert.DoesNotContain("default", await scope.ExecOkAsync(a, "ip", "route"));
        Assert.False((await scope.ExecAsync(a, "ping", "-c", "1", "-W", "1", TestHost.OutsideIp)).Ok, "internal network reached the outside");
    }

    [SkippableFact]
    public async Task Errors_reach_the_user_with_the_plugin_text_and_leave_the_network_usable()
    {
        host.RequireReady();
        await using var scope = host.Scope();
        var net = await scope.NetworkAsync("e1", "--subnet", "10.70.0.0/24");
        await scope.RunAsync("first", net, ["--ip", "10.70.0.9"]);

        var taken = await scope.TryRunAsync("second", net, ["--ip", "10.70.0.9"]);
        Assert.False(taken.Ok);
        Assert.Contains("IpamDriver.RequestAddress: ", taken.Stderr);
        Assert.Contains("10.70.0.9", taken.Stderr[taken.Stderr.IndexOf("IpamDriver.RequestAddress", StringComparison.Ordinal)..]);
        // the engine already prefixes the call name; a plugin that repeats it makes the user read it twice
        Assert.DoesNotContain("IpamDriver.RequestAddress: IpamDriver.RequestAddress", taken.Stderr);

        var outside = await scope.TryRunAsync("third", net, ["--ip", "10.71.0.5"]);
        Assert.False(outside.Ok, "dockerd accepted an --ip outside the subnet");

        var overlap = await scope.TryNetworkAsync("e2", "--subnet", "10.70.0.0/24");
        Assert.False(overlap.Ok, "a second network with the same subnet was created");
        Assert.Contains("IpamDriver.RequestPool: ", overlap.Stderr);
        Assert.Contains("10.70.0.0/24", overlap.Stderr);
        Assert.DoesNotContain("IpamDriver.RequestPool: IpamDriver.RequestPool", overlap.Stderr);

        var later = await scope.RunAsync("later", net);
        var laterIp = await scope.IPv4Async(later, net);
        Assert.NotEqual("10.70.0.9", laterIp);
        Assert.True(await scope.PingsAsync(later, "10.70.0.9"));
    }
}
