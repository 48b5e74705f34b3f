using System.Security.Cryptography;
using System.Text.Json.Nodes;

namespace Skein.Functional.Tests.Infrastructure;

/// <summary>
/// A scratch "docker host": a network namespace (sk fixture name skfx-RAND) joined by a veth to an
/// "outside" namespace (198.18.0.1 here, 198.18.0.2 there, default route via the outside, so egress,
/// masquerade and published ports can be tested and no packet can leave the two namespaces), a
/// dockerd of its own inside it (own data/exec root, socket, pidfile; private /run/docker/plugins
/// and /etc/docker), the busybox image, and skein listening in that private plugin directory.
/// One per test class; disposal removes all of it, also after a failed or killed test.
/// Plumbing is in testhost.sh; test logic stays in the tests.
/// </summary>
public class TestHost : IAsyncLifetime
{
    public const string HostIp = "198.18.0.1";
    public const string OutsideIp = "198.18.0.2";
    public const string Image = "skein-busybox";
    public const string Driver = "skein";
    private const string Prefix = "skfx-";

    public string Id { get; } = Prefix + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
    public string Dir => "/tmp/" + Id;
    public string Netns => Id;
    public string OutsideNetns => Id + "-o";
    public string DockerSocket => Path.Combine(Dir, "docker.sock");
    public string? SkipReason { get; private set; }
    public Exception? SetupError { get; private set; }
    public SkeinProcess Skein { get; private set; } = null!;
    public FixtureLog Log { get; private set; } = null!;

    /// <summary>False for fixtures that need only the namespace and skein (replaying traces).</summary>
    protected virtual bool WithDockerd => true;

    public static string Script => Path.Combine(AppContext.BaseDirectory, "Infrastructure", "testhost.sh");

    public static string? EnvironmentSkipReason(bool needDockerd)
    {
        if (!OperatingSystem.IsLinux())
            return "needs Linux network namespaces";
        if (!Environment.IsPrivilegedProcess)
            return "needs root (network namespaces, dockerd, iptables)";
        foreach (var tool in new[] { "/usr/bin/nsenter", "/usr/bin/unshare", "/usr/sbin/ip" })
            if (!File.Exists(tool) && !File.Exists(tool.Replace("/usr/sbin/", "/sbin/")))
                return $"{tool} missing";
        if (needDockerd && !File.Exists("/usr/sbin/dockerd"))
            return "dockerd missing (apt-get install docker.io)";
        if (needDockerd && !File.Exists("/usr/bin/docker"))
            return "/usr/bin/docker (the 20.10 client) missing";
        if (needDockerd && !File.Exists("/bin/busybox"))
            return "/bin/busybox missing (apt-get install busybox-static)";
        if (SkeinProcess.Resolve() is null)
            return "no skein binary (set SKEIN_BINARY or build src/Driver)";
        return null;
    }

    public async Task InitializeAsync()
    {
        SkipReason = EnvironmentSkipReason(WithDockerd);
        if (SkipReason is not null)
            return;
        try
        {
            await RunScriptAsync("sweep", Prefix);
            Directory.CreateDirectory(Dir);
            File.WriteAllText(Path.Combine(Dir, "owner"), Environment.ProcessId.ToString());
            Log = new FixtureLog(Path.Combine(Dir, "fixture.log"));
            await RunScriptAsync("netns-up", Netns, OutsideNetns, HostIp, OutsideIp);
            if (WithDockerd)
            {
                await RunScriptAsync("dockerd-start", Dir, Netns, HostIp);
                await RunScriptAsync("image", Dir, Image);
            }
            Skein = new SkeinProcess(Netns, Path.Combine(Dir, "plugins", "skein.sock"), Path.Combine(Dir, "skein-state"), Path.Combine(Dir, "skein.log"));
            Directory.CreateDirectory(Path.Combine(Dir, "plugins"));
            await Skein.StartAsync();
        }
        catch (Exception e)
        {
            SetupError = e;
        }
    }

