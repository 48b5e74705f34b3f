using System.Net;
using Skein.Ipam.Allocation;
using Skein.Ipam.Protocol;
using Skein.Ipam.Tests.TestSupport;

namespace Skein.Ipam.Tests.Allocation;

public sealed class IpamServiceTests : IAsyncLifetime
{
    private IpamTestEnvironment _env = null!;
    private IpamService _ipam = null!;
    private static readonly CancellationToken None = CancellationToken.None;

    public async Task InitializeAsync()
    {
        _env = await IpamTestEnvironment.CreateAsync();
        _ipam = _env.NewService();
    }

    public async Task DisposeAsync() => await _env.DisposeAsync();

    [Fact]
    public void Capabilities_and_address_spaces()
    {
        Assert.True(_ipam.GetCapabilities().RequiresMACAddress);
        Assert.False(_ipam.GetCapabilities().RequiresRequestReplay);
        var spaces = _ipam.GetDefaultAddressSpaces();
        Assert.Equal("LocalDefault", spaces.LocalDefaultAddressSpace);
        Assert.Equal("GlobalDefault", spaces.GlobalDefaultAddressSpace);
    }

    [Fact]
    public async Task Explicit_pool_gateway_then_endpoints_in_order()
    {
        var response = await _ipam.RequestPoolAsync(new RequestPoolRequest { AddressSpace = "LocalDefault", Pool = "10.70.0.0/24" }, None);
        Assert.Equal("LocalDefault/10.70.0.0/24", response.PoolID);
        Assert.Equal("10.70.0.0/24", response.Pool);
        string id = response.PoolID;
        Assert.Equal("10.70.0.1/24", await _ipam.GatewayAsync(id));
        Assert.Equal("10.70.0.2/24", await _ipam.EndpointAsync(id, IpamCalls.Mac(1)));
        Assert.Equal("10.70.0.3/24", await _ipam.EndpointAsync(id, IpamCalls.Mac(2)));
        Assert.Equal("10.70.0.9/24", await _ipam.EndpointAsync(id, IpamCalls.Mac(3), "10.70.0.9"));
        Assert.Equal("10.70.0.4/24", await _ipam.EndpointAsync(id, IpamCalls.Mac(4)));
    }

    [Fact]
    public async Task Sub_pool_window_aux_outside_it_and_explicit_gateway()
    {
        // options.jsonl: --subnet 10.50.0.0/16 --ip-range 10.50.1.0/24 --gateway 10.50.0.254 --aux-address x2
        string id = await _ipam.PoolAsync("10.50.0.0/16", "10.50.1.0/24");
        Assert.Equal("LocalDefault/10.50.0.0/16/10.50.1.0/24", id);
        Assert.Equal("10.50.0.254/16", await _ipam.GatewayAsync(id, "10.50.0.254"));
        Assert.Equal("10.50.0.10/16", await _ipam.AuxAsync(id, "10.50.0.10"));
        Assert.Equal("10.50.0.11/16", await _ipam.AuxAsync(id, "10.50.0.11"));
        Assert.Equal("10.50.1.77/16", await _ipam.EndpointAsync(id, "02:42:0a:32:01:4d", "10.50.1.77"));
        // Docker's allocator does not reserve the range's own first address.
        Assert.Equal("10.50.1.0/16", await _ipam.EndpointAsync(id, IpamCalls.Mac(1)));
        Assert.Equal("10.50.1.1/16", await _ipam.EndpointAsync(id, IpamCalls.Mac(2)));
        var info = await _ipam.FindPoolAsync(id, None);
        Assert.NotNull(info);
        Assert.Equal(IPAddress.Parse("10.50.0.254"), info.Gateway);
        Assert.Equal(["10.50.1.0/24"], info.SubPools.Select(p => p.ToString()));
        Assert.Equal("p-10-50-0-0-16", info.NetworkName);
        Assert.False(info.NameIsExplicit);
        Assert.True(info.HeldByThisNode);
    }

