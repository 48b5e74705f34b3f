using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Skein.Driver.Network.Protocol;
using Skein.Driver.Network.State;
using Skein.Ipam;
using static Skein.Driver.Network.RequestValidation;

namespace Skein.Driver.Network;

public sealed partial class BridgeDriver
{
    public async Task<CreateEndpointResponse> CreateEndpointAsync(CreateEndpointRequest request, CancellationToken ct)
    {
        var networkId = RequireId(request.NetworkID, "NetworkID");
        var endpointId = RequireId(request.EndpointID, "EndpointID");
        var network = RequireNetwork(networkId);
        var record = DescribeEndpoint(request, network, endpointId);

        using var held = await LockAsync(ct).ConfigureAwait(false);
        network = RequireNetwork(networkId);
        if (_endpoints.TryGetValue(endpointId, out var existing))
        {
            if (existing.NetworkId != networkId)
                throw SkeinException.Conflict($"endpoint {endpointId} already exists on network {existing.NetworkId}");
            if (!existing.SameInterfaceAs(record))
                throw SkeinException.Conflict($"endpoint {endpointId} already exists with a different interface (address {existing.IPv4Address ?? "-"} {existing.IPv6Address ?? "-"}, MAC {existing.MacAddress})");
            // A retry: converge, and answer exactly what the first attempt answered.
            EnsureBridge(network);
            _veths.Apply(existing, network);
            if (_cluster is not null)
                await _cluster.PublishOrDeferAsync(network, existing, ct).ConfigureAwait(false);
            return Reply(existing);
        }

        EnsureBridge(network);
        await _state.PutEndpointAsync(record, ct).ConfigureAwait(false);
        try
        {
            _veths.Apply(record, network);
            await _addresses.BindAsync(network, record, ct).ConfigureAwait(false);
        }
        catch
        {
            BestEffort($"removing the veth pair of endpoint {Short(endpointId)} after a failed creation", () => _veths.Remove(record));
            await BestEffortAsync($"forgetting endpoint {Short(endpointId)} after a failed creation",
                () => _state.DeleteEndpointAsync(endpointId, CancellationToken.None)).ConfigureAwait(false);
            throw;
        }
        _endpoints[endpointId] = record;
        // Published now rather than at Join, so other hosts know it before the container starts.
        if (_cluster is not null)
            await _cluster.PublishOrDeferAsync(network, record, ct).ConfigureAwait(false);
        _log.LogInformation("created endpoint {Endpoint} on network {Network}: {HostVeth} on {Bridge}, {ContainerVeth} MAC {Mac} {IPv4} {IPv6}",
            Short(endpointId), Short(networkId), record.HostVeth, network.BridgeName, record.ContainerVeth, record.MacAddress, record.IPv4Address ?? "", record.IPv6Address ?? "");
        return Reply(record);

        // Only fields that were empty in the request may be filled; echoing any value makes the engine roll back.
        static CreateEndpointResponse Reply(EndpointRecord endpoint) =>
            new(endpoint.MacGenerated ? new EndpointInterface(null, null, endpoint.MacAddress) : null);
    }

    /// <summary>"Link not found" is success; unknown endpoints are success (stale cleanup, rollbacks).</summary>
    public async Task<EmptyResponse> DeleteEndpointAsync(DeleteEndpointRequest request, CancellationToken ct)
    {
        var networkId = RequireId(request.NetworkID, "NetworkID");
        var endpointId = RequireId(request.EndpointID, "EndpointID");
        using var held = await LockAsync(ct).ConfigureAwait(false);
        if (!_endpoints.TryGetValue(endpointId, out var endpoint))
        {
            _log.LogInformation("DeleteEndpoint for unknown endpoint {Endpoint}: nothing to do", Short(endpointId));
            return new EmptyResponse();
        }
        RequireSameNetwork(endpoint, networkId);
        var network = _networks.GetValueOrDefault(networkId);
        await RemoveEndpointAsync(network, endpoint).ConfigureAwait(false);
        _log.LogInformation("deleted endpoint {Endpoint} of network {Network}", Short(endpointId), Short(networkId));
        return new EmptyResponse();
    }

    /// <summary>Cheap, from memory only: the engine calls it on every inspect and ignores what it says (decisions #11).</summary>
    public EndpointInfoResponse EndpointOperInfo(EndpointInfoRequest request)
    {
        var networkId = RequireId(request.NetworkID, "NetworkID");
        var endpointId = RequireId(request.EndpointID, "EndpointID");
        if (!_endpoints.TryGetValue(endpointId, out var endpoint))
            throw SkeinException.NotFound($"endpoint {endpointId} is not known to skein");
        RequireSameNetwork(endpoint, networkId);
        return new EndpointInfoResponse(new Dictionary<string, string>
        {
            ["skein.hostInterface"] = endpoint.HostVeth,
            ["skein.bridge"] = LinkNames.Bridge(endpoint.NetworkId),
        });
    }

