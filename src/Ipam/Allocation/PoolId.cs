using System.Text.RegularExpressions;
using Skein.Ipam.Addressing;

namespace Skein.Ipam.Allocation;

/// <summary>
/// The PoolID skein hands to the engine: "&lt;Space&gt;/&lt;pool&gt;" or "&lt;Space&gt;/&lt;pool&gt;/&lt;subPool&gt;",
/// Docker's built-in format (cluster-store §4.7). A trailing '/' with no sub-pool is tolerated
/// (some IPAMs and the recorded traces write it).
/// </summary>
public sealed partial record PoolId(string Space, IpPrefix Pool, IpPrefix? SubPool)
{
    public override string ToString() => SubPool is { } sub ? $"{Space}/{Pool}/{sub}" : $"{Space}/{Pool}";

    /// <summary>The address window dynamic addresses and the default gateway come from.</summary>
    public IpPrefix Window => SubPool ?? Pool;

    public static PoolId Parse(string? text, string what = "PoolID")
    {
        if (string.IsNullOrEmpty(text))
            throw SkeinException.Invalid($"{what} is missing");
        string shown = IpAddressText.Printable(text);
        string[] parts = text.Split('/');
        if (parts.Length == 6 && parts[5].Length == 0 || parts.Length == 4 && parts[3].Length == 0)
            parts = parts[..^1];
        if (parts.Length is not (3 or 5))
            throw SkeinException.Invalid($"{what} '{shown}' is not of the form <AddressSpace>/<pool CIDR>[/<sub-pool CIDR>]");
        string space = ValidateSpace(parts[0], what);
        if (!IpPrefix.TryParse($"{parts[1]}/{parts[2]}", allowHostBits: false, out var pool, out var error))
            throw SkeinException.Invalid($"{what} '{shown}': the pool is not a valid CIDR ({error})");
        IpPrefix? subPool = null;
        if (parts.Length == 5)
        {
            if (!IpPrefix.TryParse($"{parts[3]}/{parts[4]}", allowHostBits: false, out var sub, out error))
                throw SkeinException.Invalid($"{what} '{shown}': the sub-pool is not a valid CIDR ({error})");
            if (!pool.Contains(sub))
                throw SkeinException.Invalid($"{what} '{shown}': the sub-pool {sub} is not inside the pool {pool}");
            subPool = sub;
        }
        return new PoolId(space, pool, subPool);
    }

    /// <summary>Address space names become key segments (lower-cased), so they keep to a safe alphabet.</summary>
    public static string ValidateSpace(string? space, string what = "AddressSpace")
    {
        if (string.IsNullOrEmpty(space))
            throw SkeinException.Invalid($"{what}: the address space is missing");
        if (!SpacePattern().IsMatch(space) || space.Contains("..", StringComparison.Ordinal))
            throw SkeinException.Invalid($"{what}: address space '{IpAddressText.Printable(space)}' must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit");
        return space;
    }

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")]
    private static partial Regex SpacePattern();
}
