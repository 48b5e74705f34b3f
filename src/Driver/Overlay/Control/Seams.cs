using System.Net;
using Microsoft.Extensions.Logging;
using Skein.Driver.Network.Kernel;
using Skein.Driver.Overlay.Dataplane;
using Skein.Ipam.Cluster;

namespace Skein.Driver.Overlay.Control;

/// <summary>The kernel side the control plane drives; the real one is <see cref="OverlayDataplane"/>.</summary>
public interface IOverlayDataplane
{
    /// <summary>True when the VXLAN link was (re)created.</summary>
    bool EnsureDevice(OverlayDevice device);
    bool RemoveDevice(string vxlanName);
    PeerSyncResult Apply(OverlayDevice device, PeerView desired);
    BypassSyncResult ApplyBypass(OverlayDevice device, IReadOnlyCollection<LocalPort> locals, PeerView? peers, bool enabled);
    /// <summary>Why the kernel cannot bypass the bridge, once that is known; null otherwise.</summary>
    string? BypassUnsupported { get; }
    int DefaultMtu(IPAddress localVtep);
}

public sealed class KernelOverlayDataplane(IHostKernel kernel, ILogger log) : IOverlayDataplane
{
    private readonly OverlayDataplane _dataplane = new(kernel, log);

    public bool EnsureDevice(OverlayDevice device) => _dataplane.EnsureDevice(device);
    public bool RemoveDevice(string vxlanName) => _dataplane.RemoveDevice(vxlanName);
    public PeerSyncResult Apply(OverlayDevice device, PeerView desired) => _dataplane.Apply(device, desired);
    public BypassSyncResult ApplyBypass(OverlayDevice device, IReadOnlyCollection<LocalPort> locals, PeerView? peers, bool enabled) =>
        _dataplane.ApplyBypass(device, locals, peers, enabled);
    public string? BypassUnsupported => _dataplane.BypassUnsupported;
    public int DefaultMtu(IPAddress localVtep) => OverlayDataplane.DefaultMtu(kernel, localVtep);
}

/// <summary>
/// This node's presence in the cluster as the control plane needs it: its incarnation (published with its peers),
/// the fencing check before anything is advertised, and the signal to re-publish after the liveness was recreated.
/// </summary>
public interface IClusterPresence
{
    long Incarnation { get; }
    event Func<CancellationToken, Task>? Republish;
    Task<IReadOnlySet<string>> FenceAsync(IReadOnlyList<LocalEndpointClaim> endpoints, CancellationToken ct);
}

public sealed class MembershipPresence(NodeMembership membership) : IClusterPresence
{
    public long Incarnation => membership.Incarnation;

    public event Func<CancellationToken, Task>? Republish
    {
        add => membership.Republish += value;
        remove => membership.Republish -= value;
    }

    public Task<IReadOnlySet<string>> FenceAsync(IReadOnlyList<LocalEndpointClaim> endpoints, CancellationToken ct) =>
        membership.FenceAsync(endpoints, ct);
}
