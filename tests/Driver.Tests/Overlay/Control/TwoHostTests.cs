using System.Net;
using System.Text.Json.Nodes;
using Skein.Driver.Network.State;
using Skein.Driver.Tests.TestSupport;

namespace Skein.Driver.Tests.Overlay.Control;

/// <summary>
/// Two hosts in one process: each a plugin host programming its own namespace, the namespaces joined by an underlay
/// veth, both on one etcd. Driven through the plugin API as Docker drives it; the test moves each container side
/// into a container namespace itself. Traffic goes only to addresses inside namespaces this test made.
/// </summary>
public sealed class TwoHostTests(EtcdFixture etcd) : IClassFixture<EtcdFixture>
{
    private const string V4Pool = "10.20.0.0/16";
    private const string V6Pool = "fd00:20::/64";

    /// <summary>What Docker holds for one network on one host.</summary>
    private sealed record DockerNetwork(string NetworkId, string PoolV4, string PoolV6);

    private sealed record Container(string EndpointId, NetNs Ns, string IPv4, string IPv6, string Mac);

    private sealed class Lab : IAsyncDisposable
    {
        public readonly List<IAsyncDisposable> Hosts = [];
        public readonly List<NetNs> Namespaces = [];

        public NetNs Namespace()
        {
            var ns = NetNs.Create();
            Namespaces.Add(ns);
            return ns;
        }

        /// <summary>Two host namespaces joined by an underlay veth: 198.51.100.1 and .2/24.</summary>
        public (NetNs A, NetNs B) Underlay()
        {
            var a = Namespace();
            var b = Namespace();
            a.Exec("ip", "link", "add", "ua", "type", "veth", "peer", "name", "ub", "netns", b.Name);
            a.Exec("ip", "addr", "add", "198.51.100.1/24", "dev", "ua");
            b.Exec("ip", "addr", "add", "198.51.100.2/24", "dev", "ub");
            a.Exec("ip", "link", "set", "ua", "up");
            b.Exec("ip", "link", "set", "ub", "up");
            return (a, b);
        }

