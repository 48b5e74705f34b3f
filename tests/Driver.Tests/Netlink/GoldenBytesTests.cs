using System.Net;
using System.Net.NetworkInformation;
using Skein.Driver.Netlink;
using Skein.Driver.Netlink.Messages;
using static Skein.Driver.Tests.Netlink.WireBytes;

namespace Skein.Driver.Tests.Netlink;

/// <summary>
/// Golden bytes for every message kind, written by hand from the uapi structs and constants
/// (linux/netlink.h, rtnetlink.h, if_link.h, if_addr.h, neighbour.h, ip.h): nlmsghdr is
/// len u32 | type u16 | flags u16 | seq u32 | pid u32; attributes are len u16 | type u16 | value,
/// padded to 4. Flags: REQUEST 0x1, ACK 0x4, REPLACE/ROOT 0x100, EXCL/MATCH 0x200, CREATE 0x400,
/// APPEND 0x800. Host order is little-endian here; addresses and the VXLAN/FDB ports are big-endian.
/// </summary>
public class GoldenBytesTests
{
    // ---- links (RTM_NEWLINK 0x10, RTM_DELLINK 0x11, RTM_GETLINK 0x12) ----

    [Fact]
    public void Dummy_with_common_attributes() => Equal(
        "54000000 1000 0506 00000000 00000000" +   // len 84, NEWLINK, REQUEST|ACK|EXCL|CREATE
        "00 00 0000 00000000 01000000 01000000" +   // ifinfomsg: AF_UNSPEC, index 0, flags IFF_UP, change IFF_UP
        "07000300 64300000" +                       // IFLA_IFNAME "d0\0" (length 7, 1 pad)
        "08000400 dc050000" +                       // IFLA_MTU 1500
        "0a000100 020000000001 0000" +              // IFLA_ADDRESS 02:00:00:00:00:01
        "08000a00 02000000" +                       // IFLA_MASTER 2
        "10001200 09000100 64756d6d79 000000",      // IFLA_LINKINFO { IFLA_INFO_KIND "dummy" } (no data)
        Encode(b => LinkMessages.Add(b, new DummySpec("d0")
        {
            Up = true,
            Mtu = 1500,
            MacAddress = PhysicalAddress.Parse("02-00-00-00-00-01"),
            MasterIndex = 2,
        })));

    [Fact]
    public void Macvlan_puts_parent_in_IFLA_LINK_and_mode_in_data() => Equal(
        "4c000000 1000 0506 00000000 00000000" +
        "00 00 0000 00000000 00000000 00000000" +
        "08000300 6d763000" +                       // IFLA_IFNAME "mv0"
        "08000500 04000000" +                       // IFLA_LINK 4 (the parent)
        "1c001200" +                                // IFLA_LINKINFO, 28 bytes
        "0b000100 6d6163766c616e 00" +              //   IFLA_INFO_KIND "macvlan" (7 bytes, 1 pad)
        "0c000200 08000100 04000000",               //   IFLA_INFO_DATA { IFLA_MACVLAN_MODE bridge (4) }
        Encode(b => LinkMessages.Add(b, new MacvlanSpec("mv0", 4))));

    [Fact]
    public void Bridge_with_every_setting() => Equal(
        "64000000 1000 0506 00000000 00000000" +
        "00 00 0000 00000000 00000000 00000000" +
        "08000300 62723000" +
        "3c001200" +                                // IFLA_LINKINFO, 60 bytes
        "0a000100 627269646765 0000" +              //   KIND "bridge"
        "2c000200" +                                //   IFLA_INFO_DATA, 44 bytes
        "08000100 dc050000" +                       //     IFLA_BR_FORWARD_DELAY 1500 cs
        "08000400 30750000" +                       //     IFLA_BR_AGEING_TIME 30000 cs
        "08000500 01000000" +                       //     IFLA_BR_STP_STATE 1 (u32)
        "05000700 01 000000" +                      //     IFLA_BR_VLAN_FILTERING 1 (u8)
        "05001700 00 000000",                       //     IFLA_BR_MCAST_SNOOPING 0 (u8)
        Encode(b => LinkMessages.Add(b, new BridgeSpec("br0")
        {
            StpEnabled = true,
            AgeingTimeCentiseconds = 30000,
            ForwardDelayCentiseconds = 1500,
            VlanFiltering = true,
            MulticastSnooping = false,
        })));

