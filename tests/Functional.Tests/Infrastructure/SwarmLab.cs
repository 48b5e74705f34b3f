using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Skein.Driver.Replay;
using Skein.Functional.Tests.ManagedPlugin;

namespace Skein.Functional.Tests.Infrastructure;

/// <summary>
/// A Docker swarm of namespace-hosts with skein installed as a managed plugin on every node (issue 6):
/// multihost.sh's plumbing (store namespace with the underlay bridge and a real etcd, one namespace, dockerd and
/// busybox image per host), then one plugin rootfs assembled by plugin-config/assemble-rootfs.sh and registered on
/// every node with `docker plugin create`, configured with `docker plugin set` (etcd store, the node's underlay
/// address, node id) and enabled; node 1 runs `swarm init`, the others join as workers. Disposal makes every node
/// leave the swarm, removes the plugins and then everything multihost.sh made, also after a failed set-up; a
/// crashed earlier run is swept at the next start.
/// </summary>
public abstract partial class SwarmLab : NamespaceLab
{
    public const string Prefix = "sksw-";
    public const string Plugin = "skein:latest";
    public const string Image = TestHost.Image;

    protected SwarmLab(int nodes, string? driverScope = null) : base(Prefix, nodes)
    {
        NodeCount = nodes;
        DriverScope = driverScope;
    }

    public int NodeCount { get; }
    /// <summary>SKEIN_DRIVER_SCOPE given to every node's plugin (null: the manifest's default).</summary>
    public string? DriverScope { get; }
    public string StoreUrl => $"etcd://{StoreIp}:2379";
    public IReadOnlyList<SwarmNode> Nodes { get; private set; } = [];
    public SwarmNode Manager => Nodes[0];
    /// <summary>Size of the plugin rootfs (KiB) as assemble-rootfs.sh built it.</summary>
    public long RootfsKiB { get; private set; }
    /// <summary>Per node: `docker plugin enable` until the plugin's socket answers GetCapabilities.</summary>
    public IReadOnlyList<TimeSpan> EnableToReady { get; private set; } = [];

    public SwarmNode this[int index] => Nodes[index - 1];

    protected override string? EnvironmentSkipReason() => ManagedPluginHost.EnvironmentSkipReason();

    protected override bool NeedsEtcd => true;

    protected override async Task BuildAsync()
    {
        Nodes = Enumerable.Range(1, NodeCount).Select(i => new SwarmNode(this, i)).ToList();
        var pluginDir = Path.Combine(Dir, "plugin");
        await Task.WhenAll(
            [RunScriptAsync("etcd-start", Dir, UnderlayK.ToString()), AssemblePluginAsync(pluginDir),
             .. Nodes.Select(async n =>
             {
                 await RunScriptAsync("dockerd-start", Dir, n.Index.ToString());
                 await RunScriptAsync("image", Dir, n.Index.ToString(), Image);
             })]);
        var ready = new List<TimeSpan>();
        foreach (var node in Nodes)
            ready.Add(await node.InstallPluginAsync(pluginDir));
        EnableToReady = ready;
        await FormSwarmAsync();
    }

    private async Task AssemblePluginAsync(string pluginDir)
    {
        var repo = ManagedPluginHost.FindRepoRoot()!;
        var result = await Shell.RunAsync("/bin/bash",
            [Path.Combine(repo, "plugin-config", "assemble-rootfs.sh"), ManagedPluginHost.NativeBinary()!, Path.Combine(pluginDir, "rootfs")],
            TimeSpan.FromMinutes(3));
        Log.Write($"{result.Command} -> {result.ExitCode}: {result.Stderr.Trim()}");
        result.EnsureOk();
        File.Copy(Path.Combine(repo, "plugin-config", "config.json"), Path.Combine(pluginDir, "config.json"));
        RootfsKiB = long.Parse(RootfsSize().Match(result.Stderr).Groups[1].Value);
    }

