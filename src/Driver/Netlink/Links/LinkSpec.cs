using System.Net.NetworkInformation;

namespace Skein.Driver.Netlink;

/// <summary>
/// What to create: the attributes every link kind shares. Each kind (bridge, veth, vxlan, dummy,
/// macvlan) is a record in its own file that adds its settings and knows how to encode and decode them.
/// </summary>
public abstract record LinkSpec(string Name)
{
    public int? Mtu { get; init; }
    public PhysicalAddress? MacAddress { get; init; }
    public int? MasterIndex { get; init; }
    public bool Up { get; init; }

    /// <summary>IFLA_INFO_KIND, e.g. "vxlan".</summary>
    public abstract string Kind { get; }
}

/// <summary>A link as the kernel reports it. <see cref="Details"/> holds the decoded kind-specific settings.</summary>
public sealed record Link(int Index, string Name, string? Kind, int Mtu, PhysicalAddress? MacAddress, int? MasterIndex, bool IsUp, LinkSpec? Details)
{
    /// <summary>IFLA_LINK: the lower device (VXLAN underlay, macvlan parent, veth peer).</summary>
    public int? ParentIndex { get; init; }

    /// <summary>IFLA_LINK_NETNSID: set when <see cref="ParentIndex"/> lives in another namespace.</summary>
    public int? ParentNamespaceId { get; init; }

    /// <summary>IFLA_INFO_SLAVE_KIND, e.g. "bridge" for a bridge port.</summary>
    public string? PortKind { get; init; }

    /// <summary>IFF_* flags (ifi_flags).</summary>
    public uint Flags { get; init; }

    /// <summary>IFLA_OPERSTATE (RFC 2863: 6 = up, 2 = down, 0 = unknown...).</summary>
    public byte OperationalState { get; init; }
}
