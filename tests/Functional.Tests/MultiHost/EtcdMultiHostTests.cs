using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Skein.Functional.Tests.Infrastructure;

namespace Skein.Functional.Tests.MultiHost;

/// <summary>Multi-host skein on three hosts sharing a real etcd: the core scenarios plus failures and lifecycle.</summary>
public sealed class EtcdMultiHostTests(EtcdLab lab) : CoreScenarios<EtcdLab>(lab), IClassFixture<EtcdLab>
{
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

    private static async Task<int> VxlanLinksAsync(LabHost host)
    {
        var json = (await Shell.RunAsync("/usr/sbin/ip", "-n", host.Netns, "-j", "link", "show", "type", "vxlan")).EnsureOk().Stdout;
        return string.IsNullOrWhiteSpace(json) ? 0 : (JsonNode.Parse(json) as JsonArray ?? []).Count;
    }

    /// <summary>Keys peers/&lt;net&gt;/&lt;node&gt; (the node's presence in a network) for one node.</summary>
    private async Task<List<string>> PeerKeysAsync(string node) =>
        (await Lab.StoreKeysAsync()).Keys.Where(k => Regex.IsMatch(k, $@"(^|/)peers/[^/]+/{node}$")).ToList();
}

/// <summary>The core scenarios (failures included) against the in-test Consul API server (two hosts).</summary>
public sealed class ConsulMultiHostTests(ConsulLab lab) : CoreScenarios<ConsulLab>(lab), IClassFixture<ConsulLab>;
