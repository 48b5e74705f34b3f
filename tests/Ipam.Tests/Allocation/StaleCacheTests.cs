using Skein.Ipam.Allocation;
using Skein.Ipam.Tests.TestSupport;

namespace Skein.Ipam.Tests.Allocation;

/// <summary>A node's cached blocks can be older than the store; exhaustion is never concluded from them alone.</summary>
public sealed class StaleCacheTests
{
    [Fact]
    public async Task Addresses_the_collector_freed_in_a_cached_block_are_found_before_the_pool_is_called_exhausted()
    {
        await using var env = await IpamTestEnvironment.CreateAsync();
        using var a = env.NewService("node-a");
        using var b = env.NewService("node-b");
        using var collector = env.NewService("node-c");
        // A /29 is one block: .1 gateway, .2-.6 for containers, all in node-a's block.
        string id = await a.PoolAsync("10.9.0.0/29");
        await a.GatewayAsync(id);
        Assert.Equal("10.9.0.2/29", await a.EndpointAsync(id, IpamCalls.Mac(1)));
        await b.PoolAsync("10.9.0.0/29");
        Assert.Equal("10.9.0.3/29", await b.EndpointAsync(id, IpamCalls.Mac(2))); // borrowed from node-a's block
        var filled = new List<string>();
        for (int n = 3; n <= 5; n++)
            filled.Add(await a.EndpointAsync(id, IpamCalls.Mac(n)));
        Assert.Equal(["10.9.0.4/29", "10.9.0.5/29", "10.9.0.6/29"], filled); // node-a's cache now holds the block, full

        // node-b died and was collected: its slot in node-a's block is free now, which node-a's cache does not know.
        Assert.Equal(1, await collector.ReclaimBlocksOfAsync("node-b", CancellationToken.None));
        Assert.Equal("10.9.0.3/29", await a.EndpointAsync(id, IpamCalls.Mac(6)));
    }
}
