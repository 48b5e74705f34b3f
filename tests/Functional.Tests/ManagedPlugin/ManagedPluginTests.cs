using System.Diagnostics;
using System.Text.Json.Nodes;
using Skein.Functional.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Skein.Functional.Tests.ManagedPlugin;

/// <summary>
/// skein as a managed (v2) plugin in a real dockerd: created by plugin-config/build.sh, configured with
/// `docker plugin set`, enabled, used by networks and containers, disabled/enabled under load and carried
/// across dockerd restarts. Each test leaves the plugin enabled and removes its own containers and networks.
/// </summary>
public class ManagedPluginTests(ManagedPluginHost host, ITestOutputHelper output) : IClassFixture<ManagedPluginHost>
{
    private const long CapNetAdmin = 1L << 12;
    private const long CapSysAdmin = 1L << 21;

    [SkippableFact]
    public async Task Settings_from_docker_plugin_set_reach_the_plugin_process_and_fixed_ones_cannot_be_set()
    {
        host.RequireReady();
        await host.EnsureEnabledAsync();
        var pid = await host.PluginPidAsync();

        var environment = File.ReadAllText($"/proc/{pid}/environ").Split('\0');
        Assert.Contains("SKEIN_LOG_LEVEL=debug", environment);
        Assert.Contains("SKEIN_STORE=embedded", environment);
        Assert.Contains("SKEIN_STATE_DIR=/var/lib/skein", environment);
        // The state mount's source was set to a directory of this fixture: skein's node id and store are there.
        Assert.True(File.Exists(Path.Combine(host.StateSource, "node-id")), $"no node-id in {host.StateSource}: the state mount is not the one set");
        Assert.True(Directory.Exists(Path.Combine(host.StateSource, "store")), $"no embedded store in {host.StateSource}");

        // Capabilities: the default container set plus exactly what config.json asks for (NET_ADMIN), no SYS_ADMIN.
        var effective = Convert.ToInt64(File.ReadAllLines($"/proc/{pid}/status").Single(l => l.StartsWith("CapEff:", StringComparison.Ordinal)).Split('\t')[1], 16);
        Assert.True((effective & CapNetAdmin) != 0, $"plugin lacks CAP_NET_ADMIN (CapEff {effective:x})");
        Assert.True((effective & CapSysAdmin) == 0, $"plugin has CAP_SYS_ADMIN it does not need (CapEff {effective:x})");
        Assert.Equal("[CAP_NET_ADMIN]", await host.DockerOkAsync("plugin", "inspect", "-f", "{{.Config.Linux.Capabilities}}", ManagedPluginHost.Plugin));

        // While enabled the engine refuses any change.
        var whileEnabled = await host.DockerAsync("plugin", "set", ManagedPluginHost.Plugin, "SKEIN_LOG_LEVEL=info");
        Assert.False(whileEnabled.Ok, "docker plugin set succeeded on an enabled plugin");

        await host.DockerOkAsync("plugin", "disable", ManagedPluginHost.Plugin);
        try
        {
            // Not settable: the state directory inside the plugin is fixed (the mount's destination).
            var fixedValue = await host.DockerAsync("plugin", "set", ManagedPluginHost.Plugin, "SKEIN_STATE_DIR=/tmp/elsewhere");
            Assert.False(fixedValue.Ok, "SKEIN_STATE_DIR was settable");
            var unknown = await host.DockerAsync("plugin", "set", ManagedPluginHost.Plugin, "SKEIN_NO_SUCH_SETTING=1");
            Assert.False(unknown.Ok, "an undeclared variable was settable");
            // Settable ones are: a store URL round-trips through the manifest.
            await host.DockerOkAsync("plugin", "set", ManagedPluginHost.Plugin, "SKEIN_STORE=consul://127.0.0.1:8500/skein-test");
            var env = await host.DockerOkAsync("plugin", "inspect", "-f", "{{json .Settings.Env}}", ManagedPluginHost.Plugin);
            Assert.Contains("SKEIN_STORE=consul://127.0.0.1:8500/skein-test", env);
        }
        finally
        {
            await host.DockerAsync("plugin", "set", ManagedPluginHost.Plugin, "SKEIN_STORE=embedded");
            await host.DockerOkAsync("plugin", "enable", ManagedPluginHost.Plugin);
        }
        Assert.Contains("SKEIN_STORE=embedded", File.ReadAllText($"/proc/{await host.PluginPidAsync()}/environ").Split('\0'));
    }

