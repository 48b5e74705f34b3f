using System.Buffers.Binary;
using System.Net.NetworkInformation;
using System.Runtime.InteropServices;
using Skein.Driver.Netlink.Wire;

namespace Skein.Driver.Netlink.Messages;

/// <summary>
/// RTM_{NEW,DEL,GET}QDISC for the clsact qdisc and RTM_{NEW,DEL,GET}TFILTER for u32 destination-MAC filters with a
/// mirred redirect: the bytes `tc qdisc add dev D [ingress_block B] clsact` and
/// `tc filter add {dev D ingress | block B} protocol all pref P u32 match ether dst M action mirred egress redirect dev T`
/// send (linux/pkt_sched.h, pkt_cls.h, tc_act/tc_mirred.h).
/// </summary>
internal static class TrafficControlMessages
{
    public const uint ClsactParent = 0xFFFF_FFF1;     // TC_H_CLSACT (= TC_H_INGRESS)
    public const uint ClsactHandle = 0xFFFF_0000;     // TC_H_MAKE(TC_H_CLSACT, 0)
    public const uint IngressParent = 0xFFFF_FFF2;    // TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS)
    public const string Clsact = "clsact";
    public const string U32 = "u32";
    public const string Mirred = "mirred";

    // The destination MAC is the first 6 bytes of the Ethernet header, 14 bytes before the network header where u32
    // offsets start at ingress. Keys are 32-bit aligned: bytes 0-1 sit in the low half of the word at -16, bytes 2-5
    // fill the word at -12 (what tc's "match ether dst" writes).
    private const int MacHighOffset = -16;
    private const int MacLowOffset = -12;
    private const uint MacHighMask = 0x0000_FFFF;
    private const uint MacLowMask = 0xFFFF_FFFF;
    private const uint LastByteMask = 0x0000_00FF;

    public static Span<byte> AddClsact(Span<byte> buffer, int index, uint ingressBlock)
    {
        var message = new MessageWriter(buffer, MessageType.NewQdisc, MessageFlags.Request | MessageFlags.Ack | MessageFlags.Create | MessageFlags.Exclusive);
        message.WriteFixed(new TrafficControlMessageHeader { Index = index, Handle = ClsactHandle, Parent = ClsactParent });
        var attributes = message.Attributes<TrafficControlAttribute>();
        attributes.WriteString(TrafficControlAttribute.Kind, Clsact);
        if (ingressBlock != 0)
            attributes.WriteUInt32(TrafficControlAttribute.IngressBlock, ingressBlock);
        return message.Finish();
    }

    public static Span<byte> DeleteClsact(Span<byte> buffer, int index)
    {
        var message = new MessageWriter(buffer, MessageType.DeleteQdisc, MessageFlags.Request | MessageFlags.Ack);
        message.WriteFixed(new TrafficControlMessageHeader { Index = index, Handle = ClsactHandle, Parent = ClsactParent });
        message.Attributes<TrafficControlAttribute>().WriteString(TrafficControlAttribute.Kind, Clsact);
        return message.Finish();
    }

    /// <summary>A qdisc dump; the kernel may report every device, so callers filter by index.</summary>
    public static Span<byte> DumpQdiscs(Span<byte> buffer, int index)
    {
        var message = new MessageWriter(buffer, MessageType.GetQdisc, MessageFlags.Request | MessageFlags.Dump);
        message.WriteFixed(new TrafficControlMessageHeader { Index = index });
        return message.Finish();
    }

    /// <summary>
    /// A u32 hash table of <paramref name="divisor"/> buckets (`tc filter add … handle T: u32 divisor N`); nodes reach
    /// it only through a link node.
    /// </summary>
    public static Span<byte> AddHashTable(Span<byte> buffer, FilterAttachment at, ushort priority, uint table, uint divisor)
    {
        var message = new MessageWriter(buffer, MessageType.NewFilter, MessageFlags.Request | MessageFlags.Ack | MessageFlags.Create | MessageFlags.Exclusive);
        message.WriteFixed(Header(at, priority, MacRedirectFilter.AllProtocols, table));
        var attributes = message.Attributes<TrafficControlAttribute>();
        attributes.WriteString(TrafficControlAttribute.Kind, U32);
        using (var options = attributes.BeginNest<U32Attribute>(TrafficControlAttribute.Options))
            options.WriteUInt32(U32Attribute.Divisor, divisor);
        return message.Finish();
    }

