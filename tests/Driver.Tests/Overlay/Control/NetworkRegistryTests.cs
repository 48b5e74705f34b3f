using Microsoft.Extensions.Logging.Abstractions;
using Skein.Driver.Overlay.Control;
using Skein.Ipam;
using Skein.Ipam.Store;
using Skein.Ipam.Store.Embedded;

namespace Skein.Driver.Tests.Overlay.Control;

/// <summary>One etcd for the registry tests of a run; every test uses its own key root.</summary>
public sealed class EtcdFixture : IAsyncLifetime
{
    public LoopbackEtcd? Server { get; private set; }

    public async Task InitializeAsync()
    {
        if (LoopbackEtcd.Available)
            Server = await LoopbackEtcd.StartAsync();
    }

    public async Task DisposeAsync()
    {
        if (Server is not null)
            await Server.DisposeAsync();
    }
}

/// <summary>networks/ and vnis/ (cluster-store §4.7) against the embedded store and a real etcd alike.</summary>
public sealed class NetworkRegistryTests(EtcdFixture etcd) : IClassFixture<EtcdFixture>, IAsyncLifetime
{
    private readonly List<IAsyncDisposable> _owned = [];
    private readonly string _root = "t" + Guid.NewGuid().ToString("N")[..10];

    public static TheoryData<string> Stores => new() { "embedded", "etcd" };

    private static readonly ClusterNetworkSettings Blue = new() { Pools = ["10.20.0.0/16"], Ipv6 = false };

    private async Task<IClusterStore> OpenAsync(string kind)
    {
        IClusterStore store;
        if (kind == "etcd")
        {
            Skip.If(etcd.Server is null, LoopbackEtcd.SkipReason);
            store = await etcd.Server!.OpenStoreAsync(_root);
        }
        else
        {
            var dir = Path.Combine(Path.GetTempPath(), "skein-reg-" + Guid.NewGuid().ToString("N")[..10]);
            store = await EmbeddedStore.OpenAsync(dir);
            _owned.Add(new DirectoryRemover(dir));
        }
        _owned.Add(store);
        return store;
    }

    private NetworkRegistry Registry(IClusterStore store, string node, VniRange? range = null) =>
        new(store, new ClusterKeys(_root), node, range ?? VniRange.Default, NullLogger.Instance);

    [SkippableTheory]
    [MemberData(nameof(Stores))]
    public async Task First_host_creates_the_network_with_a_VNI_and_others_join_it(string kind)
    {
        var store = await OpenAsync(kind);
        var keys = new ClusterKeys(_root);
        var a = Registry(store, "host-a");
        var b = Registry(store, "host-b");

        var created = await a.JoinAsync("blue", "net1", Blue, _ => false, default);
        Assert.Equal(VniRange.Default.Start("blue"), created.Vni);
        Assert.InRange(created.Vni, 0x10000, 0xFFFFFF);
        var vni = await store.GetAsync(keys.Vni(created.Vni), default);
        Assert.NotNull(vni);
        Assert.Contains("\"net\":\"blue\"", System.Text.Encoding.UTF8.GetString(vni!.Value.Span));

        var joined = await b.JoinAsync("blue", "net2", Blue, _ => false, default);
        Assert.Equal(created.Vni, joined.Vni);
        var stored = await a.GetAsync("blue", default);
        Assert.Equal(["net1"], stored!.Members["host-a"]);
        Assert.Equal(["net2"], stored.Members["host-b"]);

        // A retried CreateNetwork changes nothing.
        var before = (await store.GetAsync(keys.Network("blue"), default))!.Version;
        var again = await b.JoinAsync("blue", "net2", Blue, _ => false, default);
        Assert.Equal(created.Vni, again.Vni);
        Assert.Equal(before, (await store.GetAsync(keys.Network("blue"), default))!.Version);
    }

    [SkippableTheory]
    [MemberData(nameof(Stores))]
    public async Task Conflicting_settings_fail_naming_the_setting_and_both_values(string kind)
    {
        var store = await OpenAsync(kind);
        var a = Registry(store, "host-a");
        var b = Registry(store, "host-b");
        await a.JoinAsync("blue", "net1", Blue with { Mtu = 1400 }, _ => false, default);

        async Task<string> Refused(ClusterNetworkSettings settings) =>
            (await Assert.ThrowsAsync<SkeinException>(() => b.JoinAsync("blue", "net2", settings, _ => false, default))).Message;

        var pools = await Refused(Blue with { Pools = ["10.30.0.0/16"], Mtu = 1400 });
        Assert.Contains("pools", pools);
        Assert.Contains("10.20.0.0/16", pools);
        Assert.Contains("10.30.0.0/16", pools);
        var isInternal = await Refused(Blue with { Internal = true, Mtu = 1400 });
        Assert.Contains("internal", isInternal);
        Assert.Contains("off", isInternal);
        Assert.Contains("on", isInternal);
        Assert.Contains("IPv6", await Refused(Blue with { Ipv6 = true, Mtu = 1400 }));
        var mtu = await Refused(Blue with { Mtu = 1450 });
        Assert.Contains("MTU", mtu);
        Assert.Contains("1400", mtu);
        Assert.Contains("1450", mtu);
        Assert.Contains("derived from the underlay", await Refused(Blue));

        var stored = await a.GetAsync("blue", default);
        Assert.False(stored!.Members.ContainsKey("host-b"));
    }