    [Fact]
    public async Task Default_gateway_of_a_sub_pool_is_the_lowest_address_of_the_range()
    {
        string v6 = await _ipam.PoolAsync("fd60::/64", "fd60::100/120", v6: true);
        Assert.Equal("LocalDefault/fd60::/64/fd60::100/120", v6);
        Assert.Equal("fd60::100/64", await _ipam.GatewayAsync(v6));
        Assert.Equal("fd60::1:5/64", await _ipam.EndpointAsync(v6, IpamCalls.Mac(1), "fd60::1:5"));
        Assert.Equal("fd60::101/64", await _ipam.EndpointAsync(v6, IpamCalls.Mac(2)));
        // A range starting at the pool's network address skips that reserved address.
        string v4 = await _ipam.PoolAsync("10.80.0.0/16", "10.80.0.0/24");
        Assert.Equal("10.80.0.1/16", await _ipam.GatewayAsync(v4));
    }

    [Fact]
    public async Task Default_pools_follow_docker_and_skip_pools_in_use_routes_and_nameservers()
    {
        string first = await _ipam.PoolAsync();
        Assert.Equal("LocalDefault/172.17.0.0/16", first);
        // The engine keeps an overlapping pool and asks again with the identical request (pitfall 21).
        Assert.Equal("LocalDefault/172.18.0.0/16", await _ipam.PoolAsync());
        _env.Host.Add("172.19.0.0/16", "on-link route 172.19.0.0/16 dev br0").Add("172.20.0.53/32", "nameserver 172.20.0.53");
        Assert.Equal("LocalDefault/172.21.0.0/16", await _ipam.PoolAsync());
        await _ipam.ReleasePoolAsync(first);
        Assert.Equal("LocalDefault/172.17.0.0/16", await _ipam.PoolAsync());
        Assert.Equal("GlobalDefault/10.0.0.0/24", await _ipam.PoolAsync(space: "GlobalDefault"));
        // 172.17-18 are in use, 172.19/16 is routed, 172.20.0.0/24 holds a nameserver.
        Assert.Equal("LocalDefault/172.20.1.0/24", await _ipam.PoolAsync("0.0.0.0/24"));
    }

    [Fact]
    public async Task Size_only_requests_choose_a_pool_of_that_length()
    {
        var response = await _ipam.RequestPoolAsync(new RequestPoolRequest { AddressSpace = "LocalDefault", Pool = "0.0.0.0/24" }, None);
        Assert.Equal("172.17.0.0/24", response.Pool);
        var v6 = await _ipam.RequestPoolAsync(new RequestPoolRequest { AddressSpace = "LocalDefault", Pool = "::/56", V6 = false }, None);
        Assert.Equal("fd73:6b65:696e::/56", v6.Pool);
    }

    [Fact]
    public async Task Ipv6_without_a_subnet_gets_a_ula_64()
    {
        string id = await _ipam.PoolAsync(v6: true);
        Assert.Equal("LocalDefault/fd73:6b65:696e::/64", id);
        Assert.Equal("fd73:6b65:696e::1/64", await _ipam.GatewayAsync(id));
        Assert.Equal("fd73:6b65:696e::2/64", await _ipam.EndpointAsync(id, IpamCalls.Mac(1)));
        Assert.Equal("LocalDefault/fd73:6b65:696e:1::/64", await _ipam.PoolAsync(v6: true));
    }

    [Fact]
    public async Task No_default_pool_left_is_a_clear_error()
    {
        var ipam = _env.NewService(configure: o => o with { LocalDefaultPools = [DefaultPoolRange.Parse("10.99.0.0/23", 24)] });
        await ipam.PoolAsync();
        await ipam.PoolAsync();
        string before = await _env.SnapshotAsync();
        await IpamCalls.FailsAsync(() => ipam.PoolAsync(), ErrorKind.Conflict, "could not find an available, non-overlapping IPv4 address pool");
        Assert.Equal(before, await _env.SnapshotAsync());
    }

    [Fact]
    public async Task The_same_explicit_pool_twice_on_one_host_is_an_overlap_error_and_the_first_claim_survives()
    {
        string id = await _ipam.PoolAsync("10.70.0.0/24");
        await _ipam.GatewayAsync(id);
        string before = await _env.SnapshotAsync();
        await IpamCalls.FailsAsync(() => _ipam.PoolAsync("10.70.0.0/24"), ErrorKind.Conflict, "Pool overlaps with other one on this address space");
        await IpamCalls.FailsAsync(() => _ipam.PoolAsync("10.70.0.0/16"), ErrorKind.Conflict, "Pool overlaps with other one on this address space");
        await IpamCalls.FailsAsync(() => _ipam.PoolAsync("10.70.0.128/25", "10.70.0.128/26"), ErrorKind.Conflict, "overlaps 10.70.0.0/24");
        Assert.Equal(before, await _env.SnapshotAsync());
        // The first network still works.
        Assert.Equal("10.70.0.2/24", await _ipam.EndpointAsync(id, IpamCalls.Mac(1)));
        // The same CIDR in another address space is a different overlap domain.
        Assert.Equal("GlobalDefault/10.70.0.0/24", await _ipam.PoolAsync("10.70.0.0/24", space: "GlobalDefault"));
    }

