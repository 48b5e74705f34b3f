using System.Text.Json.Serialization;

namespace Skein.Ipam.Allocation;

// The small JSON values the IPAM keeps in the cluster store (cluster-store §4.5). Every record
// carries "v" (schema) and "w" (writer token "<node>/<incarnation>/<seq>", used to recognise our
// own write after an ambiguous store failure).

/// <summary>spaces/&lt;space&gt;: the pools of one address space, the overlap guard.</summary>
internal sealed record SpaceRecord
{
    public int V { get; init; } = IpamStoreJsonContext.Schema;
    public string W { get; init; } = "";
    public List<string> Pools { get; init; } = [];
}

/// <summary>One node's claim on a pool: the sub-pool its network uses and when it claimed.</summary>
internal sealed record PoolUserRecord
{
    public string? Sub { get; init; }
    public long Ts { get; init; }
}

/// <summary>pools/&lt;space&gt;/&lt;pool&gt;.</summary>
internal sealed record PoolRecord
{
    public int V { get; init; } = IpamStoreJsonContext.Schema;
    public string W { get; init; } = "";
    /// <summary>Address space as Docker named it (keys use the lower-cased form).</summary>
    public string Space { get; init; } = "";
    public string Cidr { get; init; } = "";
    public bool V6 { get; init; }
    public int BlockLen { get; init; }
    /// <summary>The agreed gateway (bare IP), fixed by the first gateway request.</summary>
    public string? Gateway { get; init; }
    public Dictionary<string, PoolUserRecord> Users { get; init; } = [];
    public string State { get; init; } = PoolStates.Active;
    /// <summary>Logical network name: --ipam-opt skein.network, else derived from the pool.</summary>
    public string Net { get; init; } = "";
    /// <summary>True when <see cref="Net"/> was given by the user rather than derived.</summary>
    public bool Named { get; init; }
    /// <summary>
    /// True when skein chose the pool from its defaults for a request with neither a subnet nor a name: such a
    /// network stays on its host (decisions #1), since nothing would make other hosts pick the same pool.
    /// </summary>
    public bool Chosen { get; init; }
}

internal static class PoolStates
{
    public const string Active = "active";
    public const string Deleting = "deleting";
}

/// <summary>poolnames/&lt;space&gt;/&lt;net&gt;: the pool of each family a named network uses.</summary>
internal sealed record PoolNameRecord
{
    public int V { get; init; } = IpamStoreJsonContext.Schema;
    public string W { get; init; } = "";
    public string? V4 { get; init; }
    public string? V6 { get; init; }
}

/// <summary>One used address inside a block.</summary>
internal sealed record SlotRecord
{
    public string Kind { get; init; } = SlotKinds.Container;
    /// <summary>The node that holds it, or "*" for network-level slots (reserved, gateway, aux).</summary>
    public string Node { get; init; } = SlotKinds.AnyNode;
    public string? State { get; init; }
    public string? Mac { get; init; }
    public string? Eid { get; init; }
    public long Ts { get; init; }
}

internal static class SlotKinds
{
    public const string Reserved = "reserved";
    public const string Gateway = "gateway";
    public const string Aux = "aux";
    public const string Container = "container";
    public const string AnyNode = "*";
    public const string Pending = "pending";
    public const string Bound = "bound";
}

/// <summary>blocks/&lt;space&gt;/&lt;pool&gt;/&lt;block&gt;: slots by ordinal within the block, and when freed ordinals were freed.</summary>
internal sealed record BlockRecord
{
    public int V { get; init; } = IpamStoreJsonContext.Schema;
    public string W { get; init; } = "";
    public string? Owner { get; init; }
    public string? OwnerInc { get; init; }
    /// <summary>Other nodes that borrowed a slot here (each has an affinity entry to remove with the block).</summary>
    public List<string>? Borrowers { get; init; }
    public Dictionary<int, SlotRecord> Slots { get; init; } = [];
    /// <summary>Ordinal → Unix seconds of its release; drives the quarantine.</summary>
    public Dictionary<int, long> Freed { get; init; } = [];
}

/// <summary>affinity/&lt;node&gt;/&lt;space&gt;/&lt;pool&gt;/&lt;block&gt;: the blocks a node allocates from.</summary>
internal sealed record AffinityRecord
{
    public int V { get; init; } = IpamStoreJsonContext.Schema;
    public string W { get; init; } = "";
    public bool Borrowed { get; init; }
}

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(SpaceRecord))]
[JsonSerializable(typeof(PoolRecord))]
[JsonSerializable(typeof(PoolNameRecord))]
[JsonSerializable(typeof(BlockRecord))]
[JsonSerializable(typeof(AffinityRecord))]
[JsonSerializable(typeof(JournalEntry))]
[JsonSerializable(typeof(PoolSnapshot))]
internal sealed partial class IpamStoreJsonContext : JsonSerializerContext
{
    public const int Schema = 1;
}
