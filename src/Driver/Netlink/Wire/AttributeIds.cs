namespace Skein.Driver.Netlink.Wire;

// One enum per nest, so the compiler stops an attribute from landing in the wrong nest: an
// AttributeWriter<LinkAttribute> only accepts LinkAttribute ids. Values are from the uapi headers
// (linux/if_link.h, if_addr.h, rtnetlink.h, neighbour.h); link-kind nests live with their kind.

/// <summary>IFLA_* (top level of RTM_NEWLINK / RTM_GETLINK, and inside VETH_INFO_PEER).</summary>
internal enum LinkAttribute : ushort
{
    Address = 1,
    Broadcast = 2,
    Name = 3,
    Mtu = 4,
    Link = 5,
    Master = 10,
    ProtocolInfo = 12,
    TxQueueLength = 13,
    OperationalState = 16,
    LinkInfo = 18,
    AddressFamilySpecific = 26,
    NamespaceFd = 28,
    ExtendedMask = 29,
    LinkNamespaceId = 37,
    AlternativeName = 53,
}

/// <summary>IFLA_INFO_* inside IFLA_LINKINFO.</summary>
internal enum LinkInfoAttribute : ushort
{
    Kind = 1,
    Data = 2,
    ExtendedStats = 3,
    PortKind = 4,
    PortData = 5,
}

/// <summary>Children of IFLA_AF_SPEC: the attribute type is the address family.</summary>
internal enum AddressFamilySpecificAttribute : ushort
{
    Inet = 2,
    Inet6 = 10,
}

/// <summary>IFLA_INET_* inside IFLA_AF_SPEC/AF_INET.</summary>
internal enum InetAttribute : ushort
{
    Configuration = 1,
}

/// <summary>IFLA_INET6_* inside IFLA_AF_SPEC/AF_INET6.</summary>
internal enum Inet6Attribute : ushort
{
    Flags = 1,
    Configuration = 2,
    AddressGenerationMode = 8,
}

/// <summary>Children of IFLA_INET_CONF when setting: the attribute type is the IPV4_DEVCONF_* id.</summary>
internal enum InetConfigurationAttribute : ushort
{
}

/// <summary>IFLA_BRPORT_* inside IFLA_PROTINFO of an AF_BRIDGE link message.</summary>
internal enum BridgePortAttribute : ushort
{
    State = 1,
    Priority = 2,
    Cost = 3,
    Hairpin = 4, // IFLA_BRPORT_MODE
    Guard = 5,
    Protect = 6,
    FastLeave = 7,
    Learning = 8,
    UnicastFlood = 9,
    ProxyArp = 10,
    MulticastFlood = 27,
    BroadcastFlood = 30,
    NeighSuppress = 32,
    Isolated = 33,
}

/// <summary>IFA_* (RTM_NEWADDR / RTM_DELADDR / RTM_GETADDR).</summary>
internal enum AddressAttribute : ushort
{
    Address = 1,
    Local = 2,
    Label = 3,
    Broadcast = 4,
    Anycast = 5,
    CacheInfo = 6,
    Multicast = 7,
    Flags = 8,
}

/// <summary>RTA_* (RTM_NEWROUTE / RTM_DELROUTE / RTM_GETROUTE).</summary>
internal enum RouteAttribute : ushort
{
    Destination = 1,
    Source = 2,
    InputInterface = 3,
    OutputInterface = 4,
    Gateway = 5,
    Priority = 6,
    PreferredSource = 7,
    Metrics = 8,
    Table = 15,
}

/// <summary>RTAX_* inside RTA_METRICS.</summary>
internal enum RouteMetricAttribute : ushort
{
    Mtu = 2,
}

/// <summary>NDA_* (RTM_NEWNEIGH / RTM_DELNEIGH / RTM_GETNEIGH, for ARP/ND and bridge FDB alike).</summary>
internal enum NeighborAttribute : ushort
{
    Destination = 1,
    LinkLayerAddress = 2,
    CacheInfo = 3,
    Probes = 4,
    Vlan = 5,
    Port = 6,
    Vni = 7,
    InterfaceIndex = 8,
    Master = 9,
}

/// <summary>TCA_* (top level of qdisc and filter messages, linux/rtnetlink.h).</summary>
internal enum TrafficControlAttribute : ushort
{
    Kind = 1,
    Options = 2,
    Chain = 11,
    IngressBlock = 13,
    EgressBlock = 14,
}

/// <summary>TCA_U32_* inside TCA_OPTIONS of a u32 filter (linux/pkt_cls.h).</summary>
internal enum U32Attribute : ushort
{
    ClassId = 1,
    Hash = 2,
    Link = 3,
    Divisor = 4,
    Selector = 5,
    Actions = 7,
    Flags = 11,
}

/// <summary>The slots of an action list (TCA_U32_ACT and the like): attribute n is the action of order n.</summary>
internal enum ActionSlot : ushort
{
    First = 1,
}

/// <summary>TCA_ACT_* inside one action (linux/pkt_cls.h).</summary>
internal enum ActionAttribute : ushort
{
    Kind = 1,
    Options = 2,
    Index = 3,
}

/// <summary>TCA_MIRRED_* inside TCA_ACT_OPTIONS of a mirred action.</summary>
internal enum MirredAttribute : ushort
{
    Parameters = 2,
}
