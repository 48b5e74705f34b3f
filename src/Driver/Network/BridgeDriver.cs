using System.Net.NetworkInformation;
using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Skein.Driver.Firewall;
using Skein.Driver.Netlink;
using Skein.Driver.Network.Kernel;
using Skein.Driver.Network.Protocol;
using Skein.Driver.Network.Setup;
using Skein.Driver.Network.State;
using Skein.Driver.Overlay.Control;
using Skein.Driver.Overlay.Dataplane;
using Skein.Ipam.Allocation;

namespace Skein.Driver.Network;

/// <summary>
/// The bridge-mode NetworkDriver: one Linux bridge per network, one veth pair per endpoint. Verbs live in
/// partial files by responsibility (networks, endpoints, join/leave, reconciliation). Every change is written to
/// the driver's own records before the kernel is touched, and every verb converges, so retries, rollbacks and
/// restarts repeat calls safely. Changes are serialised by one gate; reads (EndpointOperInfo, status) are not.
/// </summary>
public sealed partial class BridgeDriver
{
    private readonly DriverStateStore _state;
    private readonly IHostKernel _kernel;
    private readonly IFirewall _firewall;
    private readonly IEndpointAddressBinding _addresses;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly BridgeSetup _bridges;
    private readonly VethSetup _veths;
    /// <summary>The multi-host control plane; null when every network stays on this host.</summary>
    private readonly OverlayController? _cluster;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly ConcurrentDictionary<string, NetworkRecord> _networks = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, EndpointRecord> _endpoints = new(StringComparer.Ordinal);

    public BridgeDriver(DriverStateStore state, IHostKernel kernel, IFirewall firewall, IEndpointAddressBinding addresses, TimeProvider time, ILogger log,
        OverlayController? cluster = null)
    {
        _cluster = cluster;
        _state = state;
        _kernel = kernel;
        _firewall = firewall;
        _addresses = addresses;
        _time = time;
        _log = log;
        _bridges = new BridgeSetup(kernel, firewall, log);
        _veths = new VethSetup(kernel, log);
    }

    /// <summary>Every network lives on this host only.</summary>
    public static GetCapabilityResponse Capabilities { get; } = new("local", "local", GwAllocChecker: false);

    /// <summary>
    /// Multi-host: data scope stays local (each host has its own Docker network object, and a global scope would send
    /// network creation to a swarm manager), connectivity is global (cluster-store §4.2).
    /// </summary>
    public static GetCapabilityResponse MultiHostCapabilities { get; } = new("local", "global", GwAllocChecker: false);

    /// <summary>Swarm with SKEIN_DRIVER_SCOPE=global (plugin-protocol §5.4): the manager allocates, nodes follow.</summary>
    public static GetCapabilityResponse GlobalCapabilities { get; } = new("global", "global", GwAllocChecker: false);

    public static GetCapabilityResponse CapabilitiesFor(bool multiHost, bool globalScope = false) =>
        globalScope ? GlobalCapabilities : multiHost ? MultiHostCapabilities : Capabilities;

    public OverlayController? Cluster => _cluster;

    /// <summary>
    /// Multi-host start-up once the records are loaded: fencing, publication and watchers, with re-publication after
    /// a recreated liveness running under the driver's gate.
    /// </summary>
    public async Task StartClusterAsync(IClusterPresence presence, CancellationToken ct)
    {
        if (_cluster is null)
            return;
        _cluster.UseRepublisher(async republishCt =>
        {
            using var republishHeld = await LockAsync(republishCt).ConfigureAwait(false);
            await _cluster.RepublishAsync(_networks.Values.ToList(), _endpoints.Values.ToList(), republishCt).ConfigureAwait(false);
        });
        using var held = await LockAsync(ct).ConfigureAwait(false);
        await _cluster.StartAsync(presence, _networks.Values.ToList(), _endpoints.Values.ToList(), ct).ConfigureAwait(false);
    }

