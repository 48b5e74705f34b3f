using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Skein.Driver.Netlink;
using Skein.Driver.Network.Protocol;
using Skein.Driver.Network.State;
using Skein.Driver.Overlay.Control;
using Skein.Ipam;
using static Skein.Driver.Network.RequestValidation;

namespace Skein.Driver.Network;

public sealed partial class BridgeDriver
{
    public async Task<EmptyResponse> CreateNetworkAsync(CreateNetworkRequest request, CancellationToken ct)
    {
        var record = DescribeNetwork(request, _time.GetUtcNow());
        using var held = await LockAsync(ct).ConfigureAwait(false);
        if (_networks.TryGetValue(record.NetworkId, out var existing))
        {
            // A cluster network's MTU may come from the underlay: compare what the request can say.
            var comparable = existing.IsCluster && !existing.MtuExplicit && !record.MtuExplicit ? record with { Mtu = existing.Mtu } : record;
            if (!existing.SameSettingsAs(comparable))
                throw SkeinException.Conflict($"network {record.NetworkId} already exists with different settings (bridge {existing.BridgeName}, subnets {string.Join(", ", existing.IPv4Subnets.Concat(existing.IPv6Subnets))}, MTU {existing.Mtu}, internal {existing.Internal})");
            // A retry: converge on the recorded network rather than failing on what the first attempt built.
            _bridges.Apply(existing);
            if (existing.IsCluster && _cluster is not null)
            {
                _cluster.EnsureDevice(existing);
                _cluster.Track(existing);
            }
            return new EmptyResponse();
        }
        if (_networks.Values.FirstOrDefault(n => n.BridgeName == record.BridgeName) is { } clash)
            throw SkeinException.Conflict($"networks {record.NetworkId} and {clash.NetworkId} hash to the same bridge name {record.BridgeName}");

        ClusterNetworkPlan? plan = null;
        if (_cluster is not null)
        {
            plan = await _cluster.PlanAsync(record, RequestedPools(request), record.MtuExplicit, id => !_networks.ContainsKey(id), ct).ConfigureAwait(false);
            if (plan is not null)
                record = record with { ClusterNetwork = plan.Net, Vni = plan.Vni, VxlanName = plan.VxlanName, Mtu = plan.Mtu };
        }

        try
        {
            await _state.PutNetworkAsync(record, ct).ConfigureAwait(false);
        }
        catch
        {
            if (plan is not null)
                await BestEffortAsync($"leaving cluster network '{plan.Net}' after a failed creation",
                    () => _cluster!.AbandonAsync(plan.Net, record.NetworkId, CancellationToken.None)).ConfigureAwait(false);
            throw;
        }
        try
        {
            _bridges.Apply(record);
            if (plan is not null)
                _cluster!.EnsureDevice(record);
        }
        catch
        {
            if (plan is not null)
            {
                BestEffort($"removing VXLAN device {plan.VxlanName} after a failed creation", () => _bridges.RemoveLink(plan.VxlanName));
                _bridges.Teardown(record);
                await BestEffortAsync($"leaving cluster network '{plan.Net}' after a failed creation",
                    () => _cluster!.AbandonAsync(plan.Net, record.NetworkId, CancellationToken.None)).ConfigureAwait(false);
            }
            await BestEffortAsync($"forgetting network {Short(record.NetworkId)} after a failed creation",
                () => _state.DeleteNetworkAsync(record.NetworkId, CancellationToken.None)).ConfigureAwait(false);
            throw;
        }
        _networks[record.NetworkId] = record;
        if (plan is not null)
            _cluster!.Track(record);
        _log.LogInformation("created network {Network}: bridge {Bridge}, subnets {Subnets}, MTU {Mtu}{Internal}{Cluster}",
            Short(record.NetworkId), record.BridgeName, string.Join(" ", record.IPv4Subnets.Concat(record.IPv6Subnets)), record.Mtu, record.Internal ? ", internal" : "",
            plan is null ? "" : $", cluster network '{plan.Net}' VNI {plan.Vni} on {plan.VxlanName}");
        return new EmptyResponse();
    }

    private static List<RequestedPool> RequestedPools(CreateNetworkRequest request) =>
    [
        .. (request.IPv4Data ?? []).OfType<IpamData>().Where(d => d.Pool is not null).Select(d => new RequestedPool(d.AddressSpace ?? "", d.Pool!, false)),
        .. (request.IPv6Data ?? []).OfType<IpamData>().Where(d => d.Pool is not null).Select(d => new RequestedPool(d.AddressSpace ?? "", d.Pool!, true)),
    ];

    /// <summary>
    /// Works from the driver's own record only and never refuses (decisions #6): the engine removes the network
    /// whatever we answer, so whatever cannot be removed now is left to the reconciler.
    /// </summary>
    public async Task<EmptyResponse> DeleteNetworkAsync(DeleteNetworkRequest request, CancellationToken ct)
    {
        var networkId = RequireId(request.NetworkID, "NetworkID");
        using var held = await LockAsync(ct).ConfigureAwait(false);
        if (!_networks.TryGetValue(networkId, out var network))
        {
            _log.LogInformation("DeleteNetwork for unknown network {Network}: nothing to do", Short(networkId));
            return new EmptyResponse();
        }
        foreach (var endpoint in _endpoints.Values.Where(e => e.NetworkId == networkId).ToList())
        {
            _log.LogWarning("network {Network} is deleted with endpoint {Endpoint} still present; removing it", Short(networkId), Short(endpoint.EndpointId));
            await RemoveEndpointAsync(network, endpoint).ConfigureAwait(false);
        }
        await BestEffortAsync($"forgetting network {Short(networkId)}", () => _state.DeleteNetworkAsync(networkId, CancellationToken.None)).ConfigureAwait(false);
        _networks.TryRemove(networkId, out _);
        if (network.IsCluster)
        {
            if (_cluster is not null)
            {
                foreach (var failure in await _cluster.RemoveAsync(network, CancellationToken.None).ConfigureAwait(false))
                    _log.LogWarning("network {Network}: {Failure}", Short(networkId), failure);
            }
            else
            {
                BestEffort($"removing VXLAN device {network.VxlanName}", () => _bridges.RemoveLink(network.VxlanName!));
            }
        }
        // Endpoint veth pairs are deleted in the background after DeleteEndpoint; let them go first so that
        // `docker network rm` leaves nothing behind (bounded: a stuck deletion is the reconciler's to finish).
        await WhenLinksDeletedAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        _bridges.Teardown(network);
        _log.LogInformation("deleted network {Network} (bridge {Bridge})", Short(networkId), network.BridgeName);
        return new EmptyResponse();
    }

