using System.Net;
using System.Security.Cryptography;
using Skein.Functional.Tests.Infrastructure;

namespace Skein.Functional.Tests.Swarm;

/// <summary>Two swarm nodes whose plugins run with SKEIN_DRIVER_SCOPE=global.</summary>
public sealed class TwoNodeGlobalSwarm() : SwarmLab(nodes: 2, driverScope: "global");

/// <summary>
/// Swarm mode with skein as a global-scope driver (plugin-protocol §5.4): one `docker network create` on the
/// manager with every option, the manager's skein does the IPAM (global address space) and answers
/// AllocateNetwork; each node gets the options back in CreateNetwork and requests the manager's addresses with
/// the MACs the engine made up. Skipped while the plugin does not report Scope "global" (the setting needs
/// skein's support for SKEIN_DRIVER_SCOPE).
/// </summary>
public sealed class GlobalScopeSwarmTests(TwoNodeGlobalSwarm lab) : IClassFixture<TwoNodeGlobalSwarm>
{
    private const string Sleeper = "trap 'exit 0' TERM; while :; do sleep 1; done";
    private readonly string prefix = "g" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(2)) + "-";

    [SkippableFact]
    public async Task One_network_create_on_the_manager_keeps_the_options_and_its_service_tasks_and_attachable_containers_reach_each_other()
    {
        lab.RequireReady();
        var scope = await lab.Manager.DriverScopeAsync();
        Skip.If(scope != "global", $"the plugin reports Scope '{scope}' with SKEIN_DRIVER_SCOPE=global: skein does not implement the setting yet");

        var keysBefore = (await lab.StoreKeysAsync()).Keys.ToHashSet();
        var net = prefix + "net";
        var service = prefix + "web";
        var attached = prefix + "att";
        var subnet = IPNetwork.Parse("10.35.0.0/16");
        try
        {
            await lab.Manager.DockerOkAsync("network", "create", "-d", SwarmLab.Plugin, "--ipam-driver", SwarmLab.Plugin, "--subnet", "10.35.0.0/16",
                "-o", "skein.network=" + net, "--ipam-opt", "skein.network=" + net, "--attachable", net);
            // The manager allocates asynchronously: the options (AllocateNetwork's answer) appear shortly after create.
            var inspect = "";
            await Shell.EventuallyAsync(async () =>
            {
                inspect = await lab.Manager.DockerOkAsync("network", "inspect", "-f", "{{.Scope}} {{index .Options \"skein.network\"}}", net);
                return inspect == $"swarm {net}";
            }, TimeSpan.FromSeconds(20));
            Assert.Equal($"swarm {net}", inspect);

            await lab.Manager.DockerOkAsync("service", "create", "-d", "--name", service, "--network", net, "--replicas", "2",
                "--endpoint-mode", "dnsrr", "--restart-delay", "1s", "--no-resolve-image", SwarmLab.Image, "sh", "-c", Sleeper);
            var running = await Shell.EventuallyAsync(async () =>
                (await lab.Manager.DockerAsync("service", "ps", service, "--filter", "desired-state=running", "--format", "{{.CurrentState}}")).Stdout
                    .Split('\n', StringSplitOptions.RemoveEmptyEntries).Count(s => s.StartsWith("Running", StringComparison.Ordinal)) == 2,
                TimeSpan.FromSeconds(60));
            Assert.True(running, "the service did not get 2 running tasks:\n" +
                (await lab.Manager.DockerAsync("service", "ps", service, "--no-trunc", "--format", "{{.Name}} {{.Node}} {{.CurrentState}} {{.Error}}")).Output +
                string.Join('\n', lab.Nodes.Select(n => $"{n.Name} plugin log:\n{n.PluginLogTail(10)}")));

            var task1 = await TaskAsync(lab[1], service);
            var task2 = await TaskAsync(lab[2], service);
            var ip1 = await IPv4Async(lab[1], task1, net);
            var ip2 = await IPv4Async(lab[2], task2, net);
            Assert.True(subnet.Contains(IPAddress.Parse(ip1)) && subnet.Contains(IPAddress.Parse(ip2)) && ip1 != ip2, $"task addresses {ip1}, {ip2}");
            await AssertPingsAsync(lab[1], task1, ip2);
            await AssertPingsAsync(lab[2], task2, ip1);
            await AssertPingsAsync(lab[1], task1, service);

            await lab[2].DockerOkAsync("run", "-d", "--name", attached, "--network", net, SwarmLab.Image, "sh", "-c", Sleeper);
            var ipA = await IPv4Async(lab[2], attached, net);
            Assert.True(subnet.Contains(IPAddress.Parse(ipA)) && ipA != ip1 && ipA != ip2, $"the attachable container got {ipA} (tasks {ip1}, {ip2})");
            await AssertPingsAsync(lab[2], attached, ip1);

            await lab[2].DockerAsync("rm", "-f", attached);
            await lab.Manager.DockerOkAsync("service", "rm", service);
            await Shell.EventuallyAsync(async () => (await Task.WhenAll(lab.Nodes.Select(n => n.DockerAsync("ps", "-aq", "--filter", "label=com.docker.swarm.service.name=" + service))))
                .All(r => r.Stdout.Trim().Length == 0), TimeSpan.FromSeconds(30));
            await lab.Manager.DockerOkAsync("network", "rm", net);
            foreach (var node in lab.Nodes)
                Assert.True(await Shell.EventuallyAsync(async () => !(await node.DockerAsync("network", "inspect", net)).Ok, TimeSpan.FromSeconds(30)),
                    $"{node.Name} still has {net} after docker network rm on the manager");
            // the manager's allocation (global address space) and the nodes' pools are all released
            var left = new List<string>();
            Assert.True(await Shell.EventuallyAsync(async () =>
            {
                left = (await lab.StoreKeysAsync()).Keys.Where(k => !keysBefore.Contains(k)).ToList();
                return left.Count == 0;
            }, TimeSpan.FromSeconds(15)), "store keys left after the global-scope swarm network was removed:\n" + string.Join('\n', left));
        }
        finally
        {
            await lab[2].DockerAsync("rm", "-f", attached);
            await lab.Manager.DockerAsync("service", "rm", service);
            await Task.Delay(2000);
            await lab.Manager.DockerAsync("network", "rm", net);
        }
    }

    private static async Task<string> TaskAsync(SwarmNode node, string service)
    {
        var ids = (await node.DockerOkAsync("ps", "-q", "--filter", "label=com.docker.swarm.service.name=" + service)).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(ids.Length == 1, $"{node.Name} runs {ids.Length} tasks of {service}, expected 1");
        return ids[0];
    }

    private static Task<string> IPv4Async(SwarmNode node, string container, string net) =>
        node.DockerOkAsync("inspect", "-f", $"{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}", container);

    private static async Task AssertPingsAsync(SwarmNode node, string container, string target)
    {
        var ok = await Shell.EventuallyAsync(async () => (await node.DockerAsync("exec", container, "ping", "-c", "1", "-W", "1", target)).Ok, TimeSpan.FromSeconds(15));
        Assert.True(ok, $"{container} on {node.Name} cannot ping {target} for 15 s\n{node.PluginLogTail(15)}");
    }
}