    [Fact]
    public async Task Releasing_the_last_user_deletes_the_pool_with_everything_and_the_subnet_is_free_again()
    {
        string id = await _ipam.PoolAsync("10.50.0.0/16", "10.50.1.0/24", name: "blue");
        await _ipam.GatewayAsync(id, "10.50.0.254");
        await _ipam.AuxAsync(id, "10.50.0.10");
        string ep = await _ipam.EndpointAsync(id, IpamCalls.Mac(1));
        Assert.NotEmpty(await _env.KeysAsync());
        await _ipam.ReleaseAsync(id, ep);
        await _ipam.ReleaseAsync(id, "10.50.0.254");
        await _ipam.ReleaseAsync(id, "10.50.0.10");
        await _ipam.ReleasePoolAsync(id);
        Assert.Empty(await _env.KeysAsync());

        // network rm then create with the same subnet and another gateway works at once (decision #4).
        string again = await _ipam.PoolAsync("10.50.0.0/16", "10.50.1.0/24", name: "blue");
        Assert.Equal("10.50.0.1/16", await _ipam.GatewayAsync(again, "10.50.0.1"));
        Assert.Equal("10.50.0.10/16", await _ipam.AuxAsync(again, "10.50.0.10"));
        // Releasing a pool this node no longer holds is harmless; an unknown pool is named.
        await _ipam.ReleasePoolAsync(again);
        await IpamCalls.FailsAsync(() => _ipam.ReleasePoolAsync(again), ErrorKind.NotFound, "LocalDefault/10.50.0.0/16");
    }

    [Fact]
    public async Task A_static_address_in_use_is_refused_and_a_repeat_with_the_same_mac_is_not()
    {
        string id = await _ipam.PoolAsync("10.70.0.0/24");
        await _ipam.GatewayAsync(id);
        Assert.Equal("10.70.0.9/24", await _ipam.EndpointAsync(id, "02:42:dd:9e:ce:c2", "10.70.0.9"));
        Assert.Equal("10.70.0.9/24", await _ipam.EndpointAsync(id, "02:42:DD:9E:CE:C2", "10.70.0.9"));
        string before = await _env.SnapshotAsync();
        await IpamCalls.FailsAsync(() => _ipam.EndpointAsync(id, "02:42:16:1e:2a:e8", "10.70.0.9"), ErrorKind.Conflict, "Address already in use");
        await IpamCalls.FailsAsync(() => _ipam.EndpointAsync(id, IpamCalls.Mac(7), "10.70.0.1"), ErrorKind.Conflict, "Address already in use");
        await IpamCalls.FailsAsync(() => _ipam.AuxAsync(id, "10.70.0.9"), ErrorKind.Conflict, "Address already in use");
        await IpamCalls.FailsAsync(() => _ipam.EndpointAsync(id, IpamCalls.Mac(8), "10.70.0.0"), ErrorKind.Conflict, "network address");
        await IpamCalls.FailsAsync(() => _ipam.EndpointAsync(id, IpamCalls.Mac(8), "10.70.0.255"), ErrorKind.Conflict, "broadcast address");
        await IpamCalls.FailsAsync(() => _ipam.EndpointAsync(id, IpamCalls.Mac(8), "10.71.0.5"), ErrorKind.Invalid, "Requested address is out of range");
        Assert.Equal(before, await _env.SnapshotAsync());
    }

