using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Skein.Driver.Firewall;
using Skein.Driver.Netlink;
using Skein.Driver.Network.Protocol;
using Skein.Driver.Network.State;
using Skein.Ipam;
using static Skein.Driver.Network.RequestValidation;

namespace Skein.Driver.Network;

public sealed partial class BridgeDriver
{
    /// <summary>Docker's ephemeral range for `-p CONTAINERPORT` with no host port.</summary>
    public const int DynamicPortFirst = 49153;
    public const int DynamicPortLast = 60999;

    /// <summary>
    /// Leaves the container side in the host namespace and names it in SrcName: Docker moves it (style #5).
    /// Port mappings are recorded here and programmed at ProgramExternalConnectivity, which the engine sends only
    /// for the container's gateway endpoint, so a container on two networks publishes its ports once.
    /// </summary>
    public async Task<JoinResponse> JoinAsync(JoinRequest request, CancellationToken ct)
    {
        var networkId = RequireId(request.NetworkID, "NetworkID");
        var endpointId = RequireId(request.EndpointID, "EndpointID");
        var ports = PortMapOptions.Parse(request.Options);
        using var held = await LockAsync(ct).ConfigureAwait(false);
        var endpoint = RequireEndpoint(endpointId, networkId);
        var network = RequireNetwork(networkId);
        EnsureBridge(network);
        _veths.Apply(endpoint, network);

        // A repeated Join (retry, rollback) writes nothing when nothing changed; once published, the recorded
        // mappings are the resolved ones in the firewall and stay until revoked.
        if (endpoint.ExternallyConnected)
            ports = null;
        if (!endpoint.Joined || ports is not null && !ports.SequenceEqual(endpoint.PortMappings))
        {
            var joined = endpoint with { Joined = true, PortMappings = ports ?? endpoint.PortMappings };
            await _state.PutEndpointAsync(joined, ct).ConfigureAwait(false);
            _endpoints[endpointId] = joined;
        }

        if (_cluster is not null)
        {
            await _cluster.PublishOrDeferAsync(network, _endpoints[endpointId], ct).ConfigureAwait(false);
            ReportLocalPorts(network);
        }

        string? gateway = null, gatewayIPv6 = null;
        if (!network.Internal)
        {
            if (endpoint.IPv4Address is not null && network.IPv4Gateways.Count > 0)
                gateway = IpPrefix.Parse(network.IPv4Gateways[0]).Address.ToString();
            if (endpoint.IPv6Address is not null && network.IPv6Gateways.Count > 0)
                gatewayIPv6 = IpPrefix.Parse(network.IPv6Gateways[0]).Address.ToString();
        }
        // Without a gateway the engine would add a docker_gwbridge interface (pitfall 12): say there is none on purpose.
        var disableGatewayService = network.Internal || gateway is null && gatewayIPv6 is null;
        _log.LogInformation("joined endpoint {Endpoint} ({ContainerVeth}) to sandbox {Sandbox}", Short(endpointId), endpoint.ContainerVeth, request.SandboxKey ?? "");
        return new JoinResponse(new InterfaceName(endpoint.ContainerVeth, "eth"), gateway, gatewayIPv6, null, disableGatewayService);
    }

    /// <summary>Unknown endpoints are success: Leave follows failed Joins and is only logged by the engine.</summary>
    public async Task<EmptyResponse> LeaveAsync(LeaveRequest request, CancellationToken ct)
    {
        var networkId = RequireId(request.NetworkID, "NetworkID");
        var endpointId = RequireId(request.EndpointID, "EndpointID");
        using var held = await LockAsync(ct).ConfigureAwait(false);
        if (!_endpoints.TryGetValue(endpointId, out var endpoint))
            return new EmptyResponse();
        RequireSameNetwork(endpoint, networkId);
        await DisconnectExternallyAsync(endpoint, ct).ConfigureAwait(false);
        var left = _endpoints[endpointId] with { Joined = false };
        await _state.PutEndpointAsync(left, ct).ConfigureAwait(false);
        _endpoints[endpointId] = left;
        if (_cluster is not null && _networks.TryGetValue(networkId, out var network))
        {
            await _cluster.UnpublishAsync(network, left, ct).ConfigureAwait(false);
            ReportLocalPorts(network);
        }
        return new EmptyResponse();
    }

    public async Task<EmptyResponse> ProgramExternalConnectivityAsync(ProgramExternalConnectivityRequest request, CancellationToken ct)
    {
        var networkId = RequireId(request.NetworkID, "NetworkID");
        var endpointId = RequireId(request.EndpointID, "EndpointID");
        var ports = PortMapOptions.Parse(request.Options);
        using var held = await LockAsync(ct).ConfigureAwait(false);
        var endpoint = RequireEndpoint(endpointId, networkId);
        var network = RequireNetwork(networkId);
        if (network.Internal)
        {
            // Nothing leaves an internal network, published ports included.
            return new EmptyResponse();
        }
        var resolved = ResolveHostPorts(ports ?? endpoint.PortMappings, endpoint);
        var programmed = endpoint with { PortMappings = resolved, ExternallyConnected = true };
        await _state.PutEndpointAsync(programmed, ct).ConfigureAwait(false);
        _endpoints[endpointId] = programmed;
        try
        {
            if (resolved.Count > 0)
                _firewall.ApplyPortMappings(FirewallPorts(programmed, network));
            else
                _firewall.RemovePortMappings(endpointId);
        }
        catch
        {
            var reverted = programmed with { ExternallyConnected = false };
            await BestEffortAsync($"recording that endpoint {Short(endpointId)} is not published",
                () => _state.PutEndpointAsync(reverted, CancellationToken.None)).ConfigureAwait(false);
            _endpoints[endpointId] = reverted;
            BestEffort($"removing partial port mappings of endpoint {Short(endpointId)}", () => _firewall.RemovePortMappings(endpointId));
            throw;
        }
        if (resolved.Count > 0)
            _log.LogInformation("published {Ports} for endpoint {Endpoint}", string.Join(", ", resolved.Select(Describe)), Short(endpointId));
        return new EmptyResponse();
    }

