using System.Net;
using System.Net.Sockets;

namespace Skein.Ipam.Addressing;

/// <summary>
/// Strict text form of one IP address, the way Go's net.ParseIP reads it: IPv4 is exactly four
/// decimal octets without leading zeros; IPv6 is colon-hex without a zone or brackets.
/// IPAddress.Parse alone is too lenient ("1", "0x7f.1", "010.0.0.1" all parse), and a lenient
/// reading of a user's --subnet silently names a different network.
/// </summary>
public static class IpAddressText
{
    public static bool TryParse(ReadOnlySpan<char> text, out IPAddress address, out string error)
    {
        address = IPAddress.None;
        if (text.IsEmpty)
        {
            error = "the address is empty";
            return false;
        }
        if (text.Contains(':'))
            return TryParseV6(text, out address, out error);
        return TryParseV4(text, out address, out error);
    }

    public static IPAddress Parse(string text, string what)
    {
        if (!TryParse(text, out var address, out var error))
            throw SkeinException.Invalid($"{what}: '{Printable(text)}' is not an IP address ({error})");
        return address;
    }

    /// <summary>Canonical text: dotted quad, or RFC 5952 compressed lower-case IPv6 (what Go prints).</summary>
    public static string Format(IPAddress address) => address.ToString();

    /// <summary>The address as an unsigned number (IPv4 in the low 32 bits).</summary>
    public static UInt128 ToNumber(IPAddress address)
    {
        Span<byte> bytes = stackalloc byte[16];
        if (!address.TryWriteBytes(bytes, out int written))
            throw new InvalidOperationException("an IP address never exceeds 16 bytes");
        UInt128 value = 0;
        for (int i = 0; i < written; i++)
            value = (value << 8) | bytes[i];
        return value;
    }

    public static IPAddress FromNumber(UInt128 value, bool isV6)
    {
        int length = isV6 ? 16 : 4;
        Span<byte> bytes = stackalloc byte[length];
        for (int i = length - 1; i >= 0; i--)
        {
            bytes[i] = (byte)(value & 0xFF);
            value >>= 8;
        }
        return new IPAddress(bytes);
    }

    public static bool IsV6(IPAddress address) => address.AddressFamily == AddressFamily.InterNetworkV6;

    private static bool TryParseV4(ReadOnlySpan<char> text, out IPAddress address, out string error)
    {
        address = IPAddress.None;
        Span<byte> octets = stackalloc byte[4];
        int index = 0;
        foreach (var range in text.Split('.'))
        {
            var part = text[range];
            if (index == 4)
            {
                error = "an IPv4 address has exactly four dot-separated numbers";
                return false;
            }
            if (part.IsEmpty || part.Length > 3)
            {
                error = "each IPv4 part is a number from 0 to 255";
                return false;
            }
            int value = 0;
            foreach (char c in part)
            {
                if (c is < '0' or > '9')
                {
                    error = $"'{Printable(c.ToString())}' is not allowed in an IPv4 address";
                    return false;
                }
                value = value * 10 + (c - '0');
            }
            if (part.Length > 1 && part[0] == '0')
            {
                error = "IPv4 parts have no leading zeros";
                return false;
            }
            if (value > 255)
            {
                error = $"{value} is larger than 255";
                return false;
            }
            octets[index++] = (byte)value;
        }
        if (index != 4)
        {
            error = "an IPv4 address has exactly four dot-separated numbers";
            return false;
        }
        address = new IPAddress(octets);
        error = "";
        return true;
    }

    private static bool TryParseV6(ReadOnlySpan<char> text, out IPAddress address, out string error)
    {
        address = IPAddress.None;
        foreach (char c in text)
        {
            bool allowed = c is (>= '0' and <= '9') or (>= 'a' and <= 'f') or (>= 'A' and <= 'F') or ':' or '.';
            if (!allowed)
            {
                error = c == '%'
                    ? "a zone (%...) is not allowed here"
                    : $"'{Printable(c.ToString())}' is not allowed in an IPv6 address";
                return false;
            }
        }
        if (text.Length > 45)
        {
            error = "too long for an IPv6 address";
            return false;
        }
        // A trailing dotted quad must itself be a strict IPv4 address.
        int lastColon = text.LastIndexOf(':');
        var tail = text[(lastColon + 1)..];
        if (tail.Contains('.') && !TryParseV4(tail, out _, out var tailError))
        {
            error = $"the embedded IPv4 part is wrong: {tailError}";
            return false;
        }
        if (!IPAddress.TryParse(text, out var parsed) || parsed.AddressFamily != AddressFamily.InterNetworkV6)
        {
            error = "not a valid IPv6 address";
            return false;
        }
        // Every hex group has at most four digits (IPAddress accepts some longer forms).
        foreach (var range in text.Split(':'))
        {
            var group = text[range];
            if (!group.Contains('.') && group.Length > 4)
            {
                error = "an IPv6 group has at most four hex digits";
                return false;
            }
        }
        address = parsed;
        error = "";
        return true;
    }

    /// <summary>User text echoed in an error: bounded and without control characters.</summary>
    public static string Printable(string text, int limit = 64)
    {
        var builder = new System.Text.StringBuilder(Math.Min(text.Length, limit) + 3);
        foreach (char c in text)
        {
            if (builder.Length >= limit)
            {
                builder.Append("...");
                break;
            }
            builder.Append(char.IsControl(c) || char.IsSurrogate(c) || c == '\uFFFD' ? '?' : c);
        }
        return builder.ToString();
    }
}
