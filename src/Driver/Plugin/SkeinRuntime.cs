using System.Text;
using Microsoft.Extensions.Logging;
using Skein.Driver.Firewall;
using Skein.Driver.Network;
using Skein.Driver.Network.Kernel;
using Skein.Driver.Network.State;
using Skein.Driver.Overlay.Control;
using Skein.Ipam;
using Skein.Ipam.Allocation;
using Skein.Ipam.Cluster;
using Skein.Ipam.Host;
using Skein.Ipam.Store;
using Skein.Ipam.Store.Embedded;

namespace Skein.Driver.Plugin;

/// <summary>
/// Everything a serving skein holds, built once: the store(s), the IPAM, the kernel handle, the firewall and the
/// bridge driver. The embedded store locks its directory, so one instance is opened per process and shared: the
/// IPAM under skein/v1/..., the driver's host-local records under local/driver/... When the cluster store is
/// Consul or etcd, the host-local records go to an embedded store in &lt;state-dir&gt;/local instead.
/// </summary>
public sealed class SkeinRuntime : IAsyncDisposable
{
    private readonly IClusterStore _clusterStore;
    private readonly IClusterStore? _localStore;
    private readonly ServeOptions _options;
    private readonly ILoggerFactory _logs;
    private readonly TimeProvider _time;
    private readonly string _keyRoot;
    private readonly CancellationTokenSource _stopping = new();
    private NodeMembership? _membership;
    private Task _collecting = Task.CompletedTask;
    private Task _joining = Task.CompletedTask;
    private Task _replaying = Task.CompletedTask;

    private SkeinRuntime(IClusterStore clusterStore, IClusterStore? localStore, IpamService ipam, IHostKernel kernel, IFirewall firewall, BridgeDriver driver, string nodeId,
        ServeOptions options, ILoggerFactory logs, TimeProvider time, string keyRoot)
    {
        _options = options;
        _logs = logs;
        _time = time;
        _keyRoot = keyRoot;
        _clusterStore = clusterStore;
        _localStore = localStore;
        Ipam = ipam;
        Kernel = kernel;
        Firewall = firewall;
        Driver = driver;
        NodeId = nodeId;
    }

    /// <summary>The store the IPAM coordinates through (embedded, Consul or etcd).</summary>
    public IClusterStore ClusterStore => _clusterStore;
    /// <summary>Where the driver keeps its host-local records: the cluster store when embedded, else &lt;state-dir&gt;/local.</summary>
    public IClusterStore DriverStore => _localStore ?? _clusterStore;
    public IpamService Ipam { get; }
    public IHostKernel Kernel { get; }
    public IFirewall Firewall { get; }
    public BridgeDriver Driver { get; }
    public string NodeId { get; }
    /// <summary>The multi-host control plane; null unless the store is shared and an advertise address was given.</summary>
    public OverlayController? Overlay => Driver.Cluster;
    /// <summary>This node's presence in the cluster, once <see cref="StartClusterAsync"/> ran.</summary>
    public NodeMembership? Membership => _membership;

    /// <summary>Test seams: a kernel or firewall to use instead of the real ones (e.g. one that fails a chosen step).</summary>
    /// <param name="ConfigureOverlay">Adjusts the multi-host settings (tests shorten the hold-down).</param>
    public sealed record Overrides(Func<IHostKernel, IHostKernel>? WrapKernel = null, Func<IFirewall, IFirewall>? WrapFirewall = null,
        Func<OverlaySettings, OverlaySettings>? ConfigureOverlay = null);

