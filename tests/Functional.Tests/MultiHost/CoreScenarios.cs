using System.Net;
using Skein.Functional.Tests.Infrastructure;

namespace Skein.Functional.Tests.MultiHost;

/// <summary>
/// The multi-host scenarios every store backend must pass: the harness itself (host-local networks on
/// each host), one cluster network across all hosts reachable over IPv4 and IPv6, and unique
/// addresses under concurrent `docker run` on every host.
/// </summary>
public abstract class CoreScenarios<TLab>(TLab lab) where TLab : MultiHostLab
{
    protected TLab Lab { get; } = lab;

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

        // VXLAN over an IPv4 underlay costs 50 bytes: the lab's veths have 1500
        foreach (var c in containers)
            Assert.Equal("1450", (await scope.ExecAsync(c, "cat", "/sys/class/net/eth0/mtu")).EnsureOk().Stdout.Trim());
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