    [SkippableFact]
    public async Task Containers_on_plugin_networks_reach_each_other_and_the_kernel_shows_skeins_links()
    {
        host.RequireReady();
        await host.EnsureEnabledAsync();
        await using var scope = host.Scope();
        var fixedNet = await scope.NetworkAsync("fixed", "--subnet", "10.82.0.0/24", "--gateway", "10.82.0.1");
        var autoNet = await scope.NetworkAsync("auto");
        var a = await scope.RunAsync("a", fixedNet);
        var b = await scope.RunAsync("b", fixedNet);
        var c = await scope.RunAsync("c", autoNet);
        var d = await scope.RunAsync("d", autoNet);

        var ipA = await scope.IPv4Async(a, fixedNet);
        var ipB = await scope.IPv4Async(b, fixedNet);
        Assert.StartsWith("10.82.0.", ipB);
        Assert.True(await scope.PingsAsync(a, ipB), $"{a} cannot ping {b} ({ipB}) on {fixedNet}");
        Assert.True(await scope.PingsAsync(b, ipA), $"{b} cannot ping {a} ({ipA}) on {fixedNet}");
        Assert.True(await scope.PingsAsync(a, "10.82.0.1"), "the gateway of the plugin network does not answer");
        var ipD = await scope.IPv4Async(d, autoNet);
        Assert.True(await scope.PingsAsync(c, ipD), $"{c} cannot ping {d} ({ipD}) on the network whose subnet skein's IPAM chose");
        Assert.False((await host.DockerAsync("exec", a, "ping", "-c", "2", "-W", "1", ipD)).Ok, $"{a} on {fixedNet} reached {d} on {autoNet}");

        // Egress leaves through the plugin's masquerade rule, past dockerd's FORWARD policy DROP.
        Assert.True(await scope.PingsAsync(a, ManagedPluginHost.OutsideIp), "no egress from a plugin network to the outside namespace");
        // The plugin's own iptables wrote nf_tables rules, the backend dockerd uses (decisions #16); nothing legacy.
        Assert.Contains(":SKEIN-", (await host.InHostAsync("iptables-nft-save")).EnsureOk().Stdout);
        Assert.DoesNotContain("SKEIN", (await host.InHostAsync("iptables-legacy-save")).Stdout);

        // Independent reader: the plugin (in the host namespace of this dockerd) created a bridge holding the gateway.
        var addresses = JsonNode.Parse((await host.InHostAsync("ip", "-j", "-4", "addr", "show")).EnsureOk().Stdout)!.AsArray();
        var gatewayLink = addresses.FirstOrDefault(l => l!["addr_info"]!.AsArray().Any(i => (string?)i!["local"] == "10.82.0.1"));
        Assert.True(gatewayLink is not null, "no link in the docker host's namespace holds 10.82.0.1");
        var details = JsonNode.Parse((await host.InHostAsync("ip", "-j", "-d", "link", "show", (string)gatewayLink!["ifname"]!)).EnsureOk().Stdout)!.AsArray();
        Assert.Equal("bridge", (string?)details[0]!["linkinfo"]?["info_kind"]);
    }

