using System.Net.NetworkInformation;
using Microsoft.Extensions.Logging;
using Skein.Driver.Netlink;
using Skein.Driver.Network.Kernel;
using Skein.Ipam;

namespace Skein.Driver.Overlay.Dataplane;

/// <summary>A joined endpoint of a multi-host network on this host: its host-side veth and its container's MAC.</summary>
public sealed record LocalPort(string HostVeth, PhysicalAddress Mac);

/// <summary>What <see cref="OverlayDataplane.ApplyBypass"/> changed, counted in qdiscs and filters.</summary>
public readonly record struct BypassSyncResult(int Added, int Removed, int Unchanged, int Failed)
{
    public int Changes => Added + Removed;
}

/// <summary>
/// The bridge bypass (decisions: README "Multi-host data path"). Unicast between a local container and a remote one
/// does not need the bridge: its destination is known exactly (a static FDB entry says which VTEP holds a remote MAC,
/// and skein created every local port). On the host namespace's bridge every frame also pays for br_netfilter
/// (Docker turns bridge-nf-call-iptables on), which costs about a tenth of VXLAN throughput. So, for networks with
/// inter-container connectivity on:
/// <list type="bullet">
/// <item>each local port's host veth has a clsact qdisc whose ingress runs one shared filter block per network (block
/// index = VNI), holding a u32 destination-MAC filter per remote endpoint that redirects to the VXLAN device;</item>
/// <item>the VXLAN device's clsact ingress holds a filter per local endpoint MAC that redirects to that port's veth.</item>
/// </list>
/// Everything else (broadcast, ARP/ND, multicast, the gateway, local-to-local, unknown MACs) still crosses the bridge
/// and its firewall as before. Frames from the VXLAN device are only ever redirected to local ports, never back out,
/// so two hosts with stale views cannot bounce a frame between them. Missing or stale filters only make frames take
/// the bridge: the bypass is never needed for correctness, so a failed change is logged and retried at the next sync.
/// A filter aimed at a device that is gone drops what it matches (mirred), so whoever deletes a target resyncs: the
/// controller right after it (re)creates the VXLAN device, and a veth goes only with its endpoint, after Leave.
/// </summary>
public sealed partial class OverlayDataplane
{
    /// <summary>The tc priority ("pref") of skein's filters on its own devices and blocks.</summary>
    public const ushort BypassPriority = 1;

    /// <summary>The shared filter block of a network's local ports: one per VNI (tc block indexes are per namespace).</summary>
    public static uint BypassBlock(int vni) => (uint)vni;

    /// <summary>Why this kernel cannot bypass (no clsact, u32 or mirred), once a change found out; null until then.</summary>
    public string? BypassUnsupported => _bypassUnsupported;

    private volatile string? _bypassUnsupported;

