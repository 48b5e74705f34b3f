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

    /// <summary>Adds a u32 destination-MAC filter with a mirred egress redirect; the kernel chooses the handle unless one is given.</summary>
    public void AddMacRedirect(FilterAttachment at, MacRedirectFilter filter)
    {
        TrafficControlMessages.Validate(at, filter);
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        _socket.Execute($"add tc filter {filter.DestinationMac} → link {filter.TargetIndex} on {at}", TrafficControlMessages.AddMacRedirect(buffer, at, filter));
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
