using System.Collections.Concurrent;
using System.Net;
using Skein.Ipam.Addressing;
using Skein.Ipam.Allocation;
using Skein.Ipam.Cluster;
using Skein.Ipam.Store;
using Skein.Ipam.Tests.Store;
using Skein.Ipam.Tests.TestSupport;

namespace Skein.Ipam.Tests.Cluster;

/// <summary>
/// Shared set-up of the cluster tests, run against each backend: simulated hosts (each with its own store
/// client where the backend has more than one), their memberships, IPAM services and logs, all disposed
/// at the end, also when a test fails.
/// </summary>
public abstract class ClusterTestBase : IAsyncLifetime
{
    protected const string Root = "skein/v1";
    protected static readonly CancellationToken None = CancellationToken.None;
    private readonly List<IAsyncDisposable> _disposables = [];
    private readonly List<TempDirectory> _dirs = [];

    protected ManualTimeProvider Time { get; } = new();

    /// <summary>The store the test runs against.</summary>
    protected abstract ClusterBackend CreateBackend();

    protected ClusterBackend Backend { get; private set; } = null!;

    protected string? UnavailableReason => Backend.UnavailableReason;

    /// <summary>Whether several clients (simulated hosts, each with its own liveness) can share the data.</summary>
    protected bool MultiClient => Backend.MultiClient;

    protected IClusterStore Shared { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Backend = CreateBackend();
        await Backend.InitializeAsync();
        if (UnavailableReason is null)
            Shared = await OpenClientAsync();
    }

    public async Task DisposeAsync()
    {
        for (int i = _disposables.Count - 1; i >= 0; i--)
        {
            try
            {
                await _disposables[i].DisposeAsync();
            }
            catch (ObjectDisposedException)
            {
            }
        }
        await Backend.DisposeAsync();
        foreach (var dir in _dirs)
            dir.Dispose();
    }

    protected void SkipIfUnavailable() => Skip.If(UnavailableReason is not null, UnavailableReason);

    protected void SkipUnlessMultiClient() =>
        Skip.IfNot(MultiClient, "this backend serves one process: a second live host cannot share its data");

    protected async Task<IClusterStore> OpenClientAsync()
    {
        var store = await Backend.OpenClientAsync();
        if (MultiClient)
            _disposables.Add(store);
        return store;
    }

    /// <summary>A client for a new simulated host (the shared one where the backend has only one).</summary>
    protected Task<IClusterStore> HostClientAsync() => MultiClient ? OpenClientAsync() : Task.FromResult(Shared);

    protected string NewStateDir()
    {
        var dir = new TempDirectory("cluster-state");
        _dirs.Add(dir);
        return dir.Path;
    }

    protected static NodeMembershipOptions Options(string node, string? stateDir = null, string address = "192.0.2.10") =>
        new(node, Root, address, TimeSpan.FromMinutes(10), TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(200), stateDir);

    protected async Task<NodeMembership> StartMemberAsync(IClusterStore store, string node, TestLog? log = null, string? stateDir = null)
    {
        var membership = await NodeMembership.StartAsync(store, Options(node, stateDir), Time, (log ?? new TestLog()).Add, Timeout());
        _disposables.Add(membership);
        return membership;
    }

    protected IpamService NewIpam(IClusterStore store, string node, Func<IpamOptions, IpamOptions>? configure = null)
    {
        var options = new IpamOptions { NodeId = node, KeyRoot = Root };
        if (configure is not null)
            options = configure(options);
        return new IpamService(store, options, new FakeHostNetworkView(), Time);
    }

    protected DeadNodeCollector NewCollector(NodeMembership membership, TimeSpan reclaimAfter, TestLog log) =>
        new(membership.Store, membership, Root, reclaimAfter, Time, log.Add);

    protected static CancellationToken Timeout(int seconds = 30) => new CancellationTokenSource(TimeSpan.FromSeconds(seconds)).Token;

    /// <summary>Allocates a container address for <paramref name="mac"/> and binds it to <paramref name="eid"/>, as the driver does.</summary>
    protected static async Task<string> EndpointAsync(IpamService ipam, string poolId, string mac, string eid, string address = "")
    {
        string cidr = await ipam.EndpointAsync(poolId, mac, address);
        Assert.True(await ipam.MarkEndpointBoundAsync(poolId, IPAddress.Parse(cidr.Split('/')[0]), eid, None));
        return cidr;
    }

    public sealed record SlotView(string Address, string Kind, string Node, string? Mac, string? Eid, string? State, string Block, string? Owner);

    /// <summary>An address a property test's simulated host holds: the store must hold exactly these.</summary>
    protected sealed record Allocation(string Host, string Address, string Mac, string Eid);

    /// <summary>The container slots in the store are exactly the live allocations: address, node and MAC.</summary>
    protected static void AssertStoreHoldsExactly(List<SlotView> slots, List<Allocation> live, string context)
    {
        var expected = live.Select(a => $"{a.Address} {a.Host} {a.Mac}").Order(StringComparer.Ordinal).ToList();
        var actual = slots.Where(s => s.Kind == "container").Select(s => $"{s.Address} {s.Node} {s.Mac}").Order(StringComparer.Ordinal).ToList();
        Assert.True(expected.SequenceEqual(actual),
            $"store and live allocations differ ({context}):\n only in store: {string.Join(", ", actual.Except(expected))}\n only live: {string.Join(", ", expected.Except(actual))}");
    }

