using Skein.Driver.Network.State;

namespace Skein.Driver.Network;

/// <summary>
/// Tells the IPAM that an address it handed out now belongs to a live endpoint (and when it stops), so pending
/// allocations that never became endpoints can be told apart and reclaimed. The network may use another IPAM
/// driver entirely, so implementations ignore addresses they do not manage.
/// </summary>
public interface IEndpointAddressBinding
{
    Task BindAsync(NetworkRecord network, EndpointRecord endpoint, CancellationToken ct);
    Task UnbindAsync(NetworkRecord network, EndpointRecord endpoint, CancellationToken ct);
}

/// <summary>For a driver used without skein's IPAM (and in tests of the driver alone).</summary>
public sealed class NoEndpointAddressBinding : IEndpointAddressBinding
{
    public static readonly NoEndpointAddressBinding Instance = new();
    public Task BindAsync(NetworkRecord network, EndpointRecord endpoint, CancellationToken ct) => Task.CompletedTask;
    public Task UnbindAsync(NetworkRecord network, EndpointRecord endpoint, CancellationToken ct) => Task.CompletedTask;
}
