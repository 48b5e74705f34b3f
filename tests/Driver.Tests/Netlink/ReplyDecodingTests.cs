using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Skein.Driver.Netlink;
using Skein.Driver.Netlink.Messages;
using Skein.Driver.Netlink.Wire;
using static Skein.Driver.Tests.Netlink.WireBytes;

namespace Skein.Driver.Tests.Netlink;

/// <summary>
/// Kernel replies captured from iproute2 (see <see cref="CapturedReplies"/>) fed through the same
/// datagram handling the socket uses, with the sequence and port id the capture carries.
/// </summary>
public class ReplyDecodingTests
{
    private static (List<T> Results, bool Complete, bool Interrupted) Process<T>(string hex, ReplyDecoder<T> decoder, bool expectAck = false)
    {
        var datagram = Hex(hex);
        var header = MemoryMarshal.Read<NetlinkMessageHeader>(datagram);
        var results = new List<T>();
        bool interrupted = false;
        bool complete = NetlinkSocket.ProcessDatagram(datagram, header.Sequence, header.PortId, "test", expectAck, decoder, results, ref interrupted);
        return (results, complete, interrupted);
    }

    [Fact]
    public void Vxlan_port_link_decodes_common_and_kind_settings()
    {
        var (links, complete, _) = Process(CapturedReplies.LinkVxlanPort, LinkMessages.Decoder);

        Assert.True(complete); // a single non-multipart reply answers a GET
        var link = Assert.Single(links);
        Assert.Equal(3, link.Index);
        Assert.Equal("vx0", link.Name);
        Assert.Equal("vxlan", link.Kind);
        Assert.Equal(1500, link.Mtu);
        Assert.Equal(PhysicalAddress.Parse("2A-91-74-0B-CE-CA"), link.MacAddress);
        Assert.Equal(2, link.MasterIndex);
        Assert.Equal("bridge", link.PortKind);
        Assert.True(link.IsUp);
        var vxlan = Assert.IsType<VxlanSpec>(link.Details);
        Assert.Equal(42, vxlan.Vni);
        Assert.Equal(IPAddress.Parse("198.18.0.1"), vxlan.Local);
        Assert.Null(vxlan.Group);
        Assert.Equal(64, vxlan.Ttl);
        Assert.False(vxlan.Learning);
        Assert.True(vxlan.Proxy);
        Assert.False(vxlan.L2Miss);
        Assert.Equal(4789, vxlan.Port);
        Assert.Equal(2, vxlan.MasterIndex);
    }

    [Fact]
    public void Address_dump_decodes_IPv4_IPv6_and_link_local_until_done()
    {
        var (addresses, complete, _) = Process(CapturedReplies.AddressDump, AddressMessages.Decoder);
        Assert.False(complete); // multipart: NLMSG_DONE comes in the next datagram
        Assert.Equal(3, addresses.Count);

        Assert.Equal(new AddressInfo(5, IpPrefix.Parse("10.1.0.1/24"), RouteScope.Universe, AddressFlags.Permanent) { Label = "d0" }, addresses[0]);
        Assert.Equal(new AddressInfo(5, IpPrefix.Parse("fd00::1/64"), RouteScope.Universe, AddressFlags.NoDad | AddressFlags.Permanent), addresses[1]);
        Assert.Equal(RouteScope.Link, addresses[2].Scope);
        Assert.True(addresses[2].Address.Address.IsIPv6LinkLocal);

        var (_, doneComplete, _) = Process(CapturedReplies.AddressDumpDone, AddressMessages.Decoder);
        Assert.True(doneComplete);
    }

    [Fact]
    public void Route_dump_decodes_kernel_and_gateway_routes()
    {
        var (routes, _, _) = Process(CapturedReplies.RouteDump, RouteMessages.Decoder);
        Assert.Equal(2, routes.Count);
        Assert.Equal(new Route(IpPrefix.Parse("10.1.0.0/24"))
        {
            OutputIndex = 5,
            Scope = RouteScope.Link,
            Protocol = RouteProtocol.Kernel,
            PreferredSource = IPAddress.Parse("10.1.0.1"),
        }, routes[0]);
        Assert.Equal(new Route(IpPrefix.Parse("10.2.0.0/16"))
        {
            Gateway = IPAddress.Parse("10.1.0.254"),
            OutputIndex = 5,
            Scope = RouteScope.Universe,
            Metric = 5,
            Protocol = RouteProtocol.Boot,
        }, routes[1]);
    }

    [Fact]
    public void Neighbour_dump_with_done_in_the_same_datagram()
    {
        var (neighbors, complete, _) = Process(CapturedReplies.NeighborDump, NeighborMessages.Decoder);
        Assert.True(complete);
        var neighbor = Assert.Single(neighbors);
        Assert.Equal(new Neighbor(5, IPAddress.Parse("10.1.0.2"), PhysicalAddress.Parse("02-00-00-00-00-02")) { State = NeighborState.Permanent }, neighbor);
    }

    [Fact]
    public void Fdb_dump_tells_bridge_entries_from_vxlan_entries()
    {
        var (entries, _, _) = Process(CapturedReplies.FdbDump, FdbMessages.Decoder);
        Assert.Equal(3, entries.Count);

        var bridgeOwn = entries[0];
        Assert.Equal(PhysicalAddress.Parse("2A-91-74-0B-CE-CA"), bridgeOwn.MacAddress);
        Assert.False(bridgeOwn.Self);
        Assert.True(bridgeOwn.Master);
        Assert.Equal(2, bridgeOwn.MasterIndex);
        Assert.Null(bridgeOwn.Destination);

        Assert.Equal(new FdbEntry(3, PhysicalAddress.Parse("02-00-00-00-00-09"), IPAddress.Parse("198.18.0.3")), entries[1]);
        var flood = entries[2];
        Assert.True(flood.IsFloodEntry);
        Assert.True(flood.Self);
        Assert.True(flood.Permanent);
        Assert.Equal(IPAddress.Parse("198.18.0.2"), flood.Destination);
    }

    [Fact]
    public void Bridge_port_dump_decodes_protinfo_flags()
    {
        var (ports, _, _) = Process(CapturedReplies.BridgePortDump, BridgePortMessages.Decoder);
        var (index, settings) = Assert.Single(ports);
        Assert.Equal(3, index);
        Assert.False(settings.Learning);
        Assert.True(settings.NeighSuppress);
        Assert.True(settings.Flood);
        Assert.True(settings.MulticastFlood);
        Assert.True(settings.BroadcastFlood);
        Assert.False(settings.Hairpin);
        Assert.False(settings.Isolated);
        Assert.False(settings.ProxyArp);
    }

    [Fact]
    public void Uncapped_error_echoing_the_request_surfaces_errno_and_operation()
    {
        var e = Assert.Throws<NetlinkException>(() => Process(CapturedReplies.ErrorExists, LinkMessages.Decoder, expectAck: true));
        Assert.Equal(17, e.Errno);
        Assert.True(e.IsAlreadyExists);
        Assert.Equal("test", e.Operation);
        Assert.Null(e.KernelMessage);
        Assert.Contains("EEXIST", e.Message);
        Assert.Contains("File exists", e.Message);
    }
}
