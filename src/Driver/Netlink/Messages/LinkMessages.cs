using System.Net.NetworkInformation;
using Skein.Driver.Netlink.Wire;

namespace Skein.Driver.Netlink.Messages;

/// <summary>RTM_NEWLINK / RTM_DELLINK / RTM_GETLINK: encoding of every link request and decoding of link replies.</summary>
internal static class LinkMessages
{
    private const MessageFlags Change = MessageFlags.Request | MessageFlags.Ack;

    /// <summary>Create: CREATE|EXCL so an existing link of that name is an error, never silently reused.</summary>
    public static Span<byte> Add(Span<byte> buffer, LinkSpec spec)
    {
        var message = new MessageWriter(buffer, MessageType.NewLink, Change | MessageFlags.Create | MessageFlags.Exclusive);
        uint upFlag = spec.Up ? DeviceFlags.Up : 0;
        message.WriteFixed(new InterfaceInfoMessage { Flags = upFlag, Change = upFlag });
        var link = message.Attributes<LinkAttribute>();
        link.WriteString(LinkAttribute.Name, spec.Name);
        if (spec.Mtu is { } mtu) link.WriteUInt32(LinkAttribute.Mtu, (uint)mtu);
        if (spec.MacAddress is { } mac) link.WriteMac(LinkAttribute.Address, mac);
        if (spec.MasterIndex is { } master) link.WriteUInt32(LinkAttribute.Master, (uint)master);
        spec.WriteLinkAttributes(link);
        using (var info = link.BeginNest<LinkInfoAttribute>(LinkAttribute.LinkInfo))
        {
            info.WriteStringWithoutNul(LinkInfoAttribute.Kind, spec.Kind);
            spec.WriteInfoData(info);
        }
        return message.Finish();
    }

    public static Span<byte> Delete(Span<byte> buffer, int index)
    {
        var message = new MessageWriter(buffer, MessageType.DeleteLink, Change);
        message.WriteFixed(new InterfaceInfoMessage { Index = index });
        return message.Finish();
    }

    public static Span<byte> Delete(Span<byte> buffer, string name)
    {
        var message = new MessageWriter(buffer, MessageType.DeleteLink, Change);
        message.WriteFixed(new InterfaceInfoMessage());
        message.Attributes<LinkAttribute>().WriteString(LinkAttribute.Name, name);
        return message.Finish();
    }

    public static Span<byte> Get(Span<byte> buffer, int index, byte family = KernelAddressFamily.Unspecified)
    {
        var message = new MessageWriter(buffer, MessageType.GetLink, MessageFlags.Request);
        message.WriteFixed(new InterfaceInfoMessage { Family = family, Index = index });
        return message.Finish();
    }

    public static Span<byte> Get(Span<byte> buffer, string name)
    {
        var message = new MessageWriter(buffer, MessageType.GetLink, MessageFlags.Request);
        message.WriteFixed(new InterfaceInfoMessage());
        message.Attributes<LinkAttribute>().WriteString(LinkAttribute.Name, name);
        return message.Finish();
    }

    public static Span<byte> Dump(Span<byte> buffer, byte family = KernelAddressFamily.Unspecified)
    {
        var message = new MessageWriter(buffer, MessageType.GetLink, MessageFlags.Request | MessageFlags.Dump);
        message.WriteFixed(new InterfaceInfoMessage { Family = family });
        return message.Finish();
    }

    /// <summary>Changes IFF_UP only: ifi_change masks which flags the kernel applies.</summary>
    public static Span<byte> SetUp(Span<byte> buffer, int index, bool up)
    {
        var message = new MessageWriter(buffer, MessageType.NewLink, Change);
        message.WriteFixed(new InterfaceInfoMessage { Index = index, Flags = up ? DeviceFlags.Up : 0, Change = DeviceFlags.Up });
        return message.Finish();
    }

    public static Span<byte> SetMtu(Span<byte> buffer, int index, int mtu) =>
        SetUInt32(buffer, index, LinkAttribute.Mtu, (uint)mtu);

    /// <summary>Master 0 releases the link from its master.</summary>
    public static Span<byte> SetMaster(Span<byte> buffer, int index, int masterIndex) =>
        SetUInt32(buffer, index, LinkAttribute.Master, (uint)masterIndex);

