using Skein.Ipam.Addressing;

namespace Skein.Ipam.Allocation;

/// <summary>A range that default pools are cut from: <paramref name="Base"/> split into /<paramref name="Size"/> pools.</summary>
public sealed record DefaultPoolRange(IpPrefix Base, int Size)
{
    public static DefaultPoolRange Parse(string baseCidr, int size)
    {
        var prefix = IpPrefix.Parse(baseCidr, "default pool base");
        if (size < prefix.Length || size > prefix.MaxLength)
            throw SkeinException.Invalid($"default pool size /{size} does not fit in {prefix}");
        return new DefaultPoolRange(prefix, size);
    }
}

/// <summary>Configuration of the IPAM on one node.</summary>
public sealed record IpamOptions
{
    /// <summary>This host's id in the store: [a-z0-9-]{1,63}.</summary>
    public required string NodeId { get; init; }

    /// <summary>Root of every key (cluster-store §4.4).</summary>
    public string KeyRoot { get; init; } = "skein/v1";

    /// <summary>Address space names answered by GetDefaultAddressSpaces (the built-in names).</summary>
    public string LocalAddressSpace { get; init; } = "LocalDefault";
    public string GlobalAddressSpace { get; init; } = "GlobalDefault";

    /// <summary>Docker's local defaults: 172.17-31.0.0/16, then 192.168.0.0/16 in /20s.</summary>
    public IReadOnlyList<DefaultPoolRange> LocalDefaultPools { get; init; } =
    [
        DefaultPoolRange.Parse("172.17.0.0/16", 16), DefaultPoolRange.Parse("172.18.0.0/15", 16),
        DefaultPoolRange.Parse("172.20.0.0/14", 16), DefaultPoolRange.Parse("172.24.0.0/13", 16),
        DefaultPoolRange.Parse("192.168.0.0/16", 20),
    ];

    /// <summary>Docker's global default: 10.0.0.0/8 in /24s.</summary>
    public IReadOnlyList<DefaultPoolRange> GlobalDefaultPools { get; init; } = [DefaultPoolRange.Parse("10.0.0.0/8", 24)];

    /// <summary>IPv6 pools chosen when V6 is set and no pool is given: ULA /64s ("skein" in the global id).</summary>
    public IReadOnlyList<DefaultPoolRange> IPv6DefaultPools { get; init; } = [DefaultPoolRange.Parse("fd73:6b65:696e::/48", 64)];

    /// <summary>How long a released address is not handed out again (cluster-store §4.8).</summary>
    public TimeSpan Quarantine { get; init; } = TimeSpan.FromSeconds(120);

    /// <summary>When set, a node never borrows addresses from blocks other nodes own.</summary>
    public bool StrictAffinity { get; init; }

    /// <summary>Distinguishes this process's writes ("w" token); a fresh random value when not given.</summary>
    public string? Incarnation { get; init; }

    /// <summary>
    /// Where the outage journal lives (decisions #18); null: no allocation while the cluster store is unreachable
    /// (the embedded store is never unreachable).
    /// </summary>
    public string? JournalDirectory { get; init; }

    /// <summary>
    /// How long after the store last confirmed this node (its liveness, or any IPAM call) the node may still allocate
    /// from its own blocks while the store is unreachable: reclaim-after minus a margin (decisions #18).
    /// </summary>
    public TimeSpan OutageAllowance { get; init; }

    /// <summary>While the store is unreachable, how often a request tries it again before using the journal.</summary>
    public TimeSpan OutageProbeInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Bound on compare-and-swap retries before a request fails as Unavailable.</summary>
    public int MaxCasAttempts { get; init; } = 24;
}
