using CsCheck;
using Skein.Driver.Netlink;
using Skein.Driver.Netlink.Wire;
using static Skein.Driver.Tests.Netlink.WireBytes;

namespace Skein.Driver.Tests.Netlink;

/// <summary>Alignment, nesting and malformed-input behaviour of the attribute writer and reader.</summary>
public class AttributeWireTests
{
    private enum Outer : ushort { A = 1, B = 2, Nest = 3 }
    private enum Inner : ushort { X = 1, Y = 2, Deeper = 3 }
    private enum Innermost : ushort { Z = 7 }

    private static byte[] Write(Action<AttributeWriter<Outer>> write)
    {
        var buffer = new byte[512];
        int length = 0;
        var writer = new AttributeWriter<Outer>(buffer, ref length, -1);
        write(writer);
        return buffer[..length];
    }

    [Theory]
    [InlineData(0, "04000100")]
    [InlineData(1, "05000100 aa000000")]
    [InlineData(2, "06000100 aaaa0000")]
    [InlineData(3, "07000100 aaaaaa00")]
    [InlineData(4, "08000100 aaaaaaaa")]
    [InlineData(5, "09000100 aaaaaaaa aa000000")]
    public void Length_excludes_padding_and_padding_is_zero(int valueLength, string expected) =>
        Equal(expected, Write(w => w.Write(Outer.A, Enumerable.Repeat((byte)0xaa, valueLength).ToArray())));

    [Fact]
    public void Nested_lengths_are_patched_on_dispose_including_unaligned_children() => Equal(
        "1c000300" +            // Nest: 28 = 4 + 8 (X) + 16 (Deeper)
        "05000100 01000000" +   //   X u8
        "10000300" +            //   Deeper: 16 = 4 + 12
        "0b000700 61626364 65666700", //   Z "abcdefg" (11 bytes, no NUL) + 1 pad
        Write(w =>
        {
            using var nest = w.BeginNest<Inner>(Outer.Nest);
            nest.WriteUInt8(Inner.X, 1);
            using var deeper = nest.BeginNest<Innermost>(Inner.Deeper);
            deeper.WriteStringWithoutNul(Innermost.Z, "abcdefg");
        }));

    [Fact]
    public void Attributes_after_a_closed_nest_land_at_the_outer_level() => Equal(
        "0c000380 08000200 07000000 08000200 09000000",
        Write(w =>
        {
            using (var nest = w.BeginNest<Inner>(Outer.Nest, markNested: true))
                nest.WriteUInt32(Inner.Y, 7);
            w.WriteUInt32(Outer.B, 9);
        }));

    [Fact]
    public void Empty_nest_is_just_a_header() =>
        Equal("04000300", Write(w => { using var nest = w.BeginNest<Inner>(Outer.Nest); }));

    [Fact]
    public void Big_endian_and_host_order_integers()
    {
        Equal("06000100 12b50000", Write(w => w.WriteUInt16BigEndian(Outer.A, 4789)));
        Equal("06000100 b5120000", Write(w => w.WriteUInt16(Outer.A, 4789)));
        Equal("08000100 ffffffff", Write(w => w.WriteInt32(Outer.A, -1)));
    }

    [Fact]
    public void Writing_past_the_buffer_throws_instead_of_truncating()
    {
        var buffer = new byte[8];
        int length = 0;
        var caught = false;
        try
        {
            var writer = new AttributeWriter<Outer>(buffer, ref length, -1);
            writer.WriteUInt32(Outer.A, 1);
            writer.WriteUInt32(Outer.B, 2);
        }
        catch (InvalidOperationException)
        {
            caught = true;
        }
        Assert.True(caught);
        Assert.Equal(8, length);
    }

    [Fact]
    public void Reader_masks_the_nested_and_byte_order_bits()
    {
        var reader = new AttributeReader<Outer>(Hex("08000380 01000000 08000240 02000000"));
        Assert.True(reader.Next(out var first, out _));
        Assert.Equal(Outer.Nest, first);
        Assert.True(reader.Next(out var second, out _));
        Assert.Equal(Outer.B, second);
        Assert.False(reader.Next(out _, out _));
    }

