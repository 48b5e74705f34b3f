using Skein.Ipam.Host;

namespace Skein.Ipam.Tests.Host;

public sealed class LinuxHostNetworkViewTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "skein-hostview-" + Guid.NewGuid().ToString("N"));

    public LinuxHostNetworkViewTests() => Directory.CreateDirectory(_directory);

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string Write(string name, string content)
    {
        string path = Path.Combine(_directory, name);
        File.WriteAllText(path, content);
        return path;
    }

    [Fact]
    public void Reads_on_link_ipv4_routes_and_nameservers()
    {
        string routes = Write("route",
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
            "eth0\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n" +   // default via 192.168.0.1: not on-link
            "eth0\t0000A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n" +   // 192.168.0.0/24 on-link
            "docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n" +   // 172.17.0.0/16 on-link
            "eth1\t0000000A\t0101A8C0\t0003\t0\t0\t0\t000000FF\t0\t0\t0\n" +     // 10.0.0.0/8 via gateway: skipped
            "garbage line\n");
        string resolv = Write("resolv.conf", "# comment\nsearch example\nnameserver 10.1.2.3\nnameserver fd00::53%eth0\nnameserver bogus\noptions ndots:1\n");
        var view = new LinuxHostNetworkView(routes, Path.Combine(_directory, "missing"), resolv);

        var v4 = view.GetReservedNetworks(v6: false);
        Assert.Equal(["10.1.2.3/32", "192.168.0.0/24", "172.17.0.0/16"], v4.Select(n => n.Prefix.ToString()));
        Assert.Contains("on-link route 172.17.0.0/16 dev docker0", v4.Select(n => n.Source));
        Assert.Contains("nameserver 10.1.2.3 in " + resolv, v4.Select(n => n.Source));

        var v6 = view.GetReservedNetworks(v6: true);
        Assert.Equal(["fd00::53/128"], v6.Select(n => n.Prefix.ToString()));
    }

    [Fact]
    public void Reads_on_link_ipv6_routes_but_not_link_local_multicast_loopback_or_gatewayed()
    {
        string routes = Write("ipv6_route",
            "fd600000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0\n" +
            "fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0\n" +
            "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     eth0\n" +
            "20010db8000000000000000000000000 30 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     eth0\n" +
            "00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo\n" +
            "ff000000000000000000000000000000 08 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000003 00000000 00000001     eth0\n");
        var view = new LinuxHostNetworkView(Path.Combine(_directory, "missing"), routes, Path.Combine(_directory, "missing"));
        var reserved = view.GetReservedNetworks(v6: true);
        Assert.Equal(["fd60::/64"], reserved.Select(n => n.Prefix.ToString()));
        Assert.Empty(view.GetReservedNetworks(v6: false));
    }

    [Fact]
    public void The_real_host_files_parse_without_error()
    {
        var view = new LinuxHostNetworkView();
        foreach (var network in view.GetReservedNetworks(false).Concat(view.GetReservedNetworks(true)))
            Assert.False(string.IsNullOrEmpty(network.Source));
    }
}
