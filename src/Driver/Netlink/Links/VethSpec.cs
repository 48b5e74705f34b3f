using System.Net.NetworkInformation;
using Skein.Driver.Netlink.Wire;

namespace Skein.Driver.Netlink;

/// <summary>A veth pair. The peer may be created directly in another namespace (<see cref="PeerNamespaceFd"/>).</summary>
public sealed record VethSpec(string Name, string PeerName) : LinkSpec(Name)
{
    public override string Kind => "veth";

    public int? PeerNamespaceFd { get; init; }
    public PhysicalAddress? PeerMacAddress { get; init; }
    public int? PeerMtu { get; init; }

    /// <summary>Decoded only: the peer's index (IFLA_LINK), in another namespace when the link has a parent namespace id.</summary>
    public int? PeerIndex { get; init; }

    internal override void Validate()
    {
        base.Validate();
        ValidateName(PeerName, nameof(PeerName));
        if (PeerNamespaceFd is null && PeerName == Name) throw new ArgumentException($"veth '{Name}' and its peer need different names in one namespace", nameof(PeerName));
        if (PeerNamespaceFd is < 0) throw new ArgumentOutOfRangeException(nameof(PeerNamespaceFd), PeerNamespaceFd, "namespace fd must not be negative");
        if (PeerMtu is < 68 or > 65535) throw new ArgumentOutOfRangeException(nameof(PeerMtu), PeerMtu, $"MTU of veth peer '{PeerName}' must be between 68 and 65535");
        if (PeerMacAddress is { } mac) ValidateMac(mac, nameof(PeerMacAddress));
    }

    /// <summary>VETH_INFO_PEER holds a whole ifinfomsg plus IFLA_* attributes for the peer.</summary>
    internal override void WriteInfoData(AttributeWriter<LinkInfoAttribute> info)
    {
        using var data = info.BeginNest<VethAttribute>(LinkInfoAttribute.Data);
        using var peer = data.BeginNest<LinkAttribute>(VethAttribute.Peer);
        peer.WriteFixed(new InterfaceInfoMessage());
        peer.WriteString(LinkAttribute.Name, PeerName);
        if (PeerMtu is { } mtu) peer.WriteUInt32(LinkAttribute.Mtu, (uint)mtu);
        if (PeerMacAddress is { } mac) peer.WriteMac(LinkAttribute.Address, mac);
        if (PeerNamespaceFd is { } fd) peer.WriteUInt32(LinkAttribute.NamespaceFd, (uint)fd);
    }

    /// <summary>A dump carries no peer name; the caller resolves <see cref="PeerIndex"/> when it can.</summary>
    internal static VethSpec Decode(string name, int? peerIndex) => new(name, "") { PeerIndex = peerIndex };
}

/// <summary>VETH_INFO_* inside IFLA_INFO_DATA of a veth.</summary>
internal enum VethAttribute : ushort
{
    Peer = 1,
}
