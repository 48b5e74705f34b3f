namespace Skein.Driver.Network.State;

/// <summary>
/// Everything the driver needs about one network, kept in its own store: the engine never re-sends
/// CreateNetwork, and DeleteNetwork works from this record alone (decisions #6). Addresses are kept in the text
/// form Docker sent, address/prefix, so a record reads the same in the store as in the request.
/// </summary>
public sealed record NetworkRecord
{
    public required string NetworkId { get; init; }
    public required string BridgeName { get; init; }
    public required int Mtu { get; init; }
    public required bool Internal { get; init; }
    public required bool EnableIPv6 { get; init; }
    /// <summary>False when `-o com.docker.network.bridge.enable_icc=false` asked to isolate containers from each other.</summary>
    public bool InterContainerConnectivity { get; init; } = true;
    /// <summary>
    /// Cluster networks: unicast between local and remote containers skips the bridge (tc redirects between the
    /// veths and the VXLAN device, OverlayDataplane.Bypass). Off with `-o skein.bridge-bypass=false`, and never used
    /// without inter-container connectivity, whose DROP rules live on the bridge path.
    /// </summary>
    public bool BridgeBypass { get; init; } = true;
    /// <summary>Pools as the IPAM answered them: "10.50.0.0/16".</summary>
    public required IReadOnlyList<string> IPv4Subnets { get; init; }
    public required IReadOnlyList<string> IPv6Subnets { get; init; }
    /// <summary>Gateways in address/prefix form ("10.50.0.254/16"); they go on the bridge.</summary>
    public required IReadOnlyList<string> IPv4Gateways { get; init; }
    public required IReadOnlyList<string> IPv6Gateways { get; init; }
    /// <summary>The `-o` options (com.docker.network.generic) as strings, kept for `skein status` and comparisons.</summary>
    public required IReadOnlyDictionary<string, string> GenericOptions { get; init; }
    public required DateTimeOffset CreatedAt { get; init; }
    /// <summary>
    /// The logical network this Docker network is on a cluster of hosts (decisions #1, #5); null for a host-local
    /// network. Records written before multi-host existed have none of the three cluster fields.
    /// </summary>
    public string? ClusterNetwork { get; init; }
    /// <summary>The cluster network's VXLAN id, as the registry agreed it.</summary>
    public int? Vni { get; init; }
    /// <summary>skx-…: the VXLAN port on the bridge.</summary>
    public string? VxlanName { get; init; }
    /// <summary>True when the MTU came from -o (the same on every host); false when derived from the underlay.</summary>
    public bool MtuExplicit { get; init; }

    public bool IsCluster => ClusterNetwork is not null;

    /// <summary>True when a repeated CreateNetwork describes the same network (a retry), not a different one.</summary>
    public bool SameSettingsAs(NetworkRecord other) =>
        NetworkId == other.NetworkId && BridgeName == other.BridgeName && Mtu == other.Mtu && Internal == other.Internal
        && EnableIPv6 == other.EnableIPv6 && InterContainerConnectivity == other.InterContainerConnectivity
        && (InterContainerConnectivity && BridgeBypass) == (other.InterContainerConnectivity && other.BridgeBypass)
        && IPv4Subnets.SequenceEqual(other.IPv4Subnets) && IPv6Subnets.SequenceEqual(other.IPv6Subnets)
        && IPv4Gateways.SequenceEqual(other.IPv4Gateways) && IPv6Gateways.SequenceEqual(other.IPv6Gateways);
}
