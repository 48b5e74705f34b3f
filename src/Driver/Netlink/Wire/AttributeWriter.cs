using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Net;
using System.Net.NetworkInformation;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;

namespace Skein.Driver.Netlink.Wire;

/// <summary>
/// Writes netlink attributes (struct nlattr: u16 length, u16 type, value, padding to 4) whose ids
/// come from <typeparamref name="TId"/>. A nest is itself an AttributeWriter of the child id type;
/// disposing it patches the nest's length, so <c>using var data = info.BeginNest&lt;X&gt;(...)</c>
/// closes the nest at the end of the scope. Integers are host order unless the method says otherwise.
/// </summary>
internal ref struct AttributeWriter<TId> where TId : unmanaged, Enum
{
    public const ushort NestedFlag = 0x8000;       // NLA_F_NESTED
    private const int HeaderSize = 4;

    private readonly Span<byte> _buffer;
    private readonly ref int _length;
    private readonly int _nestStart;

    internal AttributeWriter(Span<byte> buffer, ref int length, int nestStart)
    {
        if (Unsafe.SizeOf<TId>() != sizeof(ushort))
            throw new InvalidOperationException($"{typeof(TId).Name} must be a ushort enum to be a netlink attribute id");
        _buffer = buffer;
        _length = ref length;
        _nestStart = nestStart;
    }

    public void Write(TId id, ReadOnlySpan<byte> value)
    {
        var destination = Reserve(id, value.Length, 0);
        value.CopyTo(destination);
    }

    public void WriteUInt8(TId id, byte value) => Reserve(id, 1, 0)[0] = value;

    public void WriteBool(TId id, bool value) => WriteUInt8(id, value ? (byte)1 : (byte)0);

    public void WriteUInt16(TId id, ushort value) => MemoryMarshal.Write(Reserve(id, 2, 0), in value);

    public void WriteUInt16BigEndian(TId id, ushort value) => BinaryPrimitives.WriteUInt16BigEndian(Reserve(id, 2, 0), value);

    public void WriteUInt32(TId id, uint value) => MemoryMarshal.Write(Reserve(id, 4, 0), in value);

    public void WriteInt32(TId id, int value) => MemoryMarshal.Write(Reserve(id, 4, 0), in value);

    /// <summary>A NUL-terminated string, as the kernel's NLA_STRING / NLA_NUL_STRING policies expect.</summary>
    public void WriteString(TId id, string value)
    {
        int byteCount = Encoding.UTF8.GetByteCount(value);
        var destination = Reserve(id, byteCount + 1, 0);
        Encoding.UTF8.GetBytes(value, destination);
        destination[byteCount] = 0;
    }

    /// <summary>
    /// A string without the terminating NUL: how iproute2 sends IFLA_INFO_KIND (an NLA_STRING, which
    /// the kernel accepts either way), kept so our bytes compare equal with what `ip` sends.
    /// </summary>
    public void WriteStringWithoutNul(TId id, string value)
    {
        var destination = Reserve(id, Encoding.UTF8.GetByteCount(value), 0);
        Encoding.UTF8.GetBytes(value, destination);
    }

    /// <summary>The address in network byte order (4 or 16 bytes).</summary>
    public void WriteAddress(TId id, IPAddress address)
    {
        int size = address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 4 : 16;
        if (!address.TryWriteBytes(Reserve(id, size, 0), out _))
            throw new ArgumentException($"cannot encode address {address}", nameof(address));
    }

    public void WriteMac(TId id, PhysicalAddress mac)
    {
        var bytes = mac.GetAddressBytes();
        Write(id, bytes);
    }

    /// <summary>A fixed struct inside a nest (e.g. the ifinfomsg at the start of VETH_INFO_PEER).</summary>
    public void WriteFixed<T>(in T value) where T : unmanaged
    {
        int size = NetlinkAlignment.Align(Unsafe.SizeOf<T>());
        var destination = _buffer.Slice(_length, size);
        destination.Clear();
        MemoryMarshal.Write(destination, in value);
        _length += size;
    }

    /// <summary>
    /// Opens a nested attribute whose children use <typeparamref name="TChild"/> ids. Set
    /// <paramref name="markNested"/> where the kernel looks at NLA_F_NESTED (IFLA_PROTINFO does).
    /// </summary>
    public AttributeWriter<TChild> BeginNest<TChild>(TId id, bool markNested = false) where TChild : unmanaged, Enum
    {
        int start = _length;
        ushort type = (ushort)(Unsafe.As<TId, ushort>(ref id) | (markNested ? NestedFlag : 0));
        var header = _buffer.Slice(start, HeaderSize);
        BinaryPrimitives.WriteUInt16LittleEndian(header, 0); // patched by Dispose
        MemoryMarshal.Write(header[2..], in type);
        _length = start + HeaderSize;
        return new AttributeWriter<TChild>(_buffer, ref _length, start);
    }

    /// <summary>Closes a nest by writing its final length; a no-op for the top level.</summary>
    public void Dispose()
    {
        if (_nestStart < 0) return;
        ushort length = checked((ushort)(_length - _nestStart));
        MemoryMarshal.Write(_buffer.Slice(_nestStart, 2), in length);
    }

    private Span<byte> Reserve(TId id, int valueLength, ushort typeFlags)
    {
        int start = _length;
        int attributeLength = HeaderSize + valueLength;
        int alignedLength = NetlinkAlignment.Align(attributeLength);
        if (start + alignedLength > _buffer.Length)
            throw new InvalidOperationException($"netlink message exceeds its {_buffer.Length}-byte buffer");
        var attribute = _buffer.Slice(start, alignedLength);
        attribute[attributeLength..].Clear();
        ushort length = checked((ushort)attributeLength);
        ushort type = (ushort)(Unsafe.As<TId, ushort>(ref id) | typeFlags);
        MemoryMarshal.Write(attribute, in length);
        MemoryMarshal.Write(attribute[2..], in type);
        _length = start + alignedLength;
        return attribute.Slice(HeaderSize, valueLength);
    }
}

/// <summary>
/// Builds one netlink message in a caller-supplied buffer: the nlmsghdr, the family's fixed header,
/// then attributes. <see cref="Finish"/> writes the total length; the socket fills in the sequence.
/// </summary>
internal ref struct MessageWriter
{
    private readonly Span<byte> _buffer;
    private int _length;

    public MessageWriter(Span<byte> buffer, MessageType type, MessageFlags flags)
    {
        _buffer = buffer;
        var header = new NetlinkMessageHeader { Type = (ushort)type, Flags = (ushort)flags };
        _buffer[..NetlinkMessageHeader.Size].Clear();
        MemoryMarshal.Write(_buffer, in header);
        _length = NetlinkMessageHeader.Size;
    }

    public readonly int Length => _length;

    public void WriteFixed<T>(in T value) where T : unmanaged
    {
        int size = NetlinkAlignment.Align(Unsafe.SizeOf<T>());
        var destination = _buffer.Slice(_length, size);
        destination.Clear();
        MemoryMarshal.Write(destination, in value);
        _length += size;
    }

    [UnscopedRef]
    public AttributeWriter<TId> Attributes<TId>() where TId : unmanaged, Enum => new(_buffer, ref _length, -1);

    public Span<byte> Finish()
    {
        uint length = (uint)_length;
        MemoryMarshal.Write(_buffer, in length);
        return _buffer[.._length];
    }
}