    /// <summary>Swarm managers only, for Scope global; answered so a future global mode has it: the options come back unchanged.</summary>
    public static AllocateNetworkResponse AllocateNetwork(AllocateNetworkRequest request)
    {
        RequireId(request.NetworkID, "NetworkID");
        ReadIpamData(request.IPv4Data, "IPv4Data", AddressFamily.InterNetwork);
        ReadIpamData(request.IPv6Data, "IPv6Data", AddressFamily.InterNetworkV6);
        return new AllocateNetworkResponse(request.Options ?? []);
    }

    public static EmptyResponse FreeNetwork(FreeNetworkRequest request)
    {
        RequireId(request.NetworkID, "NetworkID");
        return new EmptyResponse();
    }

    /// <summary>Not advertised (GwAllocChecker false); if asked anyway, let the engine reserve gateways as usual.</summary>
    public static GwAllocCheckerResponse GwAllocCheck(GwAllocCheckerRequest request)
    {
        NetworkOptions.Parse(request.Options);
        return new GwAllocCheckerResponse(false, false);
    }

    /// <summary>The record a CreateNetwork asks for; every check that needs no state happens here.</summary>
    internal static NetworkRecord DescribeNetwork(CreateNetworkRequest request, DateTimeOffset now)
    {
        var networkId = RequireId(request.NetworkID, "NetworkID");
        var options = NetworkOptions.Parse(request.Options);
        var (v4Subnets, v4Gateways) = ReadIpamData(request.IPv4Data, "IPv4Data", AddressFamily.InterNetwork);
        var (v6Subnets, v6Gateways) = ReadIpamData(request.IPv6Data, "IPv6Data", AddressFamily.InterNetworkV6);
        if (v6Subnets.Count > 0 && !options.EnableIPv6 && request.Options?.ContainsKey(NetworkOptions.EnableIPv6Key) == true)
            throw SkeinException.Invalid($"IPv6Data carries {string.Join(", ", v6Subnets)} but {NetworkOptions.EnableIPv6Key} is false");
        var enableIPv6 = options.EnableIPv6 || v6Subnets.Count > 0;
        if (enableIPv6 && options.Mtu < NetworkOptions.MinimumIPv6Mtu)
            throw SkeinException.Invalid($"MTU {options.Mtu} is below the 1280 bytes IPv6 needs");
        return new NetworkRecord
        {
            NetworkId = networkId,
            BridgeName = LinkNames.Bridge(networkId),
            Mtu = options.Mtu,
            MtuExplicit = options.MtuExplicit,
            Internal = options.Internal,
            EnableIPv6 = enableIPv6,
            InterContainerConnectivity = options.InterContainerConnectivity,
            BridgeBypass = options.BridgeBypass,
            IPv4Subnets = v4Subnets,
            IPv6Subnets = v6Subnets,
            IPv4Gateways = v4Gateways,
            IPv6Gateways = v6Gateways,
            GenericOptions = options.Generic,
            CreatedAt = now,
        };
    }

    /// <summary>
    /// IPvNData: one element per pool, Pool masked, Gateway and AuxAddresses as address/prefix inside the pool.
    /// Returns the pools and the gateways in the text form kept in the record.
    /// </summary>
    private static (List<string> Subnets, List<string> Gateways) ReadIpamData(List<IpamData?>? data, string field, AddressFamily family)
    {
        var subnets = new List<string>();
        var gateways = new List<string>();
        if (data is null)
            return (subnets, gateways);
        for (var i = 0; i < data.Count; i++)
        {
            var where = $"{field}[{i}]";
            var item = data[i] ?? throw SkeinException.Invalid($"{where} is null");
            var pool = RequirePrefix(item.Pool, $"{where}.Pool", family);
            if (!pool.Network.Address.Equals(pool.Address))
                throw SkeinException.Invalid($"{where}.Pool {Show(item.Pool!)} has host bits set; the pool would be {pool.Network}");
            if (subnets.Contains(pool.ToString()))
                throw SkeinException.Invalid($"{where}.Pool {pool} appears twice");
            subnets.Add(pool.ToString());
            if (OptionalPrefix(item.Gateway, $"{where}.Gateway", family) is { } gateway)
            {
                CheckInside(pool, gateway, $"{where}.Gateway");
                gateways.Add(gateway.ToString());
            }
            foreach (var (name, value) in item.AuxAddresses ?? [])
            {
                var aux = RequirePrefix(value, $"{where}.AuxAddresses[{Show(name)}]", family);
                CheckInside(pool, aux, $"{where}.AuxAddresses[{Show(name)}]");
            }
        }
        return (subnets, gateways);
    }

    private static void CheckInside(IpPrefix pool, IpPrefix address, string field)
    {
        if (!Contains(pool, address.Address))
            throw SkeinException.Invalid($"{field} {address} is outside the pool {pool}");
    }
}
