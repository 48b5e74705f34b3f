using System.Collections.Concurrent;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Skein.Driver.Overlay.Control;
using Skein.Driver.Plugin;
using Skein.Driver.Tests.TestSupport;

namespace Skein.Driver.Tests.Overlay.Control;

/// <summary>
/// One simulated host of a multi-host test: the real plugin host in-process, programming its own scratch namespace,
/// with the shared store (etcd on loopback, reached from the test process) and an advertise address held by the
/// namespace's underlay link. Restart keeps the namespace and the state directory, as a plugin restart would.
/// </summary>
public sealed class ClusterHost : IAsyncDisposable
{
    private PluginHost? _host;
    private HttpClient? _client;

    public ClusterHost(string name, NetNs ns, string storeUrl, IPAddress vtep, TimeSpan holdDown)
    {
        Name = name;
        Ns = ns;
        StoreUrl = storeUrl;
        Vtep = vtep;
        HoldDown = holdDown;
        var id = Guid.NewGuid().ToString("N")[..10];
        StateDir = Path.Combine(Path.GetTempPath(), $"skein-mh-{id}");
        SocketPath = $"/tmp/skm-{id}.sock";
    }

    public string Name { get; }
    public NetNs Ns { get; }
    public string StoreUrl { get; }
    public IPAddress Vtep { get; }
    public TimeSpan HoldDown { get; }
    public string StateDir { get; }
    public string SocketPath { get; }
    public ConcurrentQueue<string> LogLines { get; } = new();
    public SkeinRuntime Runtime => (_host ?? throw new InvalidOperationException($"{Name} is not running")).Ready.GetAwaiter().GetResult();
    public OverlayController Overlay => Runtime.Overlay ?? throw new InvalidOperationException($"{Name} runs without multi-host");

    public async Task StartAsync()
    {
        var options = new ServeOptions
        {
            SocketPath = SocketPath,
            StateDir = StateDir,
            NetNsPath = Ns.Path,
            StoreUrl = StoreUrl,
            AdvertiseAddress = Vtep,
            NodeId = Name,
            ReconcileInterval = TimeSpan.Zero,
            ReclaimAfter = TimeSpan.FromMinutes(10),
        };
        _host = await PluginHost.StartAsync(options, new PluginHostSettings
        {
            Overrides = new SkeinRuntime.Overrides(ConfigureOverlay: s => s with { HoldDown = HoldDown }),
            ConfigureLogging = logging =>
            {
                logging.AddProvider(new LineLoggerProvider(Name, LogLines));
                logging.SetMinimumLevel(LogLevel.Debug);
            },
        });
        _client = PluginTestHost.CreateClient(SocketPath);
        await _host.Ready.WaitAsync(TimeSpan.FromSeconds(60));
    }

    public async Task StopAsync()
    {
        _client?.Dispose();
        _client = null;
        if (_host is not null)
            await _host.DisposeAsync();
        _host = null;
    }

    public async Task<PluginReply> CallAsync(string call, string body)
    {
        var client = _client ?? throw new InvalidOperationException($"{Name} is not running");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/" + call);
        request.Content = new ByteArrayContent(Encoding.UTF8.GetBytes(body));
        request.Content.Headers.ContentType = null;
        using var response = await client.SendAsync(request);
        return new PluginReply(response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    public async Task<JsonNode?> CallOkAsync(string call, string body)
    {
        var reply = await CallAsync(call, body);
        Assert.True(reply.Ok, $"{Name}: {call} answered {reply}\n{string.Join("\n", LogLines.TakeLast(30))}");
        return reply.Json;
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
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

    private sealed class LineLoggerProvider(string host, ConcurrentQueue<string> lines) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new LineLogger(host, categoryName, lines);
        public void Dispose() { }
    }

    private sealed class LineLogger(string host, string category, ConcurrentQueue<string> lines) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            lines.Enqueue($"{host} {logLevel} {category}: {formatter(state, exception)}");
    }
}
