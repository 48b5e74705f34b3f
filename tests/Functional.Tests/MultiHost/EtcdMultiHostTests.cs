using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Skein.Functional.Tests.Infrastructure;

namespace Skein.Functional.Tests.MultiHost;

/// <summary>Multi-host skein on three hosts sharing a real etcd: the core scenarios plus failures and lifecycle.</summary>
public sealed class EtcdMultiHostTests(EtcdLab lab) : CoreScenarios<EtcdLab>(lab), IClassFixture<EtcdLab>
{
    [SkippableFact]
    public async Task Killing_and_restarting_skein_on_one_host_does_not_interrupt_cross_host_traffic()
    {
        Lab.RequireReady();
        await using var scope = Lab.Scope();
        var net = await scope.NetworkOnAllAsync("rst", ["--subnet", "10.22.0.0/16"]);
        var c1 = await scope.RunAsync(Lab[1], "c1", net);
        var c2 = await scope.RunAsync(Lab[2], "c2", net);
        var ip1 = await scope.IPv4Async(c1);
        var ip2 = await scope.IPv4Async(c2);
        await scope.AssertPingsAsync(c1, c2, ip2);

        var ping = scope.LongPingAsync(c1, ip2, count: 40);
        await Task.Delay(1500);
        await Lab[2].Skein.StopAsync(hard: true);
        await Task.Delay(1000);
        await Lab[2].Skein.StartAsync();
        var summary = await ping;
        Assert.True(summary.Sent > 0, "the long ping did not run: " + summary.Output);
        Assert.True(summary.Lost <= TolerableLoss, $"{summary.Lost} of {summary.Sent} pings lost across skein's kill -9 and restart on host2:\n{summary.Output}");

        // the restarted skein still serves the network: a new container there is unique and reachable both ways
        var c3 = await scope.RunAsync(Lab[2], "c3", net);
        var ip3 = await scope.IPv4Async(c3);
        Assert.DoesNotContain(ip3, new[] { ip1, ip2 });
        await scope.AssertPingsAsync(c1, c3, ip3);
        await scope.AssertPingsAsync(c3, c1, ip1);
    }

    [SkippableFact]
    public async Task Deleting_the_network_on_one_host_leaves_it_working_on_the_others()
    {
        Lab.RequireReady();
        await using var scope = Lab.Scope();
        var vxlanBefore = await VxlanLinksAsync(Lab[1]);
        var net = await scope.NetworkOnAllAsync("del", ["--subnet", "10.24.0.0/16"]);
        var c1 = await scope.RunAsync(Lab[1], "c1", net);
        var c2 = await scope.RunAsync(Lab[2], "c2", net);
        var c3 = await scope.RunAsync(Lab[3], "c3", net);
        var ip2 = await scope.IPv4Async(c2);
        var ip3 = await scope.IPv4Async(c3);
        await scope.AssertPingsAsync(c1, c2, ip2);
        await scope.AssertPingsAsync(c2, c3, ip3);
        Assert.Equal(vxlanBefore + 1, await VxlanLinksAsync(Lab[1]));
        Assert.True(await Shell.EventuallyAsync(async () => (await PeerKeysAsync("host1")).Count > 0, TimeSpan.FromSeconds(10)),
            "host1 never published itself under peers/<net>/host1:\n" + string.Join('\n', (await Lab.StoreKeysAsync()).Keys));

        await Lab[1].DockerOkAsync("rm", "-f", c1.Name);
        await Lab[1].DockerOkAsync("network", "rm", net);

        await scope.AssertPingsAsync(c2, c3, ip3);
        await scope.AssertPingsAsync(c3, c2, ip2);
        Assert.True(await Shell.EventuallyAsync(async () => await VxlanLinksAsync(Lab[1]) == vxlanBefore, TimeSpan.FromSeconds(10)),
            "host1 still has the network's VXLAN link after docker network rm");
        Assert.True(await Shell.EventuallyAsync(async () => (await PeerKeysAsync("host1")).Count == 0, TimeSpan.FromSeconds(10)),
            "host1 is still listed as a peer after leaving the network: " + string.Join(", ", await PeerKeysAsync("host1")));
        Assert.True(await VxlanLinksAsync(Lab[2]) > 0, "host2 lost its VXLAN link when host1 deleted the network");

        // and host1 can join again
        await scope.NetworkOnAllAsync("del", ["--subnet", "10.24.0.0/16"], [Lab[1]]);
        var c4 = await scope.RunAsync(Lab[1], "c4", net);
        await scope.AssertPingsAsync(c4, c2, ip2);
        await scope.AssertPingsAsync(c3, c4, await scope.IPv4Async(c4));
    }

    [SkippableFact]
    public async Task Creating_a_cluster_network_with_conflicting_settings_on_another_host_fails_with_a_message()
    {
        Lab.RequireReady();
        await using var scope = Lab.Scope();
        var name = scope.Name("red");
        string[] Named(string subnet) => ["--subnet", subnet, "-o", "skein.network=" + name, "--ipam-opt", "skein.network=" + name];
        (await scope.TryNetworkAsync(Lab[1], "red", Named("10.25.0.0/16"))).EnsureOk();
        var second = await scope.TryNetworkAsync(Lab[2], "red", Named("10.26.0.0/16"));
        Assert.False(second.Ok, $"host2 created cluster network {name} with 10.26.0.0/16 although host1 has it with 10.25.0.0/16");
        Assert.Matches(new Regex(@"conflict|differ|10\.25\.0\.0/16|10\.26\.0\.0/16|subnet|pool", RegexOptions.IgnoreCase), second.Stderr);
        Assert.False((await Lab[2].DockerAsync("network", "inspect", name)).Ok, "the refused network exists on host2 anyway");

        // the first definition is untouched: host2 may join with the same settings
        (await scope.TryNetworkAsync(Lab[2], "red", Named("10.25.0.0/16"))).EnsureOk();
        var a = await scope.RunAsync(Lab[1], "a", name);
        var b = await scope.RunAsync(Lab[2], "b", name);
        await scope.AssertPingsAsync(a, b, await scope.IPv4Async(b));
    }

    private static async Task<int> VxlanLinksAsync(LabHost host)
    {
        var json = (await Shell.RunAsync("/usr/sbin/ip", "-n", host.Netns, "-j", "link", "show", "type", "vxlan")).EnsureOk().Stdout;
        return string.IsNullOrWhiteSpace(json) ? 0 : (JsonNode.Parse(json) as JsonArray ?? []).Count;
    }

    /// <summary>Keys peers/&lt;net&gt;/&lt;node&gt; (the node's presence in a network) for one node.</summary>
    private async Task<List<string>> PeerKeysAsync(string node) =>
        (await Lab.StoreKeysAsync()).Keys.Where(k => Regex.IsMatch(k, $@"(^|/)peers/[^/]+/{node}$")).ToList();
}

/// <summary>The core scenarios against the in-test Consul API server (two hosts).</summary>
public sealed class ConsulMultiHostTests(ConsulLab lab) : CoreScenarios<ConsulLab>(lab), IClassFixture<ConsulLab>;
