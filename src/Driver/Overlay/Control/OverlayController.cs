using System.Collections.Concurrent;
using System.Net;
using Microsoft.Extensions.Logging;
using Skein.Driver.Firewall;
using Skein.Driver.Netlink;
using Skein.Driver.Network.State;
using Skein.Driver.Overlay.Dataplane;
using Skein.Ipam;
using Skein.Ipam.Allocation;
using Skein.Ipam.Cluster;
using Skein.Ipam.Store;

namespace Skein.Driver.Overlay.Control;

/// <summary>How this host takes part in multi-host networks.</summary>
public sealed record OverlaySettings
{
    public required string NodeId { get; init; }
    /// <summary>Root of every key, as the IPAM uses it (skein/v1).</summary>
    public required string KeyRoot { get; init; }
    /// <summary>This host's underlay address: the VTEP other hosts send to.</summary>
    public required IPAddress LocalVtep { get; init; }
    public ushort VxlanPort { get; init; } = 4789;
    public VniRange Vnis { get; init; } = VniRange.Default;
    /// <summary>How long a vanished node's entries are kept in case it re-publishes (cluster-store §4.10).</summary>
    public TimeSpan HoldDown { get; init; } = TimeSpan.FromSeconds(30);
}

/// <summary>What CreateNetwork learned from the registry for a cluster network.</summary>
public sealed record ClusterNetworkPlan(string Net, int Vni, int Mtu, string VxlanName);

/// <summary>
/// The control plane of multi-host networks on one host: joins cluster networks in the registry, publishes this
/// host's peers (ephemeral, so they vanish with its liveness), runs one peer watcher per network that programs the
/// VXLAN data plane, and keeps the underlay firewall's VTEP list equal to the union of all remote VTEPs
/// (decisions #17). The bridge driver calls it at each verb; its records stay the source of truth.
/// </summary>
public sealed class OverlayController : IAsyncDisposable
{
    private sealed class Participation(NetworkRecord network, OverlayDevice device, PeerWatcher watcher)
    {
        public NetworkRecord Network { get; } = network;
        public OverlayDevice Device { get; set; } = device;
        public PeerWatcher Watcher { get; } = watcher;
        /// <summary>Null until the first view was applied: the filter is left as it is while any network's peers are unknown.</summary>
        public IReadOnlyCollection<IPAddress>? RemoteVteps { get; set; }
        /// <summary>The last view the watcher delivered, for the bridge bypass when the local ports change.</summary>
        public PeerView? LastView { get; set; }
    }

    private readonly IClusterStore _store;
    private readonly OverlaySettings _settings;
    private readonly IOverlayDataplane _dataplane;
    private readonly IUnderlayFirewall? _underlay;
    private readonly Func<string, CancellationToken, Task<PoolInfo?>> _findPool;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly ClusterKeys _keys;
    private readonly ConcurrentDictionary<string, Participation> _byNet = new(StringComparer.Ordinal);
    private readonly Lock _firewallGate = new();
    private readonly HashSet<string> _conflicted = new(StringComparer.Ordinal);
    /// <summary>Endpoint id → logical network of every endpoint this host has published.</summary>
    private readonly ConcurrentDictionary<string, string> _published = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, (NetworkRecord Network, EndpointRecord Endpoint)> _deferred = new(StringComparer.Ordinal);
    /// <summary>Registry departures that failed (store down at DeleteNetwork): Docker network id → logical name.</summary>
    private readonly ConcurrentDictionary<string, string> _pendingLeaves = new(StringComparer.Ordinal);
    /// <summary>Logical network → its joined local ports, as the bridge driver last reported them.</summary>
    private readonly ConcurrentDictionary<string, IReadOnlyCollection<LocalPort>> _localPorts = new(StringComparer.Ordinal);
    private readonly Lock _bypassGate = new();
    private IReadOnlyList<IPAddress>? _firewallPeers;
    private bool _firewallRemoved;
    private IClusterPresence? _presence;

    public OverlayController(IClusterStore store, OverlaySettings settings, IOverlayDataplane dataplane, IUnderlayFirewall? underlay,
        Func<string, CancellationToken, Task<PoolInfo?>> findPool, TimeProvider time, ILogger log)
    {
        _store = store;
        _settings = settings;
        _dataplane = dataplane;
        _underlay = underlay;
        _findPool = findPool;
        _time = time;
        _log = log;
        _keys = new ClusterKeys(settings.KeyRoot);
        Registry = new NetworkRegistry(store, _keys, settings.NodeId, settings.Vnis, log);
    }

