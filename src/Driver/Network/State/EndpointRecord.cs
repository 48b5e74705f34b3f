namespace Skein.Driver.Network.State;

/// <summary>One published port as Docker sent it in com.docker.network.portmap (Proto 6 = TCP, 17 = UDP).</summary>
public sealed record PortMappingRecord(int Proto, ushort ContainerPort, ushort HostPort, ushort HostPortEnd, string? HostIP);

/// <summary>
/// One endpoint: its veth pair and what Docker told us about it. Written before the pair is created, so a crash
/// between the two leaves a record the reconciler can finish, never a link nobody owns for long.
/// </summary>
public sealed record EndpointRecord
{
    public required string EndpointId { get; init; }
    public required string NetworkId { get; init; }
    /// <summary>skv…: stays in the host namespace, enslaved to the network's bridge.</summary>
    public required string HostVeth { get; init; }
    /// <summary>skc…: the side Docker moves into the container (Join's SrcName).</summary>
    public required string ContainerVeth { get; init; }
    public required string MacAddress { get; init; }
    /// <summary>True when Docker sent no MAC and skein chose it: only then is it returned in CreateEndpoint.</summary>
    public required bool MacGenerated { get; init; }
    /// <summary>address/prefix as Docker sent it, or null when that family is not used.</summary>
    public string? IPv4Address { get; init; }
    public string? IPv6Address { get; init; }
    public IReadOnlyList<PortMappingRecord> PortMappings { get; init; } = [];
    /// <summary>Set by Join, cleared by Leave: while joined the container side lives in the container.</summary>
    public bool Joined { get; init; }
    /// <summary>Set by ProgramExternalConnectivity: the port mappings are in the firewall.</summary>
    public bool ExternallyConnected { get; init; }
    public required DateTimeOffset CreatedAt { get; init; }

    public bool SameInterfaceAs(EndpointRecord other) =>
        NetworkId == other.NetworkId && IPv4Address == other.IPv4Address && IPv6Address == other.IPv6Address
        && (MacGenerated && other.MacGenerated || string.Equals(MacAddress, other.MacAddress, StringComparison.OrdinalIgnoreCase));
}
