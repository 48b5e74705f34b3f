using System.Net;
using System.Net.Sockets;

namespace Skein.Driver.Replay;

/// <summary>Address arithmetic the replay model needs; independent of skein's own IPAM on purpose,
/// so that the harness does not share the plugin's bugs.</summary>
public static class IpMath
{
    /// <summary>Parses "ip/len" without requiring the host bits to be zero (a gateway in CIDR form).</summary>
    public static bool TryParseAddressWithPrefix(string? text, out IPAddress address, out int prefix)
    {
        address = IPAddress.None;
        prefix = -1;
        if (string.IsNullOrEmpty(text))
            return false;
        var slash = text.IndexOf('/');
        if (slash <= 0 || !IPAddress.TryParse(text.AsSpan(0, slash), out var parsed) ||
            !int.TryParse(text.AsSpan(slash + 1), out prefix) || prefix < 0 || prefix > Bits(parsed))
            return false;
        address = parsed;
        return true;
    }

    /// <summary>Parses a network in CIDR form; refuses host bits, as the protocol's pools never carry them.</summary>
    public static bool TryParseNetwork(string? text, out IPNetwork network)
    {
        network = default;
        return !string.IsNullOrEmpty(text) && IPNetwork.TryParse(text, out network);
    }

    public static bool TryParseBareAddress(string? text, out IPAddress address)
    {
        address = IPAddress.None;
        if (string.IsNullOrEmpty(text) || text.Contains('/'))
            return false;
        if (!IPAddress.TryParse(text, out var parsed))
            return false;
        address = parsed;
        return true;
    }

    public static int Bits(IPAddress address) => address.AddressFamily == AddressFamily.InterNetworkV6 ? 128 : 32;

    public static UInt128 ToNumber(IPAddress address)
    {
        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out var written);
        UInt128 value = 0;
        for (var i = 0; i < written; i++)
            value = (value << 8) | bytes[i];
        return value;
    }

    public static IPAddress FromNumber(UInt128 value, bool v6)
    {
        var length = v6 ? 16 : 4;
        var bytes = new byte[length];
        for (var i = length - 1; i >= 0; i--)
        {
            bytes[i] = (byte)(value & 0xff);
            value >>= 8;
        }
        return new IPAddress(bytes);
    }

    public static bool Overlaps(IPNetwork a, IPNetwork b) =>
        a.BaseAddress.AddressFamily == b.BaseAddress.AddressFamily &&
        (a.Contains(b.BaseAddress) || b.Contains(a.BaseAddress));

    public static bool IsNetworkAddress(IPNetwork network, IPAddress address) => network.BaseAddress.Equals(address);

    /// <summary>The IPv4 broadcast address of a network with room for one (prefix below 31).</summary>
    public static bool IsIPv4Broadcast(IPNetwork network, IPAddress address)
    {
        if (address.AddressFamily != AddressFamily.InterNetwork || network.PrefixLength >= 31)
            return false;
        var hostBits = 32 - network.PrefixLength;
        var broadcast = ToNumber(network.BaseAddress) | ((UInt128.One << hostBits) - 1);
        return ToNumber(address) == broadcast;
    }

    /// <summary>Moves an address from one pool to the same offset in another (a static address of a
    /// recorded pool that the plugin under test placed elsewhere).</summary>
    public static IPAddress Translate(IPAddress address, IPNetwork from, IPNetwork to)
    {
        var offset = ToNumber(address) - ToNumber(from.BaseAddress);
        return FromNumber(ToNumber(to.BaseAddress) + offset, to.BaseAddress.AddressFamily == AddressFamily.InterNetworkV6);
    }

    /// <summary>Canonical text of a network ("10.50.0.0/16", "fd60::/64") for comparing pool strings.</summary>
    public static string Canonical(string? cidr) =>
        TryParseNetwork(cidr, out var network) ? network.ToString() : cidr ?? "";
}
