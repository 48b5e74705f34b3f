using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;

namespace Skein.Functional.Tests.Infrastructure;

/// <summary>
/// What the multi-host and swarm labs share, all of it multihost.sh's plumbing: a store namespace holding the
/// underlay bridge (198.18.K.254/24) and N host namespaces (198.18.K.I/24), a directory under /tmp owned by this test
/// process (a crashed earlier run with the same prefix is swept first), the fixture log, an HTTP client that speaks
/// from inside the store namespace, and the teardown that removes everything, also after a failed set-up.
/// </summary>
public abstract class NamespaceLab : IAsyncLifetime
{
    private readonly string _prefix;

    protected NamespaceLab(string prefix, int hosts)
    {
        _prefix = prefix;
        Id = prefix + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
        LabHostCount = hosts;
    }

    /// <summary>Third octet of the underlay; each lab is alone in its namespaces, so one value does.</summary>
    public int UnderlayK => 1;
    public string Id { get; }
    public string Dir => "/tmp/" + Id;
    public string StoreNetns => Id + "-s";
    public string StoreIp => $"198.18.{UnderlayK}.254";
    public string? SkipReason { get; private set; }
    public Exception? SetupError { get; private set; }
    public FixtureLog Log { get; private set; } = null!;
    protected HttpClient? StoreHttp { get; private set; }
    private int LabHostCount { get; }

    public static string Script => Path.Combine(AppContext.BaseDirectory, "Infrastructure", "multihost.sh");

    /// <summary>Why this machine cannot run the lab (missing tools, no root), or null.</summary>
    protected abstract string? EnvironmentSkipReason();

    /// <summary>True when the lab runs a real etcd in the store namespace.</summary>
    protected abstract bool NeedsEtcd { get; }

    /// <summary>Everything after the namespaces are up: the store, dockerds, skein or the plugin.</summary>
    protected abstract Task BuildAsync();

    /// <summary>Before the namespaces go (skein, swarm membership and plugins must still answer the engine then).</summary>
    protected virtual Task BeforeTeardownAsync() => Task.CompletedTask;

    /// <summary>After the namespaces are gone.</summary>
    protected virtual Task AfterTeardownAsync() => Task.CompletedTask;

    public async Task InitializeAsync()
    {
        SkipReason = EnvironmentSkipReason();
        if (SkipReason is null && NeedsEtcd && !File.Exists("/usr/bin/etcd") && !File.Exists("/usr/local/bin/etcd"))
            SkipReason = "etcd missing (apt-get install etcd-server)";
        if (SkipReason is not null)
            return;
        try
        {
            await RunScriptAsync("sweep", _prefix);
            Directory.CreateDirectory(Dir);
            File.WriteAllText(Path.Combine(Dir, "owner"), Environment.ProcessId.ToString());
            Log = new FixtureLog(Path.Combine(Dir, "fixture.log"));
            await RunScriptAsync("net-up", Dir, UnderlayK.ToString(), LabHostCount.ToString());
            StoreHttp = MultiHostNetns.HttpClient("/run/netns/" + StoreNetns, TimeSpan.FromSeconds(10));
            await BuildAsync();
        }
        catch (Exception e)
        {
            SetupError = e;
        }
    }

    public async Task<CommandResult> RunScriptAsync(params string[] args)
    {
        var result = await Shell.RunAsync("/bin/bash", [Script, .. args], TimeSpan.FromSeconds(150));
        Log?.Write($"{result.Command} -> {result.ExitCode}{(result.Ok ? "" : ": " + result.Stderr.Trim())}");
        return result.EnsureOk();
    }

    /// <summary>
    /// Runs a command in the store's namespace: outside every host, reachable over the underlay only, with no route to
    /// any container subnet (so an answer to a container proves masquerade, a connection to a host port proves -p).
    /// </summary>
    public Task<CommandResult> InStoreNetnsAsync(params string[] command) =>
        Shell.RunAsync("/usr/sbin/ip", ["netns", "exec", StoreNetns, .. command], TimeSpan.FromSeconds(60));

    /// <summary>Every key in the lab's etcd with its value (as text), read from inside the store namespace.</summary>
    protected async Task<SortedDictionary<string, string>> EtcdKeysAsync()
    {
        var result = new SortedDictionary<string, string>(StringComparer.Ordinal);
        var request = new JsonObject { ["key"] = "AA==", ["range_end"] = "AA==" }; // "\0".."\0" = the whole keyspace
        var response = await StoreHttp!.PostAsync($"http://{StoreIp}:2379/v3/kv/range", new StringContent(request.ToJsonString()));
        response.EnsureSuccessStatusCode();
        foreach (var kv in JsonNode.Parse(await response.Content.ReadAsStringAsync())?["kvs"]?.AsArray() ?? [])
            result[Base64Text(kv?["key"])] = Base64Text(kv?["value"]);
        return result;
    }

    protected static string Base64Text(JsonNode? node) =>
        node?.GetValue<string>() is { } b64 ? Encoding.UTF8.GetString(Convert.FromBase64String(b64)) : "";

    public async Task DisposeAsync()
    {
        if (SkipReason is not null)
            return;
        if (Environment.GetEnvironmentVariable("SKEIN_KEEP_TESTHOST") == "1")
            return;
        await BeforeTeardownAsync();
        await Shell.RunAsync("/bin/bash", [Script, "teardown", Dir], TimeSpan.FromSeconds(180));
        await AfterTeardownAsync();
        StoreHttp?.Dispose();
    }
}