    [Fact]
    public void Veth_peer_created_in_another_namespace() => Equal(
        "78000000 1000 0506 00000000 00000000" +
        "00 00 0000 00000000 00000000 00000000" +
        "08000300 76653000" +                       // IFLA_IFNAME "ve0"
        "08000a00 02000000" +                       // IFLA_MASTER 2
        "48001200" +                                // IFLA_LINKINFO, 72 bytes
        "08000100 76657468" +                       //   KIND "veth"
        "3c000200" +                                //   IFLA_INFO_DATA, 60 bytes
        "38000100" +                                //     VETH_INFO_PEER, 56 bytes
        "00 00 0000 00000000 00000000 00000000" +   //       struct ifinfomsg for the peer
        "08000300 63653000" +                       //       IFLA_IFNAME "ce0"
        "08000400 aa050000" +                       //       IFLA_MTU 1450
        "0a000100 0242ac110002 0000" +              //       IFLA_ADDRESS 02:42:ac:11:00:02
        "08001c00 09000000",                        //       IFLA_NET_NS_FD 9
        Encode(b => LinkMessages.Add(b, new VethSpec("ve0", "ce0")
        {
            MasterIndex = 2,
            PeerNamespaceFd = 9,
            PeerMtu = 1450,
            PeerMacAddress = PhysicalAddress.Parse("02-42-AC-11-00-02"),
        })));

    [Fact]
    public void Vxlan_over_IPv6_with_every_flag_and_a_big_endian_port() => Equal(
        "a8000000 1000 0506 00000000 00000000" +
        "00 00 0000 00000000 00000000 00000000" +
        "08000300 76783600" +                       // IFLA_IFNAME "vx6"
        "80001200" +                                // IFLA_LINKINFO, 128 bytes
        "09000100 76786c616e 000000" +              //   KIND "vxlan"
        "70000200" +                                //   IFLA_INFO_DATA, 112 bytes
        "08000100 efcdab00" +                       //     IFLA_VXLAN_ID 0xABCDEF (host order)
        "14001100 fd000000000000000000000000000001" + //   IFLA_VXLAN_LOCAL6 fd00::1
        "08000300 02000000" +                       //     IFLA_VXLAN_LINK 2
        "05000500 40 000000" +                      //     IFLA_VXLAN_TTL 64
        "05000700 01 000000" +                      //     IFLA_VXLAN_LEARNING 1
        "05000b00 01 000000" +                      //     IFLA_VXLAN_PROXY 1
        "05000d00 01 000000" +                      //     IFLA_VXLAN_L2MISS 1
        "05000e00 01 000000" +                      //     IFLA_VXLAN_L3MISS 1
        "06000f00 2118 0000" +                      //     IFLA_VXLAN_PORT 8472, big-endian
        "05001200 01 000000" +                      //     IFLA_VXLAN_UDP_CSUM 1
        "05001300 00 000000" +                      //     IFLA_VXLAN_UDP_ZERO_CSUM6_TX 0
        "05001400 00 000000",                       //     IFLA_VXLAN_UDP_ZERO_CSUM6_RX 0
        Encode(b => LinkMessages.Add(b, new VxlanSpec("vx6", 0xABCDEF)
        {
            Local = IPAddress.Parse("fd00::1"),
            UnderlayIndex = 2,
            Port = 8472,
            Learning = true,
            Proxy = true,
            L2Miss = true,
            L3Miss = true,
            Ttl = 64,
            UdpChecksum = true,
            UdpZeroChecksum6Tx = false,
            UdpZeroChecksum6Rx = false,
        })));