    /// <summary>
    /// After the IPAM wrote its outage journal back (decisions #18): endpoints whose address another host holds now
    /// are marked conflicted (never advertised), then the endpoints held back meanwhile are published.
    /// </summary>
    public async Task AfterJournalReplayAsync(IReadOnlyList<JournalConflict> conflicts, CancellationToken ct)
    {
        if (_cluster is null)
            return;
        using var held = await LockAsync(ct).ConfigureAwait(false);
        var conflicted = new List<string>();
        foreach (var conflict in conflicts)
        {
            var address = conflict.Address.ToString();
            conflicted.AddRange(_endpoints.Values
                .Where(e => e.EndpointId == conflict.EndpointId
                    || (e.MacAddress == conflict.Mac && new[] { e.IPv4Address, e.IPv6Address }.Any(a => a is not null && IpPrefix.Parse(a).Address.ToString() == address)))
                .Select(e => e.EndpointId));
        }
        _cluster.MarkConflicted(conflicted.Distinct());
        await BestEffortAsync("publishing endpoints held back until the journal replay", () => _cluster.RetryDeferredAsync(ct)).ConfigureAwait(false);
    }

    /// <summary>Tells the cluster control plane which endpoints of a cluster network are joined here (the bridge bypass follows).</summary>
    private void ReportLocalPorts(NetworkRecord network)
    {
        if (_cluster is null || !network.IsCluster)
            return;
        var ports = new List<LocalPort>();
        foreach (var endpoint in _endpoints.Values.Where(e => e.NetworkId == network.NetworkId && e.Joined))
        {
            if (PhysicalAddress.TryParse(endpoint.MacAddress, out var mac))
                ports.Add(new LocalPort(endpoint.HostVeth, mac));
        }
        _cluster.SetLocalPorts(network, ports);
    }

    public IReadOnlyCollection<NetworkRecord> Networks => _networks.Values.OrderBy(n => n.CreatedAt).ToList();
    public IReadOnlyCollection<EndpointRecord> Endpoints => _endpoints.Values.OrderBy(e => e.CreatedAt).ToList();

    /// <summary>Reads the records into memory; run once at start, before the first reconciliation.</summary>
    public async Task LoadAsync(CancellationToken ct)
    {
        var (networks, endpoints) = await _state.LoadAsync(ct).ConfigureAwait(false);
        foreach (var network in networks)
            _networks[network.NetworkId] = network;
        foreach (var endpoint in endpoints)
            _endpoints[endpoint.EndpointId] = endpoint;
        _log.LogInformation("loaded {Networks} network(s) and {Endpoints} endpoint(s) from the store", networks.Count, endpoints.Count);
    }

    private async Task<IDisposable> LockAsync(CancellationToken ct)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        return new Releaser(_gate);
    }

    private sealed class Releaser(SemaphoreSlim gate) : IDisposable
    {
        private int _released;
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
                gate.Release();
        }
    }

    /// <summary>
    /// Waits, at most <paramref name="bound"/>, for the veth pairs queued for background deletion; a deletion still
    /// pending after that is logged and left to finish (or to the reconciler after a restart).
    /// </summary>
    public async Task WhenLinksDeletedAsync(TimeSpan bound)
    {
        try
        {
            await _veths.WhenDeletedAsync().WaitAsync(bound).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            _log.LogWarning("{Count} veth deletion(s) still pending after {Seconds} s", _veths.PendingDeletions, bound.TotalSeconds);
        }
    }

    private static string Short(string id) => id.Length > 12 ? id[..12] : id;

    /// <summary>Runs a best-effort cleanup action and logs instead of failing: used where Docker only logs errors.</summary>
    private void BestEffort(string what, Action action)
    {
        try
        {
            action();
        }
        catch (Exception ex)
        {
            _log.LogWarning("{What} failed: {Error}", what, KernelFailure.Describe(ex) ?? ex.Message);
        }
    }

    private async Task BestEffortAsync(string what, Func<Task> action)
    {
        try
        {
            await action().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            _log.LogWarning("{What} failed: {Error}", what, ex.Message);
        }
    }
}