    public NetworkRegistry Registry { get; }
    public ClusterKeys Keys => _keys;
    public OverlaySettings Settings => _settings;
    /// <summary>True once the presence is attached: from then on endpoints are published and watchers run.</summary>
    public bool Started => _presence is not null;

    /// <summary>
    /// True for an endpoint whose address was handed out from the IPAM's outage journal and is not written back to
    /// the store yet: it is published only after the replay (decisions #18), so no host learns an address the
    /// fencing check may still refuse.
    /// </summary>
    public Func<EndpointRecord, bool>? AwaitsReplay { get; set; }

    /// <summary>Endpoints whose address the journal replay found held by another host: never advertised.</summary>
    public void MarkConflicted(IEnumerable<string> endpointIds)
    {
        foreach (var id in endpointIds)
        {
            lock (_conflicted)
            {
                if (!_conflicted.Add(id))
                    continue;
            }
            _deferred.TryRemove(id, out _);
            _log.LogError("endpoint {Endpoint}: the address it was given while the cluster store was unreachable is held by another host now; it is not advertised (restart its container to give it a new address)", Short(id));
        }
    }

    private bool HeldBack(NetworkRecord network, EndpointRecord endpoint)
    {
        if (AwaitsReplay is not { } awaits || !awaits(endpoint))
            return false;
        _deferred[endpoint.EndpointId] = (network, endpoint);
        return true;
    }

    /// <summary>The watcher of a logical network (tests and `skein status`).</summary>
    public PeerWatcher? Watcher(string net) => _byNet.TryGetValue(net, out var p) ? p.Watcher : null;

    public OverlayDevice Device(NetworkRecord network) =>
        new(network.BridgeName, network.VxlanName!, network.Vni!.Value, _settings.LocalVtep, _settings.VxlanPort, network.Mtu);

    /// <summary>
    /// For CreateNetwork: null for a host-local network (decisions #1); otherwise joins the registry and answers
    /// the VNI and the MTU (the explicit one, else the underlay's minus the VXLAN overhead).
    /// </summary>
    public async Task<ClusterNetworkPlan?> PlanAsync(NetworkRecord draft, IReadOnlyList<RequestedPool> pools, bool mtuExplicit,
        Func<string, bool> isStale, CancellationToken ct)
    {
        var net = await LogicalNetworkName.ResolveAsync(draft.GenericOptions, pools, _findPool, ct).ConfigureAwait(false);
        if (net is null)
            return null;
        var mtu = mtuExplicit ? draft.Mtu : _dataplane.DefaultMtu(_settings.LocalVtep);
        if (draft.EnableIPv6 && mtu < 1280)
            throw SkeinException.Invalid($"the overlay MTU would be {mtu} (underlay MTU minus the VXLAN overhead), below the 1280 bytes IPv6 needs; raise the underlay MTU");
        if (_byNet.TryGetValue(net, out var other) && other.Network.NetworkId != draft.NetworkId)
            throw SkeinException.Conflict($"cluster network '{net}' is already Docker network {Short(other.Network.NetworkId)} on this host; one Docker network per cluster network per host");
        var settings = new ClusterNetworkSettings
        {
            Pools = [.. draft.IPv4Subnets.Concat(draft.IPv6Subnets).Order(StringComparer.Ordinal)],
            Internal = draft.Internal,
            Ipv6 = draft.EnableIPv6,
            Mtu = mtuExplicit ? draft.Mtu : null,
        };
        var registration = await Registry.JoinAsync(net, draft.NetworkId, settings, isStale, ct).ConfigureAwait(false);
        return new ClusterNetworkPlan(net, registration.Vni, mtu, OverlayNames.Vxlan(draft.NetworkId));
    }

    /// <summary>Undoes <see cref="PlanAsync"/> when the rest of CreateNetwork failed.</summary>
    public Task AbandonAsync(string net, string networkId, CancellationToken ct) => Registry.LeaveAsync(net, networkId, ct);

    public void EnsureDevice(NetworkRecord network)
    {
        var device = Device(network);
        bool created = _dataplane.EnsureDevice(device);
        if (_byNet.TryGetValue(network.ClusterNetwork!, out var participation))
        {
            participation.Device = device;
            // A recreated VXLAN device leaves the ports' redirects aimed at the deleted one, where mirred drops the
            // frames: re-point them at once, not at the next view. An unchanged one needs nothing here.
            if (created)
                SyncBypass(participation);
        }
    }

