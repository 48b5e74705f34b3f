using System.Text.Json;
using Skein.Driver.Network;
using Skein.Driver.Network.Protocol;
using Skein.Ipam;

namespace Skein.Driver.Tests.Network;

/// <summary>Pure checks of names, options and port maps: no kernel, no root.</summary>
public sealed class RequestParsingTests
{
    private static Dictionary<string, JsonElement> Bag(string json) =>
        JsonSerializer.Deserialize(json, NetworkDriverJsonContext.Default.CreateNetworkRequest)!.Options!;

    [Fact]
    public void Link_names_fit_in_15_bytes_are_stable_and_recognised()
    {
        var id = new string('a', 64);
        foreach (var name in new[] { LinkNames.Bridge(id), LinkNames.HostVeth(id), LinkNames.ContainerVeth(id) })
        {
            Assert.Equal(15, name.Length);
            Assert.True(LinkNames.IsSkeinLink(name));
        }
        Assert.Equal(LinkNames.Bridge(id), LinkNames.Bridge(id));
        Assert.NotEqual(LinkNames.Bridge(id), LinkNames.Bridge(id[..63]));
        Assert.Equal(LinkNames.HostVeth(id)[3..], LinkNames.ContainerVeth(id)[3..]);
        Assert.False(LinkNames.IsSkeinLink("skbr-notmine"));
        Assert.False(LinkNames.IsSkeinLink("skv0123456789AB"));
        Assert.False(LinkNames.IsSkeinLink("eth0"));
        Assert.Matches("^02(:[0-9a-f]{2}){5}$", LinkNames.GeneratedMac(id));
    }

    [Theory]
    [InlineData("""{"Options": {}}""", 1500, false, false)]
    [InlineData("""{"Options": {"com.docker.network.generic": {"com.docker.network.driver.mtu": "1400"}}}""", 1400, false, false)]
    [InlineData("""{"Options": {"com.docker.network.generic": {"skein.mtu": "9000"}, "com.docker.network.internal": true}}""", 9000, true, false)]
    [InlineData("""{"Options": {"com.docker.network.enable_ipv6": "true", "com.docker.network.generic": null}}""", 1500, false, true)]
    [InlineData("""{"Options": null}""", 1500, false, false)]
    public void Network_options_are_read_as_Docker_sends_them(string json, int mtu, bool isInternal, bool ipv6)
    {
        var options = NetworkOptions.Parse(JsonSerializer.Deserialize(json, NetworkDriverJsonContext.Default.CreateNetworkRequest)!.Options);
        Assert.Equal(mtu, options.Mtu);
        Assert.Equal(isInternal, options.Internal);
        Assert.Equal(ipv6, options.EnableIPv6);
    }

    [Theory]
    [InlineData("""{"Options": {"com.docker.network.generic": {"com.docker.network.driver.mtu": "1000"}, "com.docker.network.enable_ipv6": true}}""", "1280")]
    [InlineData("""{"Options": {"com.docker.network.generic": {"com.docker.network.driver.mtu": "-1"}}}""", "whole number")]
    [InlineData("""{"Options": {"com.docker.network.internal": "sometimes"}}""", "true or false")]
    [InlineData("""{"Options": {"com.docker.network.internal": 1}}""", "boolean")]
    public void Bad_network_options_are_refused_by_name(string json, string mention)
    {
        var ex = Assert.Throws<SkeinException>(() => NetworkOptions.Parse(Bag(json)));
        Assert.Equal(ErrorKind.Invalid, ex.Kind);
        Assert.Contains(mention, ex.Message);
    }

    [Fact]
    public void Port_maps_keep_tcp_and_udp_resolve_wildcard_host_addresses_and_ranges()
    {
        var bag = Bag("""{"Options": {"com.docker.network.portmap": [{"Proto": 6, "IP": "", "Port": 80, "HostIP": "0.0.0.0", "HostPort": 8080, "HostPortEnd": 0}, {"Proto": 17, "Port": 53, "HostIP": "127.0.0.1", "HostPort": 5300, "HostPortEnd": 5310}]}}""");
        var ports = PortMapOptions.Parse(bag)!;
        Assert.Equal(2, ports.Count);
        Assert.Equal((6, (ushort)80, (ushort)8080, (ushort)8080, (string?)null), (ports[0].Proto, ports[0].ContainerPort, ports[0].HostPort, ports[0].HostPortEnd, ports[0].HostIP));
        Assert.Equal((17, (ushort)5300, (ushort)5310, "127.0.0.1"), (ports[1].Proto, ports[1].HostPort, ports[1].HostPortEnd, ports[1].HostIP));
        Assert.Null(PortMapOptions.Parse(Bag("""{"Options": {}}""")));
        Assert.Empty(PortMapOptions.Parse(Bag("""{"Options": {"com.docker.network.portmap": null}}"""))!);
    }

    [Theory]
    [InlineData("""[{"Proto": 132, "Port": 80}]""", "SCTP")]
    [InlineData("""[{"Proto": 1, "Port": 80}]""", "Proto 1")]
    [InlineData("""[{"Port": 80}]""", "Proto is missing")]
    [InlineData("""[{"Proto": 6, "Port": 0}]""", "Port 0")]
    [InlineData("""[{"Proto": 6, "Port": 80.5}]""", "whole number")]
    [InlineData("""[{"Proto": 6, "Port": 80, "HostIP": "10.1"}]""", "HostIP")]
    [InlineData("""[{"Proto": 6, "Port": 80, "HostIP": "fe80::1%eth0"}]""", "HostIP")]
    [InlineData("""[7]""", "must be an object")]
    public void Bad_port_maps_are_refused_by_position(string portmap, string mention)
    {
        var ex = Assert.Throws<SkeinException>(() => PortMapOptions.Parse(Bag($$$"""{"Options": {"com.docker.network.portmap": {{{portmap}}}}}""")));
        Assert.Contains(mention, ex.Message);
    }

    [Theory]
    [InlineData("", "missing")]
    [InlineData("ABC", "lower-case")]
    [InlineData("a/b", "lower-case")]
    [InlineData("\u0000", "\\u0000")]
    public void Ids_are_refused_with_the_value_escaped(string id, string mention)
    {
        var ex = Assert.Throws<SkeinException>(() => RequestValidation.RequireId(id, "NetworkID"));
        Assert.Contains("NetworkID", ex.Message);
        Assert.Contains(mention, ex.Message);
        Assert.DoesNotContain('\u0000', ex.Message);
    }

    [Theory]
    [InlineData("10.0.0.1/24", true)]
    [InlineData("fd00::1/64", true)]
    [InlineData("10.1/24", false)]
    [InlineData("1.2.3/24", false)]
    [InlineData("010.1.2.3/24", false)]
    [InlineData("10.0.0.1", false)]
    [InlineData("fe80::1%2/64", false)]
    public void Prefixes_must_be_canonical_text_with_a_length(string text, bool accepted)
    {
        var family = text.Contains(':') ? System.Net.Sockets.AddressFamily.InterNetworkV6 : System.Net.Sockets.AddressFamily.InterNetwork;
        if (accepted)
            RequestValidation.RequirePrefix(text, "Address", family);
        else
            Assert.Throws<SkeinException>(() => RequestValidation.RequirePrefix(text, "Address", family));
    }
}