    [Fact]
    public async Task Retried_requests_are_idempotent()
    {
        string id = await _ipam.PoolAsync("10.60.0.0/24");
        string gateway = await _ipam.GatewayAsync(id);
        Assert.Equal(gateway, await _ipam.GatewayAsync(id));
        Assert.Equal(gateway, await _ipam.GatewayAsync(id, "10.60.0.1"));
        string mac = IpamCalls.Mac(42);
        string first = await _ipam.EndpointAsync(id, mac);
        string snapshot = await _env.SnapshotAsync();
        Assert.Equal(first, await _ipam.EndpointAsync(id, mac));
        Assert.Equal("10.60.0.20/24", await _ipam.AuxAsync(id, "10.60.0.20"));
        string afterAux = await _env.SnapshotAsync();
        Assert.Equal("10.60.0.20/24", await _ipam.AuxAsync(id, "10.60.0.20"));
        Assert.Equal(afterAux, await _env.SnapshotAsync());
        Assert.NotEqual(snapshot, afterAux);
        await IpamCalls.FailsAsync(() => _ipam.GatewayAsync(id, "10.60.0.254"), ErrorKind.Conflict, "already has gateway 10.60.0.1");
    }

    [Fact]
    public async Task Releases_free_only_endpoint_addresses_and_tolerate_repeats()
    {
        string id = await _ipam.PoolAsync("10.60.0.0/24");
        await _ipam.GatewayAsync(id);
        await _ipam.AuxAsync(id, "10.60.0.2");
        string ep = await _ipam.EndpointAsync(id, IpamCalls.Mac(1));
        Assert.Equal("10.60.0.3/24", ep);
        await _ipam.ReleaseAsync(id, "10.60.0.1");
        await _ipam.ReleaseAsync(id, "10.60.0.2");
        string snapshot = await _env.SnapshotAsync();
        await _ipam.ReleaseAsync(id, "10.60.0.77");
        Assert.Equal(snapshot, await _env.SnapshotAsync());
        // Gateway and aux survive their release until the pool goes.
        Assert.Equal("10.60.0.1/24", await _ipam.GatewayAsync(id));
        await IpamCalls.FailsAsync(() => _ipam.EndpointAsync(id, IpamCalls.Mac(2), "10.60.0.2"), ErrorKind.Conflict, "Address already in use");
        await _ipam.ReleaseAsync(id, ep);
        await _ipam.ReleaseAsync(id, ep);
        Assert.Equal("10.60.0.3/24", await _ipam.EndpointAsync(id, IpamCalls.Mac(3), "10.60.0.3"));
        await IpamCalls.FailsAsync(() => _ipam.ReleaseAsync(id, "10.61.0.1"), ErrorKind.Invalid, "out of range");
    }

    [Fact]
    public async Task Unknown_and_malformed_pool_ids_are_named()
    {
        string before = await _env.SnapshotAsync();
        var e = await IpamCalls.FailsAsync(() => _ipam.EndpointAsync("LocalDefault/10.1.0.0/16", IpamCalls.Mac(1)), ErrorKind.NotFound, "LocalDefault/10.1.0.0/16");
        Assert.Contains("Address Pool not found", e.Message);
        await IpamCalls.FailsAsync(() => _ipam.ReleaseAsync("LocalDefault/10.1.0.0/16", "10.1.0.2"), ErrorKind.NotFound, "10.1.0.0/16");
        await IpamCalls.FailsAsync(() => _ipam.EndpointAsync("nonsense", IpamCalls.Mac(1)), ErrorKind.Invalid, "'nonsense'");
        await IpamCalls.FailsAsync(() => _ipam.EndpointAsync("LocalDefault/10.1.0.1/16", IpamCalls.Mac(1)), ErrorKind.Invalid, "host bits");
        await IpamCalls.FailsAsync(() => _ipam.EndpointAsync("", IpamCalls.Mac(1)), ErrorKind.Invalid, "PoolID is missing");
        string id = await _ipam.PoolAsync("10.2.0.0/16", "10.2.1.0/24");
        string snapshot = await _env.SnapshotAsync();
        await IpamCalls.FailsAsync(() => _ipam.EndpointAsync("LocalDefault/10.2.0.0/16/10.2.9.0/24", IpamCalls.Mac(1)), ErrorKind.NotFound, "no sub-pool 10.2.9.0/24");
        await IpamCalls.FailsAsync(() => _ipam.EndpointAsync(id, "not-a-mac"), ErrorKind.Invalid, "com.docker.network.endpoint.macaddress");
        Assert.Equal(snapshot, await _env.SnapshotAsync());
        Assert.NotEqual(before, snapshot);
        // The traces' own form with a trailing '/' is understood.
        Assert.Equal("10.2.1.0/16", await _ipam.EndpointAsync("LocalDefault/10.2.0.0/16/10.2.1.0/24/", IpamCalls.Mac(5)));
    }

