using System.Net;
using CsCheck;
using Skein.Ipam.Addressing;

namespace Skein.Ipam.Tests.Addressing;

public sealed class IpPrefixTests
{
    private static IpPrefix P(string text) => IpPrefix.Parse(text, "test");
    private static IPAddress A(string text) => IPAddress.Parse(text);

    [Theory]
    [InlineData("10.20.0.0/16", "10.20.0.0/16")]
    [InlineData("0.0.0.0/0", "0.0.0.0/0")]
    [InlineData("192.168.1.7/32", "192.168.1.7/32")]
    [InlineData("fd60::/64", "fd60::/64")]
    [InlineData("FD60:0:0:0::/64", "fd60::/64")]
    [InlineData("::/0", "::/0")]
    [InlineData("2001:db8::1/128", "2001:db8::1/128")]
    [InlineData("::ffff:10.0.0.0/104", "::ffff:10.0.0.0/104")]
    public void Parses_and_formats_canonical_cidrs(string text, string expected)
    {
        Assert.Equal(expected, P(text).ToString());
    }

    [Theory]
    [InlineData("", "needs a '/'")]
    [InlineData("10.0.0.0", "needs a '/'")]
    [InlineData("10.0.0.0/", "prefix length")]
    [InlineData("10.0.0.0/33", "larger than 32")]
    [InlineData("fd00::/129", "larger than 128")]
    [InlineData("10.0.0.0/016", "leading zeros")]
    [InlineData("10.0.0.0/-1", "prefix length")]
    [InlineData("10.0.0.0/1a", "prefix length")]
    [InlineData("10.0.0/8", "four")]
    [InlineData("10.0.0.0.0/8", "four")]
    [InlineData("010.0.0.0/8", "leading zeros")]
    [InlineData("256.0.0.0/8", "larger than 255")]
    [InlineData("1.2.3.x/8", "not allowed")]
    [InlineData(" 10.0.0.0/8", "not allowed")]
    [InlineData("10.1.2.3/16", "host bits are set (the network is 10.1.0.0/16)")]
    [InlineData("fd60::1/64", "host bits are set (the network is fd60::/64)")]
    [InlineData("fe80::1%eth0/64", "zone")]
    [InlineData("[fd00::]/64", "not allowed")]
    [InlineData("fd00:::/64", "not a valid IPv6")]
    [InlineData("fd00:12345::/64", "not a valid IPv6")]
    [InlineData("::ffff:1.2.3.04/128", "embedded IPv4")]
    public void Refuses_malformed_cidrs_with_a_reason(string text, string reason)
    {
        var error = Assert.Throws<SkeinException>(() => P(text));
        Assert.Equal(ErrorKind.Invalid, error.Kind);
        Assert.Contains(reason, error.Message);
        Assert.StartsWith("test:", error.Message);
    }

    [Fact]
    public void Masks_host_bits_only_when_asked()
    {
        Assert.Equal("10.1.0.0/16", IpPrefix.Parse("10.1.2.3/16", "x", allowHostBits: true).ToString());
        Assert.False(IpPrefix.TryParse("10.1.2.3/16", allowHostBits: false, out _, out _));
    }

    [Fact]
    public void Network_broadcast_and_last_address()
    {
        var v4 = P("10.20.0.0/16");
        Assert.Equal(A("10.20.0.0"), v4.Network);
        Assert.Equal(A("10.20.255.255"), v4.Broadcast);
        Assert.Equal(A("10.20.255.255"), v4.LastAddress);
        Assert.Equal((UInt128)65535, v4.LastOrdinal);
        var v6 = P("fd60::/64");
        Assert.Equal(A("fd60::ffff:ffff:ffff:ffff"), v6.LastAddress);
        Assert.Throws<InvalidOperationException>(() => v6.Broadcast);
        Assert.Equal(UInt128.MaxValue, P("::/0").LastOrdinal);
        Assert.Equal((UInt128)uint.MaxValue, P("0.0.0.0/0").LastOrdinal);
    }

    [Fact]
    public void Contains_and_overlaps()
    {
        var pool = P("10.50.0.0/16");
        Assert.True(pool.Contains(A("10.50.1.77")));
        Assert.False(pool.Contains(A("10.51.0.0")));
        Assert.False(pool.Contains(A("::ffff:10.50.0.1")));
        Assert.True(pool.Contains(P("10.50.1.0/24")));
        Assert.False(P("10.50.1.0/24").Contains(pool));
        Assert.True(pool.Overlaps(P("10.50.1.0/24")));
        Assert.True(P("10.50.1.0/24").Overlaps(pool));
        Assert.True(pool.Overlaps(P("10.0.0.0/8")));
        Assert.False(pool.Overlaps(P("10.51.0.0/16")));
        Assert.False(P("0.0.0.0/0").Overlaps(P("::/0")));
    }