    /// <summary>Starts (or restarts) the network's watcher; before the presence is attached this only records it.</summary>
    public void Track(NetworkRecord network)
    {
        var net = network.ClusterNetwork!;
        if (_byNet.TryGetValue(net, out var existing))
        {
            if (existing.Watcher.IsRunning || !Started)
                return;
            _byNet.TryRemove(net, out _);
            _ = existing.Watcher.DisposeAsync().AsTask();
        }
        Participation? participation = null;
        var watcher = new PeerWatcher(_store, _keys, net, _settings.NodeId, view => ApplyPeers(participation!, view), _time, _log)
        {
            HoldDown = _settings.HoldDown,
        };
        participation = new Participation(network, Device(network), watcher);
        _byNet[net] = participation;
        if (Started)
            watcher.Start();
    }

    private void ApplyPeers(Participation participation, PeerView view)
    {
        var result = _dataplane.Apply(participation.Device, view);
        if (result.Changes > 0)
            _log.LogInformation("cluster network {Net}: {Vteps} remote host(s), {Endpoints} remote endpoint(s); {Added} added, {Removed} removed, {Replaced} replaced",
                participation.Network.ClusterNetwork, view.RemoteVteps.Count, view.Endpoints.Count, result.Added, result.Removed, result.Replaced);
        if (result.Failed > 0)
            _log.LogWarning("cluster network {Net}: {Failed} peer entr(ies) could not be programmed; the next change or reconciliation retries",
                participation.Network.ClusterNetwork, result.Failed);
        participation.RemoteVteps = view.RemoteVteps;
        participation.LastView = view;
        UpdateUnderlayFirewall();
        SyncBypass(participation);
    }

    /// <summary>
    /// The bridge driver's report of a cluster network's joined endpoints on this host (after Join, Leave and each
    /// reconciliation): the bridge bypass follows it at once, with the peers of the last view.
    /// </summary>
    public void SetLocalPorts(NetworkRecord network, IReadOnlyCollection<LocalPort> ports)
    {
        if (network.ClusterNetwork is not { } net)
            return;
        _localPorts[net] = ports;
        if (_byNet.TryGetValue(net, out var participation) && participation.Network.NetworkId == network.NetworkId)
            SyncBypass(participation);
    }

    /// <summary>The bridge bypass of a cluster network as `skein status` shows it.</summary>
    public string BypassStatus(NetworkRecord network)
    {
        if (!network.InterContainerConnectivity)
            return "off (inter-container connectivity is off)";
        if (!network.BridgeBypass)
            return "off (skein.bridge-bypass=false)";
        if (_dataplane.BypassUnsupported is { } why)
            return "unavailable: " + why;
        var ports = _localPorts.GetValueOrDefault(network.ClusterNetwork ?? "")?.Count ?? 0;
        var remote = _byNet.TryGetValue(network.ClusterNetwork ?? "", out var participation) ? participation.LastView?.Endpoints.Count ?? 0 : 0;
        return $"on ({ports} local port(s), {remote} remote endpoint(s))";
    }

    /// <summary>Whether a network's cross-host unicast skips the bridge: never without inter-container connectivity.</summary>
    public static bool BypassEnabled(NetworkRecord network) => network.InterContainerConnectivity && network.BridgeBypass;

    /// <summary>The bypass is an optimisation: a failure is logged, frames take the bridge, and the next sync retries.</summary>
    private void SyncBypass(Participation participation)
    {
        lock (_bypassGate)
        {
            // Read under the gate: a watcher thread and a Join must not apply each other's older state last.
            var ports = _localPorts.GetValueOrDefault(participation.Network.ClusterNetwork!) ?? [];
            try
            {
                var result = _dataplane.ApplyBypass(participation.Device, ports, participation.LastView, BypassEnabled(participation.Network));
                if (result.Failed > 0)
                    _log.LogWarning("cluster network {Net}: {Failed} bridge bypass change(s) failed; those frames take the bridge until the next reconciliation",
                        participation.Network.ClusterNetwork, result.Failed);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // Never fails a Join or a watcher: without the bypass, frames take the bridge.
                _log.LogWarning("cluster network {Net}: bridge bypass not applied: {Error}", participation.Network.ClusterNetwork,
                    Network.Kernel.KernelFailure.Describe(ex) ?? ex.Message);
            }
        }
    }

