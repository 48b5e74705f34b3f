using Microsoft.Extensions.Logging;
using Skein.Driver.Firewall;
using Skein.Driver.Network.Kernel;
using Skein.Driver.Network.Setup;
using Skein.Driver.Network.State;

namespace Skein.Driver.Network;

/// <summary>What one reconciliation pass found and did.</summary>
public sealed record ReconcileReport(int NetworksChecked, int EndpointsChecked, int OrphanLinksDeleted, int OrphanRecordsDropped, IReadOnlyList<string> Failures)
{
    public bool Clean => Failures.Count == 0;
}

public sealed partial class BridgeDriver
{
    /// <summary>
    /// Makes the kernel match the records: recreates missing bridges, gateway addresses and firewall rules,
    /// re-creates veth pairs of endpoints that were never joined and re-attaches host sides, deletes skein-shaped
    /// links that no record owns, and hands the full rule set to the firewall. Cheap when nothing is wrong: it
    /// only reads. Never calls the Docker API.
    /// </summary>
    public async Task<ReconcileReport> ReconcileAsync(CancellationToken ct)
    {
        using var held = await LockAsync(ct).ConfigureAwait(false);
        var failures = new List<string>();
        var droppedRecords = 0;

        foreach (var network in _networks.Values)
        {
            try
            {
                _bridges.ApplyLinks(network);
            }
            catch (Exception ex)
            {
                failures.Add($"network {Short(network.NetworkId)}: {KernelFailure.Describe(ex) ?? ex.Message}");
            }
        }

        if (_cluster is not null)
        {
            failures.AddRange(_cluster.Reconcile(_networks.Values.ToList()));
            await BestEffortAsync("publishing deferred endpoints", () => _cluster.RetryDeferredAsync(ct)).ConfigureAwait(false);
        }

        foreach (var endpoint in _endpoints.Values.ToList())
        {
            if (!_networks.TryGetValue(endpoint.NetworkId, out var network))
            {
                // Its network was deleted by a run that crashed before removing the endpoint.
                _log.LogWarning("endpoint {Endpoint} names network {Network}, which skein no longer has; dropping it", Short(endpoint.EndpointId), Short(endpoint.NetworkId));
                await RemoveEndpointAsync(null, endpoint).ConfigureAwait(false);
                droppedRecords++;
                continue;
            }
            // A joined endpoint whose host side is gone lost its container's namespace; the engine will delete it.
            if (endpoint.Joined && _kernel.GetLink(endpoint.HostVeth) is null)
                continue;
            try
            {
                _veths.Apply(endpoint, network);
            }
            catch (Exception ex)
            {
                failures.Add($"endpoint {Short(endpoint.EndpointId)}: {KernelFailure.Describe(ex) ?? ex.Message}");
            }
        }

        foreach (var network in _networks.Values.Where(n => n.IsCluster))
            ReportLocalPorts(network);

        var owned = new HashSet<string>(StringComparer.Ordinal);
        foreach (var network in _networks.Values)
        {
            owned.Add(network.BridgeName);
            if (network.VxlanName is not null)
                owned.Add(network.VxlanName);
        }
        foreach (var endpoint in _endpoints.Values)
        {
            owned.Add(endpoint.HostVeth);
            owned.Add(endpoint.ContainerVeth);
        }
        var deleted = 0;
        foreach (var link in _kernel.ListLinks())
        {
            if (!(LinkNames.IsSkeinLink(link.Name) || Overlay.Dataplane.OverlayNames.IsVxlan(link.Name)) || owned.Contains(link.Name))
                continue;
            try
            {
                if (_kernel.DeleteLink(link.Name))
                {
                    deleted++;
                    _log.LogInformation("deleted link {Link}: no network or endpoint record owns it", link.Name);
                }
            }
            catch (Exception ex)
            {
                failures.Add($"deleting orphan link {link.Name}: {KernelFailure.Describe(ex) ?? ex.Message}");
            }
        }

        try
        {
            var networks = _networks.Values.Select(BridgeSetup.FirewallView).ToList();
            var published = _endpoints.Values
                .Where(e => e.ExternallyConnected && e.PortMappings.Count > 0 && _networks.TryGetValue(e.NetworkId, out var n) && !n.Internal)
                .Select(e => FirewallPorts(e, _networks[e.NetworkId]))
                .ToList();
            _firewall.EnsureBaseChains();
            _firewall.Reconcile(networks, published);
        }
        catch (Exception ex)
        {
            failures.Add($"firewall: {KernelFailure.Describe(ex) ?? ex.Message}");
        }

        foreach (var failure in failures)
            _log.LogError("reconcile: {Failure}", failure);
        return new ReconcileReport(_networks.Count, _endpoints.Count, deleted, droppedRecords, failures);
    }
}
