using System.Net;
using System.Net.NetworkInformation;

namespace Skein.Driver.Netlink;

/// <summary>NUD_* neighbour states (linux/neighbour.h).</summary>
[Flags]
public enum NeighborState : ushort
{
    None = 0x00,
    Incomplete = 0x01,
    Reachable = 0x02,
    Stale = 0x04,
    Delay = 0x08,
    Probe = 0x10,
    Failed = 0x20,
    NoArp = 0x40,
    Permanent = 0x80,
}

/// <summary>NTF_* neighbour flags (linux/neighbour.h).</summary>
[Flags]
public enum NeighborFlags : byte
{
    None = 0x00,
    Use = 0x01,
    /// <summary>The entry belongs to the device itself (the VXLAN FDB), as `bridge fdb ... self`.</summary>
    Self = 0x02,
    /// <summary>The entry belongs to the device's master (the bridge FDB), as `bridge fdb ... master`.</summary>
    Master = 0x04,
    Proxy = 0x08,
    ExternLearned = 0x10,
    Offloaded = 0x20,
    Sticky = 0x40,
    Router = 0x80,
}

/// <summary>An IP neighbour (ARP / NDP) entry; permanent unless told otherwise.</summary>
public sealed record Neighbor(int Index, IPAddress Address, PhysicalAddress? MacAddress)
{
    public NeighborState State { get; init; } = NeighborState.Permanent;
    public NeighborFlags Flags { get; init; }
}