    [SkippableFact]
    public async Task Disable_is_refused_while_a_network_uses_the_plugin_and_a_forced_disable_then_enable_keeps_it_working()
    {
        host.RequireReady();
        await host.EnsureEnabledAsync();
        // The engine counts a plugin's references per daemon lifetime and does not restore them for networks that
        // outlive a restart (moby/moby#29544); removing such a network then drives the count below zero. Start from
        // a daemon that has seen no plugin network, so the refusal below is the engine's normal behaviour.
        Assert.Empty((await host.DockerOkAsync("network", "ls", "-q", "--filter", "driver=" + ManagedPluginHost.Plugin)).Split('\n', StringSplitOptions.RemoveEmptyEntries));
        await host.RestartDockerdAsync(kill: false);
        Assert.True(await host.IsEnabledAsync(), "the plugin is not enabled after a dockerd restart");
        await using var scope = host.Scope();
        var net = await scope.NetworkAsync("dis", "--subnet", "10.83.0.0/24");
        var a = await scope.RunAsync("a", net);
        var b = await scope.RunAsync("b", net);
        var ipB = await scope.IPv4Async(b, net);
        Assert.True(await scope.PingsAsync(a, ipB), "control: ping before disable failed");
        var pidBefore = await host.PluginPidAsync();

        var refused = await host.DockerAsync("plugin", "disable", ManagedPluginHost.Plugin);
        Assert.False(refused.Ok, "docker plugin disable succeeded while a network uses the plugin");
        Assert.Contains("in use", refused.Stderr);
        Assert.True(await host.IsEnabledAsync(), "a refused disable left the plugin disabled");

        await host.DockerOkAsync("plugin", "disable", "-f", ManagedPluginHost.Plugin);
        Assert.False(await host.IsEnabledAsync());
        Assert.Empty(ManagedPluginHost.PluginPids(await host.PluginIdAsync()));
        // The data path is the kernel's: running containers keep talking while the plugin is down.
        Assert.True(await scope.PingsAsync(a, ipB), "the forced disable broke the running containers' connectivity");

        await host.DockerOkAsync("plugin", "enable", ManagedPluginHost.Plugin);
        Assert.NotEqual(pidBefore, await host.PluginPidAsync());
        Assert.True(await scope.PingsAsync(a, ipB), "ping failed after re-enabling");
        // The restarted plugin still knows the network, its pool and its endpoints: a new container joins,
        // gets an address not already in use, and everything is removable.
        var c = await scope.RunAsync("c", net);
        var ipC = await scope.IPv4Async(c, net);
        Assert.NotEqual(ipB, ipC);
        Assert.NotEqual(await scope.IPv4Async(a, net), ipC);
        Assert.True(await scope.PingsAsync(c, ipB), "a container started after re-enabling cannot reach an older one");
        await host.DockerOkAsync("rm", "-f", c, b, a);
        scope.Removed(a); scope.Removed(b); scope.Removed(c);
        await host.DockerOkAsync("network", "rm", net);
        // IPAM state survived: the same subnet can be created again right away (its pool was released).
        var again = await scope.NetworkAsync("dis2", "--subnet", "10.83.0.0/24");
        await host.DockerOkAsync("network", "rm", again);
    }

    [SkippableTheory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Dockerd_restart_with_the_plugin_enabled_and_restart_always_containers_keeps_them_connected(bool killDockerd)
    {
        host.RequireReady();
        await host.EnsureEnabledAsync();
        await using var scope = host.Scope();
        var net = await scope.NetworkAsync(killDockerd ? "rk" : "rt", "--subnet", killDockerd ? "10.85.0.0/24" : "10.84.0.0/24");
        var a = await scope.RunAsync("a", net, "--restart", "always");
        var b = await scope.RunAsync("b", net, "--restart", "always");
        Assert.True(await scope.PingsAsync(a, await scope.IPv4Async(b, net)), "control: ping before the restart failed");
        var nodeId = File.ReadAllText(Path.Combine(host.StateSource, "node-id"));

        var took = await host.RestartDockerdAsync(killDockerd);
        output.WriteLine($"dockerd {(killDockerd ? "kill -9" : "stop")} + start until the API answers: {took.TotalSeconds:0.0} s");

        Assert.True(await host.IsEnabledAsync(), "the plugin is not enabled after the dockerd restart");
        var running = await Shell.EventuallyAsync(async () =>
            (await host.DockerAsync("inspect", "-f", "{{.State.Running}}", a, b)).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).All(s => s == "true"),
            TimeSpan.FromSeconds(60));
        Assert.True(running, "the restart=always containers did not come back: " + (await host.DockerAsync("ps", "-a")).Stdout);
        await host.PluginPidAsync();

        var ipB = await scope.IPv4Async(b, net);
        Assert.True(await scope.PingsAsync(a, ipB, 15), $"{a} cannot ping {b} ({ipB}) after the dockerd restart");
        var c = await scope.RunAsync("c", net);
        Assert.True(await scope.PingsAsync(c, await scope.IPv4Async(a, net)), "a new container cannot reach a restarted one");
        Assert.Equal(nodeId, File.ReadAllText(Path.Combine(host.StateSource, "node-id")));

        // Nothing was lost: everything comes apart cleanly and the subnet is free again.
        await host.DockerOkAsync("rm", "-f", c, b, a);
        scope.Removed(a); scope.Removed(b); scope.Removed(c);
        await host.DockerOkAsync("network", "rm", net);
        var again = await scope.NetworkAsync(killDockerd ? "rk2" : "rt2", "--subnet", killDockerd ? "10.85.0.0/24" : "10.84.0.0/24");
        await host.DockerOkAsync("network", "rm", again);
    }