    [Fact]
    public void Vxlan_group_uses_IFLA_VXLAN_GROUP_for_IPv4() => Equal(
        "64000000 1000 0506 00000000 00000000 00000000 00000000 00000000 00000000" +
        "08000300 76783100 3c001200 09000100 76786c616e 000000 2c000200" +
        "08000100 01000000" +                       // ID 1
        "08000200 ef010101" +                       // IFLA_VXLAN_GROUP 239.1.1.1
        "08000400 0a000001" +                       // IFLA_VXLAN_LOCAL 10.0.0.1
        "05000700 00 000000" +                      // LEARNING 0
        "06000f00 12b5 0000",                       // PORT 4789
        Encode(b => LinkMessages.Add(b, new VxlanSpec("vx1", 1) { Group = IPAddress.Parse("239.1.1.1"), Local = IPAddress.Parse("10.0.0.1"), Learning = false })));

    [Fact]
    public void Delete_and_get_by_name_carry_IFLA_IFNAME()
    {
        Equal("28000000 1100 0500 00000000 00000000 00000000000000000000000000000000 08000300 76783000",
            Encode(b => LinkMessages.Delete(b, "vx0")));
        Equal("28000000 1200 0100 00000000 00000000 00000000000000000000000000000000 08000300 76783000",
            Encode(b => LinkMessages.Get(b, "vx0")));   // a GET asks for no ACK: the reply is the answer
        Equal("20000000 1200 0100 00000000 00000000 00 00 0000 05000000 00000000 00000000",
            Encode(b => LinkMessages.Get(b, 5)));
    }

    [Fact]
    public void Link_dumps_ask_for_ROOT_and_MATCH()
    {
        Equal("20000000 1200 0103 00000000 00000000 00000000000000000000000000000000",
            Encode(b => LinkMessages.Dump(b)));
        Equal("20000000 1200 0103 00000000 00000000 07 00 0000 00000000 00000000 00000000",
            Encode(b => BridgePortMessages.Dump(b)));   // AF_BRIDGE: ports with IFLA_PROTINFO
    }

    [Fact]
    public void Link_changes()
    {
        const string header = "28000000 1000 0500 00000000 00000000 00000000 03000000 00000000 00000000";
        Equal(header + "08000a00 02000000", Encode(b => LinkMessages.SetMaster(b, 3, 2)));
        Equal(header + "08000a00 00000000", Encode(b => LinkMessages.SetMaster(b, 3, 0)));   // no master
        Equal(header + "08001c00 07000000", Encode(b => LinkMessages.SetNamespace(b, 3, 7)));
        Equal("2c000000 1000 0500 00000000 00000000 00000000 03000000 00000000 00000000 09000300 65746831 00000000",
            Encode(b => LinkMessages.Rename(b, 3, "eth1")));
        Equal("2c000000 1000 0500 00000000 00000000 00000000 03000000 00000000 00000000 0a000100 02000000000a 0000",
            Encode(b => LinkMessages.SetMac(b, 3, PhysicalAddress.Parse("02-00-00-00-00-0A"))));
        Equal("20000000 1000 0500 00000000 00000000 00000000 03000000 00000000 01000000",
            Encode(b => LinkMessages.SetUp(b, 3, false)));   // down: flag clear, change mask IFF_UP
    }

    // ---- addresses (RTM_NEWADDR 0x14, RTM_DELADDR 0x15, RTM_GETADDR 0x16) ----

    [Fact]
    public void IPv6_address_with_flags_above_8_bits_uses_IFA_FLAGS() => Equal(
        "48000000 1400 0506 00000000 00000000" +
        "0a 40 02 00 05000000" +                    // ifaddrmsg: AF_INET6, /64, IFA_F_NODAD (low byte), universe, index 5
        "14000200 fd000000000000000000000000000001" + // IFA_LOCAL
        "14000100 fd000000000000000000000000000001" + // IFA_ADDRESS
        "08000800 02020000",                        // IFA_FLAGS NODAD|NOPREFIXROUTE = 0x202 (no broadcast for IPv6)
        Encode(b => AddressMessages.Add(b, 5, IpPrefix.Parse("fd00::1/64"), AddressFlags.NoDad | AddressFlags.NoPrefixRoute)));

