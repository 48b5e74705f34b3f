using System.Net;
using Skein.Ipam.Allocation;
using Skein.Ipam.Tests.TestSupport;

namespace Skein.Ipam.Tests.Allocation;

/// <summary>The plugin's periodic pending expiry over the pools of its own networks (cluster-store §4.8).</summary>
public sealed class PendingExpiryOverPoolsTests : IAsyncLifetime
{
    private static readonly CancellationToken None = CancellationToken.None;
    private IpamTestEnvironment _environment = null!;

    public async Task InitializeAsync() => _environment = await IpamTestEnvironment.CreateAsync();

    public async Task DisposeAsync() => await _environment.DisposeAsync();

    [Fact]
    public async Task Pending_slots_older_than_the_limit_are_freed_in_every_listed_pool_and_bound_or_unlisted_ones_stay()
    {
        var ipam = _environment.NewService("node-a");
        string blue = await ipam.PoolAsync("10.80.0.0/24");
        string red = await ipam.PoolAsync("10.81.0.0/24");
        string other = await ipam.PoolAsync("10.82.0.0/24");
        string bluePending = await ipam.EndpointAsync(blue, IpamCalls.Mac(1));
        string blueBound = await ipam.EndpointAsync(blue, IpamCalls.Mac(2));
        Assert.True(await ipam.MarkEndpointBoundAsync(blue, IPAddress.Parse(blueBound.Split('/')[0]), "e2", None));
        string redPending = await ipam.EndpointAsync(red, IpamCalls.Mac(3));
        string otherPending = await ipam.EndpointAsync(other, IpamCalls.Mac(4));

        _environment.Time.Advance(IpamService.PendingExpiry - TimeSpan.FromSeconds(1));
        Assert.Empty(await ipam.ExpirePendingAsync([blue, red], IpamService.PendingExpiry, None));

        _environment.Time.Advance(TimeSpan.FromSeconds(2));
        var freed = await ipam.ExpirePendingAsync([blue, red, "LocalDefault/10.99.0.0/24", blue], IpamService.PendingExpiry, None);

        Assert.Equal(new[] { bluePending, redPending }.Select(a => a.Split('/')[0]).Order(), freed.Select(a => a.ToString()).Order());
        // The bound endpoint's address and the unlisted pool's pending address are still held.
        await IpamCalls.FailsAsync(() => ipam.AuxAsync(blue, blueBound.Split('/')[0]), ErrorKind.Conflict, "Address already in use");
        await IpamCalls.FailsAsync(() => ipam.AuxAsync(other, otherPending.Split('/')[0]), ErrorKind.Conflict, "Address already in use");
        await ipam.AuxAsync(blue, bluePending.Split('/')[0]);
    }

    [Fact]
    public async Task A_malformed_pool_id_is_refused_naming_it()
    {
        var ipam = _environment.NewService("node-a");
        await IpamCalls.FailsAsync(() => ipam.ExpirePendingAsync(["not-a-pool"], IpamService.PendingExpiry, None), ErrorKind.Invalid, "not-a-pool");
    }
}
