using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Skein.Driver.Plugin;

namespace Skein.Driver.Tests.TestSupport;

/// <summary>A reply as the engine would see it: status and body.</summary>
public sealed record PluginReply(HttpStatusCode Status, string Body)
{
    public JsonNode? Json => Body.Length == 0 ? null : JsonNode.Parse(Body);
    public string? Err => Json is JsonObject o && o.TryGetPropertyValue("Err", out var e) ? e?.GetValue<string>() : null;
    public bool Ok => Status == HttpStatusCode.OK;

    public override string ToString() => $"{(int)Status} {Body}";
}

/// <summary>
/// The real plugin host, in-process, on a temporary Unix socket, programming a scratch network namespace with its
/// own state directory. Restart keeps the namespace and the state, as a plugin restart on a host would. Disposing
/// removes the host, the socket, the namespace (and with it every link and iptables rule) and the state.
/// </summary>
public sealed class PluginTestHost : IAsyncDisposable
{
    private readonly bool _ownsNamespace;
    private PluginHost? _host;
    private HttpClient? _client;

    private PluginTestHost(NetNs ns, string stateDir, string socketPath, bool ownsNamespace)
    {
        Ns = ns;
        StateDir = stateDir;
        SocketPath = socketPath;
        _ownsNamespace = ownsNamespace;
    }

    public NetNs Ns { get; }
    /// <summary>Zero (the default) keeps the periodic reconciler off so tests see only what their calls did.</summary>
    public TimeSpan ReconcileInterval { get; init; }
    public string StateDir { get; }
    public string SocketPath { get; }
    public ConcurrentQueue<string> LogLines { get; } = new();
    public PluginHost Host => _host ?? throw new InvalidOperationException("the host is not running");
    public SkeinRuntime Runtime => Host.Ready.GetAwaiter().GetResult();

    public static bool IsSupported => NetNs.IsSupported && TestCommandExists("iptables") && TestCommandExists("nsenter");
    public static string SkipReason => NetNs.IsSupported ? "needs iptables and nsenter" : NetNs.SkipReason;

    /// <summary>Starts a host and waits until it is ready (or has failed to start).</summary>
    public static async Task<PluginTestHost> StartAsync(SkeinRuntime.Overrides? overrides = null, bool waitReady = true, TimeSpan? reconcileInterval = null)
    {
        var ns = NetNs.Create();
        var id = Guid.NewGuid().ToString("N")[..10];
        var stateDir = Path.Combine(Path.GetTempPath(), $"skein-test-{id}");
        var socket = $"/tmp/skt-{id}.sock";
        var test = new PluginTestHost(ns, stateDir, socket, ownsNamespace: true) { ReconcileInterval = reconcileInterval ?? TimeSpan.Zero };
        try
        {
            await test.StartHostAsync(overrides, waitReady);
        }
        catch
        {
            await test.DisposeAsync();
            throw;
        }
        return test;
    }

    /// <summary>Stops the plugin (socket removed, state kept) and starts it again on the same namespace.</summary>
    public async Task RestartAsync(SkeinRuntime.Overrides? overrides = null, Action? whileStopped = null)
    {
        await StopHostAsync();
        whileStopped?.Invoke();
        await StartHostAsync(overrides, waitReady: true);
    }

    public async Task StopHostAsync()
    {
        _client?.Dispose();
        _client = null;
        if (_host is not null)
            await _host.DisposeAsync();
        _host = null;
    }

    private async Task StartHostAsync(SkeinRuntime.Overrides? overrides, bool waitReady)
    {
        var options = new ServeOptions
        {
            SocketPath = SocketPath,
            StateDir = StateDir,
            NetNsPath = Ns.Path,
            ReconcileInterval = ReconcileInterval,
        };
        _host = await PluginHost.StartAsync(options, new PluginHostSettings
        {
            Overrides = overrides,
            ConfigureLogging = logging =>
            {
                logging.AddProvider(new QueueLoggerProvider(LogLines));
                logging.SetMinimumLevel(LogLevel.Debug);
            },
        });
        _client = CreateClient(SocketPath);
        if (waitReady)
            await _host.Ready.WaitAsync(TimeSpan.FromSeconds(60));
    }

