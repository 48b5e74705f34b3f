using System.Diagnostics;
using System.Net;
using System.Text.RegularExpressions;
using Skein.Functional.Tests.Infrastructure;

namespace Skein.Functional.Tests.MultiHost;

/// <summary>
/// The multi-host scenarios every store backend must pass: the harness itself (host-local networks on
/// each host), one cluster network across all hosts reachable over IPv4 and IPv6, unique addresses
/// under concurrent `docker run` on every host, egress and -p from every host, a conflicting
/// definition refused, skein killed and restarted under traffic, and a store outage.
/// </summary>
public abstract class CoreScenarios<TLab>(TLab lab) where TLab : MultiHostLab
{
    protected TLab Lab { get; } = lab;

    /// <summary>Packets a long ping may lose while something restarts (none are expected: the kernel keeps forwarding).</summary>
    protected const int TolerableLoss = 2;

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

    /// <summary>
    /// The distributed gateway: on every host a container of the multi-host network reaches the outside (the store
    /// namespace, which has no route to the overlay subnet, so only this host's masquerade brings answers back) and a
    /// port it publishes is reachable at that host's underlay address from outside.
    /// </summary>
    [SkippableFact]
    public async Task Egress_and_published_ports_work_from_every_host_of_a_multi_host_network()
    {
        Lab.RequireReady();
        await using var scope = Lab.Scope();
        var net = await scope.NetworkOnAllAsync("egr", ["--subnet", "10.27.0.0/16"]);
        foreach (var host in Lab.Hosts)
        {
            var port = (18090 + host.Index).ToString();
            var reply = $"skein-{host.Name}";
            var web = $"w{host.Index}";
            var started = await scope.TryRunAsync(host, web, net, ["-p", $"{port}:80"], "sh", "-c", $"while true; do echo {reply} | nc -l -p 80; done");
            Assert.True(started.Ok, $"docker run -p on {host.Name}: {started.Stderr}");
            var container = new LabContainer(host, scope.Name(web), net);

            Assert.True(await scope.PingsAsync(container, Lab.StoreIp), $"no egress from the multi-host network on {host.Name}");
            var published = await Shell.EventuallyAsync(async () =>
                (await Lab.InStoreNetnsAsync("busybox", "nc", "-w", "2", host.UnderlayIp, port)).Stdout.Contains(reply), TimeSpan.FromSeconds(15));
            Assert.True(published, $"published port {port} of {host.Name} is not reachable at {host.UnderlayIp} from outside");
        }
    }

