using System.Net;
using System.Net.NetworkInformation;
using Microsoft.Extensions.Logging;
using Skein.Driver.Netlink;
using Skein.Driver.Network.Kernel;
using Skein.Ipam;

namespace Skein.Driver.Overlay.Dataplane;

public sealed partial class OverlayDataplane
{
    /// <summary>
    /// Level-triggered: makes the kernel's peer entries for <paramref name="device"/> exactly what
    /// <paramref name="desired"/> asks for, from one dump of the FDB and one of each neighbour table. Entries skein
    /// owns and no longer wants are deleted: the VXLAN device's own remote entries, static (not permanent) bridge
    /// entries on the VXLAN port, and permanent neighbour entries on the bridge. Everything else (the bridge's own
    /// addresses, local containers' learned entries) is left alone. A single refused change is logged and counted
    /// in <see cref="PeerSyncResult.Failed"/> and the rest still applied; call again to retry.
    /// </summary>
    public PeerSyncResult Apply(OverlayDevice device, PeerView desired)
    {
        Validate(device);
        var state = DesiredPeerState.From(device, desired);
        foreach (var skipped in state.Skipped)
            log.LogWarning("VXLAN device {Vxlan}: not programming {Entry}", device.VxlanName, skipped);

        var vxlan = kernel.GetLink(device.VxlanName)
            ?? throw SkeinException.NotFound($"VXLAN device {device.VxlanName} does not exist (EnsureDevice first)");
        var bridge = kernel.GetLink(device.BridgeName)
            ?? throw SkeinException.NotFound($"bridge {device.BridgeName} of VXLAN device {device.VxlanName} does not exist");
        if (vxlan.Kind != "vxlan") throw SkeinException.Conflict($"{device.VxlanName} is not a VXLAN device ({vxlan.Kind ?? "unknown kind"})");

        var plan = new Plan(device.VxlanName, log);
        PlanFdb(plan, state, device, vxlan.Index);
        PlanNeighbors(plan, state, bridge.Index);
        plan.Run();
        var result = plan.Result(state.Skipped.Count);
        if (result.Changes > 0 || result.Failed > 0)
            log.LogInformation("VXLAN device {Vxlan}: peers applied: {Added} added, {Removed} removed, {Replaced} replaced, {Unchanged} unchanged, {Skipped} skipped, {Failed} failed",
                device.VxlanName, result.Added, result.Removed, result.Replaced, result.Unchanged, result.Skipped, result.Failed);
        return result;
    }

    private void PlanFdb(Plan plan, DesiredPeerState state, OverlayDevice device, int vxlanIndex)
    {
        var floodPresent = new HashSet<IPAddress>();
        var unicast = new Dictionary<PhysicalAddress, List<FdbEntry>>();
        var bridgePresent = new HashSet<PhysicalAddress>();

        foreach (var entry in kernel.ListFdb(vxlanIndex))
        {
            if (entry.Index != vxlanIndex) continue;
            if (entry.Self && !entry.Master && entry.Destination is { } destination)
            {
                // The device's own remote entries: flood (all-zeros MAC) and MAC → VTEP.
                if (!entry.IsFloodEntry)
                {
                    if (!unicast.TryGetValue(entry.MacAddress, out var list)) unicast[entry.MacAddress] = list = [];
                    list.Add(entry);
                    continue;
                }
                if (IsPlain(entry, device) && state.FloodVteps.Contains(destination) && floodPresent.Add(destination))
                    plan.Unchanged++;
                else
                    plan.Deletes.Add(Delete(entry));
            }
            else if (entry.Master && !entry.Self && !entry.Permanent && entry.Destination is null)
            {
                // Static bridge entries on the VXLAN port (a "permanent" one is the port's own address: not ours).
                if (entry.Vlan is null && state.UnicastVteps.ContainsKey(entry.MacAddress) && bridgePresent.Add(entry.MacAddress))
                    plan.Unchanged++;
                else
                    plan.Deletes.Add(Delete(entry));
            }
        }

        foreach (var vtep in state.FloodVteps.Where(v => !floodPresent.Contains(v)))
        {
            var entry = new FdbEntry(vxlanIndex, FdbEntry.FloodMac, vtep);
            plan.Adds.Add(($"FDB flood → {vtep}", () => kernel.AppendFdb(entry)));
        }

        foreach (var (mac, entries) in unicast)
        {
            if (!state.UnicastVteps.TryGetValue(mac, out var vtep))
            {
                plan.Deletes.AddRange(entries.Select(Delete));
                continue;
            }
            var keep = entries.FirstOrDefault(e => IsPlain(e, device) && vtep.Equals(e.Destination));
            if (keep is not null)
            {
                plan.Unchanged++;
                plan.Deletes.AddRange(entries.Where(e => !ReferenceEquals(e, keep)).Select(Delete));
            }
            else if (entries.Count == 1)
            {
                // Moved to another VTEP: rewritten in place, so traffic never falls back to flooding.
                var moved = new FdbEntry(vxlanIndex, mac, vtep);
                plan.Replaces.Add(($"FDB {DesiredPeerState.Format(mac)} → {vtep} (was {entries[0].Destination})", () => kernel.ReplaceFdb(moved)));
            }
            else
            {
                plan.DeletesFirst.AddRange(entries.Select(Delete));
                var fresh = new FdbEntry(vxlanIndex, mac, vtep);
                plan.Adds.Add(($"FDB {DesiredPeerState.Format(mac)} → {vtep}", () => kernel.ReplaceFdb(fresh)));
            }
        }
        foreach (var (mac, vtep) in state.UnicastVteps)
        {
            if (!unicast.ContainsKey(mac))
            {
                var entry = new FdbEntry(vxlanIndex, mac, vtep);
                plan.Adds.Add(($"FDB {DesiredPeerState.Format(mac)} → {vtep}", () => kernel.ReplaceFdb(entry)));
            }
            if (!bridgePresent.Contains(mac))
            {
                // The bridge needs the MAC behind the VXLAN port to answer ARP/ND for it (neigh_suppress looks the
                // neighbour's MAC up in the bridge FDB), and so it does not flood unicast to the local ports.
                // Static, not "permanent": a permanent bridge entry would deliver the frames to the bridge itself.
                var entry = new FdbEntry(vxlanIndex, mac, null) { Self = false, Master = true, Permanent = false };
                plan.Adds.Add(($"bridge FDB {DesiredPeerState.Format(mac)}", () => kernel.ReplaceFdb(entry)));
            }
        }
    }