    /// <summary>Call first in every test: skips with the reason when the machine cannot run it, fails
    /// with the setup error when the fixture could not be built.</summary>
    public void RequireReady()
    {
        Skip.If(SkipReason is not null, SkipReason);
        if (SetupError is not null)
            throw new InvalidOperationException($"test host {Id} could not be set up: {SetupError.Message}\nskein log:\n{Skein?.Tail()}", SetupError);
    }

    public async Task<CommandResult> RunScriptAsync(params string[] args)
    {
        var result = await Shell.RunAsync("/bin/bash", [Script, .. args], TimeSpan.FromSeconds(150));
        Log?.Write($"{result.Command} -> {result.ExitCode}");
        return result.EnsureOk();
    }

    /// <summary>/usr/bin/docker (the 20.10 client) against this host's dockerd.</summary>
    public async Task<CommandResult> DockerAsync(params string[] args)
    {
        var result = await Shell.RunAsync("/usr/bin/docker", ["-H", "unix://" + DockerSocket, .. args], TimeSpan.FromSeconds(120),
            new Dictionary<string, string> { ["DOCKER_CONFIG"] = Path.Combine(Dir, "cli") });
        Log.Write($"docker {string.Join(' ', args)} -> {result.ExitCode}{(result.Ok ? "" : ": " + result.Stderr.Trim())}");
        return result;
    }

    public async Task<string> DockerOkAsync(params string[] args) => (await DockerAsync(args)).EnsureOk().Stdout.Trim();

    /// <summary>Runs a command in the "outside" namespace (a client on the far side of the host's veth).</summary>
    public Task<CommandResult> OutsideAsync(params string[] command) =>
        Shell.RunAsync("/usr/sbin/ip", ["netns", "exec", OutsideNetns, .. command], TimeSpan.FromSeconds(60));

    /// <summary>Runs a command in the docker host's namespace.</summary>
    public Task<CommandResult> InHostAsync(params string[] command) =>
        Shell.RunAsync("/usr/sbin/ip", ["netns", "exec", Netns, .. command], TimeSpan.FromSeconds(60));

    /// <summary>Names of the links in the docker host's namespace, read with `ip -j` as an independent check.</summary>
    public async Task<SortedSet<string>> HostLinksAsync()
    {
        var json = (await Shell.RunAsync("/usr/sbin/ip", "-n", Netns, "-j", "link", "show")).EnsureOk().Stdout;
        return new SortedSet<string>((JsonNode.Parse(json) as JsonArray ?? []).Select(l => l?["ifname"]?.GetValue<string>() ?? ""));
    }

    public async Task<SortedSet<string>> HostIptablesRulesAsync()
    {
        var rules = new SortedSet<string>();
        foreach (var tool in new[] { "iptables-save", "ip6tables-save" })
        {
            var text = (await InHostAsync(tool)).Stdout;
            foreach (var line in text.Split('\n'))
                if (line.StartsWith("-A ", StringComparison.Ordinal) || line.StartsWith(':') )
                    rules.Add(tool[..^5] + " " + (line.StartsWith(':') ? line.Split(' ')[0] : line));
        }
        return rules;
    }

    public DockerScope Scope() => new(this);

    public async Task DisposeAsync()
    {
        if (SkipReason is not null)
            return;
        if (Skein is not null)
            await Skein.StopAsync();
        if (Environment.GetEnvironmentVariable("SKEIN_KEEP_TESTHOST") == "1")
            return;
        await Shell.RunAsync("/bin/bash", [Script, "teardown", Dir, Netns, OutsideNetns], TimeSpan.FromSeconds(150));
    }
}

/// <summary>A test host without dockerd: the namespace pair and skein only (for replaying traces).</summary>
public sealed class PluginOnlyHost : TestHost
{
    protected override bool WithDockerd => false;
}