    /// <summary>
    /// Level-triggered: makes the bypass of <paramref name="device"/> exactly what <paramref name="locals"/> and
    /// <paramref name="peers"/> ask for (or, when <paramref name="enabled"/> is false, removes it), from one dump of
    /// links, one of qdiscs and one of each filter list. With <paramref name="peers"/> null (no view yet) the
    /// remote-MAC filters are left as they are. Ports whose veth is missing or not on the network's bridge are skipped.
    /// </summary>
    public BypassSyncResult ApplyBypass(OverlayDevice device, IReadOnlyCollection<LocalPort> locals, PeerView? peers, bool enabled)
    {
        Validate(device);
        ArgumentNullException.ThrowIfNull(locals);
        if (_bypassUnsupported is not null)
            return default;
        var byName = kernel.ListLinks().DistinctBy(l => l.Name).ToDictionary(l => l.Name, StringComparer.Ordinal);
        var vxlan = byName.GetValueOrDefault(device.VxlanName);
        var bridge = byName.GetValueOrDefault(device.BridgeName);
        if (vxlan is null || vxlan.Kind != "vxlan" || bridge is null)
            throw SkeinException.NotFound($"VXLAN device {device.VxlanName} on bridge {device.BridgeName} does not exist (EnsureDevice first)");

        var qdiscs = kernel.ListClsactQdiscs().DistinctBy(q => q.DeviceIndex).ToDictionary(q => q.DeviceIndex);
        var block = BypassBlock(device.Vni);
        var changes = new Changes(device.VxlanName, log, Unsupported);

        // Local ports: the veth must exist and sit on this network's bridge (a port in the middle of a Join or a
        // Delete is skipped; the next sync takes it). A MAC on two ports is ambiguous and gets no bypass.
        var ports = new Dictionary<PhysicalAddress, Link>();
        var duplicates = new HashSet<PhysicalAddress>();
        foreach (var local in locals)
        {
            if (!byName.TryGetValue(local.HostVeth, out var veth) || veth.MasterIndex != bridge.Index)
                continue;
            if (!ports.TryAdd(local.Mac, veth))
                duplicates.Add(local.Mac);
        }
        foreach (var mac in duplicates)
        {
            ports.Remove(mac);
            log.LogWarning("VXLAN device {Vxlan}: MAC {Mac} is on several local ports; its frames take the bridge", device.VxlanName, DesiredPeerState.Format(mac));
        }

        if (!enabled)
        {
            if (qdiscs.ContainsKey(vxlan.Index))
                changes.Remove($"clsact on {device.VxlanName}", () => kernel.DeleteClsactQdisc(vxlan.Index));
            foreach (var veth in ports.Values.Where(v => qdiscs.TryGetValue(v.Index, out var q) && q.IngressBlock == block))
                changes.Remove($"clsact on {veth.Name}", () => kernel.DeleteClsactQdisc(veth.Index));
            return changes.Result();
        }

        // From the VXLAN device to local ports. The VXLAN device's clsact carries its own filters, never a block.
        if (EnsureClsact(changes, vxlan.Index, device.VxlanName, qdiscs, 0))
        {
            SyncFilters(changes, FilterAttachment.Ingress(vxlan.Index), ports.ToDictionary(p => p.Key, p => p.Value.Index));
        }

        // From local ports to the VXLAN device, through the network's shared block.
        bool blockExists = false;
        foreach (var veth in ports.Values)
            blockExists |= EnsureClsact(changes, veth.Index, veth.Name, qdiscs, block);
        if (blockExists && peers is not null)
        {
            // Never this host's own bridge or VXLAN MAC: a peer record naming one would pull the gateway's frames
            // (egress, published-port replies) across the underlay.
            var own = new[] { bridge.MacAddress, vxlan.MacAddress }.OfType<PhysicalAddress>().ToHashSet();
            var remote = DesiredPeerState.From(device, peers).UnicastVteps.Keys
                .Where(mac => !ports.ContainsKey(mac) && !duplicates.Contains(mac) && !own.Contains(mac))
                .ToDictionary(mac => mac, _ => vxlan.Index);
            SyncFilters(changes, FilterAttachment.Block(block), remote);
        }

        var result = changes.Result();
        if (result.Changes > 0 || result.Failed > 0)
            log.LogInformation("VXLAN device {Vxlan}: bridge bypass applied: {Added} added, {Removed} removed, {Unchanged} unchanged, {Failed} failed",
                device.VxlanName, result.Added, result.Removed, result.Unchanged, result.Failed);
        return result;
    }

    /// <summary>True when the link ends up with a clsact qdisc running <paramref name="block"/> (0: its own filters).</summary>
    private bool EnsureClsact(Changes changes, int index, string name, Dictionary<int, ClsactQdisc> qdiscs, uint block)
    {
        if (qdiscs.TryGetValue(index, out var present))
        {
            if (present.IngressBlock == block)
            {
                changes.Unchanged++;
                return true;
            }
            // A clsact with another block (or none) was not made for this network: replace it. The kernel cannot
            // re-point an existing qdisc at another block.
            if (!changes.Remove($"clsact on {name} (block {present.IngressBlock})", () => kernel.DeleteClsactQdisc(index)))
                return false;
        }
        bool added = changes.Add($"clsact on {name}{(block == 0 ? "" : $" (block {block})")}", () => kernel.AddClsactQdisc(index, block));
        if (added)
            qdiscs[index] = new ClsactQdisc(index, block);
        return added;
    }