    private async Task FormSwarmAsync()
    {
        await Manager.DockerOkAsync("swarm", "init", "--advertise-addr", Manager.UnderlayIp, "--listen-addr", Manager.UnderlayIp + ":2377",
            "--default-addr-pool", "10.202.0.0/16");
        var token = await Manager.DockerOkAsync("swarm", "join-token", "-q", "worker");
        foreach (var node in Nodes.Skip(1))
            await node.DockerOkAsync("swarm", "join", "--token", token, "--advertise-addr", node.UnderlayIp, "--listen-addr", node.UnderlayIp + ":2377",
                Manager.UnderlayIp + ":2377");
        var ready = await Shell.EventuallyAsync(async () =>
        {
            var states = (await Manager.DockerAsync("node", "ls", "--format", "{{.Status}}")).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            return states.Length == NodeCount && states.All(s => s == "Ready");
        }, TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(500));
        if (!ready)
            throw new InvalidOperationException("swarm nodes not Ready within 60 s: " + (await Manager.DockerAsync("node", "ls")).Output);
    }

    /// <summary>Every key in etcd with its value (as text), read from inside the store namespace.</summary>
    public async Task<IReadOnlyDictionary<string, string>> StoreKeysAsync() => await EtcdKeysAsync();

    /// <summary>Call first in every test: skips when the machine cannot run it, fails with the set-up error.</summary>
    public void RequireReady()
    {
        Skip.If(SkipReason is not null, SkipReason);
        if (SetupError is not null)
            throw new InvalidOperationException($"swarm lab {Id} could not be set up: {SetupError.Message}\n" +
                string.Join('\n', Nodes.Select(n => $"{n.Name} plugin log:\n{n.PluginLogTail(15)}")), SetupError);
    }

    private readonly List<string> _pluginIds = [];

    protected override async Task BeforeTeardownAsync()
    {
        if (Log is not null)
        {
            // services and swarm networks go with the manager's state; leaving first keeps the plugins answering
            foreach (var node in Nodes)
                if ((await node.DockerAsync("info", "-f", "{{.Swarm.LocalNodeState}}")).Stdout.Trim() is { Length: > 0 } state && state != "inactive")
                    await node.DockerAsync("swarm", "leave", "--force");
            foreach (var node in Nodes)
                _pluginIds.AddRange(await node.RemovePluginsAsync());
        }
    }

    protected override Task AfterTeardownAsync()
    {
        // a plugin killed with its dockerd leaves its cgroups (named by the plugin id) behind
        foreach (var id in _pluginIds.Distinct())
            foreach (var cgroup in Directory.EnumerateDirectories("/sys/fs/cgroup", id, new EnumerationOptions { RecurseSubdirectories = true, MaxRecursionDepth = 4, IgnoreInaccessible = true }))
                try
                {
                    Directory.Delete(cgroup);
                }
                catch (IOException)
                {
                }
        return Task.CompletedTask;
    }

    [GeneratedRegex(@"assemble-rootfs: (\d+) KiB")]
    private static partial Regex RootfsSize();
}

/// <summary>One node of a <see cref="SwarmLab"/>: its dockerd and its copy of the managed plugin.</summary>
public sealed class SwarmNode(SwarmLab lab, int index)
{
    public SwarmLab Lab { get; } = lab;
    public int Index { get; } = index;
    public string Name => "node" + Index;
    public string NodeId => "host" + Index;
    public string Dir => Path.Combine(Lab.Dir, "h" + Index);
    public string Netns => $"{Lab.Id}-h{Index}";
    public string UnderlayIp => $"198.18.{Lab.UnderlayK}.{Index}";
    public string DockerSocket => Path.Combine(Dir, "docker.sock");
    public string PluginStateDir => Path.Combine(Dir, "plugin-state");
    public string DockerdLog => Path.Combine(Dir, "dockerd.log");
    /// <summary>The enabled plugin's socket as this node's dockerd dials it.</summary>
    public string PluginSocket { get; private set; } = "";

