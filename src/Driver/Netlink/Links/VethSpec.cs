using System.Net.NetworkInformation;

namespace Skein.Driver.Netlink;

/// <summary>A veth pair. The peer may be created directly in another namespace (<see cref="PeerNamespaceFd"/>).</summary>
public sealed record VethSpec(string Name, string PeerName) : LinkSpec(Name)
{
    public override string Kind => "veth";

    public int? PeerNamespaceFd { get; init; }
    public PhysicalAddress? PeerMacAddress { get; init; }
    public int? PeerMtu { get; init; }

    /// <summary>Decoded only: the peer's index (IFLA_LINK), in another namespace when the link has a parent namespace id.</summary>
    public int? PeerIndex { get; init; }
}
