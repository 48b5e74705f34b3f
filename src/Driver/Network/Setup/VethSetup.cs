using Microsoft.Extensions.Logging;
using Skein.Driver.Netlink;
using Skein.Driver.Network.Kernel;
using Skein.Driver.Network.State;
using Skein.Ipam;

namespace Skein.Driver.Network.Setup;

/// <summary>
/// The kernel side of an endpoint: a veth pair in the programmed namespace, host side on the network's bridge and
/// up, container side carrying the endpoint's MAC and the network's MTU, left for Docker to move (style #5).
/// </summary>
public sealed class VethSetup(IHostKernel kernel, ILogger log)
{
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

    public void Apply(EndpointRecord endpoint, NetworkRecord network)
    {
        var bridge = kernel.GetLink(network.BridgeName)
                     ?? throw SkeinException.Conflict($"bridge {network.BridgeName} of network {network.NetworkId} is missing");
        SetupPipeline.Run(_steps, new Context(endpoint, network, bridge.Index), log, $"endpoint {endpoint.EndpointId[..Math.Min(12, endpoint.EndpointId.Length)]} ({endpoint.HostVeth})");
    }

    /// <summary>Deletes the pair. Either side may be gone already (the container's namespace died): that is success.</summary>
    public void Remove(EndpointRecord endpoint)
    {
        kernel.DeleteLink(endpoint.HostVeth);
        // Normally gone with its peer; still here only if the pair was split by a crash half-way.
        kernel.DeleteLink(endpoint.ContainerVeth);
    }

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
