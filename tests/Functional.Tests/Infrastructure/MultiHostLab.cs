using System.Net;
using System.Text.Json.Nodes;
using Skein.Ipam.Tests.Store.FakeConsul;

namespace Skein.Functional.Tests.Infrastructure;

/// <summary>Which cluster store a lab runs in its store namespace.</summary>
public enum LabStore
{
    /// <summary>A real etcd 3.4 (Debian's etcd-server).</summary>
    Etcd,
    /// <summary>The in-test Consul API server (tests/Ipam.Tests/Store/FakeConsul), served from this process.</summary>
    Consul,
}

/// <summary>
/// Several docker hosts on one machine (multi-host skein, issue 5): a store namespace holding the
/// underlay bridge (198.18.K.254/24) and the store, and N host namespaces (198.18.K.I/24), each with a
/// dockerd of its own (private /run/docker/plugins and /etc/docker), the busybox image and a skein
/// started inside that dockerd's namespaces with the shared store, the host's underlay address as
/// advertise address and node id "hostI". Nothing has a route out of the lab's namespaces.
/// One per test class; disposal removes everything, also after a failed test, and a crashed earlier
/// run is swept at the next start. Plumbing is in multihost.sh (which builds on testhost.sh).
/// </summary>
public abstract class MultiHostLab : NamespaceLab
{
    public const string Image = TestHost.Image;
    public const string Driver = TestHost.Driver;
    public const string Prefix = "skmh-";

    private FakeConsulServer? consul;
    private FakeConsulServer? stoppedConsul;

    protected MultiHostLab(LabStore store, int hosts, int reclaimAfterSeconds = 600) : base(Prefix, hosts)
    {
        Store = store;
        HostCount = hosts;
        ReclaimAfterSeconds = reclaimAfterSeconds;
    }

    public LabStore Store { get; }
    public int HostCount { get; }
    public int ReclaimAfterSeconds { get; }
    public string StoreUrl => Store == LabStore.Etcd ? $"etcd://{StoreIp}:2379" : $"consul://{StoreIp}:8500";
    public IReadOnlyList<LabHost> Hosts { get; private set; } = [];
    public FakeConsulServer? Consul => consul;

    public LabHost this[int index] => Hosts[index - 1];

    protected override string? EnvironmentSkipReason() => TestHost.EnvironmentSkipReason(needDockerd: true);

    protected override bool NeedsEtcd => Store == LabStore.Etcd;

    protected override async Task BuildAsync()
    {
        await StartStoreAsync();
        Hosts = Enumerable.Range(1, HostCount).Select(i => new LabHost(this, i)).ToList();
        await Task.WhenAll(Hosts.Select(async h =>
        {
            await RunScriptAsync("dockerd-start", Dir, h.Index.ToString());
            await RunScriptAsync("image", Dir, h.Index.ToString(), Image);
        }));
        await Task.WhenAll(Hosts.Select(h => h.Skein.StartAsync(TimeSpan.FromSeconds(60))));
    }

    /// <summary>Starts the store (again, on the same data: etcd resumes, the in-test Consul keeps its state object).</summary>
    public async Task StartStoreAsync()
    {
        if (Store == LabStore.Etcd)
        {
            await RunScriptAsync("etcd-start", Dir, UnderlayK.ToString());
            return;
        }
        consul ??= await FakeConsulServer.StartAsync(new IPEndPoint(IPAddress.Parse(StoreIp), 8500),
            endpoint => MultiHostNetns.BoundTcp("/run/netns/" + StoreNetns, endpoint), stoppedConsul);
        stoppedConsul = null;
        var answered = await Shell.EventuallyAsync(async () =>
        {
            try
            {
                using var response = await StoreHttp!.GetAsync($"http://{StoreIp}:8500/v1/kv/?keys=true");
                return response.StatusCode is HttpStatusCode.OK or HttpStatusCode.NotFound;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                return false;
            }
        }, TimeSpan.FromSeconds(10));
        if (!answered)
            throw new InvalidOperationException($"the in-test Consul does not answer on {StoreIp}:8500 inside {StoreNetns}");
    }

    /// <summary>
    /// Stops the store the way an outage would: etcd is killed (SIGKILL; its data stays for the restart), the in-test
    /// Consul stops listening (connections are refused) and keeps its state for the restart.
    /// </summary>
    public async Task StopStoreAsync()
    {
        if (Store == LabStore.Etcd)
        {
            await RunScriptAsync("etcd-stop", Dir, "kill");
            return;
        }
        if (consul is null)
            return;
        await consul.DisposeAsync();
        stoppedConsul = consul;
        consul = null;
    }