    /// <summary>
    /// Makes the filters at <paramref name="at"/> exactly one redirect per wanted MAC, in a 256-bucket u32 table keyed on
    /// the MAC's last byte (so a frame is compared with the few MACs of its bucket, not with every one), reached from
    /// the root table by one link node. A layout that is not exactly that is rebuilt; stale and foreign filters go
    /// first, so a MAC moved to another port is never matched twice.
    /// </summary>
    private void SyncFilters(Changes changes, FilterAttachment at, Dictionary<PhysicalAddress, int> wanted)
    {
        IReadOnlyList<MacRedirectFilter> present;
        try
        {
            present = kernel.ListFilters(at);
        }
        catch (Exception ex) when (ex is NetlinkException or NetlinkTransportException)
        {
            changes.Failed++;
            log.LogWarning("bridge bypass: could not list the filters on {At}: {Error}", at, KernelFailure.Describe(ex) ?? ex.Message);
            return;
        }

        // Whole priorities that are not skein's u32 layout go at once (a u32 classifier's tables cannot go one by one).
        var ours = present.Where(f => f.Priority == BypassPriority && f.Kind == "u32" && f.Protocol == MacRedirectFilter.AllProtocols).ToList();
        foreach (var (priority, protocol) in present.Except(ours).Select(f => (f.Priority, f.Protocol)).Distinct())
            changes.Remove($"filters of pref {priority} on {at}", () => kernel.DeleteFilterPriority(at, priority, protocol));
        if (ours.Count > 0 && !IsMacTableLayout(ours))
        {
            changes.Remove($"filters of pref {BypassPriority} on {at} (not skein's layout)",
                () => kernel.DeleteFilterPriority(at, BypassPriority, MacRedirectFilter.AllProtocols));
            ours.Clear();
        }
        if (ours.Count == 0)
        {
            if (!changes.Add($"MAC hash table on {at}", () => kernel.AddMacHashTable(at, BypassPriority, MacTable)))
                return;
        }
        else
        {
            changes.Unchanged++;
        }

        var kept = new HashSet<PhysicalAddress>();
        foreach (var filter in ours.Where(f => f.Divisor is null && f.LinkTo is null))
        {
            if (filter.DestinationMac is { } mac && wanted.TryGetValue(mac, out var target) && filter.TargetIndex == target
                && MacRedirectFilter.TableOf(filter.Handle) == MacTable && MacRedirectFilter.BucketOf(filter.Handle) == mac.GetAddressBytes()[5]
                && kept.Add(mac))
            {
                changes.Unchanged++;
                continue;
            }
            changes.Remove($"filter {Describe(filter)} on {at}", () => kernel.DeleteFilter(at, filter));
        }
        foreach (var (mac, target) in wanted)
        {
            if (kept.Contains(mac)) continue;
            var filter = new MacRedirectFilter(mac, target) { Priority = BypassPriority };
            changes.Add($"filter {Describe(filter)} on {at}", () => kernel.AddMacRedirect(at, filter, MacTable));
        }
    }

    /// <summary>The u32 table skein's MAC filters live in ("1:"); the root table is 800:.</summary>
    public const uint MacTable = 0x0010_0000;

    private const uint RootTable = 0x8000_0000;

    /// <summary>Only the root table, skein's 256-bucket table, and one node linking the one to the other by the MAC's last byte.</summary>
    private static bool IsMacTableLayout(List<MacRedirectFilter> filters)
    {
        var tables = filters.Where(f => f.Divisor is not null).ToList();
        var links = filters.Where(f => f.LinkTo is not null).ToList();
        return tables.All(t => t.Handle == RootTable || t.Handle == MacTable && t.Divisor == 256)
            && tables.Any(t => t.Handle == MacTable)
            && links is [{ HashesLastMacByte: true } link] && link.LinkTo == MacTable && MacRedirectFilter.TableOf(link.Handle) == RootTable;
    }

    /// <summary>
    /// A kernel without the clsact qdisc, the u32 classifier or the mirred action answers ENOENT or EOPNOTSUPP to
    /// the first add: say so once and stop trying; every frame takes the bridge, as without the bypass.
    /// </summary>
    private bool Unsupported(NetlinkException ex)
    {
        if (ex.Errno is not (Errnos.ENOENT or Errnos.EOPNOTSUPP))
            return false;
        if (_bypassUnsupported is null)
        {
            _bypassUnsupported = KernelFailure.Describe(ex) ?? ex.Message;
            log.LogWarning("bridge bypass: this kernel cannot redirect with tc (needs the clsact qdisc, the u32 classifier and the mirred action): {Error}; cross-host traffic takes the bridge",
                _bypassUnsupported);
        }
        return true;
    }

    private static string Describe(MacRedirectFilter filter) =>
        $"{(filter.DestinationMac is { } mac ? DesiredPeerState.Format(mac) : filter.Kind)} → {(filter.TargetIndex is { } t ? $"link {t}" : "?")}";

    /// <summary>Runs and counts changes; a refused one is logged and counted, and the rest still run.</summary>
    private sealed class Changes(string vxlanName, ILogger log, Func<NetlinkException, bool> unsupported)
    {
        private int _added, _removed;

        public int Unchanged { get; set; }
        public int Failed { get; set; }

        public bool Add(string what, Action change) => Run("add", what, () =>
        {
            change();
            return true;
        }, ref _added);

        public bool Remove(string what, Func<bool> change) => Run("remove", what, change, ref _removed);

        public BypassSyncResult Result() => new(_added, _removed, Unchanged, Failed);

        private bool Run(string verb, string what, Func<bool> change, ref int counter)
        {
            try
            {
                if (change()) counter++;
                return true;
            }
            catch (NetlinkException ex) when (verb == "add" && unsupported(ex))
            {
                Failed++;
                return false;
            }
            catch (Exception ex) when (ex is NetlinkException or NetlinkTransportException or ArgumentException)
            {
                Failed++;
                log.LogWarning("VXLAN device {Vxlan}: bridge bypass: could not {Verb} {What}: {Error}", vxlanName, verb, what, KernelFailure.Describe(ex) ?? ex.Message);
                return false;
            }
        }
    }
}
