using Skein.Ipam.Allocation;
using Skein.Ipam.Store;
using Skein.Ipam.Tests.TestSupport;

namespace Skein.Ipam.Tests.Allocation;

/// <summary>The IPAM over a store that loses answers or is unreachable (cluster-store §4.3 error model, §4.13 #5).</summary>
public sealed class StoreFailureTests
{
    [Fact]
    public async Task A_write_whose_answer_was_lost_is_recognised_by_its_token_and_not_repeated()
    {
        await using var env = await IpamTestEnvironment.CreateAsync();
        var flaky = new FlakyStore(env.Store);
        var ipam = env.NewService(store: flaky);
        flaky.LoseNextCommitAnswers = 1;
        string id = await ipam.PoolAsync("10.3.0.0/24");
        Assert.Equal("LocalDefault/10.3.0.0/24", id);
        flaky.LoseNextCommitAnswers = 1;
        Assert.Equal("10.3.0.1/24", await ipam.GatewayAsync(id));
        flaky.LoseNextCommitAnswers = 1;
        Assert.Equal("10.3.0.2/24", await ipam.EndpointAsync(id, IpamCalls.Mac(1)));
        // Nothing was applied twice: the next addresses continue in order and the MAC still maps to its address.
        Assert.Equal("10.3.0.2/24", await ipam.EndpointAsync(id, IpamCalls.Mac(1)));
        Assert.Equal("10.3.0.3/24", await ipam.EndpointAsync(id, IpamCalls.Mac(2)));
        flaky.LoseNextCommitAnswers = 1;
        await ipam.ReleasePoolAsync(id);
        Assert.Empty(await env.KeysAsync());
    }

    [Fact]
    public async Task An_unreachable_store_fails_fast_with_a_clear_message_and_recovers()
    {
        await using var env = await IpamTestEnvironment.CreateAsync();
        var flaky = new FlakyStore(env.Store);
        var ipam = env.NewService(store: flaky);
        string id = await ipam.PoolAsync("10.4.0.0/24");
        flaky.Down = true;
        var error = await IpamCalls.FailsAsync(() => ipam.EndpointAsync(id, IpamCalls.Mac(1)), ErrorKind.Unavailable, "cluster store is unreachable");
        Assert.Contains("connection refused (test)", error.Message);
        await IpamCalls.FailsAsync(() => ipam.PoolAsync(), ErrorKind.Unavailable, "cluster store is unreachable");
        flaky.Down = false;
        Assert.Equal("10.4.0.1/24", await ipam.EndpointAsync(id, IpamCalls.Mac(1)));
    }
}
