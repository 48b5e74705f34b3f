namespace Skein.Driver.Tests.Netlink;

/// <summary>Hex helpers for golden-bytes tests: spaces, newlines and "|" separators are ignored.</summary>
internal static class WireBytes
{
    public delegate Span<byte> Encoder(Span<byte> buffer);

    public static byte[] Hex(string hex)
    {
        var clean = new string(hex.Where(Uri.IsHexDigit).ToArray());
        return Convert.FromHexString(clean);
    }

    public static byte[] Encode(Encoder encode)
    {
        var buffer = new byte[1024];
        return encode(buffer).ToArray();
    }

    /// <summary>Equal bytes, with a failure message that shows both sides in hex.</summary>
    public static void Equal(string expectedHex, byte[] actual)
    {
        var expected = Hex(expectedHex);
        if (!expected.AsSpan().SequenceEqual(actual))
            Assert.Fail($"bytes differ\nexpected: {Convert.ToHexString(expected)}\nactual:   {Convert.ToHexString(actual)}");
    }
}