    /// <summary>
    /// decisions #18: with the store down, running containers keep talking; a host that owns a block of the network
    /// starts new containers from it (journaled), a host that owns none fails fast naming why; when the store returns
    /// the journal is written back and only then is the new container published, so the other hosts reach it.
    /// </summary>
    [SkippableFact]
    public async Task With_the_store_down_running_containers_keep_talking_new_ones_start_from_owned_blocks_and_all_converges_after()
    {
        Lab.RequireReady();
        await using var scope = Lab.Scope();
        var net = await scope.NetworkOnAllAsync("out", ["--subnet", "10.23.0.0/16"]);
        var c1 = await scope.RunAsync(Lab[1], "c1", net);
        var c2 = await scope.RunAsync(Lab[2], "c2", net);
        var ip1 = await scope.IPv4Async(c1);
        var ip2 = await scope.IPv4Async(c2);
        await scope.AssertPingsAsync(c1, c2, ip2);

        var ping = scope.LongPingAsync(c1, ip2, count: 60);
        await Task.Delay(1000);
        var spare = Lab.Hosts.Count >= 3 ? Lab[3] : null;
        CommandResult fromOwnBlock;
        CommandResult? withoutBlock;
        TimeSpan ownBlockTook, withoutBlockTook;
        string? ipDuring = null, ipRestarted = null;
        LabContainer? duringC = null, restartedC = null;
        try
        {
            await Lab.StopStoreAsync();
            var clock = Stopwatch.StartNew();
            fromOwnBlock = await scope.TryRunAsync(Lab[1], "during", net);
            ownBlockTook = clock.Elapsed;
            clock.Restart();
            // a host with no container on the network owns no block of it (the last host when there are three)
            withoutBlock = spare is null ? null : await scope.TryRunAsync(spare, "noblock", net);
            withoutBlockTook = clock.Elapsed;
            Console.WriteLine($"store outage ({Lab.Store}): docker run on host1 (owns a block) {(fromOwnBlock.Ok ? "started" : "failed")} after {ownBlockTook.TotalSeconds:0.0} s" +
                (withoutBlock is null ? "" : $"; on {spare!.Name} (owns none) {(withoutBlock.Ok ? "started" : "failed")} after {withoutBlockTook.TotalSeconds:0.0} s: {withoutBlock.Stderr.Trim()}"));
            Assert.True(fromOwnBlock.Ok, "docker run on host1 failed with the store down although host1 owns a block: " + fromOwnBlock.Stderr);
            duringC = new LabContainer(Lab[1], scope.Name("during"), net);
            ipDuring = await scope.IPv4Async(duringC);
            Assert.DoesNotContain(ipDuring, new[] { ip1, ip2 });
            // reachable on its own host at once; not published while the store is down
            await scope.AssertPingsAsync(c1, duringC, ipDuring);

            // skein killed and restarted on host1 while the store is still down: it knows its pool again from the
            // snapshot written beside the journal, so the next container still starts, with an address of its own
            await Lab[1].Skein.StopAsync(hard: true);
            await Lab[1].Skein.StartAsync();
            var afterRestart = await scope.TryRunAsync(Lab[1], "restarted", net);
            Assert.True(afterRestart.Ok, "docker run on host1 failed after skein restarted during the store outage: " + afterRestart.Stderr);
            restartedC = new LabContainer(Lab[1], scope.Name("restarted"), net);
            ipRestarted = await scope.IPv4Async(restartedC);
            Assert.DoesNotContain(ipRestarted, new[] { ip1, ip2, ipDuring });
            await scope.AssertPingsAsync(c1, restartedC, ipRestarted);
        }
        finally
        {
            await Lab.StartStoreAsync();
        }
        var summary = await ping;
        Assert.True(summary.Sent > 0, "the long ping did not run: " + summary.Output);
        Assert.True(summary.Lost <= TolerableLoss, $"{summary.Lost} of {summary.Sent} pings lost during the store outage:\n{summary.Output}");
        Assert.True(ownBlockTook < TimeSpan.FromSeconds(30), $"docker run from an owned block took {ownBlockTook.TotalSeconds:0.0} s with the store down");
        if (withoutBlock is not null)
        {
            Assert.False(withoutBlock.Ok, $"docker run on {spare!.Name}, which owns no block of the network, started with the store down");
            Assert.True(withoutBlockTook < TimeSpan.FromSeconds(30), $"docker run on {spare.Name} took {withoutBlockTook.TotalSeconds:0.0} s to fail (must fail fast)");
            Assert.Contains("no free address is left in the blocks this host owns", withoutBlock.Stderr);
        }

        // converged: the container started during the outage is written back and published, host2 reaches it
        await scope.AssertPingsAsync(c2, duringC!, ipDuring!, seconds: 30);
        await scope.AssertPingsAsync(duringC!, c2, ip2);
        await scope.AssertPingsAsync(c2, restartedC!, ipRestarted!, seconds: 30);
        Assert.True(await Shell.EventuallyAsync(async () => (await Lab.StoreKeysAsync()).Values.Any(v => v.Contains("\"ip4\":\"" + ipDuring + "\"")), TimeSpan.FromSeconds(20)),
            "the container started during the outage was never published to the store");

        // and a new container on the last host starts, unique, and reaches (and is reached from) host1
        var last = Lab[Lab.Hosts.Count];
        LabContainer? after = null;
        var attempts = new List<string>();
        for (var k = 0; k < 6 && after is null; k++)
        {
            var r = await scope.TryRunAsync(last, "after" + k, net);
            if (r.Ok)
                after = new LabContainer(last, scope.Name("after" + k), net);
            else
            {
                attempts.Add(r.Stderr.Trim());
                await Task.Delay(5000);
            }
        }
        Assert.True(after is not null, $"no container starts on {last.Name} after the store came back:\n" + string.Join('\n', attempts));
        var ipAfter = await scope.IPv4Async(after!);
        Assert.DoesNotContain(ipAfter, new[] { ip1, ip2, ipDuring!, ipRestarted! });
        await scope.AssertPingsAsync(c1, after!, ipAfter, seconds: 30);
        await scope.AssertPingsAsync(after!, c1, ip1);
        await scope.AssertPingsAsync(after!, duringC!, ipDuring!);
    }