    /// <summary>An entry with no VNI or port of its own (or the device's): the only kind skein programs.</summary>
    private static bool IsPlain(FdbEntry entry, OverlayDevice device) =>
        (entry.Vni is null || entry.Vni == device.Vni) && (entry.Port is null || entry.Port == device.Port);

    private (string What, Func<bool> Change) Delete(FdbEntry entry)
    {
        // Keep VNI and port: the VXLAN driver picks the remote to delete by them.
        var stale = entry.Self
            ? entry with { Master = false, Vlan = null, MasterIndex = null }
            : entry with { MasterIndex = null };
        string what = entry.Self
            ? $"FDB {DesiredPeerState.Format(entry.MacAddress)} → {entry.Destination}"
            : $"bridge FDB {DesiredPeerState.Format(entry.MacAddress)}";
        return (what, () => kernel.DeleteFdb(stale));
    }

    private void PlanNeighbors(Plan plan, DesiredPeerState state, int bridgeIndex)
    {
        var present = new HashSet<IPAddress>();
        foreach (var neighbor in kernel.ListNeighbors(bridgeIndex))
        {
            if (neighbor.Index != bridgeIndex) continue;
            bool wanted = state.Neighbors.TryGetValue(neighbor.Address, out var mac);
            bool permanent = (neighbor.State & NeighborState.Permanent) != 0;
            if (!permanent)
            {
                // A learned entry for a remote address (from before neigh_suppress, or resolved by hand): overwritten below.
                continue;
            }
            if (wanted && mac!.Equals(neighbor.MacAddress))
            {
                present.Add(neighbor.Address);
                plan.Unchanged++;
                continue;
            }
            if (wanted)
            {
                present.Add(neighbor.Address);
                var replacement = new Neighbor(bridgeIndex, neighbor.Address, mac);
                plan.NeighborReplaces.Add(($"neighbour {neighbor.Address} → {DesiredPeerState.Format(mac!)}", () => kernel.ReplaceNeighbor(replacement)));
                continue;
            }
            var stale = new Neighbor(bridgeIndex, neighbor.Address, null);
            plan.NeighborDeletes.Add(($"neighbour {neighbor.Address}", () => kernel.DeleteNeighbor(stale)));
        }
        foreach (var (address, mac) in state.Neighbors)
        {
            if (present.Contains(address)) continue;
            var entry = new Neighbor(bridgeIndex, address, mac);
            plan.NeighborAdds.Add(($"neighbour {address} → {DesiredPeerState.Format(mac)}", () => kernel.ReplaceNeighbor(entry)));
        }
    }

    /// <summary>
    /// The changes one Apply makes, in an order that never leaves a neighbour answered locally without a path behind
    /// it: stale neighbours go first, new FDB entries come before new neighbours, stale FDB entries last.
    /// </summary>
    private sealed class Plan(string vxlanName, ILogger log)
    {
        public List<(string What, Func<bool> Change)> NeighborDeletes { get; } = [];
        public List<(string What, Func<bool> Change)> DeletesFirst { get; } = [];
        public List<(string What, Action Change)> Adds { get; } = [];
        public List<(string What, Action Change)> Replaces { get; } = [];
        public List<(string What, Action Change)> NeighborReplaces { get; } = [];
        public List<(string What, Action Change)> NeighborAdds { get; } = [];
        public List<(string What, Func<bool> Change)> Deletes { get; } = [];
        public int Unchanged { get; set; }
        private int _added, _removed, _replaced, _failed;

        public void Run()
        {
            foreach (var (what, change) in NeighborDeletes) Do("delete", what, change, ref _removed);
            foreach (var (what, change) in DeletesFirst) Do("delete", what, change, ref _removed);
            foreach (var (what, change) in Adds) Do("add", what, Done(change), ref _added);
            foreach (var (what, change) in Replaces) Do("replace", what, Done(change), ref _replaced);
            foreach (var (what, change) in NeighborReplaces) Do("replace", what, Done(change), ref _replaced);
            foreach (var (what, change) in NeighborAdds) Do("add", what, Done(change), ref _added);
            foreach (var (what, change) in Deletes) Do("delete", what, change, ref _removed);
        }

        public PeerSyncResult Result(int skipped) => new(_added, _removed, _replaced, Unchanged, skipped, _failed);

        private static Func<bool> Done(Action change) => () =>
        {
            change();
            return true;
        };

        /// <summary>Counts a change the kernel made; a delete of what is already gone counts as nothing.</summary>
        private void Do(string verb, string what, Func<bool> change, ref int counter)
        {
            try
            {
                if (change()) counter++;
            }
            catch (Exception ex) when (ex is NetlinkException or NetlinkTransportException or ArgumentException)
            {
                _failed++;
                log.LogWarning("VXLAN device {Vxlan}: could not {Verb} {Entry}: {Error}", vxlanName, verb, what, KernelFailure.Describe(ex) ?? ex.Message);
            }
        }
    }
}
