namespace Skein.Driver.Firewall;

/// <summary>
/// The one place skein programs the host firewall. Every rule lives in skein's own chains; the only rules
/// skein adds to built-in chains are the jumps into them. All operations are idempotent.
/// </summary>
public interface IFirewall
{
    /// <summary>
    /// Creates skein's chains and the jumps into them, and puts them back where something (usually a
    /// restarting dockerd) removed or reordered them. Cheap when nothing is missing: it only reads.
    /// </summary>
    void EnsureBaseChains();

    /// <summary>Programs one network's forwarding, isolation and masquerade rules, replacing any earlier version.</summary>
    void ApplyNetwork(NetworkFirewall network);

    /// <summary>Removes exactly the rules <see cref="ApplyNetwork"/> made for this bridge; nothing if there are none.</summary>
    void RemoveNetwork(string bridgeName);

    /// <summary>Programs one endpoint's published ports, replacing any earlier version of that endpoint's rules.</summary>
    void ApplyPortMappings(EndpointPorts endpoint);

    /// <summary>Removes exactly that endpoint's port rules; an endpoint that was never programmed is fine.</summary>
    void RemovePortMappings(string endpointId);

    /// <summary>
    /// Makes skein's chains hold exactly the rules of these networks and endpoints (one atomic batch per table),
    /// dropping rules that no record owns. Rules outside skein's chains are left alone.
    /// </summary>
    void Reconcile(IReadOnlyCollection<NetworkFirewall> networks, IReadOnlyCollection<EndpointPorts> endpoints);

    /// <summary>What `skein doctor` shows: backend, jumps, FORWARD policy and the kernel switches that matter.</summary>
    FirewallReport Inspect();
}
