using System.Security.Cryptography;

namespace Skein.Functional.Tests.Infrastructure;

/// <summary>
/// What one test creates through docker, removed again at the end of the test whatever happened:
/// containers first, then networks, newest first.
/// </summary>
public sealed class DockerScope(TestHost host) : IAsyncDisposable
{
    private readonly List<string> containers = [];
    private readonly List<string> networks = [];
    private readonly string prefix = "t" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(2)) + "-";

    public TestHost Host { get; } = host;

    public string Name(string suffix) => prefix + suffix;

    /// <summary>docker network create -d skein --ipam-driver skein OPTIONS NAME; returns the name.</summary>
    public async Task<string> NetworkAsync(string suffix, params string[] options)
    {
        var result = await TryNetworkAsync(suffix, options);
        result.EnsureOk();
        return Name(suffix);
    }

    public async Task<CommandResult> TryNetworkAsync(string suffix, params string[] options)
    {
        var name = Name(suffix);
        networks.Add(name);
        return await Host.DockerAsync(["network", "create", "-d", TestHost.Driver, "--ipam-driver", TestHost.Driver, .. options, name]);
    }

    /// <summary>docker run -d --name NAME --network NETWORK OPTIONS skein-busybox COMMAND (default: sleep).</summary>
    public async Task<string> RunAsync(string suffix, string network, string[]? options = null, params string[] command)
    {
        var result = await TryRunAsync(suffix, network, options, command);
        result.EnsureOk();
        return Name(suffix);
    }

    public async Task<CommandResult> TryRunAsync(string suffix, string network, string[]? options = null, params string[] command)
    {
        var name = Name(suffix);
        containers.Add(name);
        string[] cmd = command.Length > 0 ? command : ["sleep", "3600"];
        return await Host.DockerAsync(["run", "-d", "--name", name, "--network", network, .. options ?? [], TestHost.Image, .. cmd]);
    }

    public Task<CommandResult> ExecAsync(string container, params string[] command) =>
        Host.DockerAsync(["exec", container, .. command]);

    public async Task<string> ExecOkAsync(string container, params string[] command) =>
        (await ExecAsync(container, command)).EnsureOk().Stdout;

    public Task<string> IPv4Async(string container, string network) =>
        Host.DockerOkAsync("inspect", "-f", $"{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}", container);

    public Task<string> IPv6Async(string container, string network) =>
        Host.DockerOkAsync("inspect", "-f", $"{{{{(index .NetworkSettings.Networks \"{network}\").GlobalIPv6Address}}}}", container);

    /// <summary>Pings from inside a container, retrying for a few seconds (links and IPv6 DAD settle).</summary>
    public async Task<bool> PingsAsync(string container, string address, int seconds = 6)
    {
        var tool = address.Contains(':') ? "ping6" : "ping";
        return await Shell.EventuallyAsync(async () => (await ExecAsync(container, tool, "-c", "1", "-W", "1", address)).Ok, TimeSpan.FromSeconds(seconds));
    }

    public async ValueTask DisposeAsync()
    {
        for (var i = containers.Count - 1; i >= 0; i--)
            await Host.DockerAsync("rm", "-f", containers[i]);
        for (var i = networks.Count - 1; i >= 0; i--)
            if ((await Host.DockerAsync("network", "inspect", networks[i])).Ok)
                await Host.DockerAsync("network", "rm", networks[i]);
    }
}
