using Skein.Ipam.Addressing;

namespace Skein.Ipam.Allocation;

/// <summary>Per-host block size for a pool (cluster-store §4.8), fixed when the pool is created.</summary>
internal static class BlockGeometry
{
    public static int BlockLengthFor(IpPrefix pool)
    {
        if (pool.IsV6)
            return pool.Length <= 116 ? 122 : pool.Length;
        if (pool.Length <= 22)
            return 26;
        if (pool.Length <= 29)
            return Math.Min(pool.Length + 4, 29);
        return pool.Length;
    }

    /// <summary>
    /// Addresses Docker's allocator never hands out: the all-zero host address (both families)
    /// and, for IPv4, the broadcast address. Tiny IPv4 pools (/31, /32) are left with nothing.
    /// </summary>
    public static bool IsReserved(IpPrefix pool, UInt128 poolOrdinal) =>
        poolOrdinal == 0 || (!pool.IsV6 && poolOrdinal == pool.LastOrdinal);
}
