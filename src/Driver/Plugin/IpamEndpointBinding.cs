using Microsoft.Extensions.Logging;
using Skein.Driver.Netlink;
using Skein.Driver.Network;
using Skein.Driver.Network.State;
using Skein.Ipam.Allocation;

namespace Skein.Driver.Plugin;

/// <summary>
/// Connects the driver's endpoints to skein's IPAM: an address becomes "bound" at CreateEndpoint and "pending"
/// again at DeleteEndpoint. Addresses from another IPAM driver are simply not found there, which is fine.
/// </summary>
public sealed class IpamEndpointBinding(IpamService ipam, ILogger log) : IEndpointAddressBinding
{
    public Task BindAsync(NetworkRecord network, EndpointRecord endpoint, CancellationToken ct) => MarkAsync(endpoint, bind: true, ct);

    public Task UnbindAsync(NetworkRecord network, EndpointRecord endpoint, CancellationToken ct) => MarkAsync(endpoint, bind: false, ct);

    private async Task MarkAsync(EndpointRecord endpoint, bool bind, CancellationToken ct)
    {
        foreach (var text in new[] { endpoint.IPv4Address, endpoint.IPv6Address })
        {
            if (text is null)
                continue;
            var address = IpPrefix.Parse(text).Address;
            var marked = bind
                ? await ipam.MarkEndpointBoundAsync(null, address, endpoint.EndpointId, ct).ConfigureAwait(false)
                : await ipam.MarkEndpointUnboundAsync(null, address, endpoint.EndpointId, ct).ConfigureAwait(false);
            if (!marked)
                log.LogDebug("address {Address} of endpoint {Endpoint} is not held by skein's IPAM on this node; nothing to {Verb}",
                    address, endpoint.EndpointId, bind ? "bind" : "unbind");
        }
    }
}
