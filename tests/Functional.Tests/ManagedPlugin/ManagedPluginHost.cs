using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Skein.Driver.Replay;
using Skein.Functional.Tests.Infrastructure;

namespace Skein.Functional.Tests.ManagedPlugin;

/// <summary>
/// A scratch docker host (network namespace pair, private dockerd with its own /run/docker/plugins, the busybox
/// image: testhost.sh's plumbing) with NO legacy skein in it, and skein installed as a managed plugin by
/// plugin-config/build.sh. The engine runs the plugin itself, in the dockerd's network namespace (network type
/// host), so everything the plugin programs stays inside the scratch namespace. Disposal disables and removes the
/// plugin (docker plugin rm -f), then removes the namespaces, dockerd and directories, also after failures.
/// </summary>
public partial class ManagedPluginHost : IAsyncLifetime
{
    public const string HostIp = "198.18.0.1";
    public const string OutsideIp = "198.18.0.2";
    public const string Image = "skein-busybox";
    public const string Plugin = "skein:latest";
    private const string Prefix = "skmp-";

    private readonly SemaphoreSlim configureOnce = new(1, 1);
    private readonly HashSet<string> pluginIds = [];
    private bool configured;

    public string Id { get; } = Prefix + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
    public string Dir => "/tmp/" + Id;
    public string Netns => Id;
    public string OutsideNetns => Id + "-o";
    public string DockerSocket => Path.Combine(Dir, "docker.sock");
    /// <summary>Host directory given to the plugin's "state" mount with `docker plugin set`.</summary>
    public string StateSource => Path.Combine(Dir, "plugin-state");
    public string? SkipReason { get; private set; }
    public Exception? SetupError { get; private set; }
    public FixtureLog Log { get; private set; } = null!;
    public string RepoRoot { get; private set; } = "";
    public string Binary { get; private set; } = "";
    /// <summary>Size of the rootfs build.sh assembled, as it reported it.</summary>
    public long RootfsKiB { get; private set; }

    /// <summary>False for fixtures that need only the docker host (building images).</summary>
    protected virtual bool BuildPlugin => true;

    /// <summary>The NativeAOT skein (a standalone ELF, no skein.dll beside it), or null.</summary>
    public static string? NativeBinary()
    {
        var path = Environment.GetEnvironmentVariable("SKEIN_BINARY");
        if (string.IsNullOrEmpty(path) || !File.Exists(path))
            return null;
        return File.Exists(Path.Combine(Path.GetDirectoryName(path)!, "skein.dll")) ? null : path;
    }

    /// <summary>The repository root: where plugin-config/build.sh is. Looked for above the test assembly, then
    /// above this source file as compiled (builds with --artifacts-path put the assembly outside the repo).</summary>
    public static string? FindRepoRoot() => FindRepoRootFrom(AppContext.BaseDirectory) ?? FindRepoRootFrom(Path.GetDirectoryName(SourceFile()) ?? "/");