    /// <summary>
    /// A node in the root table that matches every frame and continues in <paramref name="table"/> at the bucket of the
    /// destination MAC's last byte (`u32 ht 800:: match u8 0 0 hashkey mask 0x000000ff at -12 link T:`).
    /// </summary>
    public static Span<byte> AddMacHashLink(Span<byte> buffer, FilterAttachment at, ushort priority, uint table)
    {
        var message = new MessageWriter(buffer, MessageType.NewFilter, MessageFlags.Request | MessageFlags.Ack | MessageFlags.Create | MessageFlags.Exclusive);
        message.WriteFixed(Header(at, priority, MacRedirectFilter.AllProtocols, 0));
        var attributes = message.Attributes<TrafficControlAttribute>();
        attributes.WriteString(TrafficControlAttribute.Kind, U32);
        using (var options = attributes.BeginNest<U32Attribute>(TrafficControlAttribute.Options))
        {
            options.WriteUInt32(U32Attribute.Link, table);
            Span<byte> selector = stackalloc byte[U32Selector.Size + U32Key.Size];
            selector.Clear();
            var header = new U32Selector { KeyCount = 1, HashOffset = MacLowOffset, HashMask = BigEndian(LastByteMask) };
            MemoryMarshal.Write(selector, in header);
            options.Write(U32Attribute.Selector, selector);
        }
        return message.Finish();
    }

    /// <summary>Deletes every filter of one priority (the whole u32 classifier, its tables included).</summary>
    public static Span<byte> DeletePriority(Span<byte> buffer, FilterAttachment at, ushort priority, ushort protocol)
    {
        var message = new MessageWriter(buffer, MessageType.DeleteFilter, MessageFlags.Request | MessageFlags.Ack);
        message.WriteFixed(Header(at, priority, protocol, 0));
        return message.Finish();
    }

    /// <summary>
    /// A destination-MAC node; with a nonzero <paramref name="hashTable"/> it goes into that table's bucket of the MAC's
    /// last byte (TCA_U32_HASH), where a link node made by <see cref="AddMacHashLink"/> finds it.
    /// </summary>
    public static Span<byte> AddMacRedirect(Span<byte> buffer, FilterAttachment at, MacRedirectFilter filter, uint hashTable = 0)
    {
        var message = new MessageWriter(buffer, MessageType.NewFilter, MessageFlags.Request | MessageFlags.Ack | MessageFlags.Create | MessageFlags.Exclusive);
        message.WriteFixed(Header(at, filter.Priority, filter.Protocol, filter.Handle));
        var attributes = message.Attributes<TrafficControlAttribute>();
        attributes.WriteString(TrafficControlAttribute.Kind, U32);
        using (var options = attributes.BeginNest<U32Attribute>(TrafficControlAttribute.Options))
        {
            Span<byte> selector = stackalloc byte[U32Selector.Size + 2 * U32Key.Size];
            WriteMacSelector(selector, filter.DestinationMac!);
            if (hashTable != 0)
                options.WriteUInt32(U32Attribute.Hash, MacRedirectFilter.TableOf(hashTable) | (uint)filter.DestinationMac!.GetAddressBytes()[5] << 12);
            options.Write(U32Attribute.Selector, selector);
            using var actions = options.BeginNest<ActionSlot>(U32Attribute.Actions);
            using var action = actions.BeginNest<ActionAttribute>(ActionSlot.First);
            action.WriteString(ActionAttribute.Kind, Mirred);
            using var mirred = action.BeginNest<MirredAttribute>(ActionAttribute.Options);
            var parameters = new MirredParameters
            {
                Action = MirredParameters.ActionStolen,
                MirredAction = MirredParameters.EgressRedirect,
                TargetIndex = (uint)filter.TargetIndex!.Value,
            };
            Span<byte> raw = stackalloc byte[MirredParameters.Size];
            MemoryMarshal.Write(raw, in parameters);
            mirred.Write(MirredAttribute.Parameters, raw);
        }
        return message.Finish();
    }

    /// <summary>The kernel finds a filter by priority, protocol and handle, and checks the kind.</summary>
    public static Span<byte> DeleteFilter(Span<byte> buffer, FilterAttachment at, MacRedirectFilter filter)
    {
        var message = new MessageWriter(buffer, MessageType.DeleteFilter, MessageFlags.Request | MessageFlags.Ack);
        message.WriteFixed(Header(at, filter.Priority, filter.Protocol, filter.Handle));
        message.Attributes<TrafficControlAttribute>().WriteString(TrafficControlAttribute.Kind, filter.Kind);
        return message.Finish();
    }

