using Skein.Driver.Netlink.Messages;

namespace Skein.Driver.Netlink;

public sealed partial class RtNetlink
{
    // ---- tc: clsact qdiscs and destination-MAC redirect filters ----

    /// <summary>
    /// Adds a clsact qdisc to the device (CREATE|EXCL: fails with EEXIST when the device has one); with a nonzero
    /// <paramref name="ingressBlock"/> its ingress hook runs the filters of that shared block, created when new.
    /// </summary>
    public void AddClsactQdisc(int index, uint ingressBlock = 0)
    {
        RequireIndex(index, nameof(index));
        if (ingressBlock == uint.MaxValue) throw new ArgumentOutOfRangeException(nameof(ingressBlock), ingressBlock, "block index 2^32-1 is the kernel's magic");
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        _socket.Execute($"add clsact qdisc on link {index}", TrafficControlMessages.AddClsact(buffer, index, ingressBlock));
    }

    /// <summary>Deletes the device's clsact qdisc and every filter on it (its hold on a shared block goes too).</summary>
    public void DeleteClsactQdisc(int index)
    {
        RequireIndex(index, nameof(index));
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        _socket.Execute($"delete clsact qdisc on link {index}", TrafficControlMessages.DeleteClsact(buffer, index));
    }

    /// <summary>The device's clsact qdisc, or null when it has none.</summary>
    public ClsactQdisc? GetClsactQdisc(int index)
    {
        RequireIndex(index, nameof(index));
        return ListClsactQdiscs(index).FirstOrDefault(q => q.DeviceIndex == index);
    }

    /// <summary>The clsact qdiscs of every device (one dump), or of one.</summary>
    public IReadOnlyList<ClsactQdisc> ListClsactQdiscs(int? index = null)
    {
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        var qdiscs = _socket.Dump("list qdiscs", TrafficControlMessages.DumpQdiscs(buffer, index ?? 0), TrafficControlMessages.QdiscDecoder);
        if (index is { } i) qdiscs.RemoveAll(q => q.DeviceIndex != i);
        return qdiscs;
    }

    /// <summary>
    /// Adds a u32 destination-MAC filter with a mirred egress redirect; the kernel chooses the handle unless one is
    /// given. With a <paramref name="hashTable"/> (see <see cref="AddU32HashTable"/>) the filter goes into the bucket of
    /// the MAC's last byte, so a lookup walks one bucket instead of every filter.
    /// </summary>
    public void AddMacRedirect(FilterAttachment at, MacRedirectFilter filter, uint hashTable = 0)
    {
        TrafficControlMessages.Validate(at, filter);
        RequireTable(hashTable, allowZero: true);
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        _socket.Execute($"add tc filter {filter.DestinationMac} → link {filter.TargetIndex} on {at}", TrafficControlMessages.AddMacRedirect(buffer, at, filter, hashTable));
    }

    /// <summary>
    /// Adds a 256-bucket u32 hash table <paramref name="table"/> (a handle like 0x00100000, "1:") at
    /// <paramref name="priority"/>, and the node in the root table that hashes every frame into it by the last byte of
    /// its destination MAC: the layout <see cref="AddMacRedirect"/> fills.
    /// </summary>
    public void AddMacHashTable(FilterAttachment at, ushort priority, uint table)
    {
        if (at == default) throw new ArgumentException("a filter needs a device ingress or a block to attach to", nameof(at));
        if (priority == 0) throw new ArgumentOutOfRangeException(nameof(priority), priority, "give a priority 1..65535");
        RequireTable(table, allowZero: false);
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        _socket.Execute($"add u32 hash table {table >> 20:x}: on {at}", TrafficControlMessages.AddHashTable(buffer, at, priority, table, 256));
        _socket.Execute($"add u32 link to table {table >> 20:x}: on {at}", TrafficControlMessages.AddMacHashLink(buffer, at, priority, table));
    }

    /// <summary>Deletes every filter of one priority and protocol, tables and all.</summary>
    public void DeleteFilterPriority(FilterAttachment at, ushort priority, ushort protocol = MacRedirectFilter.AllProtocols)
    {
        if (at == default) throw new ArgumentException("filters live on a device ingress or a block", nameof(at));
        if (priority == 0) throw new ArgumentOutOfRangeException(nameof(priority), priority, "priority 0 would delete every filter of the hook");
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        _socket.Execute($"delete tc filters of pref {priority} on {at}", TrafficControlMessages.DeletePriority(buffer, at, priority, protocol));
    }

    private static void RequireTable(uint table, bool allowZero)
    {
        if (table == 0 && allowZero) return;
        if (table == 0 || (table & 0x000F_FFFF) != 0 || table >> 20 == 0x800)
            throw new ArgumentOutOfRangeException(nameof(table), $"0x{table:x}", "a u32 table handle has only its upper 12 bits set, and 800: is the root table");
    }

    /// <summary>Deletes one filter by priority and handle (as a dump reported them).</summary>
    public void DeleteFilter(FilterAttachment at, MacRedirectFilter filter)
    {
        ArgumentNullException.ThrowIfNull(filter);
        if (at == default) throw new ArgumentException("a filter lives on a device ingress or a block", nameof(at));
        if (filter.Handle == 0 || filter.Priority == 0) throw new ArgumentException("deleting one filter needs its priority and handle", nameof(filter));
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        _socket.Execute($"delete tc filter {filter.Handle:x} (pref {filter.Priority}) on {at}",
            TrafficControlMessages.DeleteFilter(buffer, at, filter));
    }

    /// <summary>The filters on a device's clsact ingress or in a block; empty when there is no such qdisc or block.</summary>
    public IReadOnlyList<MacRedirectFilter> ListFilters(FilterAttachment at)
    {
        if (at == default) throw new ArgumentException("filters live on a device ingress or a block", nameof(at));
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        return _socket.Dump($"list tc filters on {at}", TrafficControlMessages.DumpFilters(buffer, at), TrafficControlMessages.FilterDecoder);
    }
}
