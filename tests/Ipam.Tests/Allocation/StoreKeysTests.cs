using Skein.Ipam.Addressing;
using Skein.Ipam.Allocation;

namespace Skein.Ipam.Tests.Allocation;

/// <summary>Key layout (cluster-store §4.5): under a root, or relative when the store applies the root itself.</summary>
public sealed class StoreKeysTests
{
    [Fact]
    public void Keys_carry_the_root_when_one_is_given()
    {
        var keys = new StoreKeys("skein/v1/", "node-a");
        Assert.Equal("skein/v1/spaces/localdefault", keys.Space("LocalDefault"));
        Assert.Equal("skein/v1/nodes/node-a", keys.Node("node-a"));
        Assert.Equal("skein/v1/affinity/node-a/localdefault/10.5.0.0-24/", keys.MyAffinitiesOf("LocalDefault", IpPrefix.Parse("10.5.0.0/24", "pool")));
    }

    [Fact]
    public void An_empty_root_gives_relative_keys_for_a_store_that_applies_its_own_root()
    {
        var keys = new StoreKeys("", "node-a");
        Assert.Equal("spaces/localdefault", keys.Space("LocalDefault"));
        Assert.Equal("pools/", keys.Pools);
        Assert.Equal("nodes/node-a", keys.Node("node-a"));
        Assert.Equal("gc/leader", keys.GcLeader);
        Assert.Equal("blocks/localdefault/10.5.0.0-24/10.5.0.0-26",
            keys.Block("LocalDefault", IpPrefix.Parse("10.5.0.0/24", "pool"), IpPrefix.Parse("10.5.0.0/26", "block")));
    }
}