    /// <summary>VXLAN is accepted only from the union of every network's remote VTEPs (decisions #17).</summary>
    private void UpdateUnderlayFirewall()
    {
        if (_underlay is null)
            return;
        lock (_firewallGate)
        {
            if (_byNet.IsEmpty)
            {
                // Also when this process never applied a filter (the last network went before its first view, or
                // an earlier run left one): the filter goes with the last cluster network. Removal is idempotent.
                if (!_firewallRemoved)
                {
                    _underlay.RemoveVxlanPeers();
                    _firewallPeers = null;
                    _firewallRemoved = true;
                }
                return;
            }
            // A network whose watch has not delivered yet (just started, or the store is unreachable) could only
            // narrow the filter wrongly and cut running traffic: keep the rules as they are until every view is known.
            if (_byNet.Values.Any(p => p.RemoteVteps is null))
                return;
            var peers = _byNet.Values.SelectMany(p => p.RemoteVteps!).Distinct().OrderBy(a => a.ToString(), StringComparer.Ordinal).ToList();
            if (_firewallPeers is not null && _firewallPeers.SequenceEqual(peers))
                return;
            _underlay.ApplyVxlanPeers(_settings.VxlanPort, peers);
            _firewallPeers = peers;
            _firewallRemoved = false;
        }
    }

    /// <summary>
    /// Start-up in cluster mode: the fencing check over every local endpoint, then publication of everything, then the
    /// watchers. Endpoints whose address another host now holds are never advertised (cluster-store §4.9).
    /// </summary>
    public async Task StartAsync(IClusterPresence presence, IReadOnlyCollection<NetworkRecord> networks, IReadOnlyCollection<EndpointRecord> endpoints, CancellationToken ct)
    {
        var cluster = networks.Where(n => n.ClusterNetwork is not null).ToDictionary(n => n.NetworkId, StringComparer.Ordinal);
        var claims = new List<LocalEndpointClaim>();
        foreach (var endpoint in endpoints.Where(e => cluster.ContainsKey(e.NetworkId)))
        {
            var network = cluster[endpoint.NetworkId];
            foreach (var address in new[] { endpoint.IPv4Address, endpoint.IPv6Address })
            {
                if (address is null)
                    continue;
                var ip = IpPrefix.Parse(address).Address;
                var pool = network.IPv4Subnets.Concat(network.IPv6Subnets).FirstOrDefault(s => Network.RequestValidation.Contains(IpPrefix.Parse(s), ip));
                if (pool is not null)
                    claims.Add(new LocalEndpointClaim(endpoint.EndpointId, endpoint.MacAddress, address, pool));
            }
        }
        var conflicted = claims.Count == 0 ? new HashSet<string>() : await presence.FenceAsync(claims, ct).ConfigureAwait(false);
        lock (_conflicted)
        {
            _conflicted.Clear();
            _conflicted.UnionWith(conflicted);
        }
        foreach (var id in conflicted)
            _log.LogError("endpoint {Endpoint}: its address is now held by another host (this host was reclaimed); it is not advertised to other hosts", Short(id));

        _presence = presence;
        presence.Republish += ct2 => _republisher is { } republish ? republish(ct2) : RepublishAsync(networks, endpoints, ct2);
        await RepublishAsync(networks, endpoints, ct).ConfigureAwait(false);
        foreach (var network in cluster.Values)
            Track(network);
        UpdateUnderlayFirewall();
    }

    private Func<CancellationToken, Task>? _republisher;

    /// <summary>
    /// What re-publication after a recreated liveness runs: the driver's own, which holds its lock so that no
    /// endpoint deleted meanwhile is published again.
    /// </summary>
    public void UseRepublisher(Func<CancellationToken, Task> republish) => _republisher = republish;

    /// <summary>Publishes every local endpoint of every cluster network (after start and after the liveness was recreated).</summary>
    public async Task RepublishAsync(IReadOnlyCollection<NetworkRecord> networks, IReadOnlyCollection<EndpointRecord> endpoints, CancellationToken ct)
    {
        var published = 0;
        foreach (var network in networks.Where(n => n.ClusterNetwork is not null))
        {
            foreach (var endpoint in endpoints.Where(e => e.NetworkId == network.NetworkId))
            {
                if (HeldBack(network, endpoint))
                    continue;
                try
                {
                    if (await PublishAsync(network, endpoint, ct).ConfigureAwait(false))
                        published++;
                    _deferred.TryRemove(endpoint.EndpointId, out _);
                }
                catch (Exception ex) when (ex is not OperationCanceledException and not LivenessLostException)
                {
                    _deferred[endpoint.EndpointId] = (network, endpoint);
                    _log.LogWarning("endpoint {Endpoint}: not published ({Error}); retrying at the next reconciliation", Short(endpoint.EndpointId), ex.Message);
                }
            }
        }
        _log.LogInformation("published {Count} endpoint(s) to the cluster", published);
    }