    /// <summary>Every key in the store with its value (as text), read from inside the store namespace.</summary>
    public async Task<IReadOnlyDictionary<string, string>> StoreKeysAsync()
    {
        if (Store == LabStore.Etcd)
            return await EtcdKeysAsync();
        var result = new SortedDictionary<string, string>(StringComparer.Ordinal);
        var response = await StoreHttp!.GetAsync($"http://{StoreIp}:8500/v1/kv/?recurse=true");
        if (response.StatusCode == HttpStatusCode.NotFound)
            return result;
        response.EnsureSuccessStatusCode();
        foreach (var kv in JsonNode.Parse(await response.Content.ReadAsStringAsync())?.AsArray() ?? [])
            result[kv?["Key"]?.GetValue<string>() ?? ""] = Base64Text(kv?["Value"]);
        return result;
    }

    /// <summary>Call first in every test: skips with the reason when the machine cannot run it, fails
    /// with the setup error when the lab could not be built.</summary>
    public void RequireReady()
    {
        Skip.If(SkipReason is not null, SkipReason);
        if (SetupError is not null)
            throw new InvalidOperationException($"multi-host lab {Id} could not be set up: {SetupError.Message}\n" +
                string.Join('\n', Hosts.Select(h => $"host{h.Index} skein log:\n{h.Skein.Tail(15)}")), SetupError);
    }

    public MultiHostScope Scope() => new(this);

    /// <summary>skein stays up while the teardown removes containers and networks, so the engine's calls are answered.</summary>
    protected override async Task AfterTeardownAsync()
    {
        foreach (var h in Hosts)
            await h.Skein.DisposeAsync();
        if (consul is not null)
            await consul.DisposeAsync();
    }
}

/// <summary>One docker host of a <see cref="MultiHostLab"/>.</summary>
public sealed class LabHost
{
    public LabHost(MultiHostLab lab, int index)
    {
        Lab = lab;
        Index = index;
        Skein = new MultiHostSkein(DockerdPidAsync, Path.Combine(Dir, "plugins", "skein.sock"), Path.Combine(Dir, "skein-state"),
            Path.Combine(Dir, "skein.log"), lab.StoreUrl, new Dictionary<string, string>
            {
                ["SKEIN_ADVERTISE_ADDR"] = UnderlayIp,
                ["SKEIN_NODE_ID"] = NodeId,
                ["SKEIN_RECLAIM_AFTER"] = lab.ReclaimAfterSeconds.ToString(),
            });
    }

    public MultiHostLab Lab { get; }
    public int Index { get; }
    public string Name => "host" + Index;
    public string NodeId => Name;
    public string Dir => Path.Combine(Lab.Dir, "h" + Index);
    public string Netns => $"{Lab.Id}-h{Index}";
    public string UnderlayIp => $"198.18.{Lab.UnderlayK}.{Index}";
    public string DockerSocket => Path.Combine(Dir, "docker.sock");
    public MultiHostSkein Skein { get; }

    public async Task<int> DockerdPidAsync()
    {
        var result = await Shell.RunAsync("/bin/bash", MultiHostLab.Script, "dockerd-pid", Lab.Dir, Index.ToString());
        return result.Ok && int.TryParse(result.Stdout.Trim(), out var pid)
            ? pid
            : throw new InvalidOperationException($"dockerd of {Name} is not running");
    }

    /// <summary>/usr/bin/docker (the 20.10 client) against this host's dockerd.</summary>
    public async Task<CommandResult> DockerAsync(params string[] args)
    {
        var result = await Shell.RunAsync("/usr/bin/docker", ["-H", "unix://" + DockerSocket, .. args], TimeSpan.FromSeconds(120),
            new Dictionary<string, string> { ["DOCKER_CONFIG"] = Path.Combine(Dir, "cli") });
        Lab.Log.Write($"{Name}: docker {string.Join(' ', args)} -> {result.ExitCode}{(result.Ok ? "" : ": " + result.Stderr.Trim())}");
        return result;
    }

    public async Task<string> DockerOkAsync(params string[] args) => (await DockerAsync(args)).EnsureOk().Stdout.Trim();

    /// <summary>Runs a command in this host's network namespace (iproute2 reads of the kernel state).</summary>
    public Task<CommandResult> InNetnsAsync(params string[] command) =>
        Shell.RunAsync("/usr/sbin/ip", ["netns", "exec", Netns, .. command], TimeSpan.FromSeconds(60));

    /// <summary>Starts or stops this host's dockerd (kill: SIGKILL, as a crash).</summary>
    public Task StopDockerdAsync(bool kill) => Lab.RunScriptAsync(["dockerd-stop", Lab.Dir, Index.ToString(), .. kill ? new[] { "kill" } : []]);

    public Task StartDockerdAsync() => Lab.RunScriptAsync("dockerd-start", Lab.Dir, Index.ToString());

    /// <summary>Takes the host off the underlay (its cable pulled): nothing it sends reaches anyone.</summary>
    public async Task DisconnectAsync() => (await Shell.RunAsync("/usr/sbin/ip", "-n", Netns, "link", "set", "ul0", "down")).EnsureOk();
}