    [Fact]
    public void Address_delete_and_dump()
    {
        Equal("28000000 1500 0500 00000000 00000000 02 18 00 00 03000000 08000200 0a010001 08000100 0a010001",
            Encode(b => AddressMessages.Delete(b, 3, IpPrefix.Parse("10.1.0.1/24"))));
        Equal("18000000 1600 0103 00000000 00000000 02 00 00 00 00000000",
            Encode(b => AddressMessages.Dump(b, 2)));
    }

    [Fact]
    public void Loopback_address_gets_host_scope_and_a_31_no_broadcast()
    {
        Equal("30000000 1400 0506 00000000 00000000 02 08 00 fe 01000000 08000200 7f000002 08000100 7f000002 08000400 7fffffff",
            Encode(b => AddressMessages.Add(b, 1, IpPrefix.Parse("127.0.0.2/8"), AddressFlags.None)));
        Equal("28000000 1400 0506 00000000 00000000 02 1f 00 00 03000000 08000200 0a000000 08000100 0a000000",
            Encode(b => AddressMessages.Add(b, 3, IpPrefix.Parse("10.0.0.0/31"), AddressFlags.None)));
    }

    // ---- routes (RTM_NEWROUTE 0x18, RTM_DELROUTE 0x19, RTM_GETROUTE 0x1a) ----

    [Fact]
    public void Route_replace_in_a_big_table_with_metrics() => Equal(
        "54000000 1800 0505 00000000 00000000" +    // REQUEST|ACK|REPLACE|CREATE
        "0a 00 00 00 00 03 00 01 04000000" +        // rtmsg: AF_INET6, /0, table UNSPEC (>255), boot, universe, unicast, RTNH_F_ONLINK
        "08000f00 e8030000" +                       // RTA_TABLE 1000
        "14000500 fe800000000000000000000000000001" + // RTA_GATEWAY fe80::1 (no RTA_DST for a default route)
        "08000600 64000000" +                       // RTA_PRIORITY 100
        "08000400 02000000" +                       // RTA_OIF 2
        "0c000800 08000200 78050000",               // RTA_METRICS { RTAX_MTU 1400 }
        Encode(b => RouteMessages.Replace(b, new Route(IpPrefix.Parse("::/0"))
        {
            Gateway = IPAddress.Parse("fe80::1"),
            OutputIndex = 2,
            Metric = 100,
            Table = 1000,
            Mtu = 1400,
            OnLink = true,
        })));

    [Fact]
    public void Route_delete_matches_any_protocol_and_scope() => Equal(
        "2c000000 1900 0500 00000000 00000000" +
        "02 10 00 00 fe 00 ff 00 00000000" +        // protocol unspec, scope NOWHERE, type unspec
        "08000100 0a020000 08000400 03000000",
        Encode(b => RouteMessages.Delete(b, new Route(IpPrefix.Parse("10.2.3.4/16")) { OutputIndex = 3 })));  // host bits cleared

    [Fact]
    public void Device_route_gets_link_scope_and_source()
    {
        Equal("34000000 1800 0506 00000000 00000000 02 18 00 00 fe 03 fd 01 00000000" +
              "08000100 0a030000 08000700 0a030001 08000400 03000000",
            Encode(b => RouteMessages.Add(b, new Route(IpPrefix.Parse("10.3.0.0/24")) { OutputIndex = 3, PreferredSource = IPAddress.Parse("10.3.0.1") })));
        Equal("1c000000 1a00 0103 00000000 00000000 0a 00 00 00 00 00 00 00 00000000",
            Encode(b => RouteMessages.Dump(b, 10)));
    }

    // ---- neighbours and FDB (RTM_NEWNEIGH 0x1c, RTM_DELNEIGH 0x1d, RTM_GETNEIGH 0x1e) ----