    [Fact]
    public void Reader_accepts_an_unpadded_last_attribute_and_trailing_padding()
    {
        var reader = new AttributeReader<Outer>(Hex("05000100 aa 00"));
        Assert.True(reader.Next(out _, out var value));
        Assert.Equal([0xaa], value.ToArray());
        Assert.False(reader.Next(out _, out _));
    }

    [Theory]
    [InlineData("03000100")]            // length below the header size
    [InlineData("0c000100 00000000")]   // length past the end
    public void Reader_refuses_malformed_attributes(string hex)
    {
        var caught = false;
        try
        {
            var reader = new AttributeReader<Outer>(Hex(hex));
            reader.Next(out _, out _);
        }
        catch (NetlinkTransportException e)
        {
            caught = e.Message.Contains("malformed");
        }
        Assert.True(caught);
    }

    [Fact]
    public void Values_shorter_than_their_type_are_refused()
    {
        Assert.Throws<NetlinkTransportException>(() => AttributeValue.UInt32(new byte[2]));
        Assert.Throws<NetlinkTransportException>(() => AttributeValue.Address(new byte[5]));
        Assert.Equal("br0", AttributeValue.String("br0\0\0"u8));
        Assert.Equal("br0", AttributeValue.String("br0"u8));
    }

    [Fact]
    public void Any_sequence_of_attributes_and_nests_round_trips()
    {
        var attribute = Gen.Select(Gen.UShort[1, 0x3FFF], Gen.Byte.Array[0, 40]);
        var tree = Gen.Select(attribute.Array[0, 6], attribute.Array[0, 6], Gen.Bool);
        tree.Sample(t =>
        {
            var (before, nested, markNested) = t;
            var buffer = new byte[4096];
            int length = 0;
            var writer = new AttributeWriter<Outer>(buffer, ref length, -1);
            foreach (var (id, value) in before) writer.Write((Outer)id, value);
            using (var nest = writer.BeginNest<Inner>((Outer)0x3FFF, markNested))
                foreach (var (id, value) in nested) nest.Write((Inner)id, value);

            Assert.Equal(0, length % NetlinkAlignment.Boundary);
            var reader = new AttributeReader<Outer>(buffer.AsSpan(0, length));
            foreach (var (id, value) in before)
            {
                Assert.True(reader.Next(out var readId, out var readValue));
                Assert.Equal((Outer)id, readId);
                Assert.True(readValue.SequenceEqual(value));
            }
            Assert.True(reader.Next(out var nestId, out var nestValue));
            Assert.Equal((Outer)0x3FFF, nestId);
            var inner = new AttributeReader<Inner>(nestValue);
            foreach (var (id, value) in nested)
            {
                Assert.True(inner.Next(out var readId, out var readValue));
                Assert.Equal((Inner)id, readId);
                Assert.True(readValue.SequenceEqual(value));
            }
            Assert.False(inner.Next(out _, out _));
            Assert.False(reader.Next(out _, out _));
        });
    }

    [Fact]
    public void Prefix_parsing_and_network()
    {
        Assert.Equal("10.0.0.0/24", IpPrefix.Parse("10.0.0.9/24").Network.ToString());
        Assert.Equal("fd00::/8", IpPrefix.Parse("fd12::1/8").Network.ToString());
        Assert.Equal(32, IpPrefix.Parse("10.0.0.1").PrefixLength);
        Assert.False(IpPrefix.TryParse("10.0.0.1/33", out _));
        Assert.False(IpPrefix.TryParse("10.0.0.1/", out _));
        Assert.False(IpPrefix.TryParse("10.0.0.1/-1", out _));
        Assert.False(IpPrefix.TryParse("fe80::1%2/64", out _));
        Assert.False(IpPrefix.TryParse("host/24", out _));
        var e = Assert.Throws<FormatException>(() => IpPrefix.Parse("10.0.0.300/24"));
        Assert.Contains("10.0.0.300/24", e.Message);
    }
}
