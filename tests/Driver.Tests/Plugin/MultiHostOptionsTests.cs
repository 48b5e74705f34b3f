using System.Net;
using Skein.Driver.Plugin;
using Skein.Ipam;

namespace Skein.Driver.Tests.Plugin;

/// <summary>The multi-host flags of `skein serve` and their environment variables: no socket, no root.</summary>
public sealed class MultiHostOptionsTests
{
    private const string Etcd = "etcd://127.0.0.1:2379";

    [Fact]
    public void Defaults_leave_multi_host_off()
    {
        var none = ServeOptions.Parse([], _ => null);
        Assert.Null(none.AdvertiseAddress);
        Assert.Equal(4789, none.VxlanPort);
        Assert.Null(none.NodeId);
        Assert.Equal(TimeSpan.FromSeconds(600), none.ReclaimAfter);
        Assert.False(none.MultiHost);
        // A cluster store alone keeps every network on this host: no address to advertise.
        Assert.False(ServeOptions.Parse(["--store", Etcd], _ => null).MultiHost);
    }

    [Fact]
    public void Driver_scope_global_is_for_swarm_managers_and_needs_multi_host()
    {
        Assert.False(ServeOptions.Parse(["--store", Etcd, "--advertise-addr", "192.0.2.10"], _ => null).GlobalScope);
        Assert.True(ServeOptions.Parse(["--store", Etcd, "--advertise-addr", "192.0.2.10", "--driver-scope", "global"], _ => null).GlobalScope);
        var env = new Dictionary<string, string> { ["SKEIN_STORE"] = Etcd, ["SKEIN_ADVERTISE_ADDR"] = "192.0.2.10", ["SKEIN_DRIVER_SCOPE"] = "global" };
        Assert.True(ServeOptions.Parse([], k => env.GetValueOrDefault(k)).GlobalScope);
        Assert.False(ServeOptions.Parse(["--driver-scope", "local"], k => env.GetValueOrDefault(k)).GlobalScope);

        var bad = Assert.Throws<SkeinException>(() => ServeOptions.Parse(["--driver-scope", "swarm"], _ => null));
        Assert.Contains("'swarm'", bad.Message);
        var alone = Assert.Throws<SkeinException>(() => ServeOptions.Parse(["--driver-scope", "global"], _ => null));
        Assert.Contains("multi-host", alone.Message);

        Assert.Equal("global", Skein.Driver.Network.BridgeDriver.CapabilitiesFor(multiHost: true, globalScope: true).Scope);
        Assert.Equal("local", Skein.Driver.Network.BridgeDriver.CapabilitiesFor(multiHost: true).Scope);
    }

    [Fact]
    public void Flags_and_environment_combine_with_flags_winning()
    {
        var env = new Dictionary<string, string>
        {
            ["SKEIN_STORE"] = Etcd,
            ["SKEIN_ADVERTISE_ADDR"] = "192.0.2.10",
            ["SKEIN_VXLAN_PORT"] = "8472",
            ["SKEIN_NODE_ID"] = "host-a",
            ["SKEIN_RECLAIM_AFTER"] = "120",
        };
        var fromEnv = ServeOptions.Parse([], k => env.GetValueOrDefault(k));
        Assert.Equal(IPAddress.Parse("192.0.2.10"), fromEnv.AdvertiseAddress);
        Assert.Equal(8472, fromEnv.VxlanPort);
        Assert.Equal("host-a", fromEnv.NodeId);
        Assert.Equal(TimeSpan.FromSeconds(120), fromEnv.ReclaimAfter);
        Assert.True(fromEnv.MultiHost);

        var flags = ServeOptions.Parse(
            ["--advertise-addr", "2001:db8::5", "--vxlan-port=4790", "--node-id", "host-b", "--reclaim-after", "900"],
            k => env.GetValueOrDefault(k));
        Assert.Equal(IPAddress.Parse("2001:db8::5"), flags.AdvertiseAddress);
        Assert.Equal(4790, flags.VxlanPort);
        Assert.Equal("host-b", flags.NodeId);
        Assert.Equal(TimeSpan.FromSeconds(900), flags.ReclaimAfter);
    }

    [Fact]
    public void Empty_variables_mean_unset()
    {
        var env = new Dictionary<string, string> { ["SKEIN_ADVERTISE_ADDR"] = "", ["SKEIN_VXLAN_PORT"] = "", ["SKEIN_NODE_ID"] = "", ["SKEIN_RECLAIM_AFTER"] = "" };
        var options = ServeOptions.Parse([], k => env.GetValueOrDefault(k));
        Assert.Null(options.AdvertiseAddress);
        Assert.Equal(4789, options.VxlanPort);
        Assert.Null(options.NodeId);
    }

    [Theory]
    [InlineData("--advertise-addr=eth0", "underlay IP address")]
    [InlineData("--advertise-addr=10.0.0.1/24", "underlay IP address")]
    [InlineData("--advertise-addr=10.1", "underlay IP address")]
    [InlineData("--advertise-addr=0.0.0.0", "unspecified")]
    [InlineData("--advertise-addr=127.0.0.1", "loopback")]
    [InlineData("--advertise-addr=::1", "loopback")]
    [InlineData("--advertise-addr=239.1.1.1", "multicast")]
    [InlineData("--advertise-addr=ff02::1", "multicast")]
    [InlineData("--advertise-addr=fe80::1", "link-local")]
    [InlineData("--vxlan-port=0", "1-65535")]
    [InlineData("--vxlan-port=65536", "1-65535")]
    [InlineData("--vxlan-port=vxlan", "1-65535")]
    [InlineData("--vxlan-port=-1", "1-65535")]
    [InlineData("--node-id=Host_A", "not a node id")]
    [InlineData("--node-id=-a", "not a node id")]
    [InlineData("--reclaim-after=5", "too short")]
    [InlineData("--reclaim-after=later", "seconds")]
    public void Bad_values_are_refused_naming_the_flag(string flag, string mention)
    {
        var ex = Assert.Throws<SkeinException>(() => ServeOptions.Parse(["--store", Etcd, flag], _ => null));
        Assert.Contains(mention, ex.Message);
        Assert.Contains(flag.Split('=')[0], ex.Message);
    }

    [Fact]
    public void Bad_environment_values_name_the_variable()
    {
        var ex = Assert.Throws<SkeinException>(() => ServeOptions.Parse([], k => k == "SKEIN_VXLAN_PORT" ? "99999" : null));
        Assert.Contains("SKEIN_VXLAN_PORT", ex.Message);
        ex = Assert.Throws<SkeinException>(() => ServeOptions.Parse([], k => k == "SKEIN_ADVERTISE_ADDR" ? "host-a" : null));
        Assert.Contains("SKEIN_ADVERTISE_ADDR", ex.Message);
    }

    [Fact]
    public void An_advertise_address_without_a_shared_store_is_refused()
    {
        var ex = Assert.Throws<SkeinException>(() => ServeOptions.Parse(["--advertise-addr", "192.0.2.10"], _ => null));
        Assert.Contains("shared store", ex.Message);
        Assert.Contains("192.0.2.10", ex.Message);
    }
}