    /// <summary>docker plugin create from the assembled directory, set (etcd, advertise address, node id, debug log), enable.
    /// Returns the time from `docker plugin enable` until the plugin's socket answers GetCapabilities.</summary>
    public async Task<TimeSpan> InstallPluginAsync(string pluginDir)
    {
        Directory.CreateDirectory(PluginStateDir);
        await DockerOkAsync("plugin", "create", SwarmLab.Plugin, pluginDir);
        string[] settings = ["plugin", "set", SwarmLab.Plugin, $"state.source={PluginStateDir}", $"SKEIN_STORE={Lab.StoreUrl}",
            $"SKEIN_ADVERTISE_ADDR={UnderlayIp}", $"SKEIN_NODE_ID={NodeId}", "SKEIN_LOG_LEVEL=debug"];
        await DockerOkAsync(Lab.DriverScope is { } scope ? [.. settings, "SKEIN_DRIVER_SCOPE=" + scope] : settings);
        var id = await DockerOkAsync("plugin", "inspect", "-f", "{{.Id}}", SwarmLab.Plugin);
        var socket = PluginSocket = Path.Combine(Dir, "plugins", id, "skein.sock");
        var clock = Stopwatch.StartNew();
        var enable = DockerAsync("plugin", "enable", SwarmLab.Plugin);
        var ready = await Shell.EventuallyAsync(() => SocketAnswersAsync(socket), TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(10));
        var took = clock.Elapsed;
        (await enable).EnsureOk();
        if (!ready)
            throw new InvalidOperationException($"the plugin on {Name} did not answer on {socket} within 30 s of docker plugin enable:\n{PluginLogTail(20)}");
        return took;
    }

    /// <summary>The Scope the plugin reports in NetworkDriver.GetCapabilities ("local" or "global").</summary>
    public async Task<string> DriverScopeAsync()
    {
        await using var client = new PluginSocketClient(PluginSocket, TimeSpan.FromSeconds(5));
        var reply = await client.PostAsync("/NetworkDriver.GetCapabilities", null);
        return JsonNode.Parse(Encoding.UTF8.GetString(reply.Body))?["Scope"]?.GetValue<string>() ?? "";
    }

    private static async Task<bool> SocketAnswersAsync(string socket)
    {
        if (!File.Exists(socket))
            return false;
        try
        {
            await using var client = new PluginSocketClient(socket, TimeSpan.FromSeconds(2));
            return (await client.PostAsync("/NetworkDriver.GetCapabilities", null)).Status == 200;
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or TimeoutException or OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>Disables and removes every plugin of this node (forced); returns their ids.</summary>
    public async Task<List<string>> RemovePluginsAsync()
    {
        var ids = (await DockerAsync("plugin", "ls", "-q", "--no-trunc")).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).ToList();
        if (ids.Count == 0)
            return ids;
        foreach (var c in (await DockerAsync("ps", "-aq")).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            await DockerAsync("rm", "-f", c);
        foreach (var n in (await DockerAsync("network", "ls", "-q", "--filter", "type=custom")).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            await DockerAsync("network", "rm", n);
        foreach (var id in ids)
        {
            await DockerAsync("plugin", "disable", "-f", id);
            await DockerAsync("plugin", "rm", "-f", id);
        }
        return ids;
    }

    /// <summary>/usr/bin/docker (the 20.10 client) against this node's dockerd.</summary>
    public async Task<CommandResult> DockerAsync(params string[] args)
    {
        var result = await Shell.RunAsync("/usr/bin/docker", ["-H", "unix://" + DockerSocket, .. args], TimeSpan.FromSeconds(120),
            new Dictionary<string, string> { ["DOCKER_CONFIG"] = Path.Combine(Dir, "cli") });
        Lab.Log.Write($"{Name}: docker {string.Join(' ', args)} -> {result.ExitCode}{(result.Ok ? "" : ": " + result.Stderr.Trim())}");
        return result;
    }

    public async Task<string> DockerOkAsync(params string[] args) => (await DockerAsync(args)).EnsureOk().Stdout.Trim();

    /// <summary>The plugin's own lines from this node's dockerd log (the engine tags them plugin=&lt;id&gt;).</summary>
    public string PluginLogTail(int lines = 40)
    {
        if (!File.Exists(DockerdLog))
            return "(no dockerd log)";
        var plugin = File.ReadLines(DockerdLog).Where(l => l.Contains("plugin=", StringComparison.Ordinal)).ToList();
        return string.Join('\n', plugin.Skip(Math.Max(0, plugin.Count - lines)));
    }

    /// <summary>Runs an iproute2 read in this node's network namespace.</summary>
    public Task<CommandResult> IpAsync(params string[] args) => Shell.RunAsync("/usr/sbin/ip", ["-n", Netns, .. args], TimeSpan.FromSeconds(30));
}