    /// <summary>
    /// For CreateEndpoint and Join: publishes the endpoint unless it already is. A store failure is logged, not
    /// thrown: the endpoint works on this host and is published by the next reconciliation (decisions #18).
    /// </summary>
    public async Task PublishOrDeferAsync(NetworkRecord network, EndpointRecord endpoint, CancellationToken ct)
    {
        if (network.ClusterNetwork is null || _published.ContainsKey(endpoint.EndpointId) || HeldBack(network, endpoint))
            return;
        try
        {
            await PublishAsync(network, endpoint, ct).ConfigureAwait(false);
            _deferred.TryRemove(endpoint.EndpointId, out _);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            _deferred[endpoint.EndpointId] = (network, endpoint);
            _log.LogWarning("endpoint {Endpoint}: not yet published to the cluster ({Error}); retrying at the next reconciliation", Short(endpoint.EndpointId), ex.Message);
        }
    }

    /// <summary>peers/&lt;net&gt;/&lt;node&gt; then peers/&lt;net&gt;/&lt;node&gt;/&lt;eid&gt;, both ephemeral; false when not advertised.</summary>
    public async Task<bool> PublishAsync(NetworkRecord network, EndpointRecord endpoint, CancellationToken ct)
    {
        if (network.ClusterNetwork is not { } net || _presence is not { } presence)
            return false;
        lock (_conflicted)
        {
            if (_conflicted.Contains(endpoint.EndpointId))
                return false;
        }
        var node = new PeerNodeRecord { Vtep = _settings.LocalVtep.ToString(), Incarnation = presence.Incarnation };
        var record = new PeerEndpointRecord
        {
            Ip4 = endpoint.IPv4Address is null ? null : IpPrefix.Parse(endpoint.IPv4Address).Address.ToString(),
            Ip6 = endpoint.IPv6Address is null ? null : IpPrefix.Parse(endpoint.IPv6Address).Address.ToString(),
            Mac = endpoint.MacAddress,
        };
        var nodePut = new TxnOp.Put(_keys.PeerNode(net, _settings.NodeId), ClusterJsonContext.Encode(node, ClusterJsonContext.Default.PeerNodeRecord), Precondition.None, Ephemeral: true);
        var endpointPut = new TxnOp.Put(_keys.PeerEndpoint(net, _settings.NodeId, endpoint.EndpointId),
            ClusterJsonContext.Encode(record, ClusterJsonContext.Default.PeerEndpointRecord), Precondition.None, Ephemeral: true);
        // One store write for both keys (a container start waits for it). Without preconditions it fails only while
        // another live session holds a key (a duplicate node id): the caller defers and retries.
        var result = await _store.CommitAsync([nodePut, endpointPut], ct).ConfigureAwait(false);
        if (!result.Applied)
            throw new SkeinException(ErrorKind.Conflict, $"another live process holds this host's peer keys of cluster network '{net}' (duplicate node id?)");
        _published[endpoint.EndpointId] = net;
        return true;
    }

