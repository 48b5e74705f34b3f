using System.Security.Cryptography;
using System.Text;

namespace Skein.Driver.Overlay.Dataplane;

/// <summary>
/// Names of the VXLAN links skein makes, derived from a hash of the network id like the bridge names in
/// <see cref="Network.LinkNames"/> (at most 15 bytes, nothing a caller typed): "skx-" and 11 hex digits.
/// </summary>
public static class OverlayNames
{
    public const string VxlanPrefix = "skx-";
    private const int HexDigits = 11;

    /// <summary>skx- + 11 hex = 15 bytes.</summary>
    public static string Vxlan(string networkId)
    {
        ArgumentException.ThrowIfNullOrEmpty(networkId);
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(networkId));
        return VxlanPrefix + Convert.ToHexStringLower(hash)[..HexDigits];
    }

    /// <summary>True for names of the shape <see cref="Vxlan"/> makes: VXLAN links skein owns.</summary>
    public static bool IsVxlan(string name)
    {
        if (!name.StartsWith(VxlanPrefix, StringComparison.Ordinal) || name.Length != VxlanPrefix.Length + HexDigits)
            return false;
        foreach (var c in name.AsSpan(VxlanPrefix.Length))
            if (c is not ((>= '0' and <= '9') or (>= 'a' and <= 'f')))
                return false;
        return true;
    }
}