    [SkippableFact]
    public async Task Each_host_runs_its_own_dockerd_and_skein_with_host_local_networks()
    {
        Lab.RequireReady();
        await using var scope = Lab.Scope();
        var engineIds = new HashSet<string>();
        foreach (var host in Lab.Hosts)
        {
            var info = await host.DockerOkAsync("info", "-f", "{{.ID}} {{.Name}}");
            Assert.True(engineIds.Add(info.Split(' ')[0]), $"{host.Name} shares its engine ID with another host (shared /etc/docker?)");
            Assert.EndsWith(host.Netns, info);
            foreach (var other in Lab.Hosts.Where(o => o != host))
                Assert.True((await host.InNetnsAsync("busybox", "ping", "-c", "1", "-W", "2", other.UnderlayIp)).Ok,
                    $"{host.Name} cannot reach {other.Name} ({other.UnderlayIp}) over the underlay");
            Assert.True((await host.DockerAsync("run", "--rm", MultiHostLab.Image, "true")).Ok, $"docker run on Docker's bridge fails on {host.Name}");
        }

        // a skein network without --subnet is local to each host: created on each through that host's own skein
        foreach (var host in Lab.Hosts)
        {
            var before = await BridgesAsync(host);
            var result = await scope.TryNetworkAsync(host, "loc");
            Assert.True(result.Ok, $"host-local skein network on {host.Name}: {result.Stderr}");
            var net = scope.Name("loc");
            Assert.Equal(before + 1, await BridgesAsync(host));
            foreach (var other in Lab.Hosts.Where(o => o.Index > host.Index))
                Assert.True((await other.DockerAsync("network", "inspect", net)).Ok is false, $"{other.Name} sees {host.Name}'s local network");
            var a = await scope.RunAsync(host, $"a{host.Index}", net);
            var b = await scope.RunAsync(host, $"b{host.Index}", net);
            await scope.AssertPingsAsync(a, b, await scope.IPv4Async(b));
        }
    }

    private static async Task<int> BridgesAsync(LabHost host) =>
        (await host.InNetnsAsync("ip", "-o", "link", "show", "type", "bridge")).EnsureOk().Stdout
            .Split('\n').Count(l => l.Contains(": skbr-", StringComparison.Ordinal));

    [SkippableFact]
    public async Task Containers_on_different_hosts_get_unique_addresses_and_ping_each_other_over_IPv4_and_IPv6()
    {
        Lab.RequireReady();
        await using var scope = Lab.Scope();
        var net = await scope.NetworkOnAllAsync("blue", ["--subnet", "10.20.0.0/16", "--ipv6", "--subnet", "fd20::/64"]);
        var containers = await Task.WhenAll(Lab.Hosts.Select(h => scope.RunAsync(h, "c" + h.Index, net)));
        var v4 = new List<string>();
        var v6 = new List<string>();
        foreach (var c in containers)
        {
            v4.Add(await scope.IPv4Async(c));
            v6.Add(await scope.IPv6Async(c));
        }
        Assert.All(v4, ip => Assert.True(IPNetwork.Parse("10.20.0.0/16").Contains(IPAddress.Parse(ip)), $"{ip} is outside 10.20.0.0/16"));
        Assert.All(v6, ip => Assert.True(ip.Length > 0 && IPNetwork.Parse("fd20::/64").Contains(IPAddress.Parse(ip)), $"'{ip}' is not in fd20::/64"));
        Assert.True(v4.Distinct().Count() == v4.Count, $"duplicate IPv4 addresses across hosts: {string.Join(", ", v4)}");
        Assert.True(v6.Distinct().Count() == v6.Count, $"duplicate IPv6 addresses across hosts: {string.Join(", ", v6)}");

        for (var i = 0; i < containers.Length; i++)
            for (var j = 0; j < containers.Length; j++)
                if (i != j)
                {
                    await scope.AssertPingsAsync(containers[i], containers[j], v4[j]);
                    await scope.AssertPingsAsync(containers[i], containers[j], v6[j]);
                }

        // The echoes went past the bridges: on its own host each container's MAC has a redirect from the VXLAN
        // device to its veth, on every other host one from the local veths to the VXLAN device, and both counted
        // packets (README "Bridge bypass").
        for (var i = 0; i < containers.Length; i++)
        {
            var mac = await scope.MacAsync(containers[i]);
            foreach (var host in Lab.Hosts)
            {
                var packets = await BypassedPacketsAsync(host, mac);
                Assert.True(packets > 0, $"{host.Name}: the bridge bypass redirected {(packets < 0 ? "nothing (no filter)" : packets + " packets")} for {containers[i]} ({mac})");
            }
        }

        // VXLAN over an IPv4 underlay costs 50 bytes: the lab's veths have 1500
        foreach (var c in containers)
            Assert.Equal("1450", (await scope.ExecAsync(c, "cat", "/sys/class/net/eth0/mtu")).EnsureOk().Stdout.Trim());
    }