        /// <summary>Hosts A and B on the underlay, each with its skein on its store URL, started together.</summary>
        public async Task<(ClusterHost A, ClusterHost B, NetNs UnderlayA, NetNs UnderlayB)> StartHostsAsync(string storeA, string storeB)
        {
            var (underlayA, underlayB) = Underlay();
            var a = new ClusterHost("host-a", underlayA, storeA, IPAddress.Parse("198.51.100.1"), TimeSpan.FromSeconds(30));
            var b = new ClusterHost("host-b", underlayB, storeB, IPAddress.Parse("198.51.100.2"), TimeSpan.FromSeconds(30));
            Hosts.Add(a);
            Hosts.Add(b);
            await Task.WhenAll(a.StartAsync(), b.StartAsync());
            return (a, b, underlayA, underlayB);
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var host in Enumerable.Reverse(Hosts))
            {
                try
                {
                    await host.DisposeAsync();
                }
                catch (Exception)
                {
                    // Namespaces go below whatever happened here.
                }
            }
            foreach (var ns in Enumerable.Reverse(Namespaces))
                ns.Dispose();
        }
    }

    [SkippableFact]
    public async Task Containers_on_two_hosts_reach_each_other_and_the_view_follows_leave_restart_and_delete()
    {
        Skip.IfNot(PluginTestHost.IsSupported, PluginTestHost.SkipReason);
        Skip.If(etcd.Server is null, LoopbackEtcd.SkipReason);
        await using var lab = new Lab();
        var store = etcd.Server!.StoreUrl("mh" + Guid.NewGuid().ToString("N")[..8]);
        var (a, b, underlayA, underlayB) = await lab.StartHostsAsync(store, store);

        var capabilities = await a.CallOkAsync("NetworkDriver.GetCapabilities", "");
        Assert.Equal("local", capabilities!["Scope"]!.GetValue<string>());
        Assert.Equal("global", capabilities["ConnectivityScope"]!.GetValue<string>());

        // The same --subnet on both hosts is one cluster network: one VNI, the underlay MTU minus 50.
        var netA = await CreateNetworkAsync(a, V4Pool, V6Pool);
        var netB = await CreateNetworkAsync(b, V4Pool, V6Pool);
        var recordA = a.Runtime.Driver.Networks.Single();
        var recordB = b.Runtime.Driver.Networks.Single();
        Assert.Equal("p-10-20-0-0-16", recordA.ClusterNetwork);
        Assert.Equal(recordA.ClusterNetwork, recordB.ClusterNetwork);
        Assert.Equal(recordA.Vni, recordB.Vni);
        Assert.Equal(1450, recordA.Mtu);
        var vxlanA = LinkJson(underlayA, recordA.VxlanName!);
        Assert.Equal("vxlan", vxlanA["linkinfo"]!["info_kind"]!.GetValue<string>());
        Assert.Equal(recordA.BridgeName, vxlanA["master"]!.GetValue<string>());
        // The distributed gateway: the same address on both bridges.
        Assert.Contains("10.20.0.1/16", Addresses(underlayA, recordA.BridgeName));
        Assert.Contains("10.20.0.1/16", Addresses(underlayB, recordB.BridgeName));

        var ca = await RunContainerAsync(lab, a, netA, "02:42:0a:14:00:0a");
        var cb = await RunContainerAsync(lab, b, netB, "02:42:0a:14:00:0b");
        Assert.NotEqual(ca.IPv4, cb.IPv4);
        await PingAsync(ca.Ns, cb.IPv4);
        await PingAsync(cb.Ns, ca.IPv4);
        await PingAsync(ca.Ns, cb.IPv6);
        await PingAsync(cb.Ns, ca.IPv6);
        // `skein status` shows the cluster view.
        var status = a.Runtime.ClusterStatus()!;
        Assert.True(status.Joined);
        Assert.NotNull(status.LastConfirmed);
        Assert.Equal(0, status.JournaledChanges);
        var netStatus = Assert.Single(status.Networks);
        Assert.Equal(recordA.ClusterNetwork, netStatus.Net);
        Assert.True(netStatus.Watching);
        Assert.Equal(["198.51.100.2"], netStatus.RemoteVteps);
        Assert.Equal(1, netStatus.RemoteEndpoints);
        Assert.Equal("on (1 local port(s), 1 remote endpoint(s))", netStatus.BridgeBypass);
        // VXLAN is accepted only from the VTEPs the store lists (decisions #17).
        var rulesA = underlayA.Exec("iptables-save", "-t", "filter");
        Assert.Contains("198.51.100.2", rulesA);
        Assert.Contains("4789", rulesA);
        Assert.DoesNotContain("198.51.100.1/32", rulesA);

        // The same logical network with another setting on the second host fails, naming the setting.
        var red = NewId();
        await CreateNetworkAsync(a, "10.30.0.0/16", null, red, isInternal: false);
        var refused = await TryCreateNetworkAsync(b, "10.30.0.0/16", null, NewId(), isInternal: true);
        Assert.False(refused.Ok, refused.ToString());
        Assert.Contains("internal", refused.Err);
        Assert.Contains("p-10-30-0-0-16", refused.Err);
        await a.CallOkAsync("NetworkDriver.DeleteNetwork", $$"""{"NetworkID":"{{red}}"}""");

        // Leave and delete on B: A drops B's endpoint, and B's VTEP with its last endpoint.
        await StopContainerAsync(b, netB, cb);
        await WaitAsync(() => !a.Overlay.Watcher(recordA.ClusterNetwork!)!.Current.Endpoints.Any(), "host A still lists B's endpoint after Leave/DeleteEndpoint");
        await WaitAsync(() => a.Overlay.Watcher(recordA.ClusterNetwork!)!.Current.RemoteVteps.Count == 0, "host A still lists B's VTEP after B's last endpoint went");
        Assert.Empty(FdbTo(underlayA, recordA.VxlanName!, "198.51.100.2"));

        var cb2 = await RunContainerAsync(lab, b, netB, "02:42:0a:14:00:0c");
        await PingAsync(ca.Ns, cb2.IPv4);

        // A plugin restart on A: its previous liveness goes (and its keys with it), it re-publishes, and B's view of A
        // never loses A's endpoint meanwhile (hold-down), so traffic keeps flowing.
        var before = b.Overlay.Watcher(recordB.ClusterNetwork!)!.Applied;
        await a.StopAsync();
        await a.StartAsync();
        var key = a.Overlay.Keys.PeerEndpoint(recordA.ClusterNetwork!, "host-a", ca.EndpointId);
        var storeClient = a.Runtime.ClusterStore;
        Assert.NotNull(await storeClient.GetAsync(key, default));
        await WaitAsync(() => b.Overlay.Watcher(recordB.ClusterNetwork!)!.Applied > before, "host B saw no change after A restarted");
        Assert.Contains(b.Overlay.Watcher(recordB.ClusterNetwork!)!.Current.Endpoints, e => e.IPv4?.ToString() == ca.IPv4);
        await PingAsync(cb2.Ns, ca.IPv4);
        await PingAsync(ca.Ns, cb2.IPv6);

        // B deletes its network while A keeps it.
        await StopContainerAsync(b, netB, cb2);
        await b.CallOkAsync("NetworkDriver.DeleteNetwork", $$"""{"NetworkID":"{{netB.NetworkId}}"}""");
        Assert.Null(TryLinkJson(underlayB, recordB.VxlanName!));
        var registration = await a.Overlay.Registry.GetAsync(recordA.ClusterNetwork!, default);
        Assert.NotNull(registration);
        Assert.Equal(["host-a"], registration!.Members.Keys);
        Assert.NotNull(TryLinkJson(underlayA, recordA.VxlanName!));
        await PingAsync(ca.Ns, "10.20.0.1");

        // The last member removes the network and its VNI.
        await StopContainerAsync(a, netA, ca);
        await a.CallOkAsync("NetworkDriver.DeleteNetwork", $$"""{"NetworkID":"{{netA.NetworkId}}"}""");
        Assert.Null(await a.Overlay.Registry.GetAsync(recordA.ClusterNetwork!, default));
        Assert.Null(await storeClient.GetAsync(a.Overlay.Keys.Vni(recordA.Vni!.Value), default));
        Assert.Null(TryLinkJson(underlayA, recordA.VxlanName!));
    }

    /// <summary>
    /// decisions #18 with skein running through the partition: host A, cut off from the store, starts a container from
    /// its own block (journaled, not published); meanwhile host B takes that very address; when A's link heals, the
    /// replay finds the conflict, nothing is overwritten, and A never advertises the container.
    /// </summary>
    [SkippableFact]
    public async Task A_container_started_from_the_journal_whose_address_was_taken_meanwhile_is_never_advertised()
    {
        Skip.IfNot(PluginTestHost.IsSupported, PluginTestHost.SkipReason);
        Skip.If(etcd.Server is null, LoopbackEtcd.SkipReason);
        await using var lab = new Lab();
        var root = "mh" + Guid.NewGuid().ToString("N")[..8];
        await using var proxy = new CuttableProxy(etcd.Server!.ClientPort);
        var (a, b, underlayA, underlayB) = await lab.StartHostsAsync($"etcd://127.0.0.1:{proxy.Port}/{root}", etcd.Server.StoreUrl(root));
        var netA = await CreateNetworkAsync(a, V4Pool, V6Pool);
        var netB = await CreateNetworkAsync(b, V4Pool, V6Pool);
        var ca = await RunContainerAsync(lab, a, netA, "02:42:0a:14:00:1a");
        var cb = await RunContainerAsync(lab, b, netB, "02:42:0a:14:00:1b");
        await PingAsync(ca.Ns, cb.IPv4);

        proxy.Cut();
        var journaled = await RunContainerAsync(lab, a, netA, "02:42:0a:14:00:2a");
        Assert.Equal(4, a.Runtime.Ipam.JournalLength); // v4 and v6 addresses, each requested then bound
        await PingAsync(journaled.Ns, ca.IPv4); // on its own host at once
        var taken = await b.CallOkAsync("IpamDriver.RequestAddress",
            $$"""{"PoolID":"{{netB.PoolV4}}","Address":"{{journaled.IPv4}}","Options":{"com.docker.network.endpoint.macaddress":"02:42:0a:14:00:2b"} }""");
        Assert.Equal(journaled.IPv4 + "/16", taken!["Address"]!.GetValue<string>());

        proxy.Restore();
        await WaitAsync(() => a.Runtime.Ipam.JournalLength == 0, "host A never wrote its journal back after the store returned");
        await WaitAsync(() => a.LogLines.Any(l => l.Contains(journaled.EndpointId[..12]) && l.Contains("held by another host")),
            "host A did not report the conflicted endpoint:\n" + string.Join("\n", a.LogLines.TakeLast(20)));
        var keyOf = (string eid) => a.Overlay.Keys.PeerEndpoint(a.Runtime.Driver.Networks.Single().ClusterNetwork!, "host-a", eid);
        await WaitAsync(() => a.Runtime.ClusterStore.GetAsync(keyOf(ca.EndpointId), default).GetAwaiter().GetResult() is not null,
            "host A's earlier endpoint is not published after the partition");
        Assert.Null(await a.Runtime.ClusterStore.GetAsync(keyOf(journaled.EndpointId), default));
        Assert.DoesNotContain(b.Overlay.Watcher(b.Runtime.Driver.Networks.Single().ClusterNetwork!)!.Current.Endpoints, e => e.IPv6?.ToString() == journaled.IPv6);
        // The v6 address nobody took was written back as A's: B cannot have it.
        var refused = await b.CallAsync("IpamDriver.RequestAddress",
            $$"""{"PoolID":"{{netB.PoolV6}}","Address":"{{journaled.IPv6}}","Options":{"com.docker.network.endpoint.macaddress":"02:42:0a:14:00:2c"} }""");
        Assert.False(refused.Ok, refused.ToString());
        Assert.Contains("Address already in use", refused.Err);
    }

    private static string NewId() => Guid.NewGuid().ToString("N") + Guid.NewGuid().ToString("N");

    private static Task<DockerNetwork> CreateNetworkAsync(ClusterHost host, string v4, string? v6) =>
        CreateNetworkAsync(host, v4, v6, NewId(), isInternal: false);

    private static async Task<DockerNetwork> CreateNetworkAsync(ClusterHost host, string v4, string? v6, string networkId, bool isInternal)
    {
        var (reply, network) = await CreateAsync(host, v4, v6, networkId, isInternal);
        Assert.True(reply.Ok, $"{host.Name}: CreateNetwork answered {reply}\n{string.Join("\n", host.LogLines.TakeLast(30))}");
        return network;
    }

    private static async Task<PluginReply> TryCreateNetworkAsync(ClusterHost host, string v4, string? v6, string networkId, bool isInternal) =>
        (await CreateAsync(host, v4, v6, networkId, isInternal)).Reply;

    /// <summary>The engine's sequence: pools, gateways, then CreateNetwork with what the IPAM answered.</summary>
    private static async Task<(PluginReply Reply, DockerNetwork Network)> CreateAsync(ClusterHost host, string v4, string? v6, string networkId, bool isInternal)
    {
        var pool4 = (await host.CallOkAsync("IpamDriver.RequestPool", $$"""{"AddressSpace":"LocalDefault","Pool":"{{v4}}","Options":{},"V6":false}"""))!["PoolID"]!.GetValue<string>();
        var gw4 = (await host.CallOkAsync("IpamDriver.RequestAddress", $$"""{"PoolID":"{{pool4}}","Address":"","Options":{"RequestAddressType":"com.docker.network.gateway"} }"""))!["Address"]!.GetValue<string>();
        string pool6 = "", v6Data = "[]";
        if (v6 is not null)
        {
            pool6 = (await host.CallOkAsync("IpamDriver.RequestPool", $$"""{"AddressSpace":"LocalDefault","Pool":"{{v6}}","Options":{},"V6":true}"""))!["PoolID"]!.GetValue<string>();
            var gw6 = (await host.CallOkAsync("IpamDriver.RequestAddress", $$"""{"PoolID":"{{pool6}}","Address":"","Options":{"RequestAddressType":"com.docker.network.gateway"} }"""))!["Address"]!.GetValue<string>();
            v6Data = $$"""[{"AddressSpace":"LocalDefault","Pool":"{{v6}}","Gateway":"{{gw6}}"}]""";
        }
        var internalOption = isInternal ? ""","com.docker.network.internal":true""" : "";
        var body = $$"""{"NetworkID":"{{networkId}}","Options":{"com.docker.network.enable_ipv6":{{(v6 is null ? "false" : "true")}},"com.docker.network.generic":{}{{internalOption}}},"IPv4Data":[{"AddressSpace":"LocalDefault","Pool":"{{v4}}","Gateway":"{{gw4}}"}],"IPv6Data":{{v6Data}}}""";
        var reply = await host.CallAsync("NetworkDriver.CreateNetwork", body);
        return (reply, new DockerNetwork(networkId, pool4, pool6));
    }

    /// <summary>Addresses with the MAC as the idempotency key, CreateEndpoint, Join, then what Docker does with SrcName.</summary>
    private static async Task<Container> RunContainerAsync(Lab lab, ClusterHost host, DockerNetwork network, string mac)
    {
        var endpointId = NewId();
        var macOption = $$"""{"com.docker.network.endpoint.macaddress":"{{mac}}"}""";
        var v4 = (await host.CallOkAsync("IpamDriver.RequestAddress", $$"""{"PoolID":"{{network.PoolV4}}","Address":"","Options":{{macOption}}}"""))!["Address"]!.GetValue<string>();
        var v6 = (await host.CallOkAsync("IpamDriver.RequestAddress", $$"""{"PoolID":"{{network.PoolV6}}","Address":"","Options":{{macOption}}}"""))!["Address"]!.GetValue<string>();
        await host.CallOkAsync("NetworkDriver.CreateEndpoint",
            $$"""{"NetworkID":"{{network.NetworkId}}","EndpointID":"{{endpointId}}","Interface":{"Address":"{{v4}}","AddressIPv6":"{{v6}}","MacAddress":"{{mac}}"},"Options":{} }""");
        var join = await host.CallOkAsync("NetworkDriver.Join",
            $$"""{"NetworkID":"{{network.NetworkId}}","EndpointID":"{{endpointId}}","SandboxKey":"/var/run/docker/netns/test","Options":{} }""");
        var source = join!["InterfaceName"]!["SrcName"]!.GetValue<string>();

        var ns = lab.Namespace();
        host.Ns.Exec("ip", "link", "set", source, "netns", ns.Name);
        ns.Exec("ip", "link", "set", source, "name", "eth0");
        ns.Exec("ip", "addr", "add", v4, "dev", "eth0");
        ns.Exec("ip", "-6", "addr", "add", v6, "dev", "eth0", "nodad");
        ns.Exec("ip", "link", "set", "eth0", "up");
        return new Container(endpointId, ns, v4.Split('/')[0], v6.Split('/')[0], mac);
    }

    private static async Task StopContainerAsync(ClusterHost host, DockerNetwork network, Container container)
    {
        var body = $$"""{"NetworkID":"{{network.NetworkId}}","EndpointID":"{{container.EndpointId}}"}""";
        await host.CallOkAsync("NetworkDriver.Leave", body);
        await host.CallOkAsync("NetworkDriver.DeleteEndpoint", body);
        foreach (var (pool, address) in new[] { (network.PoolV4, container.IPv4), (network.PoolV6, container.IPv6) })
            await host.CallOkAsync("IpamDriver.ReleaseAddress", $$"""{"PoolID":"{{pool}}","Address":"{{address}}"}""");
    }

    /// <summary>A few tries: the other host programs its kernel from a watch, a moment after the call returned.</summary>
    private static async Task PingAsync(NetNs from, string address)
    {
        NetNsCommand.Result? last = null;
        for (var attempt = 0; attempt < 20; attempt++)
        {
            last = from.TryExec("ping", "-c1", "-W1", address);
            if (last.ExitCode == 0)
                return;
            await Task.Delay(250);
        }
        Assert.Fail($"ping {address} from {from.Name} failed: {last?.StandardOutput}{last?.StandardError}");
    }

    private static async Task WaitAsync(Func<bool> condition, string failure)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
                Assert.Fail(failure);
            await Task.Delay(50);
        }
    }

    private static JsonObject LinkJson(NetNs ns, string name) =>
        TryLinkJson(ns, name) ?? throw new Xunit.Sdk.XunitException($"link {name} is missing in {ns.Name}");

    private static JsonObject? TryLinkJson(NetNs ns, string name)
    {
        var all = (JsonArray)JsonNode.Parse(ns.IpJson("-d", "link", "show"))!;
        return all.OfType<JsonObject>().FirstOrDefault(l => l["ifname"]?.GetValue<string>() == name);
    }

    private static IReadOnlyList<string> Addresses(NetNs ns, string link)
    {
        var all = (JsonArray)JsonNode.Parse(ns.IpJson("addr", "show", "dev", link))!;
        return all.OfType<JsonObject>().SelectMany(l => l["addr_info"]!.AsArray().OfType<JsonObject>())
            .Select(a => $"{a["local"]!.GetValue<string>()}/{a["prefixlen"]!.GetValue<int>()}").ToList();
    }

    private static IReadOnlyList<JsonObject> FdbTo(NetNs ns, string vxlan, string vtep)
    {
        var all = (JsonArray)JsonNode.Parse(ns.BridgeJson("fdb", "show", "dev", vxlan))!;
        return all.OfType<JsonObject>().Where(e => e["dst"]?.GetValue<string>() == vtep).ToList();
    }
}
