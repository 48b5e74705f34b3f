using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;

namespace Skein.Driver.Overlay.Control;

/// <summary>
/// The settings every host must agree on for one logical network; a CreateNetwork that differs on any of them fails
/// naming it. Mtu is the explicit `-o` MTU only (null when derived from each host's underlay).
/// </summary>
public sealed record ClusterNetworkSettings
{
    public List<string> Pools { get; init; } = [];
    public bool Internal { get; init; }
    public bool Ipv6 { get; init; }
    public int? Mtu { get; init; }

    /// <summary>The first setting that differs, as (name, registered value, requested value); null when they agree.</summary>
    public (string Setting, string Registered, string Requested)? FirstDifference(ClusterNetworkSettings requested)
    {
        if (!Pools.SequenceEqual(requested.Pools))
            return ("pools (--subnet)", Show(Pools), Show(requested.Pools));
        if (Internal != requested.Internal)
            return ("internal (--internal)", Bool(Internal), Bool(requested.Internal));
        if (Ipv6 != requested.Ipv6)
            return ("IPv6 (--ipv6)", Bool(Ipv6), Bool(requested.Ipv6));
        if (Mtu != requested.Mtu)
            return ("MTU (-o com.docker.network.driver.mtu)", MtuText(Mtu), MtuText(requested.Mtu));
        return null;

        static string Show(List<string> pools) => pools.Count == 0 ? "none" : string.Join(", ", pools);
        static string Bool(bool value) => value ? "on" : "off";
        static string MtuText(int? mtu) => mtu is { } m ? m.ToString(System.Globalization.CultureInfo.InvariantCulture) : "derived from the underlay";
    }
}

/// <summary>networks/&lt;net&gt; (persistent): the VNI, the agreed settings and which Docker network each host uses.</summary>
public sealed record NetworkRegistration
{
    public int V { get; init; } = 1;
    public int Vni { get; init; }
    public ClusterNetworkSettings Settings { get; init; } = new();
    /// <summary>node id → Docker network ids on that node (a set; one element in practice).</summary>
    public Dictionary<string, List<string>> Members { get; init; } = [];
}

/// <summary>vnis/&lt;vni&gt; (persistent): which logical network holds the VNI.</summary>
public sealed record VniRegistration
{
    public string Net { get; init; } = "";
}

/// <summary>peers/&lt;net&gt;/&lt;node&gt; (ephemeral): the node takes part in the network through this VTEP.</summary>
public sealed record PeerNodeRecord
{
    public string Vtep { get; init; } = "";
    public long Incarnation { get; init; }
}

/// <summary>peers/&lt;net&gt;/&lt;node&gt;/&lt;eid&gt; (ephemeral): one endpoint on that node.</summary>
public sealed record PeerEndpointRecord
{
    public string? Ip4 { get; init; }
    public string? Ip6 { get; init; }
    public string Mac { get; init; } = "";
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(NetworkRegistration))]
[JsonSerializable(typeof(VniRegistration))]
[JsonSerializable(typeof(PeerNodeRecord))]
[JsonSerializable(typeof(PeerEndpointRecord))]
public sealed partial class ClusterJsonContext : JsonSerializerContext
{
    public static byte[] Encode<T>(T value, JsonTypeInfo<T> type) => JsonSerializer.SerializeToUtf8Bytes(value, type);

    /// <summary>A record another host wrote; a value that does not parse is reported with its key, never guessed at.</summary>
    public static T Decode<T>(string key, ReadOnlyMemory<byte> value, JsonTypeInfo<T> type)
    {
        try
        {
            return JsonSerializer.Deserialize(value.Span, type) ?? throw new InvalidDataException($"store key '{key}' holds JSON null");
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"store key '{key}' does not hold a valid {typeof(T).Name}: {ex.Message}", ex);
        }
    }
}