    [SkippableFact]
    public async Task A_killed_plugin_process_is_restarted_by_the_engine_and_keeps_its_networks()
    {
        host.RequireReady();
        await host.EnsureEnabledAsync();
        await using var scope = host.Scope();
        var net = await scope.NetworkAsync("crash", "--subnet", "10.86.0.0/24");
        var a = await scope.RunAsync("a", net);
        var b = await scope.RunAsync("b", net);
        var id = await host.PluginIdAsync();
        var killed = await host.PluginPidAsync();

        Process.GetProcessById(killed).Kill();
        var restarted = await Shell.EventuallyAsync(async () =>
            ManagedPluginHost.PluginPids(id) is [var pid] && pid != killed && await ManagedPluginHost.SocketAnswersAsync(host.PluginSocket(id)),
            TimeSpan.FromSeconds(30));
        Assert.True(restarted, "the engine did not restart the killed plugin: " + (await host.DockerAsync("plugin", "ls")).Output);
        Assert.True(await host.IsEnabledAsync());

        // Its records survived the crash: new endpoints, and removal of everything, work.
        var ipB = await scope.IPv4Async(b, net);
        Assert.True(await scope.PingsAsync(a, ipB), "existing containers lost connectivity across the plugin crash");
        var c = await scope.RunAsync("c", net);
        var ipC = await scope.IPv4Async(c, net);
        Assert.NotEqual(ipB, ipC);
        Assert.True(await scope.PingsAsync(c, ipB), "a container created after the crash cannot reach an older one");
        await host.DockerOkAsync("rm", "-f", c, b, a);
        scope.Removed(a); scope.Removed(b); scope.Removed(c);
        await host.DockerOkAsync("network", "rm", net);
    }

    [SkippableFact]
    public async Task Build_script_refuses_bad_input_with_a_clear_message_and_changes_nothing()
    {
        host.RequireReady();
        var before = await host.DockerOkAsync("plugin", "ls", "-q", "--no-trunc");
        var tempBefore = Directory.EnumerateDirectories("/tmp", "skein-plugin-build.*").ToHashSet();
        var script = Path.Combine(host.RepoRoot, "plugin-config", "build.sh");
        async Task<CommandResult> Build(string? binary, params string[] args) =>
            await host.WithDockerHostAsync("/bin/bash", [script, .. args], TimeSpan.FromMinutes(2), ("SKEIN_BINARY", binary ?? host.Binary));

        var badName = await Build(null, "Skein Plugin");
        Assert.False(badName.Ok);
        Assert.Contains("'Skein Plugin' is not a plugin reference", badName.Stderr);
        var exists = await Build(null, ManagedPluginHost.Plugin);
        Assert.False(exists.Ok);
        Assert.Contains($"plugin {ManagedPluginHost.Plugin} already exists", exists.Stderr);
        var noBinary = await Build(Path.Combine(host.Dir, "no-such-skein"), "skein-other:latest");
        Assert.False(noBinary.Ok);
        Assert.Contains("no-such-skein", noBinary.Stderr);
        var twoNames = await Build(null, "a:latest", "b:latest");
        Assert.False(twoNames.Ok);
        Assert.Contains("usage: build.sh [NAME]", twoNames.Stderr);

        Assert.Equal(before, await host.DockerOkAsync("plugin", "ls", "-q", "--no-trunc"));
        var leftovers = Directory.EnumerateDirectories("/tmp", "skein-plugin-build.*").Where(d => !tempBefore.Contains(d)).ToList();
        Assert.True(leftovers.Count == 0, "build.sh left temp directories: " + string.Join(", ", leftovers));
    }

