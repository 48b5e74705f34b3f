using System.Net;
using System.Net.NetworkInformation;
using Skein.Driver.Netlink.Wire;

namespace Skein.Driver.Netlink.Messages;

/// <summary>
/// Bridge FDB entries: RTM_NEWNEIGH / RTM_DELNEIGH / RTM_GETNEIGH with family AF_BRIDGE, as
/// `bridge fdb append|replace|del|show` send them. NTF_SELF addresses the device's own table (the
/// VXLAN FDB), NTF_MASTER the bridge's.
/// </summary>
internal static class FdbMessages
{
    public static Span<byte> Append(Span<byte> buffer, FdbEntry entry) =>
        Encode(buffer, MessageType.NewNeighbor, MessageFlags.Request | MessageFlags.Ack | MessageFlags.Create | MessageFlags.Append, entry);

    public static Span<byte> Add(Span<byte> buffer, FdbEntry entry) =>
        Encode(buffer, MessageType.NewNeighbor, MessageFlags.Request | MessageFlags.Ack | MessageFlags.Create | MessageFlags.Exclusive, entry);

    public static Span<byte> Replace(Span<byte> buffer, FdbEntry entry) =>
        Encode(buffer, MessageType.NewNeighbor, MessageFlags.Request | MessageFlags.Ack | MessageFlags.Create | MessageFlags.Replace, entry);

    public static Span<byte> Delete(Span<byte> buffer, FdbEntry entry) =>
        Encode(buffer, MessageType.DeleteNeighbor, MessageFlags.Request | MessageFlags.Ack, entry);

    public static Span<byte> Dump(Span<byte> buffer)
    {
        var message = new MessageWriter(buffer, MessageType.GetNeighbor, MessageFlags.Request | MessageFlags.Dump);
        message.WriteFixed(new NeighborMessageHeader { Family = KernelAddressFamily.Bridge });
        return message.Finish();
    }

    /// <summary>State: NUD_NOARP always (as iproute2), plus NUD_PERMANENT for a permanent entry.</summary>
    private static Span<byte> Encode(Span<byte> buffer, MessageType type, MessageFlags flags, FdbEntry entry)
    {
        var state = NeighborState.NoArp | (entry.Permanent ? NeighborState.Permanent : NeighborState.None);
        var neighborFlags = (entry.Self ? NeighborFlags.Self : 0) | (entry.Master ? NeighborFlags.Master : 0);
        var message = new MessageWriter(buffer, type, flags);
        message.WriteFixed(new NeighborMessageHeader
        {
            Family = KernelAddressFamily.Bridge,
            Index = entry.Index,
            State = (ushort)state,
            Flags = (byte)neighborFlags,
        });
        var attributes = message.Attributes<NeighborAttribute>();
        attributes.WriteMac(NeighborAttribute.LinkLayerAddress, entry.MacAddress);
        if (entry.Destination is { } destination) attributes.WriteAddress(NeighborAttribute.Destination, destination);
        if (entry.Vlan is { } vlan) attributes.WriteUInt16(NeighborAttribute.Vlan, (ushort)vlan);
        if (entry.Port is { } port) attributes.WriteUInt16BigEndian(NeighborAttribute.Port, port);
        if (entry.Vni is { } vni) attributes.WriteUInt32(NeighborAttribute.Vni, (uint)vni);
        return message.Finish();
    }

    public static void Validate(FdbEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        if (entry.Index <= 0) throw new ArgumentException($"FDB entry {entry.MacAddress}: link index {entry.Index} must be positive", nameof(entry));
        ArgumentNullException.ThrowIfNull(entry.MacAddress);
        LinkSpec.ValidateMac(entry.MacAddress, nameof(entry));
        if (!entry.Self && !entry.Master) throw new ArgumentException($"FDB entry {entry.MacAddress}: choose the device's own table (Self) or its master's (Master)", nameof(entry));
        if (entry.Vni is < 0 or > VxlanSpec.MaxVni) throw new ArgumentException($"FDB entry {entry.MacAddress}: VNI {entry.Vni} must be between 0 and {VxlanSpec.MaxVni}", nameof(entry));
        if (entry.Vlan is < 1 or > 4094) throw new ArgumentException($"FDB entry {entry.MacAddress}: VLAN {entry.Vlan} must be between 1 and 4094", nameof(entry));
        if (entry.Destination is { } destination && destination.AddressFamily is not (System.Net.Sockets.AddressFamily.InterNetwork or System.Net.Sockets.AddressFamily.InterNetworkV6))
            throw new ArgumentException($"FDB entry {entry.MacAddress}: destination {destination} must be IPv4 or IPv6", nameof(entry));
    }

    public static readonly ReplyDecoder<FdbEntry> Decoder = (in ReceivedMessage message, out FdbEntry entry) =>
    {
        entry = null!;
        if (message.Type != MessageType.NewNeighbor) return false;
        var header = message.FixedHeader<NeighborMessageHeader>();
        if (header.Family != KernelAddressFamily.Bridge) return false;
        PhysicalAddress? mac = null;
        IPAddress? destination = null;
        int? vni = null, vlan = null, master = null;
        ushort? port = null;
        var reader = message.Attributes<NeighborMessageHeader, NeighborAttribute>();
        while (reader.Next(out var id, out var value))
        {
            switch (id)
            {
                case NeighborAttribute.LinkLayerAddress: mac = AttributeValue.Mac(value); break;
                case NeighborAttribute.Destination: destination = AttributeValue.Address(value); break;
                case NeighborAttribute.Vni: vni = (int)AttributeValue.UInt32(value); break;
                case NeighborAttribute.Vlan: vlan = AttributeValue.UInt16(value); break;
                case NeighborAttribute.Port: port = AttributeValue.UInt16BigEndian(value); break;
                case NeighborAttribute.Master: master = (int)AttributeValue.UInt32(value); break;
            }
        }
        if (mac is null) return false;
        var flags = (NeighborFlags)header.Flags;
        entry = new FdbEntry(header.Index, mac, destination)
        {
            Self = (flags & NeighborFlags.Self) != 0,
            // The bridge reports its own entries with NDA_MASTER but without NTF_MASTER.
            Master = (flags & NeighborFlags.Master) != 0 || master is not null,
            Permanent = (((NeighborState)header.State) & NeighborState.Permanent) != 0,
            Vni = vni,
            Vlan = vlan,
            Port = port,
            MasterIndex = master,
        };
        return true;
    };
}
