using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Skein.Ipam.Tests.Store;

/// <summary>
/// A real etcd 3.4 (Debian's etcd-server) on loopback with random free ports and a temporary data
/// directory, started from the command line so the JSON gateway is on (cluster-store §2.1).
/// Killed and its directory removed on dispose, also when a test fails.
/// </summary>
public sealed class EtcdServer : IAsyncDisposable
{
    private static readonly string? Binary = FindBinary();
    private readonly TempDirectory _dataDir = new("etcd");
    private Process? _process;

    private readonly string[] _extraArgs;
    private readonly TestCertificates? _tls;

    private EtcdServer(int clientPort, int peerPort, string[] extraArgs, TestCertificates? tls)
    {
        _extraArgs = extraArgs;
        _tls = tls;
        ClientPort = clientPort;
        PeerPort = peerPort;
        BaseAddress = new Uri($"{(tls is null ? "http" : "https")}://127.0.0.1:{clientPort}/");
    }

    public static bool Available => Binary is not null;
    public static string SkipReason => "the etcd binary is not installed (apt package etcd-server); etcd backend tests need a real etcd 3.4";

    public int ClientPort { get; }
    public int PeerPort { get; }
    public Uri BaseAddress { get; }

    public static Task<EtcdServer> StartAsync(params string[] extraArgs) => StartAsync(null, extraArgs);

    /// <param name="tls">Serve clients over HTTPS with these certificates and demand a client certificate.</param>
    public static async Task<EtcdServer> StartAsync(TestCertificates? tls, params string[] extraArgs)
    {
        if (Binary is null)
            throw new InvalidOperationException(SkipReason);
        if (tls is not null)
            extraArgs = [.. extraArgs, "--cert-file", tls.ServerCertFile, "--key-file", tls.ServerKeyFile, "--client-cert-auth", "--trusted-ca-file", tls.CaFile];
        var server = new EtcdServer(FreePort(), FreePort(), extraArgs, tls);
        try
        {
            await server.StartProcessAsync();
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
        return server;
    }

    /// <summary>Kills the process (as a crash would) and starts it again on the same data and ports.</summary>
    public async Task RestartAsync(TimeSpan downtime = default)
    {
        await StopAsync();
        if (downtime > TimeSpan.Zero)
            await Task.Delay(downtime);
        await StartProcessAsync();
    }

    public async Task StopAsync()
    {
        if (_process is null)
            return;
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
        _process = null;
    }

    private async Task StartProcessAsync()
    {
        var client = $"{BaseAddress.Scheme}://127.0.0.1:{ClientPort}";
        var peer = $"http://127.0.0.1:{PeerPort}";
        var start = new ProcessStartInfo(Binary!)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[]
                 {
                     "--name", "skein-test", "--data-dir", _dataDir.Path,
                     "--listen-client-urls", client, "--advertise-client-urls", client,
                     "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                     "--initial-cluster", $"skein-test={peer}", "--initial-cluster-state", "new",
                     "--logger", "zap", "--log-level", "error",
                 }.Concat(_extraArgs))
            start.ArgumentList.Add(arg);
        _process = Process.Start(start) ?? throw new InvalidOperationException("etcd did not start");
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();

        var handler = new HttpClientHandler();
        if (_tls is not null)
        {
            handler.ClientCertificates.Add(_tls.Client);
            handler.ServerCertificateCustomValidationCallback = (_, _, _, _) => true; // readiness probe only
        }
        using var http = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            if (_process.HasExited)
                throw new InvalidOperationException($"etcd exited with code {_process.ExitCode} during start-up");
            try
            {
                var health = await http.GetStringAsync(new Uri(BaseAddress, "health"));
                if (health.Contains("\"true\""))
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
        await StopAsync();
        _dataDir.Dispose();
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static string? FindBinary()
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Append("/usr/bin").Append("/usr/local/bin"))
        {
            var candidate = Path.Combine(dir, "etcd");
            if (dir.Length > 0 && File.Exists(candidate))
                return candidate;
        }
        return null;
    }
}
