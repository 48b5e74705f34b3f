using System.Net.NetworkInformation;

namespace Skein.Driver.Netlink;

/// <summary>
/// Where tc filters hang: the ingress hook of one device's clsact qdisc, or a shared filter block (tc block
/// sharing, Linux 4.16+) that several devices' clsact ingress hooks point at, so one filter serves them all.
/// </summary>
public readonly record struct FilterAttachment
{
    private FilterAttachment(int deviceIndex, uint blockIndex)
    {
        DeviceIndex = deviceIndex;
        BlockIndex = blockIndex;
    }

    /// <summary>The device whose clsact ingress hook holds the filters; 0 for a block.</summary>
    public int DeviceIndex { get; }

    /// <summary>The shared block holding the filters; 0 for a device.</summary>
    public uint BlockIndex { get; }

    public bool IsBlock => BlockIndex != 0;

    public static FilterAttachment Ingress(int deviceIndex) => deviceIndex > 0
        ? new(deviceIndex, 0)
        : throw new ArgumentOutOfRangeException(nameof(deviceIndex), deviceIndex, "a device index is positive");

    public static FilterAttachment Block(uint blockIndex) => blockIndex is > 0 and < uint.MaxValue
        ? new(0, blockIndex)
        : throw new ArgumentOutOfRangeException(nameof(blockIndex), blockIndex, "a block index is between 1 and 2^32-2");

    public override string ToString() => IsBlock ? $"block {BlockIndex}" : $"ingress of link {DeviceIndex}";
}

/// <summary>A device's clsact qdisc as the kernel reports it; <see cref="IngressBlock"/> is 0 when ingress is not shared.</summary>
public sealed record ClsactQdisc(int DeviceIndex, uint IngressBlock);

/// <summary>
/// A u32 filter that matches frames by destination MAC and redirects them to the egress of
/// <see cref="TargetIndex"/> (mirred), past everything between (a bridge, its netfilter hooks).
/// A dump also reports the u32 classifier's other objects: hash tables (<see cref="Divisor"/> set) and nodes that
/// link to one (<see cref="LinkTo"/> set); a filter of any other shape has <see cref="DestinationMac"/> or
/// <see cref="TargetIndex"/> null.
/// </summary>
public sealed record MacRedirectFilter(PhysicalAddress? DestinationMac, int? TargetIndex)
{
    /// <summary>The filter's priority (tc's "pref"); filters of one priority form one u32 classifier.</summary>
    public ushort Priority { get; init; } = 1;

    /// <summary>The EtherType the filter applies to (host order); skein's match every protocol (ETH_P_ALL).</summary>
    public ushort Protocol { get; init; } = AllProtocols;

    public const ushort AllProtocols = 0x0003;

    /// <summary>The kernel's handle for the filter (800::N); 0 on a new filter lets the kernel choose.</summary>
    public uint Handle { get; init; }

    /// <summary>The classifier kind ("u32" for those skein writes).</summary>
    public string Kind { get; init; } = "u32";

    /// <summary>On a u32 hash table (which matches nothing itself): its number of buckets.</summary>
    public uint? Divisor { get; init; }

    /// <summary>On a u32 node that sends packets on to a hash table: that table's handle.</summary>
    public uint? LinkTo { get; init; }

    /// <summary>On a link node: true when it matches every frame and picks the bucket by the destination MAC's last byte.</summary>
    public bool HashesLastMacByte { get; init; }

    /// <summary>The hash table a u32 handle belongs to (its upper 12 bits, as a table handle).</summary>
    public static uint TableOf(uint handle) => handle & 0xFFF0_0000;

    /// <summary>The bucket of a u32 node handle (bits 12..19).</summary>
    public static int BucketOf(uint handle) => (int)((handle >> 12) & 0xFF);

    /// <summary>True for a node (a match) rather than a hash table: the low 12 bits are set.</summary>
    public static bool IsNode(uint handle) => (handle & 0xFFF) != 0;
}
