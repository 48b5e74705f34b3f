using System.Net;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Skein.Driver.Firewall;
using Skein.Driver.Network.State;
using Skein.Driver.Overlay.Control;
using Skein.Driver.Overlay.Dataplane;
using Skein.Ipam;
using Skein.Ipam.Addressing;
using Skein.Ipam.Allocation;
using Skein.Ipam.Cluster;
using Skein.Ipam.Store;
using Skein.Ipam.Store.Embedded;

namespace Skein.Driver.Tests.Overlay.Control;

/// <summary>
/// The control plane without a kernel: a recording data plane and firewall, the embedded store. Publication,
/// fencing, the VTEP filter, store outages during CreateEndpoint and DeleteNetwork, and withdrawal.
/// </summary>
public sealed class OverlayControllerTests : IAsyncLifetime
{
    private const string Root = "skein/v1";
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "skein-oc-" + Guid.NewGuid().ToString("N")[..10]);
    private readonly ClusterKeys _keys = new(Root);
    private readonly RecordingDataplane _dataplane = new();
    private readonly RecordingUnderlay _underlay = new();
    private EmbeddedStore _inner = null!;
    private OutageStore _store = null!;
    private ILiveness _liveness = null!;

    public async Task InitializeAsync()
    {
        _inner = await EmbeddedStore.OpenAsync(_dir);
        _liveness = await _inner.StartLivenessAsync(new LivenessOptions(TimeSpan.FromSeconds(15), TimeSpan.FromSeconds(5)), default);
        _store = new OutageStore(_inner);
    }

    public async Task DisposeAsync()
    {
        await _liveness.DisposeAsync();
        await _inner.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private OverlayController Controller() =>
        new(_store, new OverlaySettings { NodeId = "host-a", KeyRoot = Root, LocalVtep = IPAddress.Parse("192.0.2.1") }, _dataplane, _underlay,
            (id, _) => Task.FromResult<PoolInfo?>(id == "LocalDefault/10.20.0.0/16"
                ? new PoolInfo(id, "LocalDefault", IpPrefix.Parse("10.20.0.0/16", "pool"), [], null, "blue", true, ["host-a"], true)
                : null),
            TimeProvider.System, NullLogger.Instance);

    private static NetworkRecord Draft(string id) => new()
    {
        NetworkId = id,
        BridgeName = Skein.Driver.Network.LinkNames.Bridge(id),
        Mtu = 1500,
        Internal = false,
        EnableIPv6 = false,
        IPv4Subnets = ["10.20.0.0/16"],
        IPv6Subnets = [],
        IPv4Gateways = ["10.20.0.1/16"],
        IPv6Gateways = [],
        GenericOptions = new Dictionary<string, string>(),
        CreatedAt = DateTimeOffset.UnixEpoch,
    };

    private static EndpointRecord Endpoint(string id, string networkId, string ip, string mac) => new()
    {
        EndpointId = id,
        NetworkId = networkId,
        HostVeth = "skv" + id,
        ContainerVeth = "skc" + id,
        MacAddress = mac,
        MacGenerated = false,
        IPv4Address = ip,
        CreatedAt = DateTimeOffset.UnixEpoch,
    };

    private async Task<NetworkRecord> CreateAsync(OverlayController controller, string id)
    {
        var draft = Draft(id);
        var plan = await controller.PlanAsync(draft, [new RequestedPool("LocalDefault", "10.20.0.0/16", false)], mtuExplicit: false, _ => false, default);
        Assert.NotNull(plan);
        return draft with { ClusterNetwork = plan!.Net, Vni = plan.Vni, VxlanName = plan.VxlanName, Mtu = plan.Mtu };
    }

    private Task<KvEntry?> Get(string key) => _inner.GetAsync(key, default);

    private static async Task WaitAsync(Func<bool> condition, string failure)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
                Assert.Fail(failure);
            await Task.Delay(20);
        }
    }

    [Fact]
    public async Task Endpoints_whose_address_awaits_the_journal_replay_are_published_only_after_it_and_conflicts_never()
    {
        await using var controller = Controller();
        var network = await CreateAsync(controller, "net1");
        controller.EnsureDevice(network);
        var journaled = new HashSet<string>(StringComparer.Ordinal) { "10.20.0.5/16", "10.20.0.6/16" };
        controller.AwaitsReplay = e => journaled.Contains(e.IPv4Address!);
        await controller.StartAsync(new FakePresence(), [network], [], default);

        var fromJournal = Endpoint("e5", "net1", "10.20.0.5/16", "02:00:00:00:00:05");
        var conflicted = Endpoint("e6", "net1", "10.20.0.6/16", "02:00:00:00:00:06");
        var ordinary = Endpoint("e7", "net1", "10.20.0.7/16", "02:00:00:00:00:07");
        foreach (var endpoint in new[] { fromJournal, conflicted, ordinary })
            await controller.PublishOrDeferAsync(network, endpoint, default);
        Assert.NotNull(await Get(_keys.PeerEndpoint("blue", "host-a", "e7")));
        Assert.Null(await Get(_keys.PeerEndpoint("blue", "host-a", "e5")));
        Assert.Null(await Get(_keys.PeerEndpoint("blue", "host-a", "e6")));
        await controller.RetryDeferredAsync(default); // still awaiting: still held back
        Assert.Null(await Get(_keys.PeerEndpoint("blue", "host-a", "e5")));

        // The replay wrote e5's address back and found e6's taken by another host.
        journaled.Clear();
        controller.MarkConflicted(["e6"]);
        await controller.RetryDeferredAsync(default);
        Assert.NotNull(await Get(_keys.PeerEndpoint("blue", "host-a", "e5")));
        Assert.Null(await Get(_keys.PeerEndpoint("blue", "host-a", "e6")));
        await controller.PublishOrDeferAsync(network, conflicted, default);
        Assert.Null(await Get(_keys.PeerEndpoint("blue", "host-a", "e6")));
    }

    [Fact]
    public async Task Fenced_endpoints_are_never_published_and_remote_peers_reach_the_dataplane_and_the_filter()
    {
        await using var controller = Controller();
        var network = await CreateAsync(controller, "net1");
        Assert.Equal("blue", network.ClusterNetwork);
        Assert.Equal(1450, network.Mtu);
        controller.EnsureDevice(network);
        controller.Track(network);
        var good = Endpoint("e1", "net1", "10.20.0.2/16", "02:00:00:00:00:01");
        var reclaimed = Endpoint("e2", "net1", "10.20.0.3/16", "02:00:00:00:00:02");
        var presence = new FakePresence(conflicted: "e2");

        await controller.StartAsync(presence, [network], [good, reclaimed], default);
        var claims = Assert.Single(presence.Fenced);
        Assert.Contains(claims, c => c is { EndpointId: "e1", Address: "10.20.0.2/16", Pool: "10.20.0.0/16" });
        Assert.NotNull(await Get(_keys.PeerNode("blue", "host-a")));
        Assert.NotNull(await Get(_keys.PeerEndpoint("blue", "host-a", "e1")));
        Assert.Null(await Get(_keys.PeerEndpoint("blue", "host-a", "e2")));
        Assert.Contains("\"vtep\":\"192.0.2.1\"", Encoding.UTF8.GetString((await Get(_keys.PeerNode("blue", "host-a")))!.Value.Span));

        // Another host appears: its endpoint goes to the data plane, its VTEP into the VXLAN filter.
        await _inner.PutAsync(_keys.PeerNode("blue", "host-b"), """{"vtep":"192.0.2.2","incarnation":3}"""u8.ToArray(), Precondition.None, false, default);
        await _inner.PutAsync(_keys.PeerEndpoint("blue", "host-b", "e9"), """{"ip4":"10.20.0.9","mac":"02:00:00:00:00:09"}"""u8.ToArray(), Precondition.None, false, default);
        await WaitAsync(() => _dataplane.LastView?.Endpoints.Count == 1, "the remote endpoint should be applied");
        Assert.Equal(network.VxlanName, _dataplane.LastDevice!.VxlanName);
        Assert.Equal(network.Vni, _dataplane.LastDevice.Vni);
        await WaitAsync(() => _underlay.Peers?.SequenceEqual([IPAddress.Parse("192.0.2.2")]) == true, "the filter should list host-b");
        Assert.Equal(4789, _underlay.Port);
    }

    [Fact]
    public async Task The_bridge_bypass_follows_both_the_local_ports_and_the_remote_view_and_stays_off_without_icc()
    {
        await using var controller = Controller();
        var network = await CreateAsync(controller, "net1");
        controller.EnsureDevice(network);
        controller.Track(network);
        await controller.StartAsync(new FakePresence(), [network], [], default);

        var port = new LocalPort("skve1", System.Net.NetworkInformation.PhysicalAddress.Parse("02-00-00-00-00-01"));
        controller.SetLocalPorts(network, [port]);
        var call = _dataplane.LastBypass!;
        Assert.True(call.Enabled);
        Assert.Equal(network.VxlanName, call.Vxlan);
        Assert.Equal([port], call.Locals);

        // A remote endpoint arrives: the bypass is re-applied with the ports reported before and the new view.
        await _inner.PutAsync(_keys.PeerNode("blue", "host-b"), """{"vtep":"192.0.2.2","incarnation":3}"""u8.ToArray(), Precondition.None, false, default);
        await _inner.PutAsync(_keys.PeerEndpoint("blue", "host-b", "e9"), """{"ip4":"10.20.0.9","mac":"02:00:00:00:00:09"}"""u8.ToArray(), Precondition.None, false, default);
        await WaitAsync(() => _dataplane.LastBypass?.Peers?.Endpoints.Count == 1, "the remote endpoint should reach the bypass");
        Assert.Equal([port], _dataplane.LastBypass!.Locals);

        // A (re)created VXLAN device gets the ports' redirects re-aimed at once; an unchanged one costs nothing.
        _dataplane.LastBypass = null;
        controller.EnsureDevice(network);
        Assert.Null(_dataplane.LastBypass);
        _dataplane.Creates = true;
        controller.EnsureDevice(network);
        _dataplane.Creates = false;
        Assert.Equal([port], _dataplane.LastBypass!.Locals);

        // Leave: no ports, the remote view kept.
        controller.SetLocalPorts(network, []);
        Assert.Empty(_dataplane.LastBypass!.Locals);
        Assert.Single(_dataplane.LastBypass.Peers!.Endpoints);

        // Without inter-container connectivity (or with skein.bridge-bypass=false) the bypass is asked to be off.
        Assert.False(OverlayController.BypassEnabled(network with { InterContainerConnectivity = false }));
        Assert.False(OverlayController.BypassEnabled(network with { BridgeBypass = false }));
        Assert.True(OverlayController.BypassEnabled(network));
        Assert.Equal("on (0 local port(s), 1 remote endpoint(s))", controller.BypassStatus(network));
        Assert.Equal("off (skein.bridge-bypass=false)", controller.BypassStatus(network with { BridgeBypass = false }));
    }

    [Fact]
    public async Task A_network_without_inter_container_connectivity_asks_the_dataplane_to_keep_the_bypass_off()
    {
        await using var controller = Controller();
        var isolated = await CreateAsync(controller, "net1") with { InterContainerConnectivity = false };
        controller.EnsureDevice(isolated);
        controller.Track(isolated);
        await controller.StartAsync(new FakePresence(), [isolated], [], default);
        controller.SetLocalPorts(isolated, [new LocalPort("skve1", System.Net.NetworkInformation.PhysicalAddress.Parse("02-00-00-00-00-01"))]);
        Assert.False(_dataplane.LastBypass!.Enabled);
        Assert.Single(_dataplane.LastBypass.Locals);
    }

    [Fact]
    public async Task A_store_outage_defers_publication_and_registry_departure_until_the_reconciler_retries()
    {
        await using var controller = Controller();
        var network = await CreateAsync(controller, "net1");
        controller.EnsureDevice(network);
        controller.Track(network);
        await controller.StartAsync(new FakePresence(), [network], [], default);

        var endpoint = Endpoint("e1", "net1", "10.20.0.2/16", "02:00:00:00:00:01");
        _store.Down = true;
        await controller.PublishOrDeferAsync(network, endpoint, default);
        _store.Down = false;
        Assert.Null(await Get(_keys.PeerEndpoint("blue", "host-a", "e1")));
        Assert.Equal(1, await controller.RetryDeferredAsync(default));
        Assert.NotNull(await Get(_keys.PeerEndpoint("blue", "host-a", "e1")));

        // Leave: the endpoint key and, as it was the last one, the node key go.
        await controller.UnpublishAsync(network, endpoint, default);
        Assert.Null(await Get(_keys.PeerEndpoint("blue", "host-a", "e1")));
        Assert.Null(await Get(_keys.PeerNode("blue", "host-a")));

        // DeleteNetwork with the store down: the device goes now, the registry entry when the store is back.
        _store.Down = true;
        var failures = await controller.RemoveAsync(network, default);
        _store.Down = false;
        Assert.Contains(failures, f => f.Contains("registry"));
        Assert.Contains(network.VxlanName!, _dataplane.Removed);
        Assert.NotNull(await Get(_keys.Network("blue")));
        await controller.RetryDeferredAsync(default);
        Assert.Null(await Get(_keys.Network("blue")));
        Assert.Null(await Get(_keys.Vni(network.Vni!.Value)));
        Assert.True(_underlay.Removed, "the VXLAN filter goes with the last cluster network");
    }

    [Fact]
    public async Task A_second_Docker_network_for_the_same_cluster_network_on_this_host_is_refused()
    {
        await using var controller = Controller();
        var network = await CreateAsync(controller, "net1");
        controller.Track(network);
        var ex = await Assert.ThrowsAsync<SkeinException>(() => controller.PlanAsync(Draft("net2"), [new RequestedPool("LocalDefault", "10.20.0.0/16", false)], false, _ => false, default));
        Assert.Contains("already Docker network net1", ex.Message);
        // A network skein's IPAM does not hold and that names no cluster network stays on this host.
        Assert.Null(await controller.PlanAsync(Draft("net3") with { IPv4Subnets = ["10.99.0.0/16"] }, [new RequestedPool("LocalDefault", "10.99.0.0/16", false)], false, _ => false, default));
    }

    private sealed class FakePresence(params string[] conflicted) : IClusterPresence
    {
        public List<IReadOnlyList<LocalEndpointClaim>> Fenced { get; } = [];
        public long Incarnation => 7;
        public event Func<CancellationToken, Task>? Republish;
        public Task<IReadOnlySet<string>> FenceAsync(IReadOnlyList<LocalEndpointClaim> endpoints, CancellationToken ct)
        {
            Fenced.Add(endpoints);
            _ = Republish;
            return Task.FromResult<IReadOnlySet<string>>(conflicted.ToHashSet());
        }
    }

    private sealed class RecordingDataplane : IOverlayDataplane
    {
        public volatile PeerView? LastView;
        public volatile OverlayDevice? LastDevice;
        public List<string> Removed { get; } = [];
        /// <summary>What the next EnsureDevice reports: the link was (re)created.</summary>
        public bool Creates { get; set; }
        public bool EnsureDevice(OverlayDevice device)
        {
            LastDevice = device;
            return Creates;
        }
        public bool RemoveDevice(string vxlanName)
        {
            Removed.Add(vxlanName);
            return true;
        }
        public PeerSyncResult Apply(OverlayDevice device, PeerView desired)
        {
            LastDevice = device;
            LastView = desired;
            return default;
        }
        public int DefaultMtu(IPAddress localVtep) => 1450;
        public volatile BypassCall? LastBypass;
        public string? BypassUnsupported => null;
        public BypassSyncResult ApplyBypass(OverlayDevice device, IReadOnlyCollection<LocalPort> locals, PeerView? peers, bool enabled)
        {
            LastBypass = new BypassCall(device.VxlanName, locals.ToList(), peers, enabled);
            return default;
        }
    }

    private sealed record BypassCall(string Vxlan, IReadOnlyList<LocalPort> Locals, PeerView? Peers, bool Enabled);

    private sealed class RecordingUnderlay : IUnderlayFirewall
    {
        public volatile IReadOnlyCollection<IPAddress>? Peers;
        public ushort Port;
        public bool Removed;
        public void ApplyVxlanPeers(ushort udpPort, IReadOnlyCollection<IPAddress> peers)
        {
            Port = udpPort;
            Peers = peers.ToList();
            Removed = false;
        }
        public void RemoveVxlanPeers() => Removed = true;
    }

    /// <summary>The embedded store, except that while Down every write and read fails as an unreachable store would.</summary>
    private sealed class OutageStore(IClusterStore inner) : IClusterStore
    {
        public volatile bool Down;
        private T Up<T>(Func<T> call) => Down ? throw new StoreUnavailableException("store unreachable (test)") : call();
        public StoreLimits Limits => inner.Limits;
        public Task<KvEntry?> GetAsync(string key, CancellationToken ct) => Up(() => inner.GetAsync(key, ct));
        public Task<(IReadOnlyList<KvEntry> Entries, long Revision)> ListAsync(string prefix, bool keysOnly, CancellationToken ct) => Up(() => inner.ListAsync(prefix, keysOnly, ct));
        public Task<WriteResult> PutAsync(string key, ReadOnlyMemory<byte> value, Precondition pre, bool ephemeral, CancellationToken ct) => Up(() => inner.PutAsync(key, value, pre, ephemeral, ct));
        public Task<WriteResult> DeleteAsync(string key, Precondition pre, CancellationToken ct) => Up(() => inner.DeleteAsync(key, pre, ct));
        public Task<TxnResult> CommitAsync(IReadOnlyList<TxnOp> ops, CancellationToken ct) => Up(() => inner.CommitAsync(ops, ct));
        public IAsyncEnumerable<WatchUpdate> WatchPrefixAsync(string prefix, CancellationToken ct) => inner.WatchPrefixAsync(prefix, ct);
        public Task<ILiveness> StartLivenessAsync(LivenessOptions options, CancellationToken ct) => inner.StartLivenessAsync(options, ct);
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
