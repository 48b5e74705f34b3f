using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Skein.Ipam.Store;

namespace Skein.Driver.Tests.Overlay.Control;

/// <summary>
/// A throw-away etcd (the `etcd` binary of Debian's etcd-server) listening on loopback only, with a temporary data
/// directory; killed and removed on dispose, also when the test fails. Several skein runtimes in one test process
/// each open their own client to it, as separate hosts would.
/// </summary>
public sealed class LoopbackEtcd : IAsyncDisposable
{
    private static readonly string? Binary = new[] { "/usr/bin/etcd", "/usr/local/bin/etcd" }.FirstOrDefault(File.Exists);
    private readonly string _dataDir = Path.Combine(Path.GetTempPath(), "skein-etcd-" + Guid.NewGuid().ToString("N")[..10]);
    private Process? _process;

    private LoopbackEtcd(int clientPort) => ClientPort = clientPort;

    public static bool Available => Binary is not null;
    public const string SkipReason = "needs the etcd binary (apt package etcd-server)";

    public int ClientPort { get; }
    /// <summary>The --store URL with a fresh root, so tests sharing a server never see each other's keys.</summary>
    public string StoreUrl(string root) => $"etcd://127.0.0.1:{ClientPort}/{root}";

    public static Task<LoopbackEtcd> StartAsync() => StartAsync(FreePort());

    /// <summary>A server on a chosen client port: a test can point skein at the port before anything listens there.</summary>
    public static async Task<LoopbackEtcd> StartAsync(int clientPort)
    {
        var server = new LoopbackEtcd(clientPort);
        try
        {
            await server.StartProcessAsync(FreePort());
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
        return server;
    }

    public Task<IClusterStore> OpenStoreAsync(string root) =>
        ClusterStoreFactory.OpenAsync(StoreUrl(root), Path.GetTempPath(), environment: _ => null);

    private async Task StartProcessAsync(int peerPort)
    {
        var client = $"http://127.0.0.1:{ClientPort}";
        var peer = $"http://127.0.0.1:{peerPort}";
        var start = new ProcessStartInfo(Binary ?? throw new InvalidOperationException(SkipReason))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[]
                 {
                     "--name", "skein-overlay", "--data-dir", _dataDir,
                     "--listen-client-urls", client, "--advertise-client-urls", client,
                     "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                     "--initial-cluster", $"skein-overlay={peer}", "--log-level", "error", "--logger", "zap",
                 })
            start.ArgumentList.Add(arg);
        _process = Process.Start(start) ?? throw new InvalidOperationException("etcd did not start");
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            if (_process.HasExited)
                throw new InvalidOperationException($"etcd exited with code {_process.ExitCode} during start-up");
            try
            {
                if ((await http.GetStringAsync($"{client}/health")).Contains("\"true\""))
                    return;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
            }
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException("etcd did not become healthy within 30 s");
            await Task.Delay(50);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_process is not null)
        {
            try
            {
                if (!_process.HasExited)
                    _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }
            catch (InvalidOperationException)
            {
            }
            _process.Dispose();
        }
        try
        {
            if (Directory.Exists(_dataDir))
                Directory.Delete(_dataDir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
