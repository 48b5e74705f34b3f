using Skein.Ipam.Tests.TestSupport;

namespace Skein.Ipam.Tests.Allocation;

/// <summary>Claiming a new block when others have claimed blocks since this node last listed them.</summary>
public sealed class BlockClaimTests
{
    [Fact]
    public async Task A_lost_claim_lists_the_blocks_again_instead_of_losing_a_write_on_each_block_claimed_meanwhile()
    {
        await using var env = await IpamTestEnvironment.CreateAsync();
        var gated = new GatedStore(env.Store);
        using var a = env.NewService("node-a", store: gated);
        using var b = env.NewService("node-b");
        // /28 blocks: node A holds blocks 0 (.0-.15, with the gateway) and 1 (.16-.31), and lists the blocks when it claims 1.
        string id = await a.PoolAsync("10.6.0.0/24");
        await b.PoolAsync("10.6.0.0/24");
        await a.GatewayAsync(id);
        for (int n = 2; n <= 31; n++)
            Assert.Equal($"10.6.0.{n}/24", await a.EndpointAsync(id, IpamCalls.Mac(n)));
        // Meanwhile node B claims blocks 2, 3 and 4.
        foreach (int block in new[] { 2, 3, 4 })
            Assert.Equal($"10.6.0.{16 * block + 1}/24", await b.EndpointAsync(id, IpamCalls.Mac(1000 + block), $"10.6.0.{16 * block + 1}"));

        int before = gated.Commits;
        Assert.Equal("10.6.0.80/24", await a.EndpointAsync(id, IpamCalls.Mac(32))); // the first address of block 5
        Assert.Equal(2, gated.Commits - before); // block 2 lost, then block 5 (not 3 and 4 lost as well)
    }
}
