using System.Buffers.Binary;
using System.Net;
using System.Net.NetworkInformation;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;

namespace Skein.Driver.Netlink.Wire;

/// <summary>
/// Walks the attributes of one nest level. Ids are masked with NLA_TYPE_MASK, so the NESTED and
/// NET_BYTEORDER bits never hide an attribute. A length that runs past the buffer is malformed.
/// </summary>
internal ref struct AttributeReader<TId> where TId : unmanaged, Enum
{
    private const ushort TypeMask = 0x3FFF;
    private ReadOnlySpan<byte> _remaining;

    public AttributeReader(ReadOnlySpan<byte> attributes)
    {
        if (Unsafe.SizeOf<TId>() != sizeof(ushort))
            throw new InvalidOperationException($"{typeof(TId).Name} must be a ushort enum to be a netlink attribute id");
        _remaining = attributes;
    }

    public bool Next(out TId id, out ReadOnlySpan<byte> value)
    {
        // Trailing bytes shorter than an attribute header are padding.
        if (_remaining.Length < 4)
        {
            id = default;
            value = default;
            return false;
        }
        ushort length = MemoryMarshal.Read<ushort>(_remaining);
        ushort type = (ushort)(MemoryMarshal.Read<ushort>(_remaining[2..]) & TypeMask);
        if (length < 4 || length > _remaining.Length)
            throw new NetlinkTransportException("decode", $"malformed attribute {type} of length {length} with {_remaining.Length} bytes left");
        id = Unsafe.As<ushort, TId>(ref type);
        value = _remaining[4..length];
        int next = Math.Min(NetlinkAlignment.Align(length), _remaining.Length);
        _remaining = _remaining[next..];
        return true;
    }
}

/// <summary>Decoding of attribute values; each checks the size it needs so bad input fails loudly.</summary>
internal static class AttributeValue
{
    public static byte UInt8(ReadOnlySpan<byte> value) => Expect(value, 1)[0];

    public static bool Bool(ReadOnlySpan<byte> value) => UInt8(value) != 0;

    public static ushort UInt16(ReadOnlySpan<byte> value) => MemoryMarshal.Read<ushort>(Expect(value, 2));

    public static ushort UInt16BigEndian(ReadOnlySpan<byte> value) => BinaryPrimitives.ReadUInt16BigEndian(Expect(value, 2));

    public static uint UInt32(ReadOnlySpan<byte> value) => MemoryMarshal.Read<uint>(Expect(value, 4));

    public static int Int32(ReadOnlySpan<byte> value) => MemoryMarshal.Read<int>(Expect(value, 4));

    public static string String(ReadOnlySpan<byte> value)
    {
        int end = value.IndexOf((byte)0);
        return Encoding.UTF8.GetString(end < 0 ? value : value[..end]);
    }

    public static IPAddress Address(ReadOnlySpan<byte> value) => value.Length is 4 or 16
        ? new IPAddress(value)
        : throw new NetlinkTransportException("decode", $"an address attribute has {value.Length} bytes, expected 4 or 16");

    public static PhysicalAddress Mac(ReadOnlySpan<byte> value) => new(value.ToArray());

    public static T Fixed<T>(ReadOnlySpan<byte> value) where T : unmanaged =>
        MemoryMarshal.Read<T>(Expect(value, Unsafe.SizeOf<T>()));

    private static ReadOnlySpan<byte> Expect(ReadOnlySpan<byte> value, int size) => value.Length >= size
        ? value
        : throw new NetlinkTransportException("decode", $"attribute value has {value.Length} bytes, expected {size}");
}

/// <summary>One received netlink message: its header and the bytes after it.</summary>
internal readonly ref struct ReceivedMessage
{
    public ReceivedMessage(NetlinkMessageHeader header, ReadOnlySpan<byte> payload)
    {
        Header = header;
        Payload = payload;
    }

    public NetlinkMessageHeader Header { get; }
    public MessageType Type => (MessageType)Header.Type;
    public MessageFlags Flags => (MessageFlags)Header.Flags;
    public ReadOnlySpan<byte> Payload { get; }

    /// <summary>The family header at the start of the payload.</summary>
    public T FixedHeader<T>() where T : unmanaged => AttributeValue.Fixed<T>(Payload);

    /// <summary>The attributes after a fixed header of type <typeparamref name="THeader"/>.</summary>
    public AttributeReader<TId> Attributes<THeader, TId>() where THeader : unmanaged where TId : unmanaged, Enum
    {
        int offset = NetlinkAlignment.Align(Unsafe.SizeOf<THeader>());
        return new AttributeReader<TId>(offset <= Payload.Length ? Payload[offset..] : default);
    }

    /// <summary>Splits a datagram into messages; throws on a header that does not fit.</summary>
    public static int Next(ReadOnlySpan<byte> datagram, out ReceivedMessage message)
    {
        if (datagram.Length < NetlinkMessageHeader.Size)
            throw new NetlinkTransportException("receive", $"truncated message header ({datagram.Length} bytes)");
        var header = MemoryMarshal.Read<NetlinkMessageHeader>(datagram);
        if (header.Length < NetlinkMessageHeader.Size || header.Length > datagram.Length)
            throw new NetlinkTransportException("receive", $"message length {header.Length} does not fit the {datagram.Length} bytes received");
        message = new ReceivedMessage(header, datagram[NetlinkMessageHeader.Size..(int)header.Length]);
        return Math.Min(NetlinkAlignment.Align((int)header.Length), datagram.Length);
    }
}