    [Fact]
    public void Nth_address_ordinals_and_blocks()
    {
        var pool = P("10.50.0.0/16");
        Assert.Equal(A("10.50.1.77"), pool.AddressAt(333));
        Assert.Equal((UInt128)333, pool.OrdinalOf(A("10.50.1.77")));
        Assert.Throws<ArgumentOutOfRangeException>(() => pool.AddressAt(65536));
        Assert.Throws<ArgumentOutOfRangeException>(() => pool.OrdinalOf(A("10.51.0.0")));
        Assert.Equal((UInt128)1024, pool.BlockCount(26));
        Assert.Equal(P("10.50.1.64/26"), pool.BlockAt(26, 5));
        Assert.Equal((UInt128)5, pool.BlockIndexOf(A("10.50.1.77"), 26));
        Assert.Equal(["10.50.0.0/18", "10.50.64.0/18", "10.50.128.0/18", "10.50.192.0/18"], pool.Subdivide(18).Select(p => p.ToString()));
        var v6 = P("fd60::/64");
        Assert.Equal((UInt128)1 << 58, v6.BlockCount(122));
        Assert.Equal(P("fd60::1:40/122"), v6.BlockAt(122, v6.BlockIndexOf(A("fd60::1:5f"), 122)));
        Assert.Equal(P("fd60::/64"), v6.BlockAt(64, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => v6.BlockAt(63, 0));
        Assert.Equal(3, P("10.0.0.0/8").Subdivide(24).Take(3).Count());
    }

    [Fact]
    public void Key_segments_round_trip_without_colons()
    {
        Assert.Equal("10.20.0.0-16", P("10.20.0.0/16").ToKeySegment());
        Assert.Equal("fd600000000000000000000000000000-64", P("fd60::/64").ToKeySegment());
        Assert.True(IpPrefix.TryParseKeySegment("fd600000000000000000000000000000-64", out var v6));
        Assert.Equal(P("fd60::/64"), v6);
        Assert.False(IpPrefix.TryParseKeySegment("10.20.0.1-16", out _));
        Assert.False(IpPrefix.TryParseKeySegment("nonsense", out _));
    }

    private static readonly Gen<IpPrefix> GenV4 =
        Gen.Select(Gen.UInt, Gen.Int[0, 32], (bits, length) => IpPrefix.Containing(IpAddressText.FromNumber(bits, false), length));

    private static readonly Gen<IpPrefix> GenV6 =
        Gen.Select(Gen.ULong, Gen.ULong, Gen.Int[0, 128], (high, low, length) =>
            IpPrefix.Containing(IpAddressText.FromNumber(((UInt128)high << 64) | low, true), length));

    private static readonly Gen<IpPrefix> GenPrefix = Gen.OneOf(GenV4, GenV6);

    [Fact]
    public void Property_format_then_parse_is_identity()
    {
        GenPrefix.Sample(prefix => Assert.Equal(prefix, P(prefix.ToString())), iter: 20_000);
    }

    [Fact]
    public void Property_key_segment_round_trips()
    {
        GenPrefix.Sample(prefix =>
        {
            Assert.True(IpPrefix.TryParseKeySegment(prefix.ToKeySegment(), out var back));
            Assert.Equal(prefix, back);
            Assert.DoesNotContain(':', prefix.ToKeySegment());
        }, iter: 20_000);
    }

    [Fact]
    public void Property_ordinal_and_address_are_inverse_and_inside()
    {
        Gen.Select(GenPrefix, Gen.ULong, Gen.ULong).Sample((prefix, high, low) =>
        {
            UInt128 ordinal = (((UInt128)high << 64) | low) & prefix.LastOrdinal;
            var address = prefix.AddressAt(ordinal);
            Assert.True(prefix.Contains(address));
            Assert.Equal(ordinal, prefix.OrdinalOf(address));
            Assert.Equal(prefix, IpPrefix.Containing(address, prefix.Length));
        }, iter: 20_000);
    }

    [Fact]
    public void Property_overlap_is_symmetric_and_matches_containment()
    {
        Gen.Select(GenV4, GenV4).Sample((a, b) =>
        {
            Assert.Equal(a.Overlaps(b), b.Overlaps(a));
            Assert.Equal(a.Contains(b) || b.Contains(a), a.Overlaps(b));
            // Overlap means they share an address: the network of the longer one lies in the shorter.
            var (shorter, longer) = a.Length <= b.Length ? (a, b) : (b, a);
            Assert.Equal(shorter.Contains(longer.Network), a.Overlaps(b));
        }, iter: 20_000);
    }

    [Fact]
    public void Property_blocks_tile_the_prefix()
    {
        Gen.Select(GenPrefix, Gen.Int[0, 6], Gen.ULong).Sample((prefix, extra, pick) =>
        {
            int length = Math.Min(prefix.MaxLength, prefix.Length + extra);
            UInt128 count = prefix.BlockCount(length);
            UInt128 index = pick % count;
            var block = prefix.BlockAt(length, index);
            Assert.True(prefix.Contains(block));
            Assert.Equal(index, prefix.BlockIndexOf(block.Network, length));
            Assert.Equal(index, prefix.BlockIndexOf(block.LastAddress, length));
            if (index + 1 < count)
                Assert.Equal(IpAddressText.ToNumber(block.LastAddress) + 1, prefix.BlockAt(length, index + 1).NetworkNumber);
        }, iter: 20_000);
    }

    [Fact]
    public void Property_strict_parser_never_throws_anything_but_invalid()
    {
        Gen.Char["0123456789abcdefABCDEF.:/%- x"].Array[0, 50].Select(chars => new string(chars)).Sample(text =>
        {
            if (IpPrefix.TryParse(text, allowHostBits: false, out var prefix, out _))
                Assert.Equal(prefix, P(prefix.ToString()));
            else
                Assert.Equal(ErrorKind.Invalid, Assert.Throws<SkeinException>(() => P(text)).Kind);
        }, iter: 50_000);
    }

    [Fact]
    public void Property_ipv4_text_agrees_with_the_dotted_quad()
    {
        Gen.UInt.Sample(bits =>
        {
            var address = IpAddressText.FromNumber(bits, false);
            Assert.True(IpAddressText.TryParse(address.ToString(), out var back, out _));
            Assert.Equal(address, back);
            Assert.Equal((UInt128)bits, IpAddressText.ToNumber(address));
        }, iter: 20_000);
    }
}