    /// <summary>
    /// "1,000 endpoints" as decisions.md defines it for memory figures: created through the plugin API (the calls
    /// the engine makes), not containers. Everything is released again through the API, leaving no veth behind.
    /// </summary>
    [SkippableFact]
    public async Task Figures_rss_with_1000_endpoints_created_through_the_plugin_api()
    {
        const int Endpoints = 1000;
        host.RequireReady();
        await host.EnsureEnabledAsync();
        var socket = host.PluginSocket(await host.PluginIdAsync());
        var pid = await host.PluginPidAsync();
        var idle = ManagedPluginHost.RssKiB(pid);
        var vethsBefore = await VethCountAsync();

        await using var client = new Skein.Driver.Replay.PluginSocketClient(socket, TimeSpan.FromSeconds(30));
        async Task<JsonNode> Call(string path, JsonObject? body)
        {
            var reply = await client.PostAsync(path, body is null ? null : System.Text.Encoding.UTF8.GetBytes(body.ToJsonString()));
            Assert.True(reply.Status == 200, $"{path} answered {reply.Status}: {reply.BodyText}");
            return JsonNode.Parse(reply.BodyText)!;
        }

        var space = (string)(await Call("/IpamDriver.GetDefaultAddressSpaces", null))["LocalDefaultAddressSpace"]!;
        var pool = await Call("/IpamDriver.RequestPool", new JsonObject { ["AddressSpace"] = space, ["Pool"] = "10.96.0.0/21", ["SubPool"] = "", ["Options"] = new JsonObject(), ["V6"] = false });
        var poolId = (string)pool["PoolID"]!;
        var gateway = (string)(await Call("/IpamDriver.RequestAddress", new JsonObject { ["PoolID"] = poolId, ["Address"] = "", ["Options"] = new JsonObject { ["RequestAddressType"] = "com.docker.network.gateway" } }))["Address"]!;
        var networkId = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
        var created = new List<(string Endpoint, string Address)>();
        var clock = Stopwatch.StartNew();
        try
        {
            await Call("/NetworkDriver.CreateNetwork", new JsonObject
            {
                ["NetworkID"] = networkId,
                ["Options"] = new JsonObject { ["com.docker.network.enable_ipv6"] = false, ["com.docker.network.generic"] = new JsonObject() },
                ["IPv4Data"] = new JsonArray(new JsonObject { ["AddressSpace"] = space, ["Gateway"] = gateway, ["Pool"] = "10.96.0.0/21" }),
                ["IPv6Data"] = new JsonArray(),
            });
            for (var i = 0; i < Endpoints; i++)
            {
                var address = (string)(await Call("/IpamDriver.RequestAddress", new JsonObject { ["PoolID"] = poolId, ["Address"] = "", ["Options"] = new JsonObject() }))["Address"]!;
                var endpointId = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
                created.Add((endpointId, address));
                await Call("/NetworkDriver.CreateEndpoint", new JsonObject
                {
                    ["NetworkID"] = networkId,
                    ["EndpointID"] = endpointId,
                    ["Interface"] = new JsonObject { ["Address"] = address, ["AddressIPv6"] = "", ["MacAddress"] = "" },
                    ["Options"] = new JsonObject(),
                });
            }
            var createSeconds = clock.Elapsed.TotalSeconds;
            Assert.Equal(Endpoints, created.Select(c => c.Address).Distinct().Count());
            // Each endpoint is a veth pair in the docker host's namespace (independent check of the kernel side).
            Assert.True(await VethCountAsync() >= vethsBefore + 2 * Endpoints, "fewer veths than endpoints in the docker host's namespace");
            await Task.Delay(TimeSpan.FromSeconds(5));
            var loaded = ManagedPluginHost.RssKiB(pid);
            output.WriteLine($"FIGURE plugin RSS idle {idle} KiB, with {Endpoints} endpoints (API-created) {loaded} KiB; creating them took {createSeconds:0.0} s");
            Assert.Equal(pid, await host.PluginPidAsync());
        }
        finally
        {
            foreach (var (endpoint, address) in created)
            {
                await client.PostAsync("/NetworkDriver.DeleteEndpoint", System.Text.Encoding.UTF8.GetBytes(new JsonObject { ["NetworkID"] = networkId, ["EndpointID"] = endpoint }.ToJsonString()));
                await client.PostAsync("/IpamDriver.ReleaseAddress", System.Text.Encoding.UTF8.GetBytes(new JsonObject { ["PoolID"] = poolId, ["Address"] = address.Split('/')[0] }.ToJsonString()));
            }
            await client.PostAsync("/IpamDriver.ReleaseAddress", System.Text.Encoding.UTF8.GetBytes(new JsonObject { ["PoolID"] = poolId, ["Address"] = gateway.Split('/')[0] }.ToJsonString()));
            await client.PostAsync("/IpamDriver.ReleasePool", System.Text.Encoding.UTF8.GetBytes(new JsonObject { ["PoolID"] = poolId }.ToJsonString()));
            await client.PostAsync("/NetworkDriver.DeleteNetwork", System.Text.Encoding.UTF8.GetBytes(new JsonObject { ["NetworkID"] = networkId }.ToJsonString()));
        }
        // skein deletes veth pairs in the background after answering DeleteEndpoint (~20 ms each): wait, bounded.
        var vethDeadline = DateTime.UtcNow + TimeSpan.FromSeconds(180);
        while (await VethCountAsync() != vethsBefore && DateTime.UtcNow < vethDeadline)
            await Task.Delay(500);
        Assert.Equal(vethsBefore, await VethCountAsync());
    }