    public static Span<byte> SetNamespace(Span<byte> buffer, int index, int namespaceFd) =>
        SetUInt32(buffer, index, LinkAttribute.NamespaceFd, (uint)namespaceFd);

    public static Span<byte> SetMac(Span<byte> buffer, int index, PhysicalAddress mac)
    {
        var message = new MessageWriter(buffer, MessageType.NewLink, Change);
        message.WriteFixed(new InterfaceInfoMessage { Index = index });
        message.Attributes<LinkAttribute>().WriteMac(LinkAttribute.Address, mac);
        return message.Finish();
    }

    public static Span<byte> Rename(Span<byte> buffer, int index, string newName)
    {
        var message = new MessageWriter(buffer, MessageType.NewLink, Change);
        message.WriteFixed(new InterfaceInfoMessage { Index = index });
        message.Attributes<LinkAttribute>().WriteString(LinkAttribute.Name, newName);
        return message.Finish();
    }

    private static Span<byte> SetUInt32(Span<byte> buffer, int index, LinkAttribute attribute, uint value)
    {
        var message = new MessageWriter(buffer, MessageType.NewLink, Change);
        message.WriteFixed(new InterfaceInfoMessage { Index = index });
        message.Attributes<LinkAttribute>().WriteUInt32(attribute, value);
        return message.Finish();
    }

    public static readonly ReplyDecoder<Link> Decoder = (in ReceivedMessage message, out Link link) =>
    {
        link = null!;
        if (message.Type != MessageType.NewLink) return false;
        link = Decode(message);
        return true;
    };

    public static Link Decode(in ReceivedMessage message)
    {
        var header = message.FixedHeader<InterfaceInfoMessage>();
        string name = "";
        int mtu = 0;
        PhysicalAddress? mac = null;
        int? master = null, parent = null, parentNamespace = null;
        byte operState = 0;
        string? kind = null, portKind = null;
        ReadOnlySpan<byte> kindData = default;

        var reader = message.Attributes<InterfaceInfoMessage, LinkAttribute>();
        while (reader.Next(out var id, out var value))
        {
            switch (id)
            {
                case LinkAttribute.Name: name = AttributeValue.String(value); break;
                case LinkAttribute.Mtu: mtu = (int)AttributeValue.UInt32(value); break;
                case LinkAttribute.Address: mac = value.Length == 0 ? null : AttributeValue.Mac(value); break;
                case LinkAttribute.Master: master = NonZero(AttributeValue.UInt32(value)); break;
                case LinkAttribute.Link: parent = (int)AttributeValue.UInt32(value); break;
                case LinkAttribute.LinkNamespaceId: parentNamespace = AttributeValue.Int32(value); break;
                case LinkAttribute.OperationalState: operState = AttributeValue.UInt8(value); break;
                case LinkAttribute.LinkInfo:
                    var info = new AttributeReader<LinkInfoAttribute>(value);
                    while (info.Next(out var infoId, out var infoValue))
                    {
                        if (infoId == LinkInfoAttribute.Kind) kind = AttributeValue.String(infoValue);
                        else if (infoId == LinkInfoAttribute.Data) kindData = infoValue;
                        else if (infoId == LinkInfoAttribute.PortKind) portKind = AttributeValue.String(infoValue);
                    }
                    break;
            }
        }

        bool up = (header.Flags & DeviceFlags.Up) != 0;
        LinkSpec? details = kind switch
        {
            "bridge" => BridgeSpec.Decode(name, kindData),
            "vxlan" => VxlanSpec.Decode(name, kindData),
            "veth" => VethSpec.Decode(name, parent),
            "dummy" => new DummySpec(name),
            "macvlan" => MacvlanSpec.Decode(name, parent, kindData),
            _ => null,
        };
        details = details is null ? null : details with { Mtu = mtu, MacAddress = mac, MasterIndex = master, Up = up };

        return new Link(header.Index, name, kind, mtu, mac, master, up, details)
        {
            ParentIndex = parent is { } p && p != header.Index ? p : null,
            ParentNamespaceId = parentNamespace,
            PortKind = portKind,
            Flags = header.Flags,
            OperationalState = operState,
        };
    }

    private static int? NonZero(uint value) => value == 0 ? null : (int)value;
}
