using System.Text.Json.Serialization;

namespace Skein.Ipam.Cluster;

// Records of node identity and garbage collection (cluster-store §4.5, §4.6, §4.9).

/// <summary>nodes/&lt;node&gt; (ephemeral): this node is alive, where its VTEP is, and which incarnation runs.</summary>
internal sealed record NodeRecord
{
    public int V { get; init; } = ClusterJsonContext.Schema;
    public string Addr { get; init; } = "";
    public string Vtep { get; init; } = "";
    public long Incarnation { get; init; }
    /// <summary>Unix seconds, for operators only (no host compares another host's clock).</summary>
    public long StartedAt { get; init; }
}

/// <summary>nodeinfo/&lt;node&gt; (persistent): incarnation counter and what the collector reclaimed.</summary>
internal sealed record NodeInfoRecord
{
    public int V { get; init; } = ClusterJsonContext.Schema;
    public string W { get; init; } = "";
    public long Incarnation { get; init; }
    public long LastStart { get; init; }
    public long? ReclaimedAt { get; init; }
    public long? ReclaimedIncarnation { get; init; }
}

/// <summary>gc/leader (ephemeral): the node running the dead-node collector.</summary>
internal sealed record LeaderRecord
{
    public int V { get; init; } = ClusterJsonContext.Schema;
    public string Node { get; init; } = "";
    public long Incarnation { get; init; }
}

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(NodeRecord))]
[JsonSerializable(typeof(NodeInfoRecord))]
[JsonSerializable(typeof(LeaderRecord))]
internal sealed partial class ClusterJsonContext : JsonSerializerContext
{
    public const int Schema = 1;
}