    [Theory]
    [InlineData(null, "10.0.0.0/8", "", "address space is missing")]
    [InlineData("Local Default", "10.0.0.0/8", "", "address space 'Local Default'")]
    [InlineData("LocalDefault", "10.0.0/8", "", "Pool (--subnet)")]
    [InlineData("LocalDefault", "", "10.0.1.0/24", "needs an explicit Pool")]
    [InlineData("LocalDefault", "10.0.0.0/16", "10.1.0.0/24", "is not inside Pool")]
    [InlineData("LocalDefault", "10.0.0.0/16", "fd00::/64", "is not inside Pool")]
    [InlineData("LocalDefault", "0.0.0.0/0", "", "every address")]
    public async Task Bad_pool_requests_are_refused_without_state_change(string? space, string pool, string subPool, string text)
    {
        string before = await _env.SnapshotAsync();
        var error = await Assert.ThrowsAsync<SkeinException>(() =>
            _ipam.RequestPoolAsync(new RequestPoolRequest { AddressSpace = space, Pool = pool, SubPool = subPool }, None));
        Assert.Equal(ErrorKind.Invalid, error.Kind);
        Assert.Contains(text, error.Message);
        Assert.Equal(before, await _env.SnapshotAsync());
    }

    [Fact]
    public async Task Only_a_pool_chosen_without_subnet_or_name_is_marked_as_chosen()
    {
        // decisions #1: such a network stays on its host; --subnet or a name makes it a cluster network.
        var chosen = await _ipam.FindPoolAsync(await _ipam.PoolAsync(), None);
        Assert.True(chosen!.ChosenByIpam);
        Assert.False((await _ipam.FindPoolAsync(await _ipam.PoolAsync("10.77.0.0/16"), None))!.ChosenByIpam);
        Assert.False((await _ipam.FindPoolAsync(await _ipam.PoolAsync(name: "green"), None))!.ChosenByIpam);
    }

    [Fact]
    public async Task Named_networks_pin_their_pool_and_disagreements_are_named()
    {
        await IpamCalls.FailsAsync(() => _ipam.PoolAsync(name: "Blue!"), ErrorKind.Invalid, "skein.network='Blue!'");
        string blue = await _ipam.PoolAsync(name: "blue");
        var info = await _ipam.FindPoolAsync(blue, None);
        Assert.Equal("blue", info!.NetworkName);
        Assert.True(info.NameIsExplicit);
        // Another host asking for "blue" without a subnet gets the same pool.
        var other = _env.NewService("node-b");
        Assert.Equal(blue, await other.PoolAsync(name: "blue"));
        await IpamCalls.FailsAsync(() => other.PoolAsync("10.9.0.0/24", name: "blue"), ErrorKind.Conflict, "network 'blue' already uses pool");
        await IpamCalls.FailsAsync(() => _env.NewService("node-c").PoolAsync(blue.Split('/', 2)[1], name: "red"), ErrorKind.Conflict, "belongs to network 'blue'");
        // A host where the pinned pool overlaps a route says which route.
        _env.Host.Add(info.Pool.ToString(), "on-link route X dev eth9");
        await IpamCalls.FailsAsync(() => _env.NewService("node-d").PoolAsync(name: "blue"), ErrorKind.Conflict, "overlaps the on-link route X dev eth9");
    }

    [Fact]
    public async Task Two_hosts_share_a_pool_with_their_own_blocks_and_one_gateway()
    {
        var b = _env.NewService("node-b");
        string id = await _ipam.PoolAsync("10.40.0.0/16", name: "green");
        Assert.Equal(id, await b.PoolAsync("10.40.0.0/16", name: "green"));
        Assert.Equal("10.40.0.1/16", await _ipam.GatewayAsync(id));
        Assert.Equal("10.40.0.1/16", await b.GatewayAsync(id));
        string a1 = await _ipam.EndpointAsync(id, IpamCalls.Mac(1));
        string b1 = await b.EndpointAsync(id, IpamCalls.Mac(2));
        Assert.Equal("10.40.0.2/16", a1);
        Assert.Equal("10.40.0.64/16", b1); // node-b claims the next block
        // node-b's late release of node-a's address changes nothing.
        string snapshot = await _env.SnapshotAsync();
        await b.ReleaseAsync(id, a1);
        Assert.Equal(snapshot, await _env.SnapshotAsync());
        await _ipam.ReleasePoolAsync(id);
        Assert.NotNull(await b.FindPoolAsync(id, None));
        Assert.Equal(["node-b"], (await b.FindPoolAsync(id, None))!.Users);
        await b.ReleasePoolAsync(id);
        Assert.Empty(await _env.KeysAsync());
    }