    /// <summary>
    /// For Leave and DeleteEndpoint: deletes the endpoint's key, and the node key when it was this host's last
    /// published endpoint on the network. Best effort: a key left behind goes with this host's liveness.
    /// </summary>
    public async Task UnpublishAsync(NetworkRecord network, EndpointRecord endpoint, CancellationToken ct)
    {
        _deferred.TryRemove(endpoint.EndpointId, out _);
        if (network.ClusterNetwork is not { } net || !Started)
            return;
        _published.TryRemove(endpoint.EndpointId, out _);
        var last = !_published.Values.Contains(net);
        try
        {
            await _store.DeleteAsync(_keys.PeerEndpoint(net, _settings.NodeId, endpoint.EndpointId), Precondition.None, ct).ConfigureAwait(false);
            if (last)
                await _store.DeleteAsync(_keys.PeerNode(net, _settings.NodeId), Precondition.None, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            _log.LogWarning("endpoint {Endpoint}: could not withdraw it from the cluster ({Error}); it goes with this host's liveness", Short(endpoint.EndpointId), ex.Message);
        }
    }

    /// <summary>Publishes what CreateEndpoint could not, and finishes registry departures DeleteNetwork could not (store down then).</summary>
    public async Task<int> RetryDeferredAsync(CancellationToken ct)
    {
        var done = 0;
        foreach (var (networkId, net) in _pendingLeaves.ToList())
        {
            try
            {
                await Registry.LeaveAsync(net, networkId, ct).ConfigureAwait(false);
                _pendingLeaves.TryRemove(networkId, out _);
                done++;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                _log.LogWarning("cluster network '{Net}': still cannot leave it in the registry ({Error})", net, ex.Message);
                break;
            }
        }
        foreach (var (id, (network, endpoint)) in _deferred.ToList())
        {
            if (HeldBack(network, endpoint))
                continue;
            try
            {
                await PublishAsync(network, endpoint, ct).ConfigureAwait(false);
                _deferred.TryRemove(id, out _);
                done++;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                _log.LogWarning("endpoint {Endpoint}: still not published ({Error})", Short(id), ex.Message);
                break;
            }
        }
        return done;
    }

    /// <summary>
    /// DeleteNetwork: stop watching, withdraw this host's peers, leave the registry, remove the VXLAN device. Each step
    /// is tried even when an earlier one failed; the failures are returned for the caller to log.
    /// </summary>
    public async Task<IReadOnlyList<string>> RemoveAsync(NetworkRecord network, CancellationToken ct)
    {
        var failures = new List<string>();
        if (network.ClusterNetwork is not { } net)
            return failures;
        if (_byNet.TryGetValue(net, out var participation) && participation.Network.NetworkId == network.NetworkId)
        {
            _byNet.TryRemove(net, out _);
            _localPorts.TryRemove(net, out _);
            await participation.Watcher.DisposeAsync().ConfigureAwait(false);
        }
        await Step($"withdrawing this host's peers of cluster network '{net}'", async () =>
        {
            var listing = await _store.ListAsync(_keys.PeerNode(net, _settings.NodeId) + "/", keysOnly: true, ct).ConfigureAwait(false);
            foreach (var entry in listing.Entries)
                await _store.DeleteAsync(entry.Key, Precondition.None, ct).ConfigureAwait(false);
            await _store.DeleteAsync(_keys.PeerNode(net, _settings.NodeId), Precondition.None, ct).ConfigureAwait(false);
            foreach (var (id, _) in _published.Where(p => p.Value == net).ToList())
                _published.TryRemove(id, out _);
        }).ConfigureAwait(false);
        await Step($"leaving cluster network '{net}' in the registry (retried at the next reconciliation)", async () =>
        {
            _pendingLeaves[network.NetworkId] = net;
            await Registry.LeaveAsync(net, network.NetworkId, ct).ConfigureAwait(false);
            _pendingLeaves.TryRemove(network.NetworkId, out _);
        }).ConfigureAwait(false);
        await Step($"removing VXLAN device {network.VxlanName}", () =>
        {
            _dataplane.RemoveDevice(network.VxlanName!);
            return Task.CompletedTask;
        }).ConfigureAwait(false);
        await Step("updating the VXLAN peer filter", () =>
        {
            UpdateUnderlayFirewall();
            return Task.CompletedTask;
        }).ConfigureAwait(false);
        return failures;

        async Task Step(string what, Func<Task> action)
        {
            try
            {
                await action().ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                failures.Add($"{what}: {ex.Message}");
            }
        }
    }

    /// <summary>Drift repair from the reconciler: devices back, dead watchers restarted, every view re-applied.</summary>
    public IReadOnlyList<string> Reconcile(IReadOnlyCollection<NetworkRecord> networks)
    {
        var failures = new List<string>();
        foreach (var network in networks.Where(n => n.ClusterNetwork is not null))
        {
            try
            {
                EnsureDevice(network);
                Track(network);
                Watcher(network.ClusterNetwork!)?.Resync();
            }
            catch (Exception ex)
            {
                failures.Add($"cluster network '{network.ClusterNetwork}' ({network.VxlanName}): {Network.Kernel.KernelFailure.Describe(ex) ?? ex.Message}");
            }
        }
        try
        {
            UpdateUnderlayFirewall();
        }
        catch (Exception ex)
        {
            failures.Add($"VXLAN peer filter: {ex.Message}");
        }
        return failures;
    }

    /// <summary>Stops the watchers; the kernel keeps what it has (running containers keep their connectivity).</summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var participation in _byNet.Values)
            await participation.Watcher.DisposeAsync().ConfigureAwait(false);
        _byNet.Clear();
    }

    private static string Short(string id) => id.Length > 12 ? id[..12] : id;
}
