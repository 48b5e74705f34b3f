using System.Text.RegularExpressions;
using Skein.Ipam;
using Skein.Ipam.Allocation;

namespace Skein.Driver.Overlay.Control;

/// <summary>One pool of a CreateNetwork as the engine sent it: address space and CIDR.</summary>
public sealed record RequestedPool(string AddressSpace, string Pool, bool IPv6);

/// <summary>
/// Which logical network a Docker network is (decisions #1, #5): `-o skein.network`, else the name skein's IPAM
/// recorded for the pool (--ipam-opt skein.network, or one derived from the pool), else host-local. Every source
/// that names the network must agree; a disagreement fails with both values named.
/// </summary>
public static partial class LogicalNetworkName
{
    public const string OptionKey = "skein.network";

    [GeneratedRegex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    private static partial Regex NamePattern();

    /// <summary>
    /// The logical name, or null for a host-local network: no `-o skein.network` and no pool held by skein's IPAM
    /// (another IPAM driver cannot keep addresses unique across hosts, so such a network stays on this host), or
    /// only pools skein's IPAM chose by itself for a request without a subnet or a name.
    /// </summary>
    public static async Task<string?> ResolveAsync(
        IReadOnlyDictionary<string, string> genericOptions,
        IReadOnlyList<RequestedPool> pools,
        Func<string, CancellationToken, Task<PoolInfo?>> findPool,
        CancellationToken ct)
    {
        string? option = null;
        if (genericOptions.TryGetValue(OptionKey, out var given))
        {
            if (!NamePattern().IsMatch(given))
                throw SkeinException.Invalid($"-o {OptionKey}={Skein.Driver.Network.RequestValidation.Show(given)} must be 1-63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit");
            option = given;
        }

        var found = new List<PoolInfo>();
        foreach (var pool in pools.OrderBy(p => p.IPv6))
        {
            if (string.IsNullOrEmpty(pool.AddressSpace))
                continue;
            PoolInfo? info;
            try
            {
                info = await findPool($"{pool.AddressSpace}/{pool.Pool}", ct).ConfigureAwait(false);
            }
            catch (SkeinException)
            {
                // Not a pool ID skein's IPAM understands: the network uses another IPAM driver.
                info = null;
            }
            if (info is not null)
                found.Add(info);
        }

        var named = found.Where(p => p.NameIsExplicit).ToList();
        if (named.Select(p => p.NetworkName).Distinct(StringComparer.Ordinal).Count() > 1)
            throw SkeinException.Conflict($"the pools of this network belong to different cluster networks: {Describe(named[0])} but {Describe(named.First(p => p.NetworkName != named[0].NetworkName))}");

        if (option is not null)
        {
            if (named.FirstOrDefault(p => p.NetworkName != option) is { } other)
                throw SkeinException.Conflict($"-o {OptionKey}={option} disagrees with the IPAM: {Describe(other)}; give the same name to both (-o and --ipam-opt {OptionKey})");
            if (named.Count == 0 && found.Count > 0)
                throw SkeinException.Conflict($"-o {OptionKey}={option} disagrees with the IPAM: {Describe(found[0])}; add --ipam-opt {OptionKey}={option} so every host finds the same pool under that name");
            return option;
        }
        if (named.Count > 0)
            return named[0].NetworkName;
        // A pool the IPAM picked by itself (no --subnet, no name) gives no other host a way to find the same
        // network: such a network stays on this host (decisions #1).
        return found.FirstOrDefault(p => !p.ChosenByIpam)?.NetworkName;
    }

    private static string Describe(PoolInfo pool) =>
        pool.NameIsExplicit
            ? $"pool {pool.Pool} belongs to network '{pool.NetworkName}' (--ipam-opt {OptionKey})"
            : $"pool {pool.Pool} was created without --ipam-opt {OptionKey}, so its network is '{pool.NetworkName}'";
}