    private static string? FindRepoRootFrom(string start)
    {
        if (Environment.GetEnvironmentVariable("SKEIN_REPO") is { Length: > 0 } fromEnv)
            return File.Exists(Path.Combine(fromEnv, "plugin-config", "build.sh")) ? fromEnv : null;
        for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "plugin-config", "build.sh")) && File.Exists(Path.Combine(dir.FullName, "Dockerfile")))
                return dir.FullName;
        return null;
    }

    private static string SourceFile([System.Runtime.CompilerServices.CallerFilePath] string path = "") => path;

    public static string? EnvironmentSkipReason()
    {
        if (TestHost.EnvironmentSkipReason(needDockerd: true) is { } common)
            return common;
        if (NativeBinary() is null)
            return "needs the NativeAOT skein for the plugin rootfs: set SKEIN_BINARY to the `dotnet publish src/Driver -r linux-x64` output (tests/run.sh does)";
        if (FindRepoRoot() is null)
            return "plugin-config/build.sh and Dockerfile not found above the test assembly (set SKEIN_REPO)";
        if (!File.Exists("/usr/sbin/xtables-nft-multi"))
            return "/usr/sbin/xtables-nft-multi missing (apt-get install iptables)";
        return null;
    }

    public async Task InitializeAsync()
    {
        SkipReason = EnvironmentSkipReason();
        if (SkipReason is not null)
            return;
        try
        {
            RepoRoot = FindRepoRoot()!;
            Binary = NativeBinary()!;
            await ScriptAsync("sweep", Prefix);
            Directory.CreateDirectory(Dir);
            File.WriteAllText(Path.Combine(Dir, "owner"), Environment.ProcessId.ToString());
            Log = new FixtureLog(Path.Combine(Dir, "fixture.log"));
            await ScriptAsync("netns-up", Netns, OutsideNetns, HostIp, OutsideIp);
            await ScriptAsync("dockerd-start", Dir, Netns, HostIp);
            await ScriptAsync("image", Dir, Image);
            if (!BuildPlugin)
                return;

            var build = await Shell.RunAsync("/bin/bash", [Path.Combine(RepoRoot, "plugin-config", "build.sh"), Plugin], TimeSpan.FromMinutes(5), DockerEnvironment(("SKEIN_BINARY", Binary)));
            Log.Write($"{build.Command} -> {build.ExitCode}\n{build.Stderr}");
            build.EnsureOk();
            Assert.Equal(Plugin, build.Stdout.Trim());
            RootfsKiB = long.Parse(RootfsSize().Match(build.Stderr).Groups[1].Value);
            pluginIds.Add(await PluginIdAsync());
        }
        catch (Exception e)
        {
            SetupError = e;
        }
    }

    public void RequireReady()
    {
        Skip.If(SkipReason is not null, SkipReason);
        if (SetupError is not null)
            throw new InvalidOperationException($"managed-plugin host {Id} could not be set up: {SetupError.Message}", SetupError);
    }

    /// <summary>
    /// The plugin as the tests expect it: once, while it is still disabled after `docker plugin create`, point its
    /// state mount at a directory of this fixture and raise the log level; then make sure it is enabled.
    /// </summary>
    public async Task EnsureEnabledAsync()
    {
        await configureOnce.WaitAsync();
        try
        {
            if (!configured)
            {
                Directory.CreateDirectory(StateSource);
                await DockerOkAsync("plugin", "set", Plugin, $"state.source={StateSource}", "SKEIN_LOG_LEVEL=debug");
                configured = true;
            }
            if (!await IsEnabledAsync())
                await DockerOkAsync("plugin", "enable", Plugin);
        }
        finally
        {
            configureOnce.Release();
        }
    }

    public async Task<bool> IsEnabledAsync() => await DockerOkAsync("plugin", "inspect", "-f", "{{.Enabled}}", Plugin) == "true";

    public async Task<string> PluginIdAsync() => await DockerOkAsync("plugin", "inspect", "-f", "{{.Id}}", Plugin);

    /// <summary>Where the plugin's socket appears on the host: the engine bind-mounts
    /// /run/docker/plugins/&lt;id&gt;/ (here: this dockerd's private plugin directory) at the plugin's /run/docker/plugins.</summary>
    public string PluginSocket(string pluginId) => Path.Combine(Dir, "plugins", pluginId, "skein.sock");

    /// <summary>True when the plugin's socket answers NetworkDriver.GetCapabilities with 200.</summary>
    public static async Task<bool> SocketAnswersAsync(string socket)
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

    /// <summary>
    /// Pids of the plugin's skein processes: the engine runs the plugin in a cgroup named by the plugin id, which
    /// tells it apart from any other skein on the machine.
    /// </summary>
    public static List<int> PluginPids(string pluginId)
    {
        var pids = new List<int>();
        foreach (var proc in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(proc), out var pid))
                continue;
            try
            {
                var cgroups = File.ReadAllText(Path.Combine(proc, "cgroup"));
                if (!cgroups.Contains("/" + pluginId, StringComparison.Ordinal))
                    continue;
                var cmdline = File.ReadAllText(Path.Combine(proc, "cmdline")).Split('\0');
                if (cmdline.Length >= 2 && cmdline[0] == "/usr/bin/skein" && cmdline[1] == "serve")
                    pids.Add(pid);
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
        return pids;
    }

    public async Task<int> PluginPidAsync()
    {
        var id = await PluginIdAsync();
        var pids = PluginPids(id);
        Assert.True(pids.Count == 1, $"expected one skein process of plugin {id[..12]}, found {pids.Count} ({string.Join(", ", pids)})");
        return pids[0];
    }

    /// <summary>VmRSS of a process in KiB.</summary>
    public static long RssKiB(int pid)
    {
        foreach (var line in File.ReadAllLines($"/proc/{pid}/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
        throw new InvalidOperationException($"no VmRSS for pid {pid}");
    }

    /// <summary>Stops dockerd (TERM, or KILL -9 when <paramref name="kill"/>) and starts it again; the start
    /// waits up to 90 s for the API, so a daemon that deadlocks on the plugin fails here.</summary>
    public async Task<TimeSpan> RestartDockerdAsync(bool kill)
    {
        await ScriptAsync(kill ? ["dockerd-stop", Dir, "kill"] : ["dockerd-stop", Dir]);
        var clock = Stopwatch.StartNew();
        await ScriptAsync("dockerd-start", Dir, Netns, HostIp);
        return clock.Elapsed;
    }

    public async Task<CommandResult> ScriptAsync(params string[] args)
    {
        var result = await Shell.RunAsync("/bin/bash", [TestHost.Script, .. args], TimeSpan.FromSeconds(150));
        Log?.Write($"{result.Command} -> {result.ExitCode}");
        return result.EnsureOk();
    }

    private Dictionary<string, string> DockerEnvironment(params (string Key, string Value)[] extra)
    {
        var env = new Dictionary<string, string> { ["DOCKER_HOST"] = "unix://" + DockerSocket, ["DOCKER_CONFIG"] = Path.Combine(Dir, "cli") };
        foreach (var (key, value) in extra)
            env[key] = value;
        return env;
    }

    /// <summary>/usr/bin/docker (the 20.10 client) against this host's dockerd.</summary>
    public async Task<CommandResult> DockerAsync(params string[] args)
    {
        var result = await Shell.RunAsync("/usr/bin/docker", args, TimeSpan.FromSeconds(120), DockerEnvironment());
        Log.Write($"docker {string.Join(' ', args)} -> {result.ExitCode}{(result.Ok ? "" : ": " + result.Stderr.Trim())}");
        return result;
    }

    public async Task<string> DockerOkAsync(params string[] args) => (await DockerAsync(args)).EnsureOk().Stdout.Trim();

    /// <summary>Runs a command in the docker host's namespace.</summary>
    /// <summary>Runs a program with this dockerd as DOCKER_HOST (scripts that call docker themselves).</summary>
    public async Task<CommandResult> WithDockerHostAsync(string file, string[] args, TimeSpan timeout, params (string Key, string Value)[] extra)
    {
        var result = await Shell.RunAsync(file, args, timeout, DockerEnvironment(extra));
        Log.Write($"{result.Command} -> {result.ExitCode}{(result.Ok ? "" : ": " + result.Stderr.Trim())}");
        return result;
    }

    public Task<CommandResult> InHostAsync(params string[] command) =>
        Shell.RunAsync("/usr/sbin/ip", ["netns", "exec", Netns, .. command], TimeSpan.FromSeconds(60));

    public PluginScope Scope() => new(this);

    public async Task DisposeAsync()
    {
        if (SkipReason is not null)
            return;
        if (Environment.GetEnvironmentVariable("SKEIN_KEEP_TESTHOST") == "1")
            return;
        if (Log is not null && File.Exists(DockerSocket))
        {
            // Plugins hold references from networks: containers, then networks, then the plugin (forced).
            var running = await DockerAsync("info");
            if (running.Ok)
            {
                // A disabled plugin cannot release its networks: enable it again first (failure is fine).
                if (BuildPlugin)
                    await DockerAsync("plugin", "enable", Plugin);
                foreach (var id in (await DockerAsync("ps", "-aq")).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
                    await DockerAsync("rm", "-f", id);
                foreach (var id in (await DockerAsync("network", "ls", "-q", "--filter", "type=custom")).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
                    await DockerAsync("network", "rm", id);
                foreach (var id in (await DockerAsync("plugin", "ls", "-q", "--no-trunc")).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
                {
                    pluginIds.Add(id);
                    await DockerAsync("plugin", "disable", "-f", id);
                    await DockerAsync("plugin", "rm", "-f", id);
                }
            }
        }
        await Shell.RunAsync("/bin/bash", [TestHost.Script, "teardown", Dir, Netns, OutsideNetns], TimeSpan.FromSeconds(150));
        // A plugin killed with its dockerd leaves its cgroups (named by the plugin id) behind.
        foreach (var id in pluginIds)
            foreach (var cgroup in Directory.EnumerateDirectories("/sys/fs/cgroup", id, new EnumerationOptions { RecurseSubdirectories = true, MaxRecursionDepth = 4, IgnoreInaccessible = true }))
                try
                {
                    Directory.Delete(cgroup);
                }
                catch (IOException)
                {
                }
    }

    [GeneratedRegex(@"rootfs (\d+) KiB")]
    private static partial Regex RootfsSize();
}

/// <summary>The scratch docker host alone, without the plugin (the Dockerfile tests build and run images).</summary>
public sealed class DockerOnlyHost : ManagedPluginHost
{
    protected override bool BuildPlugin => false;
}

/// <summary>
/// Containers and networks one test creates on the managed plugin, removed at the end whatever happened:
/// containers first, then networks, newest first.
/// </summary>
public sealed class PluginScope(ManagedPluginHost host) : IAsyncDisposable
{
    private readonly List<string> containers = [];
    private readonly List<string> networks = [];
    private readonly string prefix = "m" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(2)) + "-";

    public string Name(string suffix) => prefix + suffix;

    /// <summary>docker network create -d skein:latest --ipam-driver skein:latest OPTIONS NAME (the tagged name:
    /// the engine registers a managed plugin's drivers under name:tag).</summary>
    public async Task<string> NetworkAsync(string suffix, params string[] options)
    {
        var name = Name(suffix);
        networks.Add(name);
        await host.DockerOkAsync(["network", "create", "-d", ManagedPluginHost.Plugin, "--ipam-driver", ManagedPluginHost.Plugin, .. options, name]);
        return name;
    }

    /// <summary>A busybox container that exits promptly on SIGTERM (so dockerd restarts stay short).</summary>
    public async Task<string> RunAsync(string suffix, string network, params string[] options)
    {
        var name = Name(suffix);
        containers.Add(name);
        await host.DockerOkAsync(["run", "-d", "--name", name, "--network", network, .. options, ManagedPluginHost.Image,
            "sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]);
        return name;
    }

    public Task<string> IPv4Async(string container, string network) =>
        host.DockerOkAsync("inspect", "-f", $"{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}", container);

    public async Task<bool> PingsAsync(string container, string address, int seconds = 8) =>
        await Shell.EventuallyAsync(async () => (await host.DockerAsync("exec", container, "ping", "-c", "1", "-W", "1", address)).Ok, TimeSpan.FromSeconds(seconds));

    /// <summary>Forgets a container the test removed itself.</summary>
    public void Removed(string container) => containers.Remove(container);

    public async ValueTask DisposeAsync()
    {
        for (var i = containers.Count - 1; i >= 0; i--)
            await host.DockerAsync("rm", "-f", containers[i]);
        for (var i = networks.Count - 1; i >= 0; i--)
            if ((await host.DockerAsync("network", "inspect", networks[i])).Ok)
                await host.DockerAsync("network", "rm", networks[i]);
    }
}
