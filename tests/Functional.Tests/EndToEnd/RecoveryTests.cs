using System.Net;
using Skein.Functional.Tests.Infrastructure;

namespace Skein.Functional.Tests.EndToEnd;

/// <summary>skein killed with -9 and restarted, and dockerd restarted, with networks in use.</summary>
public class RecoveryTests(TestHost host) : IClassFixture<TestHost>
{
    [SkippableFact]
    public async Task After_kill_9_and_restart_running_containers_stay_connected_and_new_ones_get_fresh_addresses()
    {
        host.RequireReady();
        await using var scope = host.Scope();
        var net = await scope.NetworkAsync("k9");
        var c1 = await scope.RunAsync("c1", net);
        var c2 = await scope.RunAsync("c2", net);
        var ip1 = await scope.IPv4Async(c1, net);
        var ip2 = await scope.IPv4Async(c2, net);
        Assert.True(await scope.PingsAsync(c1, ip2));

        await host.Skein.StopAsync(hard: true);
        Assert.True(await scope.PingsAsync(c1, ip2), "connectivity lost while skein is down");
        await host.Skein.StartAsync();

        Assert.True(await scope.PingsAsync(c2, ip1), "connectivity lost after skein restarted");
        var c3 = await scope.RunAsync("c3", net);
        var ip3 = await scope.IPv4Async(c3, net);
        Assert.DoesNotContain(ip3, new[] { ip1, ip2 });
        Assert.True(await scope.PingsAsync(c3, ip1), "a container started after the restart cannot reach an old one");

        // the restarted plugin still knows the pool: releasing and deleting work
        await host.DockerOkAsync("rm", "-f", c1, c2, c3);
        await host.DockerOkAsync("network", "rm", net);
    }

    [SkippableFact]
    public async Task After_a_dockerd_restart_skein_networks_are_still_usable()
    {
        host.RequireReady();
        await using var scope = host.Scope();
        var net = await scope.NetworkAsync("dr", "--subnet", "10.90.0.0/24");
        await scope.RunAsync("before", net);

        await host.RunScriptAsync("dockerd-stop", host.Dir);
        await host.RunScriptAsync("dockerd-start", host.Dir, host.Netns, TestHost.HostIp);

        Assert.Contains(net, await host.DockerOkAsync("network", "ls", "--format", "{{.Name}}"));
        var x = await scope.RunAsync("x", net);
        var y = await scope.RunAsync("y", net);
        var ipX = IPAddress.Parse(await scope.IPv4Async(x, net));
        var ipY = IPAddress.Parse(await scope.IPv4Async(y, net));
        Assert.True(IPNetwork.Parse("10.90.0.0/24").Contains(ipX));
        Assert.NotEqual(ipX, ipY);
        Assert.True(await scope.PingsAsync(x, ipY.ToString()), "containers on a network that survived a dockerd restart cannot ping");
        (await host.DockerAsync("start", scope.Name("before"))).EnsureOk();
        var ipBefore = await scope.IPv4Async(scope.Name("before"), net);
        Assert.DoesNotContain(ipBefore, new[] { ipX.ToString(), ipY.ToString() });
        Assert.True(await scope.PingsAsync(x, ipBefore), "a restarted container cannot be reached");
    }

    [SkippableFact]
    public async Task After_dockerd_is_killed_with_9_and_restarted_networks_work_and_nothing_leaks()
    {
        host.RequireReady();
        var linksBefore = await host.HostLinksAsync();
        await using (var scope = host.Scope())
        {
            var net = await scope.NetworkAsync("dk9", "--subnet", "10.91.0.0/24");
            var old = await scope.RunAsync("old", net);
            var oldIp = await scope.IPv4Async(old, net);

            await host.RunScriptAsync("dockerd-stop", host.Dir, "kill");
            await host.RunScriptAsync("dockerd-start", host.Dir, host.Netns, TestHost.HostIp);

            // the engine cleans up the container it lost (Leave/DeleteEndpoint/ReleaseAddress to skein);
            // starting it again must work and may reuse its old address
            (await host.DockerAsync("start", old)).EnsureOk();
            var fresh = await scope.RunAsync("fresh", net);
            var oldIpNow = await scope.IPv4Async(old, net);
            var freshIp = await scope.IPv4Async(fresh, net);
            Assert.NotEqual(oldIpNow, freshIp);
            Assert.True(await scope.PingsAsync(fresh, oldIpNow), $"after a dockerd kill -9, {fresh} cannot reach {old} ({oldIp} before, {oldIpNow} now)");
        }
        // skein deletes a veth pair just after answering DeleteEndpoint: allow it a bounded moment.
        var linksAfter = await host.HostLinksAsync();
        for (var wait = 0; wait < 100 && !linksAfter.SetEquals(linksBefore); wait++)
        {
            await Task.Delay(100);
            linksAfter = await host.HostLinksAsync();
        }
        Assert.Equal(linksBefore, linksAfter);
    }
}