    public static Span<byte> DumpFilters(Span<byte> buffer, FilterAttachment at)
    {
        var message = new MessageWriter(buffer, MessageType.GetFilter, MessageFlags.Request | MessageFlags.Dump);
        message.WriteFixed(Header(at, 0, 0, 0) with { Info = 0 });
        return message.Finish();
    }

    public static void Validate(FilterAttachment at, MacRedirectFilter filter)
    {
        ArgumentNullException.ThrowIfNull(filter);
        if (at == default) throw new ArgumentException("a filter needs a device ingress or a block to attach to", nameof(at));
        if (filter.DestinationMac is null) throw new ArgumentException("a MAC redirect needs a destination MAC", nameof(filter));
        LinkSpec.ValidateMac(filter.DestinationMac, nameof(filter));
        if ((filter.DestinationMac.GetAddressBytes()[0] & 1) != 0)
            throw new ArgumentException($"a MAC redirect matches one unicast destination; {filter.DestinationMac} is a group address", nameof(filter));
        if (filter.TargetIndex is not > 0) throw new ArgumentException($"redirect target link index {filter.TargetIndex} must be positive", nameof(filter));
        if (filter.Priority == 0) throw new ArgumentException("filter priority 0 asks the kernel to choose one; give 1..65535", nameof(filter));
    }

    private static TrafficControlMessageHeader Header(FilterAttachment at, ushort priority, ushort protocol, uint handle) => new()
    {
        Index = at.IsBlock ? TrafficControlMessageHeader.MagicBlockIndex : at.DeviceIndex,
        Parent = at.IsBlock ? at.BlockIndex : IngressParent,
        Handle = handle,
        Info = ((uint)priority << 16) | BinaryPrimitives.ReverseEndianness(protocol),
    };

