using System.Net.Sockets;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using Skein.Ipam;

namespace Skein.Driver.Plugin;

/// <summary>Knobs for embedding the host (tests, benchmarks); `skein serve` uses the defaults.</summary>
public sealed record PluginHostSettings
{
    public TimeProvider Time { get; init; } = TimeProvider.System;
    public SkeinRuntime.Overrides? Overrides { get; init; }
    /// <summary>Replaces the stderr console logger (tests collect lines instead).</summary>
    public Action<ILoggingBuilder>? ConfigureLogging { get; init; }
    /// <summary>How long a call waits for start-up to finish before it is answered 503.</summary>
    public TimeSpan ReadyWait { get; init; } = TimeSpan.FromSeconds(30);
}

/// <summary>
/// The plugin process: Kestrel on a Unix socket, bound before any slow initialisation (the engine gives a managed
/// plugin about 9.5 s to show a listener), then the store, IPAM, kernel handle and reconciliation come up in the
/// background. Calls that need them wait for start-up; Activate and GetCapabilities answer from constants.
/// </summary>
public sealed class PluginHost : IAsyncDisposable
{
    /// <summary>Octal 0117: the socket is created as 0660 (owner and group read/write, nothing for others).</summary>
    private const int SocketUmask = 0x4F;
    private static readonly SemaphoreSlim UmaskGate = new(1, 1);

    private readonly WebApplication _app;
    private readonly ServeOptions _options;
    private readonly PluginHostSettings _settings;
    private readonly ILogger _log;
    private readonly CancellationTokenSource _stopping = new();
    private readonly TaskCompletionSource<SkeinRuntime> _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task _background = Task.CompletedTask;
    private int _disposed;

    private PluginHost(WebApplication app, ServeOptions options, PluginHostSettings settings)
    {
        _app = app;
        _options = options;
        _settings = settings;
        _log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("skein.host");
    }

    public ServeOptions Options => _options;
    /// <summary>Cancelled when the host shuts down; handlers run under it rather than under the caller's connection.</summary>
    public CancellationToken Stopping => _stopping.Token;
    public string SocketPath => _options.SocketPath;
    public ILoggerFactory Logs => _app.Services.GetRequiredService<ILoggerFactory>();

    /// <summary>Completes when start-up finished (faults if it failed).</summary>
    public Task<SkeinRuntime> Ready => _ready.Task;

