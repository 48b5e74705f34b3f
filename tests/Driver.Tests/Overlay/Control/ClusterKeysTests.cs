using Skein.Driver.Overlay.Control;

namespace Skein.Driver.Tests.Overlay.Control;

/// <summary>Multi-host keys under a root, or relative when the store applies the root (Consul, etcd).</summary>
public sealed class ClusterKeysTests
{
    [Theory]
    [InlineData("skein/v1", "skein/v1/")]
    [InlineData("/skein/v1/", "skein/v1/")]
    [InlineData("", "")]
    public void Keys_are_rooted_or_relative(string root, string prefix)
    {
        var keys = new ClusterKeys(root);
        Assert.Equal(prefix + "networks/blue", keys.Network("blue"));
        Assert.Equal(prefix + "vnis/65537", keys.Vni(65537));
        Assert.Equal(prefix + "peers/blue/host1/abc", keys.PeerEndpoint("blue", "host1", "abc"));
        Assert.Equal(("host1", (string?)"abc"), keys.ParsePeerKey("blue", prefix + "peers/blue/host1/abc"));
        Assert.Null(keys.ParsePeerKey("blue", prefix + "peers/green/host1"));
    }
}
