using System.Net;
using System.Net.NetworkInformation;
using Skein.Driver.Netlink.Wire;

namespace Skein.Driver.Netlink.Messages;

/// <summary>RTM_NEWNEIGH / RTM_DELNEIGH / RTM_GETNEIGH for IP neighbours (ARP and NDP entries).</summary>
internal static class NeighborMessages
{
    public static Span<byte> Add(Span<byte> buffer, Neighbor neighbor) =>
        Encode(buffer, MessageType.NewNeighbor, MessageFlags.Request | MessageFlags.Ack | MessageFlags.Create | MessageFlags.Exclusive, neighbor);

    public static Span<byte> Replace(Span<byte> buffer, Neighbor neighbor) =>
        Encode(buffer, MessageType.NewNeighbor, MessageFlags.Request | MessageFlags.Ack | MessageFlags.Create | MessageFlags.Replace, neighbor);

    public static Span<byte> Delete(Span<byte> buffer, Neighbor neighbor) =>
        Encode(buffer, MessageType.DeleteNeighbor, MessageFlags.Request | MessageFlags.Ack, neighbor);

    /// <summary>A neighbour dump with strict checking must leave ifindex and state zero; we filter afterwards.</summary>
    public static Span<byte> Dump(Span<byte> buffer, byte family)
    {
        var message = new MessageWriter(buffer, MessageType.GetNeighbor, MessageFlags.Request | MessageFlags.Dump);
        message.WriteFixed(new NeighborMessageHeader { Family = family });
        return message.Finish();
    }

    private static Span<byte> Encode(Span<byte> buffer, MessageType type, MessageFlags flags, Neighbor neighbor)
    {
        var message = new MessageWriter(buffer, type, flags);
        message.WriteFixed(new NeighborMessageHeader
        {
            Family = KernelAddressFamily.From(neighbor.Address.AddressFamily),
            Index = neighbor.Index,
            State = (ushort)neighbor.State,
            Flags = (byte)neighbor.Flags,
        });
        var attributes = message.Attributes<NeighborAttribute>();
        attributes.WriteAddress(NeighborAttribute.Destination, neighbor.Address);
        if (neighbor.MacAddress is { } mac && type != MessageType.DeleteNeighbor)
            attributes.WriteMac(NeighborAttribute.LinkLayerAddress, mac);
        return message.Finish();
    }

    public static void Validate(Neighbor neighbor, bool needsMac)
    {
        ArgumentNullException.ThrowIfNull(neighbor);
        if (neighbor.Index <= 0) throw new ArgumentException($"neighbour {neighbor.Address}: link index {neighbor.Index} must be positive", nameof(neighbor));
        if (neighbor.Address is null || neighbor.Address.AddressFamily is not (System.Net.Sockets.AddressFamily.InterNetwork or System.Net.Sockets.AddressFamily.InterNetworkV6))
            throw new ArgumentException($"neighbour address {neighbor.Address} must be IPv4 or IPv6", nameof(neighbor));
        if (needsMac && neighbor.MacAddress is null)
            throw new ArgumentException($"neighbour {neighbor.Address} needs a MAC address", nameof(neighbor));
        if (neighbor.MacAddress is { } mac) LinkSpec.ValidateMac(mac, nameof(neighbor));
    }

    public static readonly ReplyDecoder<Neighbor> Decoder = (in ReceivedMessage message, out Neighbor neighbor) =>
    {
        neighbor = null!;
        if (message.Type != MessageType.NewNeighbor) return false;
        var header = message.FixedHeader<NeighborMessageHeader>();
        if (header.Family is not (KernelAddressFamily.Inet or KernelAddressFamily.Inet6)) return false;
        IPAddress? address = null;
        PhysicalAddress? mac = null;
        var reader = message.Attributes<NeighborMessageHeader, NeighborAttribute>();
        while (reader.Next(out var id, out var value))
        {
            if (id == NeighborAttribute.Destination) address = AttributeValue.Address(value);
            else if (id == NeighborAttribute.LinkLayerAddress && value.Length > 0) mac = AttributeValue.Mac(value);
        }
        if (address is null) return false;
        neighbor = new Neighbor(header.Index, address, mac) { State = (NeighborState)header.State, Flags = (NeighborFlags)header.Flags };
        return true;
    };
}
