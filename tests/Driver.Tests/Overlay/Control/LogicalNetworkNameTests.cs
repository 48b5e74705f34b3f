using System.Net;
using Skein.Driver.Overlay.Control;
using Skein.Ipam;
using Skein.Ipam.Addressing;
using Skein.Ipam.Allocation;

namespace Skein.Driver.Tests.Overlay.Control;

/// <summary>Decisions #1 and #5: which logical network a CreateNetwork names, and every disagreement refused.</summary>
public sealed class LogicalNetworkNameTests
{
    private static PoolInfo Pool(string cidr, string net, bool named) =>
        new($"LocalDefault/{cidr}", "LocalDefault", IpPrefix.Parse(cidr, "pool"), [], null, net, named, ["host-a"], true);

    private static Func<string, CancellationToken, Task<PoolInfo?>> Ipam(params PoolInfo[] pools) =>
        (id, _) => Task.FromResult(pools.FirstOrDefault(p => p.PoolId == id));

    private static Task<string?> Resolve(Dictionary<string, string> options, RequestedPool[] pools, params PoolInfo[] known) =>
        LogicalNetworkName.ResolveAsync(options, pools, Ipam(known), default);

    private static readonly RequestedPool V4 = new("LocalDefault", "10.20.0.0/16", false);
    private static readonly RequestedPool V6 = new("LocalDefault", "fd00:20::/64", true);

    [Fact]
    public async Task The_option_wins_when_the_IPAM_agrees()
    {
        Assert.Equal("blue", await Resolve(new() { ["skein.network"] = "blue" }, [V4, V6], Pool("10.20.0.0/16", "blue", true), Pool("fd00:20::/64", "blue", true)));
    }

    [Fact]
    public async Task Without_the_option_the_pool_record_names_the_network()
    {
        Assert.Equal("blue", await Resolve([], [V4], Pool("10.20.0.0/16", "blue", true)));
        // Unnamed pools: the IPv4 pool's derived name, even when the IPv6 pool is listed first.
        Assert.Equal("p-10-20-0-0-16", await Resolve([], [V6, V4], Pool("10.20.0.0/16", "p-10-20-0-0-16", false), Pool("fd00:20::/64", "p-fd00-20---64", false)));
    }

    [Fact]
    public async Task Pools_skein_does_not_hold_and_no_option_mean_a_host_local_network()
    {
        Assert.Null(await Resolve([], [V4]));
        Assert.Null(await Resolve([], [new RequestedPool("", "10.20.0.0/16", false)]));
        // Another IPAM driver with an explicit name: the option alone names it.
        Assert.Equal("blue", await Resolve(new() { ["skein.network"] = "blue" }, [new RequestedPool("null", "0.0.0.0/0", false)]));
    }

    [Fact]
    public async Task A_pool_the_IPAM_chose_without_subnet_or_name_keeps_the_network_on_this_host()
    {
        var chosen = Pool("172.18.0.0/16", "p-172-18-0-0-16", false) with { ChosenByIpam = true };
        Assert.Null(await Resolve([], [new RequestedPool("LocalDefault", "172.18.0.0/16", false)], chosen));
        // The same pool given with --subnet (not chosen) spans hosts under its derived name.
        Assert.Equal("p-172-18-0-0-16", await Resolve([], [new RequestedPool("LocalDefault", "172.18.0.0/16", false)], chosen with { ChosenByIpam = false }));
    }

    [Fact]
    public async Task Disagreements_name_both_values()
    {
        var ex = await Assert.ThrowsAsync<SkeinException>(() => Resolve(new() { ["skein.network"] = "red" }, [V4], Pool("10.20.0.0/16", "blue", true)));
        Assert.Contains("red", ex.Message);
        Assert.Contains("'blue'", ex.Message);

        ex = await Assert.ThrowsAsync<SkeinException>(() => Resolve(new() { ["skein.network"] = "red" }, [V4], Pool("10.20.0.0/16", "p-10-20-0-0-16", false)));
        Assert.Contains("red", ex.Message);
        Assert.Contains("p-10-20-0-0-16", ex.Message);
        Assert.Contains("--ipam-opt skein.network=red", ex.Message);

        ex = await Assert.ThrowsAsync<SkeinException>(() => Resolve([], [V4, V6], Pool("10.20.0.0/16", "blue", true), Pool("fd00:20::/64", "green", true)));
        Assert.Contains("'blue'", ex.Message);
        Assert.Contains("'green'", ex.Message);
    }

    [Theory]
    [InlineData("Blue")]
    [InlineData("-blue")]
    [InlineData("blue_1")]
    [InlineData("")]
    [InlineData("a/b")]
    public async Task Bad_names_are_refused(string name)
    {
        var ex = await Assert.ThrowsAsync<SkeinException>(() => Resolve(new() { ["skein.network"] = name }, [V4]));
        Assert.Contains("skein.network", ex.Message);
    }
}
