using Microsoft.Extensions.Logging;
using Skein.Driver.Netlink;
using Skein.Driver.Network.Kernel;
using Skein.Driver.Network.State;
using Skein.Ipam;

namespace Skein.Driver.Network.Setup;

/// <summary>
/// The kernel side of an endpoint: a veth pair in the programmed namespace, host side on the network's bridge and
/// up, container side carrying the endpoint's MAC and the network's MTU, left for Docker to move (style #5).
/// Pairs are deleted in the background once their endpoint is forgotten (<see cref="DeferredLinkDeleter"/>).
/// </summary>
public sealed class VethSetup(IHostKernel kernel, ILogger log)
{
    private readonly DeferredLinkDeleter _deleter = new(kernel, log);

    private sealed class Context(EndpointRecord endpoint, NetworkRecord network, int bridgeIndex)
    {
        public EndpointRecord Endpoint { get; } = endpoint;
        public NetworkRecord Network { get; } = network;
        public int BridgeIndex { get; } = bridgeIndex;
    }

    private readonly SetupStep<Context>[] _steps =
    [
        new("create the veth pair", c => CreatePair(kernel, c)),
        new("attach the host side to the bridge", c => Attach(kernel, c)),
        new("bring the host side up", c => BringUp(kernel, c)),
    ];

    /// <summary>Deletions handed to the background and not finished yet (batches).</summary>
    public int PendingDeletions => _deleter.Pending;

    /// <summary>Completes once every pair given to <see cref="Remove"/> is deleted; for shutdown and tests.</summary>
    public Task WhenDeletedAsync() => _deleter.WhenIdleAsync();

    public void Apply(EndpointRecord endpoint, NetworkRecord network)
    {
        // The names are a hash of the endpoint id: a pair of the same id may still be waiting for deletion.
        _deleter.DeleteNowIfPending(endpoint.HostVeth);
        _deleter.DeleteNowIfPending(endpoint.ContainerVeth);
        var bridge = kernel.GetLink(network.BridgeName)
                     ?? throw SkeinException.Conflict($"bridge {network.BridgeName} of network {network.NetworkId} is missing");
        SetupPipeline.Run(_steps, new Context(endpoint, network, bridge.Index), log, $"endpoint {endpoint.EndpointId[..Math.Min(12, endpoint.EndpointId.Length)]} ({endpoint.HostVeth})");
    }

    /// <summary>
    /// Hands the pair to the background deleter and returns at once: call it only after the endpoint's record is
    /// gone, so that a crash before the deletion leaves links the reconciler deletes. Either side may be gone
    /// already (the container's namespace died): that is success.
    /// </summary>
    public void Remove(EndpointRecord endpoint) =>
        // The container side is normally gone with its peer; still here only if the pair was split by a crash.
        _deleter.Schedule([endpoint.HostVeth, endpoint.ContainerVeth], $"endpoint {endpoint.EndpointId[..Math.Min(12, endpoint.EndpointId.Length)]}");

    private static Action? CreatePair(IHostKernel kernel, Context c)
    {
        var host = kernel.GetLink(c.Endpoint.HostVeth);
        if (host is not null)
        {
            if (host.Kind != "veth")
                throw SkeinException.Conflict($"a link named {c.Endpoint.HostVeth} already exists and is {(host.Kind is null ? "not a veth" : "a " + host.Kind)}");
            return null;
        }
        // A container side without its host side is a leftover of an interrupted attempt; it would block the name.
        if (kernel.GetLink(c.Endpoint.ContainerVeth) is { } orphan && orphan.Kind == "veth")
            kernel.DeleteLink(c.Endpoint.ContainerVeth);
        var mac = RequestValidation.RequireMac(c.Endpoint.MacAddress, "MacAddress");
        kernel.AddLink(new VethSpec(c.Endpoint.HostVeth, c.Endpoint.ContainerVeth)
        {
            Mtu = c.Network.Mtu,
            MasterIndex = c.BridgeIndex,
            Up = true,
            PeerMacAddress = mac,
            PeerMtu = c.Network.Mtu,
        });
        var name = c.Endpoint.HostVeth;
        return () => kernel.DeleteLink(name);
    }

    private static Action? Attach(IHostKernel kernel, Context c)
    {
        var host = kernel.GetLink(c.Endpoint.HostVeth) ?? throw new InvalidOperationException($"{c.Endpoint.HostVeth} vanished while being set up");
        if (host.MasterIndex != c.BridgeIndex)
            kernel.SetMaster(host.Index, c.BridgeIndex);
        // Hairpin lets a container reach its own published port through the host address: the DNAT'd frame
        // has to leave by the port it arrived on, which a bridge refuses unless the port is in hairpin mode.
        if (!kernel.GetHairpin(host.Index))
            kernel.SetHairpin(host.Index, true);
        return null;
    }

    private static Action? BringUp(IHostKernel kernel, Context c)
    {
        var host = kernel.GetLink(c.Endpoint.HostVeth) ?? throw new InvalidOperationException($"{c.Endpoint.HostVeth} vanished while being set up");
        if (!host.IsUp)
            kernel.SetLinkUp(host.Index);
        return null;
    }
}
