using System.Runtime.InteropServices;
using Skein.Driver.Netlink.Wire;

namespace Skein.Driver.Netlink.Messages;

/// <summary>
/// Per-device IPv4 settings through IFLA_AF_SPEC → AF_INET → IFLA_INET_CONF. Setting sends one
/// nested attribute per IPV4_DEVCONF id (type = id, u32 value); the kernel reports them back as a
/// flat u32 array where element i is id i + 1.
/// </summary>
internal static class DeviceConfigurationMessages
{
    public static Span<byte> SetIPv4(Span<byte> buffer, int index, IPv4DeviceConf key, int value)
    {
        var message = new MessageWriter(buffer, MessageType.NewLink, MessageFlags.Request | MessageFlags.Ack);
        message.WriteFixed(new InterfaceInfoMessage { Index = index });
        var link = message.Attributes<LinkAttribute>();
        using (var families = link.BeginNest<AddressFamilySpecificAttribute>(LinkAttribute.AddressFamilySpecific))
        using (var inet = families.BeginNest<InetAttribute>(AddressFamilySpecificAttribute.Inet))
        using (var configuration = inet.BeginNest<InetConfigurationAttribute>(InetAttribute.Configuration))
        {
            configuration.WriteUInt32((InetConfigurationAttribute)(ushort)key, (uint)value);
        }
        return message.Finish();
    }

    public static Span<byte> SetIPv6AddressGenerationMode(Span<byte> buffer, int index, IPv6AddressGenerationMode mode)
    {
        var message = new MessageWriter(buffer, MessageType.NewLink, MessageFlags.Request | MessageFlags.Ack);
        message.WriteFixed(new InterfaceInfoMessage { Index = index });
        var link = message.Attributes<LinkAttribute>();
        using (var families = link.BeginNest<AddressFamilySpecificAttribute>(LinkAttribute.AddressFamilySpecific))
        using (var inet6 = families.BeginNest<Inet6Attribute>(AddressFamilySpecificAttribute.Inet6))
        {
            inet6.WriteUInt8(Inet6Attribute.AddressGenerationMode, (byte)mode);
        }
        return message.Finish();
    }

    /// <summary>The IPv6 address generation mode from an RTM_NEWLINK reply; null when the link has no IPv6 (disabled or no AF_INET6 data).</summary>
    public static IPv6AddressGenerationMode? ReadIPv6AddressGenerationMode(in ReceivedMessage message)
    {
        var reader = message.Attributes<InterfaceInfoMessage, LinkAttribute>();
        while (reader.Next(out var id, out var value))
        {
            if (id != LinkAttribute.AddressFamilySpecific) continue;
            var families = new AttributeReader<AddressFamilySpecificAttribute>(value);
            while (families.Next(out var family, out var familyValue))
            {
                if (family != AddressFamilySpecificAttribute.Inet6) continue;
                var inet6 = new AttributeReader<Inet6Attribute>(familyValue);
                while (inet6.Next(out var inet6Id, out var inet6Value))
                    if (inet6Id == Inet6Attribute.AddressGenerationMode)
                        return (IPv6AddressGenerationMode)AttributeValue.UInt8(inet6Value);
            }
        }
        return null;
    }

    /// <summary>Reads one IPv4 setting from an RTM_NEWLINK reply; null when the link has no IPv4 configuration.</summary>
    public static int? ReadIPv4(in ReceivedMessage message, IPv4DeviceConf key)
    {
        var reader = message.Attributes<InterfaceInfoMessage, LinkAttribute>();
        while (reader.Next(out var id, out var value))
        {
            if (id != LinkAttribute.AddressFamilySpecific) continue;
            var families = new AttributeReader<AddressFamilySpecificAttribute>(value);
            while (families.Next(out var family, out var familyValue))
            {
                if (family != AddressFamilySpecificAttribute.Inet) continue;
                var inet = new AttributeReader<InetAttribute>(familyValue);
                while (inet.Next(out var inetId, out var inetValue))
                {
                    if (inetId != InetAttribute.Configuration) continue;
                    var values = MemoryMarshal.Cast<byte, int>(inetValue);
                    int slot = (int)key - 1;
                    return slot < values.Length ? values[slot] : null;
                }
            }
        }
        return null;
    }
}
