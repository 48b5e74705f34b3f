using System.Net;
using System.Net.NetworkInformation;

namespace Skein.Driver.Overlay.Dataplane;

/// <summary>
/// One network's VXLAN port on this host: the bridge it joins, the VXLAN link's name, its VNI, the local VTEP (this
/// host's underlay address, also the source of every encapsulated packet), the UDP port and the overlay MTU.
/// </summary>
public sealed record OverlayDevice(string BridgeName, string VxlanName, int Vni, IPAddress LocalVtep, ushort Port, int Mtu);

/// <summary>An endpoint on another host: its MAC, its addresses (either may be missing) and the VTEP of its host.</summary>
public sealed record RemoteEndpoint(PhysicalAddress Mac, IPAddress? IPv4, IPAddress? IPv6, IPAddress Vtep);

/// <summary>
/// What this host should know about the other hosts of one network: every remote VTEP (flood destinations for
/// broadcast, unknown unicast and multicast) and every remote endpoint. Never this host's own endpoints.
/// </summary>
public sealed record PeerView(IReadOnlyCollection<IPAddress> RemoteVteps, IReadOnlyCollection<RemoteEndpoint> Endpoints)
{
    public static readonly PeerView Empty = new([], []);
}

/// <summary>
/// What <see cref="OverlayDataplane.Apply"/> did, counted in kernel entries (flood and unicast FDB entries on the
/// VXLAN device, static bridge FDB entries, neighbour entries on the bridge). <see cref="Skipped"/> counts view
/// entries that were left out because they contradict each other (one MAC behind two VTEPs, one IP with two MACs)
/// or point at this host's own VTEP; each is logged. <see cref="Failed"/> counts changes the kernel refused (logged,
/// the rest still applied): a caller should retry soon when it is not 0.
/// </summary>
public readonly record struct PeerSyncResult(int Added, int Removed, int Replaced, int Unchanged, int Skipped, int Failed)
{
    public int Changes => Added + Removed + Replaced;
}