    [SkippableTheory]
    [MemberData(nameof(Stores))]
    public async Task One_Docker_network_per_cluster_network_per_host_unless_the_old_one_is_gone(string kind)
    {
        var store = await OpenAsync(kind);
        var a = Registry(store, "host-a");
        await a.JoinAsync("blue", "net1", Blue, _ => false, default);

        var ex = await Assert.ThrowsAsync<SkeinException>(() => a.JoinAsync("blue", "net9", Blue, _ => false, default));
        Assert.Contains("already Docker network net1", ex.Message);

        // net1 is unknown locally (deleted while skein was down): net9 takes its place.
        var replaced = await a.JoinAsync("blue", "net9", Blue, id => id == "net1", default);
        Assert.Equal(["net9"], replaced.Members["host-a"]);
    }

    [SkippableTheory]
    [MemberData(nameof(Stores))]
    public async Task The_last_member_to_leave_deletes_the_network_and_its_VNI(string kind)
    {
        var store = await OpenAsync(kind);
        var keys = new ClusterKeys(_root);
        var a = Registry(store, "host-a");
        var b = Registry(store, "host-b");
        var created = await a.JoinAsync("blue", "net1", Blue, _ => false, default);
        await b.JoinAsync("blue", "net2", Blue, _ => false, default);

        await a.LeaveAsync("blue", "net1", default);
        var left = await b.GetAsync("blue", default);
        Assert.NotNull(left);
        Assert.False(left!.Members.ContainsKey("host-a"));
        Assert.NotNull(await store.GetAsync(keys.Vni(created.Vni), default));
        // Repeats and unknown ids are success.
        await a.LeaveAsync("blue", "net1", default);
        await b.LeaveAsync("blue", "other", default);

        await b.LeaveAsync("blue", "net2", default);
        Assert.Null(await store.GetAsync(keys.Network("blue"), default));
        Assert.Null(await store.GetAsync(keys.Vni(created.Vni), default));
        await b.LeaveAsync("blue", "net2", default);
    }

    [SkippableTheory]
    [MemberData(nameof(Stores))]
    public async Task A_taken_VNI_is_skipped_and_the_range_wraps(string kind)
    {
        var store = await OpenAsync(kind);
        var keys = new ClusterKeys(_root);
        var range = VniRange.Parse(0x20000, 0x20002);
        var start = range.Start("blue");
        var taken = new[] { start, range.Next(start) };
        foreach (var vni in taken)
            await store.PutAsync(keys.Vni(vni), "{\"net\":\"other\"}"u8.ToArray(), Precondition.Absent, ephemeral: false, default);

        var created = await Registry(store, "host-a", range).JoinAsync("blue", "net1", Blue, _ => false, default);
        Assert.Equal(range.Next(range.Next(start)), created.Vni);
        Assert.DoesNotContain(created.Vni, taken);

        var full = await Assert.ThrowsAsync<SkeinException>(() => Registry(store, "host-a", range).JoinAsync("green", "net2", Blue, _ => false, default));
        Assert.Contains("no free VNI", full.Message);
    }

    [SkippableTheory]
    [MemberData(nameof(Stores))]
    public async Task Hosts_creating_the_same_network_at_once_agree_on_one_VNI(string kind)
    {
        var store = await OpenAsync(kind);
        var hosts = Enumerable.Range(0, 6).Select(i => Registry(store, $"host-{i}")).ToList();
        var results = await Task.WhenAll(hosts.Select((h, i) => h.JoinAsync("blue", $"net{i}", Blue, _ => false, default)));
        Assert.Single(results.Select(r => r.Vni).Distinct());
        var stored = await hosts[0].GetAsync("blue", default);
        Assert.Equal(6, stored!.Members.Count);
        var (vnis, _) = await store.ListAsync($"{_root}/vnis/", keysOnly: true, default);
        Assert.Single(vnis);
    }

    [Fact]
    public void VNI_ranges_are_checked()
    {
        Assert.Throws<SkeinException>(() => VniRange.Parse(0, 10));
        Assert.Throws<SkeinException>(() => VniRange.Parse(10, 0x1000000));
        Assert.Throws<SkeinException>(() => VniRange.Parse(20, 10));
        Assert.Equal(VniRange.Default.Start("blue"), VniRange.Default.Start("blue"));
        Assert.NotEqual(VniRange.Default.Start("blue"), VniRange.Default.Start("green"));
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var owned in Enumerable.Reverse(_owned))
            await owned.DisposeAsync();
    }

    private sealed class DirectoryRemover(string path) : IAsyncDisposable
    {
        public ValueTask DisposeAsync()
        {
            try
            {
                Directory.Delete(path, recursive: true);
            }
            catch (IOException)
            {
            }
            return ValueTask.CompletedTask;
        }
    }
}
