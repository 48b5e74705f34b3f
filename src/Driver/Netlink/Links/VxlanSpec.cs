using System.Net;

namespace Skein.Driver.Netlink;

/// <summary>A VXLAN device. Defaults match the kernel's, except the UDP port which is the IANA 4789.</summary>
public sealed record VxlanSpec(string Name, int Vni) : LinkSpec(Name)
{
    public const int MaxVni = 0xFFFFFF;
    public const ushort IanaPort = 4789;

    public override string Kind => "vxlan";

    /// <summary>Source address of the tunnel (IFLA_VXLAN_LOCAL / LOCAL6).</summary>
    public IPAddress? Local { get; init; }

    /// <summary>Default remote / multicast group (IFLA_VXLAN_GROUP / GROUP6); null for FDB-driven unicast.</summary>
    public IPAddress? Group { get; init; }

    /// <summary>Underlay device (IFLA_VXLAN_LINK).</summary>
    public int? UnderlayIndex { get; init; }

    /// <summary>Destination UDP port; sent big-endian.</summary>
    public ushort Port { get; init; } = IanaPort;

    public bool Learning { get; init; } = true;

    /// <summary>ARP/ND proxy from the neighbour table of the VXLAN device.</summary>
    public bool Proxy { get; init; }

    public bool L2Miss { get; init; }
    public bool L3Miss { get; init; }

    /// <summary>Null = inherit (kernel default).</summary>
    public int? Ttl { get; init; }

    /// <summary>Null = kernel default.</summary>
    public bool? UdpChecksum { get; init; }
    public bool? UdpZeroChecksum6Tx { get; init; }
    public bool? UdpZeroChecksum6Rx { get; init; }
}
