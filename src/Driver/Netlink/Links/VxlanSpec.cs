using System.Net;
using System.Net.Sockets;
using Skein.Driver.Netlink.Wire;

namespace Skein.Driver.Netlink;

/// <summary>A VXLAN device. Defaults match the kernel's, except the UDP port which is the IANA 4789.</summary>
public sealed record VxlanSpec(string Name, int Vni) : LinkSpec(Name)
{
    /// <summary>VNIs are 24 bits.</summary>
    public const int MaxVni = 0xFFFFFF;
    public const ushort IanaPort = 4789;

    public override string Kind => "vxlan";

    /// <summary>Source address of the tunnel (IFLA_VXLAN_LOCAL / LOCAL6).</summary>
    public IPAddress? Local { get; init; }

    /// <summary>Default remote / multicast group (IFLA_VXLAN_GROUP / GROUP6); null for FDB-driven unicast.</summary>
    public IPAddress? Group { get; init; }

    /// <summary>Underlay device (IFLA_VXLAN_LINK).</summary>
    public int? UnderlayIndex { get; init; }

    /// <summary>Destination UDP port; sent big-endian (network order), unlike the other integers.</summary>
    public ushort Port { get; init; } = IanaPort;

    public bool Learning { get; init; } = true;

    /// <summary>ARP/ND proxy from the neighbour table of the VXLAN device.</summary>
    public bool Proxy { get; init; }

    public bool L2Miss { get; init; }
    public bool L3Miss { get; init; }

    /// <summary>Null = kernel default.</summary>
    public int? Ttl { get; init; }

    /// <summary>Null = kernel default.</summary>
    public bool? UdpChecksum { get; init; }
    public bool? UdpZeroChecksum6Tx { get; init; }
    public bool? UdpZeroChecksum6Rx { get; init; }

    internal override void Validate()
    {
        base.Validate();
        if (Vni is < 0 or > MaxVni)
            throw new ArgumentOutOfRangeException(nameof(Vni), Vni, $"VNI of vxlan '{Name}' must be between 0 and {MaxVni} (24 bits)");
        if (Ttl is < 0 or > 255) throw new ArgumentOutOfRangeException(nameof(Ttl), Ttl, $"TTL of vxlan '{Name}' must be between 0 and 255");
        if (Port == 0) throw new ArgumentOutOfRangeException(nameof(Port), Port, $"UDP port of vxlan '{Name}' must not be 0");
        if (UnderlayIndex is <= 0) throw new ArgumentOutOfRangeException(nameof(UnderlayIndex), UnderlayIndex, $"underlay index of vxlan '{Name}' must be positive");
        CheckFamily(Local, nameof(Local));
        CheckFamily(Group, nameof(Group));
        if (Local is not null && Group is not null && Local.AddressFamily != Group.AddressFamily)
            throw new ArgumentException($"vxlan '{Name}': local {Local} and group {Group} are of different families", nameof(Group));
    }

    internal override void WriteInfoData(AttributeWriter<LinkInfoAttribute> info)
    {
        using var data = info.BeginNest<VxlanAttribute>(LinkInfoAttribute.Data);
        data.WriteUInt32(VxlanAttribute.Id, (uint)Vni);
        if (Group is not null)
            data.WriteAddress(Group.AddressFamily == AddressFamily.InterNetwork ? VxlanAttribute.Group : VxlanAttribute.Group6, Group);
        if (Local is not null)
            data.WriteAddress(Local.AddressFamily == AddressFamily.InterNetwork ? VxlanAttribute.Local : VxlanAttribute.Local6, Local);
        if (UnderlayIndex is { } underlay) data.WriteUInt32(VxlanAttribute.Link, (uint)underlay);
        if (Ttl is { } ttl) data.WriteUInt8(VxlanAttribute.Ttl, (byte)ttl);
        // Learning is on by default in the kernel, so it is always stated; proxy and the miss
        // notifications are off by default and only sent to turn them on (as iproute2 does).
        data.WriteBool(VxlanAttribute.Learning, Learning);
        if (Proxy) data.WriteBool(VxlanAttribute.Proxy, true);
        if (L2Miss) data.WriteBool(VxlanAttribute.L2Miss, true);
        if (L3Miss) data.WriteBool(VxlanAttribute.L3Miss, true);
        data.WriteUInt16BigEndian(VxlanAttribute.Port, Port);
        if (UdpChecksum is { } checksum) data.WriteBool(VxlanAttribute.UdpChecksum, checksum);
        if (UdpZeroChecksum6Tx is { } zeroTx) data.WriteBool(VxlanAttribute.UdpZeroChecksum6Tx, zeroTx);
        if (UdpZeroChecksum6Rx is { } zeroRx) data.WriteBool(VxlanAttribute.UdpZeroChecksum6Rx, zeroRx);
    }

    internal static VxlanSpec Decode(string name, ReadOnlySpan<byte> data)
    {
        // Learning defaults to off here: the kernel always reports it, so absence means an old kernel.
        var spec = new VxlanSpec(name, 0) { Learning = false };
        var reader = new AttributeReader<VxlanAttribute>(data);
        while (reader.Next(out var id, out var value))
        {
            spec = id switch
            {
                VxlanAttribute.Id => spec with { Vni = (int)AttributeValue.UInt32(value) },
                VxlanAttribute.Group or VxlanAttribute.Group6 => spec with { Group = AttributeValue.Address(value) },
                VxlanAttribute.Local or VxlanAttribute.Local6 => spec with { Local = AttributeValue.Address(value) },
                VxlanAttribute.Link => spec with { UnderlayIndex = (int)AttributeValue.UInt32(value) },
                VxlanAttribute.Ttl => spec with { Ttl = AttributeValue.UInt8(value) },
                VxlanAttribute.Learning => spec with { Learning = AttributeValue.Bool(value) },
                VxlanAttribute.Proxy => spec with { Proxy = AttributeValue.Bool(value) },
                VxlanAttribute.L2Miss => spec with { L2Miss = AttributeValue.Bool(value) },
                VxlanAttribute.L3Miss => spec with { L3Miss = AttributeValue.Bool(value) },
                VxlanAttribute.Port => spec with { Port = AttributeValue.UInt16BigEndian(value) },
                VxlanAttribute.UdpChecksum => spec with { UdpChecksum = AttributeValue.Bool(value) },
                VxlanAttribute.UdpZeroChecksum6Tx => spec with { UdpZeroChecksum6Tx = AttributeValue.Bool(value) },
                VxlanAttribute.UdpZeroChecksum6Rx => spec with { UdpZeroChecksum6Rx = AttributeValue.Bool(value) },
                _ => spec,
            };
        }
        return spec;
    }

    private void CheckFamily(IPAddress? address, string parameter)
    {
        if (address is not null && address.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
            throw new ArgumentException($"vxlan '{Name}': {address} is not an IPv4 or IPv6 address", parameter);
    }
}

/// <summary>IFLA_VXLAN_* inside IFLA_INFO_DATA of a vxlan.</summary>
internal enum VxlanAttribute : ushort
{
    Id = 1,
    Group = 2,
    Link = 3,
    Local = 4,
    Ttl = 5,
    Tos = 6,
    Learning = 7,
    Ageing = 8,
    Limit = 9,
    PortRange = 10,
    Proxy = 11,
    Rsc = 12,
    L2Miss = 13,
    L3Miss = 14,
    Port = 15,
    Group6 = 16,
    Local6 = 17,
    UdpChecksum = 18,
    UdpZeroChecksum6Tx = 19,
    UdpZeroChecksum6Rx = 20,
}