    private static void WriteMacSelector(Span<byte> destination, PhysicalAddress mac)
    {
        var bytes = mac.GetAddressBytes();
        var selector = new U32Selector { Flags = U32Selector.Terminal, KeyCount = 2 };
        MemoryMarshal.Write(destination, in selector);
        var high = new U32Key
        {
            Mask = BigEndian(MacHighMask),
            Value = BigEndian((uint)(bytes[0] << 8 | bytes[1])),
            Offset = MacHighOffset,
        };
        var low = new U32Key
        {
            Mask = BigEndian(MacLowMask),
            Value = BigEndian(BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(2))),
            Offset = MacLowOffset,
        };
        MemoryMarshal.Write(destination[U32Selector.Size..], in high);
        MemoryMarshal.Write(destination[(U32Selector.Size + U32Key.Size)..], in low);
    }

    private static uint BigEndian(uint value) => BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(value) : value;

    public static readonly ReplyDecoder<ClsactQdisc> QdiscDecoder = (in ReceivedMessage message, out ClsactQdisc qdisc) =>
    {
        qdisc = null!;
        if (message.Type != MessageType.NewQdisc) return false;
        var header = message.FixedHeader<TrafficControlMessageHeader>();
        string? kind = null;
        uint block = 0;
        var reader = message.Attributes<TrafficControlMessageHeader, TrafficControlAttribute>();
        while (reader.Next(out var id, out var value))
        {
            if (id == TrafficControlAttribute.Kind) kind = AttributeValue.String(value);
            else if (id == TrafficControlAttribute.IngressBlock) block = AttributeValue.UInt32(value);
        }
        if (kind != Clsact) return false;
        qdisc = new ClsactQdisc(header.Index, block);
        return true;
    };

    /// <summary>
    /// Decodes the filters of a dump. A u32 priority also reports its classifier head and hash table (no selector):
    /// those are skipped. A filter of another shape comes back with a null MAC or target.
    /// </summary>
    public static readonly ReplyDecoder<MacRedirectFilter> FilterDecoder = (in ReceivedMessage message, out MacRedirectFilter filter) =>
    {
        filter = null!;
        if (message.Type != MessageType.NewFilter) return false;
        var header = message.FixedHeader<TrafficControlMessageHeader>();
        string? kind = null;
        PhysicalAddress? mac = null;
        int? target = null;
        uint? divisor = null, link = null;
        bool hasSelector = false, hashesLastMacByte = false;
        var reader = message.Attributes<TrafficControlMessageHeader, TrafficControlAttribute>();
        while (reader.Next(out var id, out var value))
        {
            if (id == TrafficControlAttribute.Kind)
            {
                kind = AttributeValue.String(value);
            }
            else if (id == TrafficControlAttribute.Options && kind == U32)
            {
                var options = new AttributeReader<U32Attribute>(value);
                while (options.Next(out var option, out var optionValue))
                {
                    if (option == U32Attribute.Selector)
                    {
                        hasSelector = true;
                        mac = DecodeMacSelector(optionValue);
                        hashesLastMacByte = IsLastMacByteHash(optionValue);
                    }
                    else if (option == U32Attribute.Divisor)
                    {
                        divisor = AttributeValue.UInt32(optionValue);
                    }
                    else if (option == U32Attribute.Link)
                    {
                        link = AttributeValue.UInt32(optionValue);
                    }
                    else if (option == U32Attribute.Actions)
                    {
                        target = DecodeRedirectTarget(optionValue);
                    }
                }
            }
        }
        // The classifier's head reports handle 0; a table reports a divisor and no selector.
        if (kind is null || header.Handle == 0 || kind == U32 && !hasSelector && divisor is null) return false;
        filter = new MacRedirectFilter(mac, target)
        {
            Priority = (ushort)(header.Info >> 16),
            Protocol = BinaryPrimitives.ReverseEndianness((ushort)header.Info),
            Handle = header.Handle,
            Kind = kind,
            Divisor = hasSelector ? null : divisor,
            LinkTo = link,
            HashesLastMacByte = link is not null && hashesLastMacByte,
        };
        return true;
    };

    /// <summary>The MAC when the selector is exactly skein's two destination-MAC keys, else null.</summary>
    internal static PhysicalAddress? DecodeMacSelector(ReadOnlySpan<byte> value)
    {
        if (value.Length < U32Selector.Size) return null;
        var selector = MemoryMarshal.Read<U32Selector>(value);
        if (selector.KeyCount != 2 || (selector.Flags & U32Selector.Terminal) == 0 || value.Length < U32Selector.Size + 2 * U32Key.Size)
            return null;
        var high = MemoryMarshal.Read<U32Key>(value[U32Selector.Size..]);
        var low = MemoryMarshal.Read<U32Key>(value[(U32Selector.Size + U32Key.Size)..]);
        if (high.Offset != MacHighOffset || BigEndian(high.Mask) != MacHighMask || high.OffsetMask != 0
            || low.Offset != MacLowOffset || BigEndian(low.Mask) != MacLowMask || low.OffsetMask != 0)
            return null;
        var bytes = new byte[6];
        BinaryPrimitives.WriteUInt16BigEndian(bytes, (ushort)BigEndian(high.Value));
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(2), BigEndian(low.Value));
        return new PhysicalAddress(bytes);
    }

    /// <summary>True for skein's link selector: one match-all key, bucket from the low byte of the word at -12.</summary>
    internal static bool IsLastMacByteHash(ReadOnlySpan<byte> value)
    {
        if (value.Length < U32Selector.Size + U32Key.Size) return false;
        var selector = MemoryMarshal.Read<U32Selector>(value);
        var key = MemoryMarshal.Read<U32Key>(value[U32Selector.Size..]);
        return selector.KeyCount == 1 && selector.HashOffset == MacLowOffset && BigEndian(selector.HashMask) == LastByteMask
            && key.Mask == 0 && key.OffsetMask == 0;
    }

    /// <summary>The target of a lone mirred egress redirect, else null.</summary>
    internal static int? DecodeRedirectTarget(ReadOnlySpan<byte> actionList)
    {
        int? target = null;
        int count = 0;
        var slots = new AttributeReader<ActionSlot>(actionList);
        while (slots.Next(out _, out var slot))
        {
            count++;
            string? kind = null;
            MirredParameters? parameters = null;
            var action = new AttributeReader<ActionAttribute>(slot);
            while (action.Next(out var id, out var value))
            {
                if (id == ActionAttribute.Kind)
                {
                    kind = AttributeValue.String(value);
                }
                else if (id == ActionAttribute.Options)
                {
                    var mirred = new AttributeReader<MirredAttribute>(value);
                    while (mirred.Next(out var mirredId, out var mirredValue))
                        if (mirredId == MirredAttribute.Parameters)
                            parameters = AttributeValue.Fixed<MirredParameters>(mirredValue);
                }
            }
            if (kind == Mirred && parameters is { MirredAction: MirredParameters.EgressRedirect } p)
                target = (int)p.TargetIndex;
        }
        return count == 1 ? target : null;
    }
}