    [Fact]
    public async Task Near_exhaustion_a_host_borrows_unless_strict_affinity()
    {
        string id = await _ipam.PoolAsync("10.30.0.0/29"); // a /29 pool is a single block
        var b = _env.NewService("node-b");
        await b.PoolAsync("10.30.0.0/29");
        var strict = _env.NewService("node-c", o => o with { StrictAffinity = true });
        await strict.PoolAsync("10.30.0.0/29");
        Assert.Equal("10.30.0.1/29", await _ipam.EndpointAsync(id, IpamCalls.Mac(1)));
        Assert.Equal("10.30.0.2/29", await b.EndpointAsync(id, IpamCalls.Mac(2)));
        Assert.Equal("10.30.0.3/29", await b.EndpointAsync(id, IpamCalls.Mac(3)));
        Assert.Contains("skein/v1/affinity/node-b/localdefault/10.30.0.0-29/10.30.0.0-29", await _env.KeysAsync());
        string before = await _env.SnapshotAsync();
        await IpamCalls.FailsAsync(() => strict.EndpointAsync(id, IpamCalls.Mac(3)), ErrorKind.Conflict, "No available addresses");
        Assert.Equal(before, await _env.SnapshotAsync());
        // The borrower's affinity entry goes with the pool, even after it released its addresses.
        await b.ReleaseAsync(id, "10.30.0.2");
        await b.ReleaseAsync(id, "10.30.0.3");
        foreach (var node in new[] { _ipam, b, strict })
            await node.ReleasePoolAsync(id);
        Assert.Empty(await _env.KeysAsync());
    }

    [Fact]
    public async Task Exhaustion_is_a_clear_error_that_changes_nothing()
    {
        string id = await _ipam.PoolAsync("10.9.9.0/29"); // .1 .. .6 usable
        Assert.Equal("10.9.9.1/29", await _ipam.GatewayAsync(id));
        var got = new List<string>();
        for (int i = 0; i < 5; i++)
            got.Add(await _ipam.EndpointAsync(id, IpamCalls.Mac(i)));
        Assert.Equal(["10.9.9.2/29", "10.9.9.3/29", "10.9.9.4/29", "10.9.9.5/29", "10.9.9.6/29"], got);
        string before = await _env.SnapshotAsync();
        var error = await IpamCalls.FailsAsync(() => _ipam.EndpointAsync(id, IpamCalls.Mac(99)), ErrorKind.Conflict, "No available addresses on this pool");
        Assert.Contains("LocalDefault/10.9.9.0/29", error.Message);
        Assert.Equal(before, await _env.SnapshotAsync());
        // /31 and /32 pools leave no usable address, as in Docker.
        string tiny = await _ipam.PoolAsync("10.9.8.0/31");
        await IpamCalls.FailsAsync(() => _ipam.EndpointAsync(tiny, IpamCalls.Mac(1)), ErrorKind.Conflict, "No available addresses");
    }

    [Fact]
    public async Task Freed_addresses_are_quarantined_then_reused()
    {
        string id = await _ipam.PoolAsync("10.8.0.0/24");
        await _ipam.GatewayAsync(id);
        string a = await _ipam.EndpointAsync(id, IpamCalls.Mac(1));
        Assert.Equal("10.8.0.2/24", a);
        await _ipam.ReleaseAsync(id, a);
        Assert.Equal("10.8.0.3/24", await _ipam.EndpointAsync(id, IpamCalls.Mac(1)));
        _env.Time.Advance(TimeSpan.FromSeconds(119));
        Assert.Equal("10.8.0.4/24", await _ipam.EndpointAsync(id, IpamCalls.Mac(2)));
        _env.Time.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal("10.8.0.2/24", await _ipam.EndpointAsync(id, IpamCalls.Mac(3)));
    }

