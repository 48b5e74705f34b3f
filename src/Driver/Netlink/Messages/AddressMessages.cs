using System.Net;
using System.Net.Sockets;
using Skein.Driver.Netlink.Wire;

namespace Skein.Driver.Netlink.Messages;

/// <summary>RTM_NEWADDR / RTM_DELADDR / RTM_GETADDR.</summary>
internal static class AddressMessages
{
    public static Span<byte> Add(Span<byte> buffer, int index, IpPrefix address, AddressFlags flags) =>
        Encode(buffer, MessageType.NewAddress, MessageFlags.Request | MessageFlags.Ack | MessageFlags.Create | MessageFlags.Exclusive, index, address, flags);

    public static Span<byte> Delete(Span<byte> buffer, int index, IpPrefix address) =>
        Encode(buffer, MessageType.DeleteAddress, MessageFlags.Request | MessageFlags.Ack, index, address, AddressFlags.None);

    public static Span<byte> Dump(Span<byte> buffer, byte family)
    {
        var message = new MessageWriter(buffer, MessageType.GetAddress, MessageFlags.Request | MessageFlags.Dump);
        message.WriteFixed(new InterfaceAddressMessage { Family = family });
        return message.Finish();
    }

    /// <summary>
    /// As `ip address add`: IFA_LOCAL and IFA_ADDRESS both carry the address, IPv4 gets the computed
    /// broadcast (prefixes shorter than /31), loopback addresses get host scope, and flags above
    /// the 8 bits of ifa_flags travel in IFA_FLAGS.
    /// </summary>
    private static Span<byte> Encode(Span<byte> buffer, MessageType type, MessageFlags messageFlags, int index, IpPrefix address, AddressFlags flags)
    {
        var message = new MessageWriter(buffer, type, messageFlags);
        message.WriteFixed(new InterfaceAddressMessage
        {
            Family = KernelAddressFamily.From(address.Family),
            PrefixLength = (byte)address.PrefixLength,
            Flags = (byte)((uint)flags & 0xFF),
            Scope = (byte)(IPAddress.IsLoopback(address.Address) ? RouteScope.Host : RouteScope.Universe),
            Index = index,
        });
        var attributes = message.Attributes<AddressAttribute>();
        attributes.WriteAddress(AddressAttribute.Local, address.Address);
        attributes.WriteAddress(AddressAttribute.Address, address.Address);
        if (type == MessageType.NewAddress && address.IsIPv4 && address.PrefixLength < 31)
            attributes.WriteAddress(AddressAttribute.Broadcast, Broadcast(address));
        if ((uint)flags > 0xFF) attributes.WriteUInt32(AddressAttribute.Flags, (uint)flags);
        return message.Finish();
    }

    internal static IPAddress Broadcast(IpPrefix prefix)
    {
        Span<byte> bytes = stackalloc byte[4];
        prefix.Address.TryWriteBytes(bytes, out _);
        for (int bit = prefix.PrefixLength; bit < 32; bit++)
            bytes[bit / 8] |= (byte)(0x80 >> (bit % 8));
        return new IPAddress(bytes);
    }

    public static readonly ReplyDecoder<AddressInfo> Decoder = (in ReceivedMessage message, out AddressInfo address) =>
    {
        address = null!;
        if (message.Type != MessageType.NewAddress) return false;
        var header = message.FixedHeader<InterfaceAddressMessage>();
        if (header.Family is not (KernelAddressFamily.Inet or KernelAddressFamily.Inet6)) return false;
        IPAddress? local = null, peer = null;
        string? label = null;
        uint flags = header.Flags;
        var reader = message.Attributes<InterfaceAddressMessage, AddressAttribute>();
        while (reader.Next(out var id, out var value))
        {
            switch (id)
            {
                case AddressAttribute.Local: local = AttributeValue.Address(value); break;
                case AddressAttribute.Address: peer = AttributeValue.Address(value); break;
                case AddressAttribute.Label: label = AttributeValue.String(value); break;
                case AddressAttribute.Flags: flags = AttributeValue.UInt32(value); break;
            }
        }
        // IPv6 sends only IFA_ADDRESS; IPv4 sends IFA_LOCAL and a differing IFA_ADDRESS only for a peer.
        var own = local ?? peer;
        if (own is null) return false;
        address = new AddressInfo(header.Index, new IpPrefix(own, header.PrefixLength), (RouteScope)header.Scope, (AddressFlags)flags)
        {
            Label = label,
            Peer = local is not null && peer is not null && !peer.Equals(local) ? peer : null,
        };
        return true;
    };

    public static bool Matches(AddressInfo address, int? index, AddressFamily? family) =>
        (index is null || address.Index == index) && (family is null || address.Address.Family == family);
}