    public static async Task<PluginHost> StartAsync(ServeOptions options, PluginHostSettings? settings = null, CancellationToken ct = default)
    {
        settings ??= new PluginHostSettings();
        PrepareSocketPath(options.SocketPath);

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        // The engine sends an empty (old) or odd Host header: no host filtering.
        builder.Configuration["AllowedHosts"] = "*";
        builder.Logging.ClearProviders();
        if (settings.ConfigureLogging is { } configure)
            configure(builder.Logging);
        else
            AddStderrLogging(builder.Logging, options.LogLevel);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.ListenUnixSocket(options.SocketPath);
            kestrel.AddServerHeader = false;
            // Our own reader refuses oversized bodies with a clear Err; Kestrel's limit is only a backstop.
            kestrel.Limits.MaxRequestBodySize = (long)options.MaxBodyBytes * 4;
        });

        var app = builder.Build();
        var host = new PluginHost(app, options, settings);
        PluginRoutes.Map(app, host);

        // Other processes must not talk to the socket: 0660, never world-writable, from the moment it exists.
        // umask is per process: hosts starting side by side (tests) must not restore each other's mask.
        await UmaskGate.WaitAsync(ct).ConfigureAwait(false);
        var previousMask = Tmds.Linux.LibC.umask(SocketUmask);
        try
        {
            await app.StartAsync(ct).ConfigureAwait(false);
        }
        finally
        {
            Tmds.Linux.LibC.umask(previousMask);
            UmaskGate.Release();
        }
        if (!OperatingSystem.IsWindows())
            File.SetUnixFileMode(options.SocketPath, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite);
        host._log.LogInformation("listening on {Socket}", options.SocketPath);

        host._background = Task.Run(() => host.InitialiseAndReconcileAsync(host._stopping.Token), CancellationToken.None);
        return host;
    }

    /// <summary>Start-up proper, then the periodic reconciliation until shutdown.</summary>
    private async Task InitialiseAndReconcileAsync(CancellationToken ct)
    {
        SkeinRuntime? runtime = null;
        try
        {
            runtime = await SkeinRuntime.OpenAsync(_options, Logs, _settings.Time, _settings.Overrides, ct).ConfigureAwait(false);
            await runtime.Driver.LoadAsync(ct).ConfigureAwait(false);
            StartupChecks.Report(runtime, _log);
            var report = await runtime.Driver.ReconcileAsync(ct).ConfigureAwait(false);
            _log.LogInformation("start-up reconciliation: {Networks} network(s), {Endpoints} endpoint(s), {Orphans} orphan link(s) deleted, {Failures} failure(s)",
                report.NetworksChecked, report.EndpointsChecked, report.OrphanLinksDeleted, report.Failures.Count);
            await runtime.StartClusterAsync(ct).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            _log.LogError(ex, "start-up failed: {Error}", ex.Message);
            _ready.TrySetException(ex);
            if (runtime is not null)
            {
                try
                {
                    await runtime.DisposeAsync().ConfigureAwait(false);
                }
                catch (Exception disposeError)
                {
                    _log.LogWarning("releasing what start-up opened: {Error}", disposeError.Message);
                }
            }
            return;
        }
        _ready.TrySetResult(runtime);
        _log.LogInformation("ready");

        if (_options.ReconcileInterval <= TimeSpan.Zero)
            return;
        using var timer = new PeriodicTimer(_options.ReconcileInterval, _settings.Time);
        try
        {
            while (await timer.WaitForNextTickAsync(ct).ConfigureAwait(false))
            {
                try
                {
                    await runtime.Driver.ReconcileAsync(ct).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    _log.LogError(ex, "periodic reconciliation failed: {Error}", ex.Message);
                }
                await ExpirePendingAddressesAsync(runtime, ct).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>
    /// Frees addresses the engine requested but never bound to an endpoint (an engine crash between RequestAddress and
    /// CreateEndpoint), after IpamService.PendingExpiry, in the pools of skein's own networks only: a pool used with
    /// another network driver never sees CreateEndpoint (cluster-store §4.8).
    /// </summary>
    private async Task ExpirePendingAddressesAsync(SkeinRuntime runtime, CancellationToken ct)
    {
        var spaces = runtime.Ipam.GetDefaultAddressSpaces();
        var poolIds = runtime.Driver.Networks
            .SelectMany(n => n.IPv4Subnets.Concat(n.IPv6Subnets))
            .SelectMany(subnet => new[] { $"{spaces.LocalDefaultAddressSpace}/{subnet}", $"{spaces.GlobalDefaultAddressSpace}/{subnet}" })
            .ToList();
        if (poolIds.Count == 0)
            return;
        try
        {
            var freed = await runtime.Ipam.ExpirePendingAsync(poolIds, Skein.Ipam.Allocation.IpamService.PendingExpiry, ct).ConfigureAwait(false);
            if (freed.Count > 0)
                _log.LogWarning("freed {Count} address(es) requested but never bound to an endpoint: {Addresses}", freed.Count, string.Join(", ", freed));
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            _log.LogWarning("expiring unbound addresses failed: {Error}", ex.Message);
        }
    }

    /// <summary>The runtime for a call that needs it; a clear 503 while starting or after a failed start.</summary>
    public async Task<SkeinRuntime> RuntimeAsync(CancellationToken ct)
    {
        var ready = _ready.Task;
        if (!ready.IsCompleted)
        {
            try
            {
                await ready.WaitAsync(_settings.ReadyWait, ct).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                throw new SkeinException(ErrorKind.Unavailable, $"skein is still starting (waited {_settings.ReadyWait.TotalSeconds:0} s); try again");
            }
            catch (Exception) when (ready.IsFaulted)
            {
            }
        }
        if (ready.IsFaulted)
        {
            var cause = ready.Exception!.GetBaseException();
            throw new SkeinException(ErrorKind.Unavailable, $"skein failed to start: {cause.Message}", cause);
        }
        return await ready.ConfigureAwait(false);
    }

    /// <summary>Blocks until SIGTERM/SIGINT (or StopAsync) and shuts down cleanly.</summary>
    public async Task WaitForShutdownAsync(CancellationToken ct = default)
    {
        await _app.WaitForShutdownAsync(ct).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        await _stopping.CancelAsync().ConfigureAwait(false);
        try
        {
            await _app.StopAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            _log.LogWarning("stopping the web host: {Error}", ex.Message);
        }
        try
        {
            await _background.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        if (_ready.Task.IsCompletedSuccessfully)
            await _ready.Task.Result.DisposeAsync().ConfigureAwait(false);
        else
            _ready.TrySetCanceled();
        await _app.DisposeAsync().ConfigureAwait(false);
        // A socket file without a listener stalls even unrelated docker commands (pitfall 5).
        TryDelete(_options.SocketPath);
        _stopping.Dispose();
    }

    /// <summary>
    /// A leftover socket file from a crashed run is replaced; one that still answers belongs to a live skein, and
    /// taking it over would leave two processes programming the same kernel.
    /// </summary>
    private static void PrepareSocketPath(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        if (!File.Exists(path) && !Directory.Exists(path))
            return;
        if (Directory.Exists(path))
            throw SkeinException.Invalid($"socket path {path} is a directory");
        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(path));
        }
        catch (SocketException)
        {
            File.Delete(path);
            return;
        }
        throw SkeinException.Conflict($"another process is already serving {path}; stop it first");
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    /// <summary>One line per event on stderr, with a UTC timestamp: what journald and `docker plugin` logs expect.</summary>
    public static void AddStderrLogging(ILoggingBuilder logging, LogLevel minimum = LogLevel.Information)
    {
        logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.UseUtcTimestamp = true;
            o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
            o.ColorBehavior = LoggerColorBehavior.Disabled;
        });
        logging.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        logging.SetMinimumLevel(minimum);
        logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        logging.AddFilter("Microsoft.Hosting", LogLevel.Warning);
    }
}