    [Fact]
    public async Task Quarantined_addresses_are_used_oldest_first_when_nothing_else_is_free()
    {
        string id = await _ipam.PoolAsync("10.7.0.0/29");
        for (int i = 0; i < 6; i++)
            await _ipam.EndpointAsync(id, IpamCalls.Mac(i));
        await _ipam.ReleaseAsync(id, "10.7.0.5");
        _env.Time.Advance(TimeSpan.FromSeconds(10));
        await _ipam.ReleaseAsync(id, "10.7.0.3");
        Assert.Equal("10.7.0.5/29", await _ipam.EndpointAsync(id, IpamCalls.Mac(10)));
        Assert.Equal("10.7.0.3/29", await _ipam.EndpointAsync(id, IpamCalls.Mac(11)));
    }

    [Fact]
    public async Task Everything_survives_a_restart_without_duplicates()
    {
        string id = await _ipam.PoolAsync("10.50.0.0/16", "10.50.1.0/24");
        string gateway = await _ipam.GatewayAsync(id, "10.50.0.254");
        await _ipam.AuxAsync(id, "10.50.0.10");
        var before = new List<string>();
        for (int i = 0; i < 70; i++)
            before.Add(await _ipam.EndpointAsync(id, IpamCalls.Mac(i)));
        string v6 = await _ipam.PoolAsync(v6: true);
        string v6Gateway = await _ipam.GatewayAsync(v6);

        await _env.ReopenStoreAsync();
        var restarted = _env.NewService();
        Assert.Equal(gateway, await restarted.GatewayAsync(id));
        Assert.Equal(v6Gateway, await restarted.GatewayAsync(v6));
        Assert.Equal(before[5], await restarted.EndpointAsync(id, IpamCalls.Mac(5)));
        var after = new List<string>();
        for (int i = 100; i < 140; i++)
            after.Add(await restarted.EndpointAsync(id, IpamCalls.Mac(i)));
        Assert.Empty(before.Intersect(after));
        Assert.Equal(110, before.Concat(after).Distinct().Count());
        await IpamCalls.FailsAsync(() => restarted.PoolAsync("10.50.0.0/16"), ErrorKind.Conflict, "Pool overlaps");
        await IpamCalls.FailsAsync(() => restarted.EndpointAsync(id, IpamCalls.Mac(999), "10.50.0.10"), ErrorKind.Conflict, "Address already in use");
        Assert.NotEqual("LocalDefault/fd73:6b65:696e::/64", await restarted.PoolAsync(v6: true));
    }

    [Fact]
    public async Task Many_concurrent_requests_on_one_pool_get_unique_addresses_inside_the_window()
    {
        string id = await _ipam.PoolAsync("10.20.0.0/16", "10.20.4.0/22");
        await _ipam.GatewayAsync(id);
        var window = Skein.Ipam.Addressing.IpPrefix.Parse("10.20.4.0/22", "test");
        var other = _env.NewService("node-b");
        await other.PoolAsync("10.20.0.0/16", "10.20.4.0/22");
        var tasks = Enumerable.Range(0, 400).Select(i => Task.Run(() =>
            (i % 4 == 0 ? other : _ipam).EndpointAsync(id, IpamCalls.Mac(i)))).ToArray();
        string[] addresses = await Task.WhenAll(tasks);
        Assert.Equal(400, addresses.Distinct().Count());
        Assert.All(addresses, a =>
        {
            Assert.EndsWith("/16", a);
            Assert.True(window.Contains(IPAddress.Parse(a.Split('/')[0])), a);
        });
        // Concurrent releases and requests keep them unique too.
        var released = addresses.Where((_, i) => i % 4 != 0).Take(100).ToList();
        var releases = released.Select(a => Task.Run(() => _ipam.ReleaseAsync(id, a)));
        var requests = Enumerable.Range(1000, 100).Select(i => Task.Run(() => _ipam.EndpointAsync(id, IpamCalls.Mac(i)))).ToArray();
        await Task.WhenAll(releases.Concat(requests));
        var live = addresses.Except(released).Concat(requests.Select(t => t.Result)).ToList();
        Assert.Equal(400, live.Distinct().Count());
    }