    public static HttpClient CreateClient(string socketPath) =>
        new(new SocketsHttpHandler
        {
            ConnectCallback = async (_, ct) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), ct);
                return new NetworkStream(socket, ownsSocket: true);
            },
        })
        {
            BaseAddress = new Uri("http://localhost"),
            Timeout = TimeSpan.FromSeconds(60),
        };

    /// <summary>POSTs exactly what the engine sends: the body bytes, no Content-Type, its Accept header.</summary>
    public async Task<PluginReply> CallAsync(string call, string? body)
    {
        var client = _client ?? throw new InvalidOperationException("the host is not running");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/" + call.TrimStart('/'));
        request.Headers.TryAddWithoutValidation("Accept", "application/vnd.docker.plugins.v1.2+json");
        request.Content = new ByteArrayContent(body is null ? [] : Encoding.UTF8.GetBytes(body));
        request.Content.Headers.ContentType = null;
        using var response = await client.SendAsync(request);
        return new PluginReply(response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    public async Task<PluginReply> CallOkAsync(string call, string? body)
    {
        var reply = await CallAsync(call, body);
        Assert.True(reply.Ok, $"{call} answered {reply}");
        return reply;
    }

    // ---- independent readers of the kernel (iproute2 in the namespace) ----

    public JsonArray Links() => (JsonArray)JsonNode.Parse(Ns.IpJson("link", "show"))!;

    public JsonObject? Link(string name) =>
        Links().OfType<JsonObject>().FirstOrDefault(l => l["ifname"]?.GetValue<string>() == name);

    public IReadOnlyList<string> LinkNames() =>
        Links().OfType<JsonObject>().Select(l => l["ifname"]!.GetValue<string>()).ToList();

    public IReadOnlyList<string> SkeinLinkNames() =>
        LinkNames().Where(n => n.StartsWith("skbr-", StringComparison.Ordinal) || n.StartsWith("skv", StringComparison.Ordinal) || n.StartsWith("skc", StringComparison.Ordinal)).Order().ToList();

    /// <summary>Addresses on a link as "address/prefix".</summary>
    public IReadOnlyList<string> Addresses(string name)
    {
        var all = (JsonArray)JsonNode.Parse(Ns.IpJson("addr", "show", "dev", name))!;
        return all.OfType<JsonObject>()
            .SelectMany(l => l["addr_info"]!.AsArray().OfType<JsonObject>())
            .Where(a => a["scope"]?.GetValue<string>() != "link")
            .Select(a => $"{a["local"]!.GetValue<string>()}/{a["prefixlen"]!.GetValue<int>()}")
            .ToList();
    }

    /// <summary>iptables-save of the namespace (both tables skein uses), for before/after comparisons.</summary>
    public string FirewallRules() =>
        Ns.Exec("iptables-save") + Ns.TryExec("ip6tables-save").StandardOutput;

    public async ValueTask DisposeAsync()
    {
        try
        {
            await StopHostAsync();
        }
        finally
        {
            if (_ownsNamespace)
                Ns.Dispose();
            try
            {
                if (Directory.Exists(StateDir))
                    Directory.Delete(StateDir, recursive: true);
            }
            catch (IOException)
            {
            }
            if (File.Exists(SocketPath))
                File.Delete(SocketPath);
        }
    }

    private static bool TestCommandExists(string name) => NetNsCommand.Exists(name);

    private sealed class QueueLoggerProvider(ConcurrentQueue<string> lines) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new QueueLogger(categoryName, lines);
        public void Dispose() { }
    }

    private sealed class QueueLogger(string category, ConcurrentQueue<string> lines) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            lines.Enqueue($"{logLevel} {category}: {formatter(state, exception)}{(exception is null ? "" : " " + exception.GetType().Name)}");
    }
}