    private async Task<int> VethCountAsync() =>
        JsonNode.Parse((await host.InHostAsync("ip", "-j", "link", "show", "type", "veth")).EnsureOk().Stdout)!.AsArray().Count;

    [SkippableFact]
    public async Task Figures_rootfs_size_enable_to_socket_ready_and_idle_rss()
    {
        host.RequireReady();
        await host.EnsureEnabledAsync();
        var id = await host.PluginIdAsync();
        var socket = host.PluginSocket(id);
        Assert.True(await ManagedPluginHost.SocketAnswersAsync(socket), $"the enabled plugin does not answer on {socket}");

        var readyTimes = new List<double>();
        var enableTimes = new List<double>();
        for (var round = 0; round < 3; round++)
        {
            await host.DockerOkAsync("plugin", "disable", ManagedPluginHost.Plugin);
            Assert.False(File.Exists(socket) && await ManagedPluginHost.SocketAnswersAsync(socket), "the socket still answers after disable");
            var clock = Stopwatch.StartNew();
            var enable = host.DockerAsync("plugin", "enable", ManagedPluginHost.Plugin);
            var ready = await Shell.EventuallyAsync(() => ManagedPluginHost.SocketAnswersAsync(socket), TimeSpan.FromSeconds(20), TimeSpan.FromMilliseconds(10));
            var readyAfter = clock.Elapsed;
            (await enable).EnsureOk();
            enableTimes.Add(clock.Elapsed.TotalMilliseconds);
            Assert.True(ready, $"the plugin socket did not answer within 20 s of docker plugin enable (round {round})");
            readyTimes.Add(readyAfter.TotalMilliseconds);
            // The engine stops a managed plugin whose socket is not up by its fourth dial, ~9.5 s after start.
            Assert.True(readyAfter < TimeSpan.FromSeconds(9.5), $"socket ready after {readyAfter.TotalSeconds:0.0} s: the engine would give up on it");
        }

        await Task.Delay(TimeSpan.FromSeconds(5));
        var rss = ManagedPluginHost.RssKiB(await host.PluginPidAsync());
        Assert.InRange(rss, 1, 512 * 1024);

        readyTimes.Sort();
        enableTimes.Sort();
        output.WriteLine($"FIGURE plugin rootfs: {host.RootfsKiB} KiB ({host.RootfsKiB / 1024.0:0.0} MiB)");
        output.WriteLine($"FIGURE docker plugin enable -> socket answers GetCapabilities: median {readyTimes[1]:0} ms (runs {string.Join(", ", readyTimes.Select(t => t.ToString("0")))} ms)");
        output.WriteLine($"FIGURE docker plugin enable command returns: median {enableTimes[1]:0} ms");
        output.WriteLine($"FIGURE idle RSS of the plugin process (5 s after enable, no networks): {rss} KiB");
    }
}