    /// <summary>Every slot of every block under the root, read straight from the store.</summary>
    protected async Task<List<SlotView>> SlotsAsync()
    {
        var (blocks, _) = await Shared.ListAsync($"{Root}/blocks/", keysOnly: false, None);
        var slots = new List<SlotView>();
        foreach (var entry in blocks)
        {
            Assert.True(IpPrefix.TryParseKeySegment(StoreKeys.LastSegment(entry.Key), out var cidr), entry.Key);
            var record = IpamStoreAccess.Decode(entry, IpamStoreJsonContext.Default.BlockRecord);
            foreach (var (ordinal, slot) in record.Slots)
                slots.Add(new SlotView(cidr.AddressAt((UInt128)ordinal).ToString(), slot.Kind, slot.Node, slot.Mac, slot.Eid, slot.State, cidr.ToString(), record.Owner));
        }
        return slots;
    }

    protected async Task<IReadOnlyList<string>> KeysAsync(string under)
    {
        var (entries, _) = await Shared.ListAsync($"{Root}/{under}", keysOnly: true, None);
        return entries.Select(e => e.Key[(Root.Length + 1)..]).Order(StringComparer.Ordinal).ToList();
    }

    protected async Task<string?> ValueAsync(string key)
    {
        var entry = await Shared.GetAsync($"{Root}/{key}", None);
        return entry is null ? null : System.Text.Encoding.UTF8.GetString(entry.Value.Span);
    }

    internal async Task<PoolRecord> PoolAsync(string cidr, string space = "localdefault")
    {
        var entry = await Shared.GetAsync($"{Root}/pools/{space}/{IpPrefix.Parse(cidr, "test").ToKeySegment()}", None);
        Assert.NotNull(entry);
        return IpamStoreAccess.Decode(entry, IpamStoreJsonContext.Default.PoolRecord);
    }

    internal async Task<NodeInfoRecord?> NodeInfoAsync(string node)
    {
        var entry = await Shared.GetAsync($"{Root}/nodeinfo/{node}", None);
        return entry is null ? null : NodeMembership.Decode(entry, ClusterJsonContext.Default.NodeInfoRecord);
    }

    /// <summary>Waits (bounded) until <paramref name="condition"/> holds; fails naming what was awaited.</summary>
    protected static async Task EventuallyAsync(Func<Task<bool>> condition, string what, int seconds = 20)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(seconds);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
                Assert.Fail($"timed out waiting for {what}");
            await Task.Delay(50);
        }
    }
}

/// <summary>Log lines of one simulated host.</summary>
public sealed class TestLog
{
    private readonly ConcurrentQueue<string> _lines = new();
    public void Add(string line) => _lines.Enqueue(line);
    public IReadOnlyList<string> Lines => _lines.ToList();
    public bool Contains(string text) => _lines.Any(l => l.Contains(text, StringComparison.Ordinal));
    public override string ToString() => string.Join("\n", _lines);
}

/// <summary>A store backend the cluster tests run against.</summary>
public abstract class ClusterBackend : IAsyncDisposable
{
    public virtual string? UnavailableReason => null;
    public abstract bool MultiClient { get; }
    public virtual Task InitializeAsync() => Task.CompletedTask;
    /// <summary>A client on the test's data: a new one per call where MultiClient, else the one shared store.</summary>
    public abstract Task<IClusterStore> OpenClientAsync();
    /// <summary>Ends a liveness on the server side, as an expiry would; null where liveness is the process.</summary>
    public virtual Func<ILiveness, Task>? KillLiveness => null;
    public virtual ValueTask DisposeAsync() => ValueTask.CompletedTask;
}

/// <summary>The embedded store: one process, one liveness; other "hosts" share the one store.</summary>
public sealed class EmbeddedBackend : ClusterBackend
{
    private IpamTestEnvironment? _environment;
    public override bool MultiClient => false;
    public override async Task InitializeAsync() => _environment = await IpamTestEnvironment.CreateAsync();
    public override Task<IClusterStore> OpenClientAsync() => Task.FromResult<IClusterStore>(_environment!.Store);
    public override async ValueTask DisposeAsync()
    {
        if (_environment is not null)
            await _environment.DisposeAsync();
    }
}

/// <summary>A real etcd (one per test class, fixture), each test under its own root prefix.</summary>
public sealed class EtcdBackend(EtcdFixture fixture) : ClusterBackend
{
    private readonly string _root = FakeConsulFixture.UniqueRoot();
    public override string? UnavailableReason => fixture.Server is null ? EtcdServer.SkipReason : null;
    public override bool MultiClient => true;
    public override Task<IClusterStore> OpenClientAsync() => Task.FromResult<IClusterStore>(fixture.Open(_root));
    public override Func<ILiveness, Task>? KillLiveness => liveness => fixture.RevokeLeaseAsync(liveness.Id);
}

/// <summary>The in-test Consul agent (one per test class, fixture), each test under its own root prefix.</summary>
public sealed class ConsulBackend(FakeConsulFixture fixture) : ClusterBackend
{
    private readonly string _root = FakeConsulFixture.UniqueRoot();
    public override bool MultiClient => true;
    public override Task<IClusterStore> OpenClientAsync() => Task.FromResult<IClusterStore>(fixture.Open(_root));
    public override Func<ILiveness, Task>? KillLiveness => liveness =>
    {
        fixture.Server.DestroySession(liveness.Id);
        return Task.CompletedTask;
    };
}
