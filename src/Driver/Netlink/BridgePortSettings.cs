namespace Skein.Driver.Netlink;

/// <summary>
/// Bridge port flags (IFLA_BRPORT_* inside IFLA_PROTINFO). Null means "leave as is" when setting and
/// "the kernel does not report it" when reading.
/// </summary>
public sealed record BridgePortSettings
{
    public bool? Learning { get; init; }

    /// <summary>ARP/ND suppression: the bridge answers from its neighbour table instead of flooding.</summary>
    public bool? NeighSuppress { get; init; }

    /// <summary>Unknown-unicast flooding (IFLA_BRPORT_UNICAST_FLOOD).</summary>
    public bool? Flood { get; init; }

    public bool? MulticastFlood { get; init; }
    public bool? BroadcastFlood { get; init; }
    public bool? Hairpin { get; init; }
    public bool? Isolated { get; init; }
    public bool? ProxyArp { get; init; }
}
