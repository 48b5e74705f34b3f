using System.Security.Cryptography;
using System.Text;

namespace Skein.Driver.Network;

/// <summary>
/// Interface names derived from a hash of the Docker id, never from the id itself: names are at most 15 bytes and
/// must not carry anything a caller typed (decisions #7). The prefixes mark links skein owns, which is how the
/// reconciler finds leftovers: skbr- bridges, skv host-side veths, skc container-side veths.
/// </summary>
public static class LinkNames
{
    public const string BridgePrefix = "skbr-";
    public const string HostVethPrefix = "skv";
    public const string ContainerVethPrefix = "skc";

    /// <summary>skbr- + 10 hex = 15 bytes.</summary>
    public static string Bridge(string networkId) => BridgePrefix + HashHex(networkId, 10);

    /// <summary>skv + 12 hex = 15 bytes.</summary>
    public static string HostVeth(string endpointId) => HostVethPrefix + HashHex(endpointId, 12);

    /// <summary>skc + the same 12 hex as the host side, so the pair reads as a pair.</summary>
    public static string ContainerVeth(string endpointId) => ContainerVethPrefix + HashHex(endpointId, 12);

    /// <summary>True for names of the shapes above: the links the reconciler may delete when no record owns them.</summary>
    public static bool IsSkeinLink(string name) =>
        (name.StartsWith(BridgePrefix, StringComparison.Ordinal) && name.Length == BridgePrefix.Length + 10 && IsHex(name.AsSpan(BridgePrefix.Length)))
        || ((name.StartsWith(HostVethPrefix, StringComparison.Ordinal) || name.StartsWith(ContainerVethPrefix, StringComparison.Ordinal))
            && name.Length == 15 && IsHex(name.AsSpan(3)));

    /// <summary>A stable, locally administered unicast MAC for an id (02:…): the same endpoint always gets the same one.</summary>
    public static string GeneratedMac(string id)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes("mac:" + id));
        return $"02:{hash[0]:x2}:{hash[1]:x2}:{hash[2]:x2}:{hash[3]:x2}:{hash[4]:x2}";
    }

    private static string HashHex(string id, int hexDigits)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(id));
        return Convert.ToHexStringLower(hash)[..hexDigits];
    }

    private static bool IsHex(ReadOnlySpan<char> text)
    {
        foreach (var c in text)
            if (c is not ((>= '0' and <= '9') or (>= 'a' and <= 'f')))
                return false;
        return true;
    }
}