    [Fact]
    public void IPv6_neighbour_replace_and_IPv4_delete()
    {
        Equal("3c000000 1c00 0505 00000000 00000000" +
              "0a 00 0000 04000000 8000 00 00" +    // ndmsg: AF_INET6, index 4, NUD_PERMANENT
              "14000100 fd000000000000000000000000000002" +
              "0a000200 020000000005 0000",
            Encode(b => NeighborMessages.Replace(b, new Neighbor(4, IPAddress.Parse("fd00::2"), PhysicalAddress.Parse("02-00-00-00-00-05")))));
        Equal("24000000 1d00 0500 00000000 00000000 02 00 0000 03000000 8000 00 00 08000100 0a010002",
            Encode(b => NeighborMessages.Delete(b, new Neighbor(3, IPAddress.Parse("10.1.0.2"), null))));
        Equal("1c000000 1e00 0103 00000000 00000000 02 00 0000 00000000 0000 00 00",
            Encode(b => NeighborMessages.Dump(b, 2)));
    }

    [Fact]
    public void Fdb_delete_with_remote_vni_and_port() => Equal(
        "40000000 1d00 0500 00000000 00000000" +
        "07 00 0000 05000000 c000 02 00" +          // AF_BRIDGE, index 5, NOARP|PERMANENT, NTF_SELF
        "0a000200 020000000009 0000" +              // NDA_LLADDR
        "08000100 c6120003" +                       // NDA_DST 198.18.0.3
        "06000600 12b6 0000" +                      // NDA_PORT 4790, big-endian
        "08000700 64000000",                        // NDA_VNI 100
        Encode(b => FdbMessages.Delete(b, new FdbEntry(5, PhysicalAddress.Parse("02-00-00-00-00-09"), IPAddress.Parse("198.18.0.3")) { Vni = 100, Port = 4790 })));

    [Fact]
    public void Fdb_replace_on_the_master_with_a_vlan_and_dump()
    {
        Equal("30000000 1c00 0505 00000000 00000000" +
              "07 00 0000 04000000 4000 04 00" +    // NOARP only (not permanent), NTF_MASTER
              "0a000200 02000000000a 0000 06000500 0a000000",
            Encode(b => FdbMessages.Replace(b, new FdbEntry(4, PhysicalAddress.Parse("02-00-00-00-00-0A"), null) { Self = false, Master = true, Vlan = 10, Permanent = false })));
        Equal("1c000000 1e00 0103 00000000 00000000 07 00 0000 00000000 0000 00 00",
            Encode(b => FdbMessages.Dump(b)));
        Equal("30000000 1c00 0506 00000000 00000000 07 00 0000 05000000 c000 02 00 0a000200 020000000009 0000 08000100 c6120003",
            Encode(b => FdbMessages.Add(b, new FdbEntry(5, PhysicalAddress.Parse("02-00-00-00-00-09"), IPAddress.Parse("198.18.0.3")))));
    }

    // ---- bridge port flags (RTM_SETLINK 0x13, AF_BRIDGE) and IPv4 devconf ----

    [Fact]
    public void Several_port_flags_in_one_nested_protinfo() => Equal(
        "3c000000 1300 0500 00000000 00000000 07 00 0000 03000000 00000000 00000000" +
        "1c000c80" +                                // IFLA_PROTINFO | NLA_F_NESTED, 28 bytes
        "05000800 00 000000" +                      //   IFLA_BRPORT_LEARNING 0
        "05002000 01 000000" +                      //   IFLA_BRPORT_NEIGH_SUPPRESS 1
        "05000900 00 000000",                       //   IFLA_BRPORT_UNICAST_FLOOD 0
        Encode(b => BridgePortMessages.Set(b, 3, new BridgePortSettings { Learning = false, NeighSuppress = true, Flood = false })));

    [Fact]
    public void IPv4_devconf_is_three_nests_deep() => Equal(
        "34000000 1000 0500 00000000 00000000 00000000 03000000 00000000 00000000" +
        "14001a00" +                                // IFLA_AF_SPEC, 20 bytes
        "10000200" +                                //   AF_INET, 16 bytes
        "0c000100" +                                //     IFLA_INET_CONF, 12 bytes
        "08000300 01000000",                        //       IPV4_DEVCONF_PROXY_ARP = 1
        Encode(b => DeviceConfigurationMessages.SetIPv4(b, 3, IPv4DeviceConf.ProxyArp, 1)));
}
