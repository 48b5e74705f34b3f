using System.Diagnostics.CodeAnalysis;
using System.Net;
using System.Net.Sockets;

namespace Skein.Driver.Netlink;

/// <summary>An IP address with a prefix length, as the kernel stores addresses and route destinations ("10.0.0.1/24").</summary>
public readonly record struct IpPrefix
{
    public IpPrefix(IPAddress address, int prefixLength)
    {
        ArgumentNullException.ThrowIfNull(address);
        int max = MaxPrefixLength(address.AddressFamily);
        if (prefixLength < 0 || prefixLength > max)
            throw new ArgumentOutOfRangeException(nameof(prefixLength), prefixLength,
                $"prefix length of {address} must be between 0 and {max}");
        Address = address;
        PrefixLength = prefixLength;
    }

    public IPAddress Address { get; }
    public int PrefixLength { get; }
    public AddressFamily Family => Address.AddressFamily;
    public bool IsIPv4 => Address.AddressFamily == AddressFamily.InterNetwork;

    /// <summary>A single-host prefix (/32 or /128).</summary>
    public static IpPrefix Host(IPAddress address) => new(address, MaxPrefixLength(address.AddressFamily));

    /// <summary>The default route prefix of a family (0.0.0.0/0 or ::/0).</summary>
    public static IpPrefix Default(AddressFamily family) => family switch
    {
        AddressFamily.InterNetwork => new(IPAddress.Any, 0),
        AddressFamily.InterNetworkV6 => new(IPAddress.IPv6Any, 0),
        _ => throw new ArgumentOutOfRangeException(nameof(family), family, "only IPv4 and IPv6 have prefixes"),
    };

    /// <summary>The same prefix with the host bits cleared (10.0.0.1/24 → 10.0.0.0/24).</summary>
    public IpPrefix Network
    {
        get
        {
            Span<byte> bytes = stackalloc byte[16];
            Address.TryWriteBytes(bytes, out int length);
            bytes = bytes[..length];
            for (int bit = PrefixLength; bit < length * 8; bit++)
                bytes[bit / 8] &= (byte)~(0x80 >> (bit % 8));
            return new IpPrefix(new IPAddress(bytes), PrefixLength);
        }
    }

    /// <summary>Parses "address/length"; a bare address is a host prefix.</summary>
    public static IpPrefix Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return TryParse(text, out var prefix)
            ? prefix
            : throw new FormatException($"'{text}' is not an IP prefix such as 10.0.0.1/24 or fd00::1/64");
    }

    public static bool TryParse([NotNullWhen(true)] string? text, out IpPrefix prefix)
    {
        prefix = default;
        if (string.IsNullOrWhiteSpace(text)) return false;
        int slash = text.IndexOf('/');
        string addressText = slash < 0 ? text : text[..slash];
        if (!IPAddress.TryParse(addressText, out var address)) return false;
        if (address.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6)) return false;
        if (address.AddressFamily == AddressFamily.InterNetworkV6 && address.ScopeId != 0) return false;
        int max = MaxPrefixLength(address.AddressFamily);
        int length = max;
        if (slash >= 0)
        {
            var lengthText = text.AsSpan(slash + 1);
            if (lengthText.Length is 0 or > 3) return false;
            foreach (char c in lengthText) if (c is < '0' or > '9') return false;
            length = int.Parse(lengthText, System.Globalization.CultureInfo.InvariantCulture);
            if (length > max) return false;
        }
        prefix = new IpPrefix(address, length);
        return true;
    }

    public override string ToString() => Address is null ? "" : $"{Address}/{PrefixLength}";

    internal static int MaxPrefixLength(AddressFamily family) => family switch
    {
        AddressFamily.InterNetwork => 32,
        AddressFamily.InterNetworkV6 => 128,
        _ => throw new ArgumentOutOfRangeException(nameof(family), family, "only IPv4 and IPv6 addresses have prefixes"),
    };
}