    [Fact]
    public async Task Endpoint_binding_marks_slots_and_a_bound_mac_is_not_a_retry()
    {
        string id = await _ipam.PoolAsync("10.5.0.0/24");
        string mac = IpamCalls.Mac(1);
        string address = await _ipam.EndpointAsync(id, mac);
        var ip = IPAddress.Parse(address.Split('/')[0]);
        Assert.True(await _ipam.MarkEndpointBoundAsync(null, ip, new string('a', 64), None));
        Assert.True(await _ipam.MarkEndpointBoundAsync(id, ip, new string('a', 64), None));
        Assert.NotEqual(address, await _ipam.EndpointAsync(id, mac));
        Assert.False(await _ipam.MarkEndpointUnboundAsync(id, ip, new string('b', 64), None));
        Assert.True(await _ipam.MarkEndpointUnboundAsync(null, ip, new string('a', 64), None));
        Assert.False(await _ipam.MarkEndpointBoundAsync(null, IPAddress.Parse("192.0.2.1"), "abc", None));
        await IpamCalls.FailsAsync(() => _ipam.MarkEndpointBoundAsync(id, ip, "../etc", None), ErrorKind.Invalid, "EndpointID");
        string[] keys = [.. await _env.KeysAsync()];
        Assert.Contains(keys, k => k.StartsWith("skein/v1/blocks/localdefault/10.5.0.0-24/", StringComparison.Ordinal));
        Assert.Contains(keys, k => k.StartsWith("skein/v1/affinity/node-a/localdefault/10.5.0.0-24/", StringComparison.Ordinal));
        Assert.Contains("skein/v1/spaces/localdefault", keys);
        Assert.Contains("skein/v1/pools/localdefault/10.5.0.0-24", keys);
    }

    [Fact]
    public async Task Pending_addresses_expire_but_bound_ones_do_not()
    {
        string id = await _ipam.PoolAsync("10.6.0.0/24");
        string pending = await _ipam.EndpointAsync(id, IpamCalls.Mac(1));
        string bound = await _ipam.EndpointAsync(id, IpamCalls.Mac(2));
        Assert.True(await _ipam.MarkEndpointBoundAsync(id, IPAddress.Parse(bound.Split('/')[0]), "e1", None));
        Assert.Empty(await _ipam.ExpirePendingAsync(id, TimeSpan.FromMinutes(10), None));
        _env.Time.Advance(TimeSpan.FromMinutes(11));
        Assert.Equal([IPAddress.Parse(pending.Split('/')[0])], await _ipam.ExpirePendingAsync(id, TimeSpan.FromMinutes(10), None));
        // The freed address is quarantined like any release; the bound one stays taken.
        await IpamCalls.FailsAsync(() => _ipam.EndpointAsync(id, IpamCalls.Mac(3), bound.Split('/')[0]), ErrorKind.Conflict, "Address already in use");
        Assert.Equal(pending, await _ipam.EndpointAsync(id, IpamCalls.Mac(4), pending.Split('/')[0]));
        // Unbinding starts the clock again.
        Assert.True(await _ipam.MarkEndpointUnboundAsync(id, IPAddress.Parse(bound.Split('/')[0]), "e1", None));
        Assert.DoesNotContain(IPAddress.Parse(bound.Split('/')[0]), await _ipam.ExpirePendingAsync(id, TimeSpan.FromMinutes(10), None));
    }

    [Fact]
    public async Task Find_pool_by_space_and_pool()
    {
        Assert.Null(await _ipam.FindPoolAsync("LocalDefault/10.1.0.0/16", None));
        string id = await _ipam.PoolAsync("10.1.0.0/16", "10.1.2.0/24");
        var info = await _ipam.FindPoolAsync("LocalDefault", Skein.Ipam.Addressing.IpPrefix.Parse("10.1.0.0/16", "t"), None);
        Assert.Equal("LocalDefault/10.1.0.0/16", info!.PoolId);
        Assert.Null(info.Gateway);
        await _ipam.GatewayAsync(id);
        Assert.Equal(IPAddress.Parse("10.1.2.0"), (await _ipam.FindPoolAsync(id, None))!.Gateway);
    }

    [Fact]
    public void Options_are_checked_at_construction()
    {
        Assert.Throws<SkeinException>(() => _env.NewService("Node_A"));
        Assert.Throws<SkeinException>(() => _env.NewService(configure: o => o with { IPv6DefaultPools = [DefaultPoolRange.Parse("10.0.0.0/8", 16)] }));
        Assert.Throws<SkeinException>(() => DefaultPoolRange.Parse("10.0.0.0/16", 8));
    }
}