    /// <summary>Idempotent: internal.jsonl revokes an endpoint that was never programmed (decisions #10).</summary>
    public async Task<EmptyResponse> RevokeExternalConnectivityAsync(RevokeExternalConnectivityRequest request, CancellationToken ct)
    {
        var networkId = RequireId(request.NetworkID, "NetworkID");
        var endpointId = RequireId(request.EndpointID, "EndpointID");
        using var held = await LockAsync(ct).ConfigureAwait(false);
        if (!_endpoints.TryGetValue(endpointId, out var endpoint))
            return new EmptyResponse();
        RequireSameNetwork(endpoint, networkId);
        await DisconnectExternallyAsync(endpoint, ct).ConfigureAwait(false);
        return new EmptyResponse();
    }

    /// <summary>
    /// The record says whether rules can exist: it is written (connected) before any rule is added, so an endpoint
    /// recorded as not connected has none, and the common Leave costs no firewall call.
    /// </summary>
    private async Task DisconnectExternallyAsync(EndpointRecord endpoint, CancellationToken ct)
    {
        if (!endpoint.ExternallyConnected)
            return;
        _firewall.RemovePortMappings(endpoint.EndpointId);
        var revoked = endpoint with { ExternallyConnected = false };
        await _state.PutEndpointAsync(revoked, ct).ConfigureAwait(false);
        _endpoints[endpoint.EndpointId] = revoked;
    }

    private EndpointRecord RequireEndpoint(string endpointId, string networkId)
    {
        if (!_endpoints.TryGetValue(endpointId, out var endpoint))
            throw SkeinException.NotFound($"endpoint {endpointId} is not known to skein");
        RequireSameNetwork(endpoint, networkId);
        return endpoint;
    }

    /// <summary>
    /// Turns requested bindings into concrete ones: a host port range or 0 (any) becomes one free port, the same
    /// one again on a retry; a port another endpoint already publishes is a conflict named in the error.
    /// </summary>
    private List<PortMappingRecord> ResolveHostPorts(IReadOnlyList<PortMappingRecord> requested, EndpointRecord endpoint)
    {
        var taken = new Dictionary<(int Proto, ushort Port), string>();
        foreach (var other in _endpoints.Values)
        {
            if (other.EndpointId == endpoint.EndpointId || !other.ExternallyConnected)
                continue;
            foreach (var mapping in other.PortMappings)
                taken[(mapping.Proto, mapping.HostPort)] = other.EndpointId;
        }
        var previous = endpoint.ExternallyConnected ? endpoint.PortMappings : [];
        var result = new List<PortMappingRecord>();
        foreach (var mapping in requested)
        {
            var (first, last) = mapping.HostPort == 0 ? (DynamicPortFirst, DynamicPortLast) : (mapping.HostPort, (int)mapping.HostPortEnd);
            var again = previous.FirstOrDefault(p => p.Proto == mapping.Proto && p.ContainerPort == mapping.ContainerPort && p.HostIP == mapping.HostIP && p.HostPort >= first && p.HostPort <= last);
            int? chosen = again?.HostPort;
            for (var port = first; chosen is null && port <= last; port++)
                if (!taken.ContainsKey((mapping.Proto, (ushort)port)))
                    chosen = port;
            if (chosen is null)
            {
                var owner = taken.GetValueOrDefault((mapping.Proto, (ushort)first));
                throw SkeinException.Conflict(first == last
                    ? $"host port {first}/{ProtoName(mapping.Proto)} is already published by endpoint {Short(owner ?? "?")}"
                    : $"no free host port in {first}-{last}/{ProtoName(mapping.Proto)}");
            }
            taken[(mapping.Proto, (ushort)chosen.Value)] = endpoint.EndpointId;
            result.Add(mapping with { HostPort = (ushort)chosen.Value, HostPortEnd = (ushort)chosen.Value });
        }
        return result;
    }

    private static EndpointPorts FirewallPorts(EndpointRecord endpoint, NetworkRecord network) =>
        new(endpoint.EndpointId,
            network.BridgeName,
            endpoint.IPv4Address is null ? null : IpPrefix.Parse(endpoint.IPv4Address).Address,
            endpoint.IPv6Address is null ? null : IpPrefix.Parse(endpoint.IPv6Address).Address,
            endpoint.PortMappings.Select(p => new PortMapping(
                p.Proto == PortMapOptions.Tcp ? ProtocolType.Tcp : ProtocolType.Udp,
                p.ContainerPort, p.HostPort, p.HostPortEnd,
                p.HostIP is null ? null : IPAddress.Parse(p.HostIP))).ToList());

    private static string ProtoName(int proto) => proto == PortMapOptions.Tcp ? "tcp" : "udp";

    private static string Describe(PortMappingRecord p) =>
        $"{(p.HostIP is null ? "" : p.HostIP + ":")}{p.HostPort}->{p.ContainerPort}/{ProtoName(p.Proto)}";
}