    /// <summary>Record first, then firewall and links: a crash in between leaves links the reconciler deletes.</summary>
    private async Task RemoveEndpointAsync(NetworkRecord? network, EndpointRecord endpoint)
    {
        await BestEffortAsync($"forgetting endpoint {Short(endpoint.EndpointId)}",
            () => _state.DeleteEndpointAsync(endpoint.EndpointId, CancellationToken.None)).ConfigureAwait(false);
        _endpoints.TryRemove(endpoint.EndpointId, out _);
        if (_cluster is not null && network is not null)
            await _cluster.UnpublishAsync(network, endpoint, CancellationToken.None).ConfigureAwait(false);
        if (endpoint.ExternallyConnected)
            BestEffort($"removing port mappings of endpoint {Short(endpoint.EndpointId)}", () => _firewall.RemovePortMappings(endpoint.EndpointId));
        BestEffort($"deleting the veth pair of endpoint {Short(endpoint.EndpointId)}", () => _veths.Remove(endpoint));
        if (network is not null)
            await BestEffortAsync($"releasing the IPAM binding of endpoint {Short(endpoint.EndpointId)}",
                () => _addresses.UnbindAsync(network, endpoint, CancellationToken.None)).ConfigureAwait(false);
    }

    private EndpointRecord DescribeEndpoint(CreateEndpointRequest request, NetworkRecord network, string endpointId)
    {
        var iface = request.Interface ?? new EndpointInterface(null, null, null);
        var v4 = OptionalPrefix(iface.Address, "Interface.Address", AddressFamily.InterNetwork);
        var v6 = OptionalPrefix(iface.AddressIPv6, "Interface.AddressIPv6", AddressFamily.InterNetworkV6);
        if (v4 is { } a4 && network.IPv4Subnets.Count > 0 && !network.IPv4Subnets.Any(s => Contains(Netlink.IpPrefix.Parse(s), a4.Address)))
            throw SkeinException.Invalid($"Interface.Address {a4} is outside the network's subnets {string.Join(", ", network.IPv4Subnets)}");
        if (v6 is { } a6 && network.IPv6Subnets.Count > 0 && !network.IPv6Subnets.Any(s => Contains(Netlink.IpPrefix.Parse(s), a6.Address)))
            throw SkeinException.Invalid($"Interface.AddressIPv6 {a6} is outside the network's subnets {string.Join(", ", network.IPv6Subnets)}");
        if (v6 is not null && network.IPv6Subnets.Count == 0)
            throw SkeinException.Invalid($"Interface.AddressIPv6 {v6} was given but network {network.NetworkId} has no IPv6 subnet");
        var macGiven = !string.IsNullOrEmpty(iface.MacAddress);
        var mac = macGiven
            ? FormatMac(RequireMac(iface.MacAddress!, "Interface.MacAddress"))
            : LinkNames.GeneratedMac(endpointId);
        var ports = PortMapOptions.Parse(request.Options) ?? [];
        return new EndpointRecord
        {
            EndpointId = endpointId,
            NetworkId = network.NetworkId,
            HostVeth = LinkNames.HostVeth(endpointId),
            ContainerVeth = LinkNames.ContainerVeth(endpointId),
            MacAddress = mac,
            MacGenerated = !macGiven,
            IPv4Address = v4?.ToString(),
            IPv6Address = v6?.ToString(),
            PortMappings = ports,
            CreatedAt = _time.GetUtcNow(),
        };
    }

    private static string FormatMac(System.Net.NetworkInformation.PhysicalAddress mac) =>
        string.Join(':', mac.GetAddressBytes().Select(b => b.ToString("x2", System.Globalization.CultureInfo.InvariantCulture)));

    private NetworkRecord RequireNetwork(string networkId) =>
        _networks.TryGetValue(networkId, out var network)
            ? network
            : throw SkeinException.NotFound($"network {networkId} is not known to skein");

    private static void RequireSameNetwork(EndpointRecord endpoint, string networkId)
    {
        if (endpoint.NetworkId != networkId)
            throw SkeinException.Invalid($"endpoint {endpoint.EndpointId} belongs to network {endpoint.NetworkId}, not {networkId}");
    }

    /// <summary>A bridge deleted behind skein's back is rebuilt before an endpoint is attached to it.</summary>
    private void EnsureBridge(NetworkRecord network)
    {
        if (_kernel.GetLink(network.BridgeName) is null)
        {
            _log.LogWarning("bridge {Bridge} of network {Network} is missing; recreating it", network.BridgeName, Short(network.NetworkId));
            _bridges.Apply(network);
        }
    }
}