    /// <summary>
    /// Packets the bridge bypass redirected on <paramref name="host"/> for frames to <paramref name="mac"/>, summed
    /// over the tc filters that match it (each VXLAN device's ingress and each network's block); -1 with no filter.
    /// </summary>
    private static async Task<long> BypassedPacketsAsync(LabHost host, string mac)
    {
        var links = (await host.InNetnsAsync("ip", "-d", "-j", "link", "show", "type", "vxlan")).EnsureOk().Stdout;
        using var json = System.Text.Json.JsonDocument.Parse(links);
        var match = $"match {string.Concat(mac.Split(':')[2..])}/ffffffff at -12";
        long packets = 0;
        var found = false;
        foreach (var link in json.RootElement.EnumerateArray())
        {
            var name = link.GetProperty("ifname").GetString()!;
            var vni = link.GetProperty("linkinfo").GetProperty("info_data").GetProperty("id").GetInt32().ToString(System.Globalization.CultureInfo.InvariantCulture);
            foreach (var at in new[] { new[] { "dev", name, "ingress" }, ["block", vni] })
            {
                var listing = await host.InNetnsAsync(["tc", "-s", "filter", "show", .. at]);
                foreach (var filter in listing.Stdout.Split("filter protocol").Where(f => f.Contains(match, StringComparison.Ordinal)))
                {
                    found = true;
                    var sent = Regex.Match(filter, @"Sent \d+ bytes (\d+) pkt");
                    if (sent.Success)
                        packets += long.Parse(sent.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
                }
            }
        }
        return found ? packets : -1;
    }

    [SkippableFact]
    public async Task Concurrent_docker_run_on_all_hosts_never_hands_out_an_address_twice()
    {
        Lab.RequireReady();
        const int perHost = 5;
        await using var scope = Lab.Scope();
        var net = await scope.NetworkOnAllAsync("uniq", ["--subnet", "10.21.0.0/16"]);
        var runs = Lab.Hosts.SelectMany(h => Enumerable.Range(0, perHost).Select(k => (Host: h, Suffix: $"u{h.Index}-{k}"))).ToList();
        var results = await Task.WhenAll(runs.Select(r => scope.TryRunAsync(r.Host, r.Suffix, net)));
        var failures = runs.Zip(results).Where(p => !p.Second.Ok).Select(p => $"{p.First.Suffix} on {p.First.Host.Name}: {p.Second.Stderr.Trim()}").ToList();
        Assert.True(failures.Count == 0, "concurrent docker run failed:\n" + string.Join('\n', failures));

        var containers = runs.Select(r => new LabContainer(r.Host, scope.Name(r.Suffix), net)).ToList();
        var addresses = new Dictionary<string, LabContainer>();
        foreach (var c in containers)
        {
            var ip = await scope.IPv4Async(c);
            Assert.True(IPNetwork.Parse("10.21.0.0/16").Contains(IPAddress.Parse(ip)), $"{c} got {ip}, outside 10.21.0.0/16");
            Assert.False(addresses.TryGetValue(ip, out var holder), $"{ip} handed out twice: {c} and {holder}");
            addresses[ip] = c;
        }

        // and the addresses work across hosts: each host's first container reaches the next host's
        var firsts = Lab.Hosts.Select(h => containers.First(c => c.Host == h)).ToList();
        for (var i = 0; i < firsts.Count; i++)
        {
            var to = firsts[(i + 1) % firsts.Count];
            await scope.AssertPingsAsync(firsts[i], to, addresses.Single(a => a.Value == to).Key);
        }
    }
}
