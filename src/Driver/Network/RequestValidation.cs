using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using System.Text;
using Skein.Driver.Netlink;
using Skein.Ipam;

namespace Skein.Driver.Network;

/// <summary>Checks on values from a request; each failure names the field and shows the offending value safely.</summary>
public static class RequestValidation
{
    /// <summary>Docker ids: 64 hex for local objects, 25 base-36 for swarm networks; accept [a-z0-9]{1,64} (decisions #7).</summary>
    public static string RequireId(string? value, string field)
    {
        if (value is null || value.Length == 0)
            throw SkeinException.Invalid($"{field} is missing");
        if (value.Length > 64)
            throw SkeinException.Invalid($"{field} {Show(value)} is {value.Length} characters long; Docker ids have at most 64");
        foreach (var c in value)
            if (c is not ((>= 'a' and <= 'z') or (>= '0' and <= '9')))
                throw SkeinException.Invalid($"{field} {Show(value)} is not a Docker id: only lower-case letters and digits are allowed");
        return value;
    }

    /// <summary>An address/prefix string of the expected family ("10.50.0.254/16").</summary>
    public static IpPrefix RequirePrefix(string? value, string field, AddressFamily family)
    {
        if (string.IsNullOrEmpty(value))
            throw SkeinException.Invalid($"{field} is missing");
        if (!value.Contains('/') || !IsCanonicalAddressText(value[..value.IndexOf('/')]) || !IpPrefix.TryParse(value, out var prefix))
            throw SkeinException.Invalid($"{field} {Show(value)} is not an address with a prefix length such as {(family == AddressFamily.InterNetwork ? "10.0.0.1/24" : "fd00::1/64")}");
        if (prefix.Family != family)
            throw SkeinException.Invalid($"{field} {Show(value)} is {FamilyName(prefix.Family)}, expected {FamilyName(family)}");
        return prefix;
    }

    /// <summary>Like RequirePrefix, but absent or empty means "not given".</summary>
    public static IpPrefix? OptionalPrefix(string? value, string field, AddressFamily family) =>
        string.IsNullOrEmpty(value) ? null : RequirePrefix(value, field, family);

    /// <summary>A colon-form unicast MAC ("02:42:0a:32:01:4d").</summary>
    public static PhysicalAddress RequireMac(string value, string field)
    {
        var parts = value.Split(':');
        if (parts.Length != 6 || parts.Any(p => p.Length != 2 || !p.All(Uri.IsHexDigit)))
            throw SkeinException.Invalid($"{field} {Show(value)} is not a MAC address in colon form such as 02:42:0a:32:01:4d");
        var bytes = parts.Select(p => Convert.ToByte(p, 16)).ToArray();
        if ((bytes[0] & 1) != 0)
            throw SkeinException.Invalid($"{field} {Show(value)} is a multicast address; an interface needs a unicast MAC");
        if (bytes.All(b => b == 0))
            throw SkeinException.Invalid($"{field} {Show(value)} is all zeros");
        return new PhysicalAddress(bytes);
    }

    /// <summary>
    /// IPAddress.TryParse also takes legacy forms ("1.2.3" is 1.2.0.3, "0x0a.1.2.3", "010.0.0.1" is 8.0.0.1); Docker never sends them and a
    /// user who typed one meant something else. IPv4 must be four decimal parts, IPv6 must not carry a scope.
    /// </summary>
    public static bool IsCanonicalAddressText(string text)
    {
        if (!IPAddress.TryParse(text, out var address))
            return false;
        if (address.AddressFamily == AddressFamily.InterNetworkV6)
            return !text.Contains('%');
        var parts = text.Split('.');
        // A leading zero reads as octal here ("010" is 8) but as decimal to the user; Go refuses it too.
        return parts.Length == 4 && parts.All(p => p.Length is > 0 and <= 3 && p.All(char.IsAsciiDigit) && (p.Length == 1 || p[0] != '0'));
    }

    public static string FamilyName(AddressFamily family) => family == AddressFamily.InterNetwork ? "IPv4" : "IPv6";

    /// <summary>A caller's value, quoted, shortened and with control or non-ASCII characters escaped for logs and Err.</summary>
    public static string Show(string value)
    {
        var text = new StringBuilder("'");
        foreach (var rune in value.EnumerateRunes())
        {
            if (text.Length > 72)
            {
                text.Append('…');
                break;
            }
            if (rune.Value is >= 0x20 and < 0x7f && rune.Value != '\'')
                text.Append((char)rune.Value);
            else
                text.Append(rune.Value <= 0xffff ? $"\\u{rune.Value:x4}" : $"\\U{rune.Value:x8}");
        }
        return text.Append('\'').ToString();
    }

    public static bool Contains(IpPrefix network, IPAddress address)
    {
        if (network.Family != address.AddressFamily)
            return false;
        return new IPNetwork(network.Network.Address, network.PrefixLength).Contains(address);
    }
}
