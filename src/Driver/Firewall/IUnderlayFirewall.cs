using System.Net;

namespace Skein.Driver.Firewall;

/// <summary>
/// Filtering of the VXLAN underlay (decisions #17): VXLAN is unauthenticated, so the host accepts VXLAN UDP only
/// from the VTEPs the store lists. Kept apart from <see cref="IFirewall"/> because only cluster networks need it.
/// </summary>
public interface IUnderlayFirewall
{
    /// <summary>
    /// Lets VXLAN datagrams (UDP <paramref name="udpPort"/>) in only from <paramref name="peers"/>, each family
    /// through its own command; everything else to that port is dropped. Replaces any earlier peer list or port.
    /// An empty list drops all VXLAN traffic. Peers that are let through continue with the host's own INPUT rules.
    /// </summary>
    void ApplyVxlanPeers(ushort udpPort, IReadOnlyCollection<IPAddress> peers);

    /// <summary>Removes the VXLAN filter entirely; nothing if there is none.</summary>
    void RemoveVxlanPeers();
}
