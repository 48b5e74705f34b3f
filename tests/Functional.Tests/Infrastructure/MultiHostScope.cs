using System.Security.Cryptography;
using System.Text.RegularExpressions;

namespace Skein.Functional.Tests.Infrastructure;

/// <summary>A container of one test on one lab host.</summary>
public sealed record LabContainer(LabHost Host, string Name, string Network)
{
    public override string ToString() => $"{Name} on {Host.Name}";
}

/// <summary>
/// What one multi-host test creates through docker on the lab's hosts, removed again at the end of
/// the test whatever happened: containers first, then networks on every host.
/// </summary>
public sealed partial class MultiHostScope(MultiHostLab lab) : IAsyncDisposable
{
    private readonly List<LabContainer> containers = [];
    private readonly List<(LabHost Host, string Network)> networks = [];
    private readonly string prefix = "m" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(2)) + "-";

    public MultiHostLab Lab { get; } = lab;

    public string Name(string suffix) => prefix + suffix;

    /// <summary>docker network create -d skein --ipam-driver skein OPTIONS NAME on one host.</summary>
    public async Task<CommandResult> TryNetworkAsync(LabHost host, string suffix, params string[] options)
    {
        var name = Name(suffix);
        lock (networks)
            networks.Add((host, name));
        return await host.DockerAsync(["network", "create", "-d", MultiHostLab.Driver, "--ipam-driver", MultiHostLab.Driver, .. options, name]);
    }

    /// <summary>The same network (same name and options) created on every given host (default: all), one after another.</summary>
    public async Task<string> NetworkOnAllAsync(string suffix, string[] options, IEnumerable<LabHost>? hosts = null)
    {
        foreach (var host in hosts ?? Lab.Hosts)
        {
            var result = await TryNetworkAsync(host, suffix, options);
            if (!result.Ok)
                throw new InvalidOperationException($"creating network {Name(suffix)} on {host.Name} failed: {result.Stderr.Trim()}");
        }
        return Name(suffix);
    }

    public async Task<LabContainer> RunAsync(LabHost host, string suffix, string network, params string[] command)
    {
        var result = await TryRunAsync(host, suffix, network, command);
        if (!result.Ok)
            throw new InvalidOperationException($"docker run {Name(suffix)} on {host.Name} (network {network}) failed: {result.Stderr.Trim()}");
        return new LabContainer(host, Name(suffix), network);
    }

    public Task<CommandResult> TryRunAsync(LabHost host, string suffix, string network, params string[] command) =>
        TryRunAsync(host, suffix, network, [], command);

    /// <summary>docker run -d --name NAME --network NETWORK OPTIONS image COMMAND (default: sleep) on the host.</summary>
    public async Task<CommandResult> TryRunAsync(LabHost host, string suffix, string network, string[] options, params string[] command)
    {
        var name = Name(suffix);
        lock (containers)
            containers.Add(new LabContainer(host, name, network));
        string[] cmd = command.Length > 0 ? command : ["sleep", "3600"];
        return await host.DockerAsync(["run", "-d", "--name", name, "--network", network, .. options, MultiHostLab.Image, .. cmd]);
    }

    public Task<CommandResult> ExecAsync(LabContainer c, params string[] command) => c.Host.DockerAsync(["exec", c.Name, .. command]);

    public async Task<string> IPv4Async(LabContainer c) =>
        await c.Host.DockerOkAsync("inspect", "-f", $"{{{{(index .NetworkSettings.Networks \"{c.Network}\").IPAddress}}}}", c.Name);

    public async Task<string> IPv6Async(LabContainer c) =>
        await c.Host.DockerOkAsync("inspect", "-f", $"{{{{(index .NetworkSettings.Networks \"{c.Network}\").GlobalIPv6Address}}}}", c.Name);

    public async Task<string> MacAsync(LabContainer c) =>
        await c.Host.DockerOkAsync("inspect", "-f", $"{{{{(index .NetworkSettings.Networks \"{c.Network}\").MacAddress}}}}", c.Name);

    /// <summary>Pings from inside a container, retrying for a while (peers propagate through the store, DAD settles).</summary>
    public async Task<bool> PingsAsync(LabContainer from, string address, int seconds = 10)
    {
        var tool = address.Contains(':') ? "ping6" : "ping";
        return await Shell.EventuallyAsync(async () => (await ExecAsync(from, tool, "-c", "1", "-W", "1", address)).Ok, TimeSpan.FromSeconds(seconds));
    }

    /// <summary>Asserts that <paramref name="from"/> reaches <paramref name="address"/> (of <paramref name="to"/>), naming both on failure.</summary>
    public async Task AssertPingsAsync(LabContainer from, LabContainer to, string address, int seconds = 10)
    {
        if (!await PingsAsync(from, address, seconds))
            Assert.Fail($"{from} cannot ping {to} at {address} within {seconds} s (cross-host traffic over the skein network {to.Network}); " +
                $"{from.Host.Name} skein log:\n{from.Host.Skein.Tail(12)}\n{to.Host.Name} skein log:\n{to.Host.Skein.Tail(12)}");
    }

    /// <summary>A long-running ping (interval 0.2 s) from a container; the result counts sent and received packets.</summary>
    public async Task<PingSummary> LongPingAsync(LabContainer from, string address, int count)
    {
        var tool = address.Contains(':') ? "ping6" : "ping";
        var result = await ExecAsync(from, tool, "-c", count.ToString(), "-i", "0.2", "-W", "1", address);
        var m = PingSummaryRegex().Match(result.Stdout);
        return m.Success
            ? new PingSummary(int.Parse(m.Groups[1].Value), int.Parse(m.Groups[2].Value), result.Output)
            : new PingSummary(0, 0, result.Output);
    }

    [GeneratedRegex(@"(\d+) packets transmitted, (\d+) packets received")]
    private static partial Regex PingSummaryRegex();

    public async ValueTask DisposeAsync()
    {
        List<LabContainer> cs;
        List<(LabHost, string)> ns;
        lock (containers)
            cs = containers.ToList();
        lock (networks)
            ns = networks.Distinct().ToList();
        await Task.WhenAll(cs.GroupBy(c => c.Host).Select(g => g.Key.DockerAsync(["rm", "-f", .. g.Select(c => c.Name)])));
        foreach (var (host, network) in Enumerable.Reverse(ns))
            if ((await host.DockerAsync("network", "inspect", network)).Ok)
                await host.DockerAsync("network", "rm", network);
    }
}

public sealed record PingSummary(int Sent, int Received, string Output)
{
    public int Lost => Sent - Received;
}