    public static async Task<SkeinRuntime> OpenAsync(ServeOptions options, ILoggerFactory logs, TimeProvider time, Overrides? overrides, CancellationToken ct)
    {
        var log = logs.CreateLogger("skein.runtime");
        Directory.CreateDirectory(options.StateDir);
        var nodeId = options.NodeId ?? LoadOrCreateNodeId(options.StateDir);
        var location = ClusterStoreFactory.Parse(options.StoreUrl);
        var clusterStore = await ClusterStoreFactory.OpenAsync(options.StoreUrl, options.StateDir, time, ct: ct).ConfigureAwait(false);
        IClusterStore? localStore = null;
        IHostKernel? kernel = null;
        IpamService? ipam = null;
        try
        {
            if (location.Kind != StoreKind.Embedded)
                localStore = await EmbeddedStore.OpenAsync(Path.Combine(options.StateDir, "local"), time, ct).ConfigureAwait(false);
            // Consul and etcd put every key under the URL's root themselves; the embedded store is shared with the
            // driver's host-local records, so the IPAM's keys carry the root there.
            var keyRoot = location.Kind == StoreKind.Embedded ? location.RootPrefix : "";
            // Against a shared store, endpoint addresses keep coming from this host's own blocks while the store is
            // unreachable, journaled in the state directory, for as long as the other hosts cannot have reclaimed
            // them (decisions #18).
            var ipamOptions = new IpamOptions { NodeId = nodeId, KeyRoot = keyRoot };
            if (location.Kind != StoreKind.Embedded)
                ipamOptions = ipamOptions with { JournalDirectory = options.StateDir, OutageAllowance = OutageAllowance(options.ReclaimAfter) };
            ipam = new IpamService(clusterStore, ipamOptions, new LinuxHostNetworkView(), time);

            kernel = RtNetlinkKernel.Open(options.NetNsPath);
            if (overrides?.WrapKernel is { } wrapKernel)
                kernel = wrapKernel(kernel);
            var firewallLog = logs.CreateLogger("skein.firewall");
            var kernelForSysctl = kernel;
            var iptables = new IptablesFirewall(new IptablesOptions
            {
                CommandPrefix = options.NetNsPath is null ? [] : ["nsenter", $"--net={options.NetNsPath}"],
                Log = line => firewallLog.LogInformation("{Line}", line),
                ReadSysctl = options.NetNsPath is null ? null : key => kernelForSysctl.TryReadSysctl(key),
            });
            IFirewall firewall = iptables;
            if (overrides?.WrapFirewall is { } wrapFirewall)
                firewall = wrapFirewall(firewall);

            OverlayController? overlay = null;
            if (options.MultiHost)
            {
                var advertise = options.AdvertiseAddress!;
                var overlayLog = logs.CreateLogger("skein.overlay");
                var dataplane = new KernelOverlayDataplane(kernel, overlayLog);
                // Also the check that the advertise address is this host's: the link holding it gives the MTU.
                var underlayMtu = dataplane.DefaultMtu(advertise);
                var settings = new OverlaySettings { NodeId = nodeId, KeyRoot = keyRoot, LocalVtep = advertise, VxlanPort = options.VxlanPort };
                if (overrides?.ConfigureOverlay is { } configure)
                    settings = configure(settings);
                overlay = new OverlayController(clusterStore, settings, dataplane, iptables, ipam.FindPoolAsync, time, overlayLog);
                log.LogInformation("multi-host: VTEP {Vtep}, VXLAN port {Port}, overlay MTU {Mtu} unless -o sets one", advertise, options.VxlanPort, underlayMtu);
            }
            var driver = new BridgeDriver(new DriverStateStore(localStore ?? clusterStore), kernel, firewall,
                new IpamEndpointBinding(ipam, logs.CreateLogger("skein.ipam")), time, logs.CreateLogger("skein.driver"), overlay);
            log.LogInformation("node {Node}, store {Store}, state {StateDir}, programming namespace {Namespace}",
                nodeId, location, options.StateDir, options.NetNsPath ?? "(own)");
            return new SkeinRuntime(clusterStore, localStore, ipam, kernel, firewall, driver, nodeId, options, logs, time, keyRoot);
        }
        catch
        {
            ipam?.Dispose();
            kernel?.Dispose();
            if (localStore is not null)
                await localStore.DisposeAsync().ConfigureAwait(false);
            await clusterStore.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// The node id names this host in the store ([a-z0-9-]{1,63}); derived from the host name once and kept in the
    /// state directory so that renaming the host does not orphan its allocations.
    /// </summary>
    public static string LoadOrCreateNodeId(string stateDir)
    {
        var path = Path.Combine(stateDir, "node-id");
        if (File.Exists(path))
        {
            var stored = File.ReadAllText(path).Trim();
            if (stored.Length is > 0 and <= 63 && stored.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-'))
                return stored;
            throw SkeinException.Invalid($"{path} holds '{stored}', which is not a node id ([a-z0-9-], 1-63 characters)");
        }
        var derived = DeriveNodeId(Environment.MachineName);
        var temp = path + ".tmp";
        File.WriteAllText(temp, derived + "\n");
        File.Move(temp, path, overwrite: true);
        return derived;
    }

    public static string DeriveNodeId(string hostName)
    {
        var text = new StringBuilder();
        foreach (var c in hostName.ToLowerInvariant())
        {
            if (text.Length == 63)
                break;
            text.Append(c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-' ? c : '-');
        }
        var id = text.ToString().Trim('-');
        return id.Length > 0 ? id : "node";
    }

    /// <summary>
    /// How long after the store last confirmed this host it may still hand out addresses from its own blocks while
    /// the store is unreachable: reclaim-after minus a tenth of it (at least 10 s). The collector reclaims only after
    /// this host's liveness has expired (one TTL more) and stayed gone for reclaim-after, so this leaves a margin of
    /// at least a TTL plus the tenth.
    /// </summary>
    public static TimeSpan OutageAllowance(TimeSpan reclaimAfter) =>
        reclaimAfter - TimeSpan.FromTicks(Math.Max(TimeSpan.FromSeconds(10).Ticks, reclaimAfter.Ticks / 10));

    /// <summary>How often a pending outage journal is written back and held-back endpoints are published.</summary>
    public static readonly TimeSpan JournalReplayInterval = TimeSpan.FromSeconds(2);

    /// <summary>How long start-up waits for the cluster store before serving from local state and joining later.</summary>
    public static readonly TimeSpan ClusterJoinWait = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Multi-host start-up, after the records are loaded and reconciled (cluster-store §4.6): presence in nodes/ and
    /// the incarnation, the fencing check, publication of every local endpoint, the peer watchers, and the dead-node
    /// collector in the background. Nothing to do when every network stays on this host.
    /// When the store cannot be reached within <see cref="ClusterJoinWait"/> (or another live process holds this
    /// node id), skein serves anyway: the kernel state it rebuilt keeps running containers connected, calls that need
    /// the store fail fast with a clear error, and the join is retried in the background until it succeeds
    /// (decisions #18). A plugin that refused to start would leave Docker unable even to stop containers.
    /// </summary>
    public async Task StartClusterAsync(CancellationToken ct)
    {
        if (Overlay is null)
            return;
        var log = _logs.CreateLogger("skein.cluster");
        using (var first = CancellationTokenSource.CreateLinkedTokenSource(ct, _stopping.Token))
        {
            first.CancelAfter(ClusterJoinWait);
            try
            {
                await JoinClusterAsync(log, first.Token).ConfigureAwait(false);
                return;
            }
            catch (Exception ex) when (!ct.IsCancellationRequested && !_stopping.IsCancellationRequested && ex is not SkeinException { Kind: ErrorKind.Invalid })
            {
                log.LogWarning("cannot join the cluster yet ({Error}); serving from local state and retrying in the background", Describe(ex));
            }
        }
        var stopping = _stopping.Token;
        _joining = Task.Run(async () =>
        {
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    await Task.Delay(TimeSpan.FromSeconds(Math.Min(30, 2 << Math.Min(attempt, 4))), _time, stopping).ConfigureAwait(false);
                    await JoinClusterAsync(log, stopping).ConfigureAwait(false);
                    return;
                }
                catch (OperationCanceledException) when (stopping.IsCancellationRequested)
                {
                    return;
                }
                catch (Exception ex)
                {
                    log.LogWarning("cannot join the cluster yet (attempt {Attempt}): {Error}", attempt, Describe(ex));
                }
            }
        }, CancellationToken.None);
    }

    private static string Describe(Exception ex) => ex is OperationCanceledException ? $"no answer from the store within {ClusterJoinWait.TotalSeconds:0} s" : ex.Message;

    private async Task JoinClusterAsync(ILogger log, CancellationToken ct)
    {
        if (_membership is null)
        {
            _membership = await NodeMembership.StartAsync(_clusterStore,
                new NodeMembershipOptions(NodeId, _keyRoot, _options.AdvertiseAddress!.ToString(), _options.ReclaimAfter, StateDir: _options.StateDir),
                _time, line => log.LogInformation("{Line}", line), ct).ConfigureAwait(false);
        }
        Ipam.ObserveLiveness(_membership.Liveness);
        // Changes journaled while the store was unreachable (also by an earlier run) go back before the fencing check
        // and before anything is published; a conflict found here is found again by fencing for bound endpoints.
        var replay = await Ipam.ReplayJournalAsync(ct).ConfigureAwait(false);
        LogReplay(log, replay);
        Overlay!.AwaitsReplay = endpoint => new[] { endpoint.IPv4Address, endpoint.IPv6Address }
            .Any(a => a is not null && Ipam.AwaitsReplay(Skein.Driver.Netlink.IpPrefix.Parse(a).Address));
        await Driver.StartClusterAsync(new MembershipPresence(_membership), ct).ConfigureAwait(false);
        var replaying = _stopping.Token;
        _replaying = Task.Run(() => ReplayJournalLoopAsync(log, replaying), CancellationToken.None);
        var collector = new DeadNodeCollector(_clusterStore, _membership, _keyRoot, _options.ReclaimAfter, _time, line => log.LogInformation("{Line}", line));
        var stopping = _stopping.Token;
        _collecting = Task.Run(async () =>
        {
            try
            {
                await collector.RunAsync(stopping).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
            }
            catch (Exception ex)
            {
                log.LogError("dead-node collection stopped: {Error}", ex.Message);
            }
        }, CancellationToken.None);
        log.LogInformation("node {Node} joined the cluster as incarnation {Incarnation}", NodeId, _membership.Incarnation);
    }

    /// <summary>The cluster part of `skein status`; null when this host runs no multi-host networks.</summary>
    public ClusterStatus? ClusterStatus()
    {
        if (Overlay is not { } overlay)
            return null;
        var networks = new List<ClusterNetworkStatus>();
        foreach (var network in Driver.Networks.Where(n => n.ClusterNetwork is not null).DistinctBy(n => n.ClusterNetwork))
        {
            var net = network.ClusterNetwork!;
            var watcher = overlay.Watcher(net);
            var view = watcher?.Current;
            networks.Add(new ClusterNetworkStatus(net, watcher?.IsRunning ?? false, watcher?.Applied ?? 0,
                view?.RemoteVteps.Select(v => v.ToString()).Order(StringComparer.Ordinal).ToList() ?? [], view?.Endpoints.Count ?? 0,
                watcher?.HeldNodes.Order(StringComparer.Ordinal).ToList() ?? [])
            {
                BridgeBypass = overlay.BypassStatus(network),
            });
        }
        return new ClusterStatus
        {
            Joined = _membership is not null,
            Incarnation = _membership?.Incarnation ?? 0,
            LastConfirmed = _membership?.Liveness.LastConfirmed,
            JournaledChanges = Ipam.JournalLength,
            Networks = networks,
        };
    }

    /// <summary>While the journal holds changes: write them back once the store answers, then publish what was held back.</summary>
    private async Task ReplayJournalLoopAsync(ILogger log, CancellationToken ct)
    {
        try
        {
            using var timer = new PeriodicTimer(JournalReplayInterval, _time);
            while (await timer.WaitForNextTickAsync(ct).ConfigureAwait(false))
            {
                if (Ipam.JournalLength == 0)
                    continue;
                try
                {
                    if (await Ipam.TryReplayJournalAsync(ct).ConfigureAwait(false) is not { } replay)
                        continue;
                    LogReplay(log, replay);
                    await Driver.AfterJournalReplayAsync(replay.Conflicts, ct).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    log.LogWarning("writing the outage journal back failed ({Error}); retrying", ex.Message);
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    private static void LogReplay(ILogger log, JournalReplay replay)
    {
        if (replay.Replayed > 0)
            log.LogInformation("wrote {Count} address change(s) made while the cluster store was unreachable back to the store; {Conflicts} conflict(s)",
                replay.Replayed, replay.Conflicts.Count);
        foreach (var conflict in replay.Conflicts)
            log.LogError("address {Address} (MAC {Mac}) given out while the cluster store was unreachable is taken in the store now: {Detail}",
                conflict.Address, conflict.Mac, conflict.Detail);
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _joining.ConfigureAwait(false);
        await _collecting.ConfigureAwait(false);
        await _replaying.ConfigureAwait(false);
        if (Overlay is { } overlay)
            await overlay.DisposeAsync().ConfigureAwait(false);
        if (_membership is not null)
            await _membership.DisposeAsync().ConfigureAwait(false);
        _stopping.Dispose();
        await Driver.WhenLinksDeletedAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        Kernel.Dispose();
        if (_localStore is not null)
            await _localStore.DisposeAsync().ConfigureAwait(false);
        await _clusterStore.DisposeAsync().ConfigureAwait(false);
        Ipam.Dispose();
    }
}
