using System.Runtime.InteropServices;

namespace Skein.Driver.Netlink.Wire;

// The fixed headers, laid out exactly as the uapi structs (host byte order). Sizes are checked by
// the golden-bytes tests against sizeof() in the C headers: 16, 16, 8, 12, 12.

/// <summary>struct nlmsghdr (linux/netlink.h).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct NetlinkMessageHeader
{
    public uint Length;
    public ushort Type;
    public ushort Flags;
    public uint Sequence;
    public uint PortId;

    public const int Size = 16;
}

/// <summary>struct ifinfomsg (linux/rtnetlink.h).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct InterfaceInfoMessage
{
    public byte Family;
    public byte Padding;
    public ushort DeviceType;
    public int Index;
    public uint Flags;
    public uint Change;

    public const int Size = 16;
}

/// <summary>struct ifaddrmsg (linux/if_addr.h).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct InterfaceAddressMessage
{
    public byte Family;
    public byte PrefixLength;
    public byte Flags;
    public byte Scope;
    public int Index;

    public const int Size = 8;
}

/// <summary>struct rtmsg (linux/rtnetlink.h).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct RouteMessageHeader
{
    public byte Family;
    public byte DestinationLength;
    public byte SourceLength;
    public byte Tos;
    public byte Table;
    public byte Protocol;
    public byte Scope;
    public byte Type;
    public uint Flags;

    public const int Size = 12;
    public const uint FlagCloned = 0x200; // RTM_F_CLONED
}

/// <summary>struct ndmsg (linux/neighbour.h).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct NeighborMessageHeader
{
    public byte Family;
    public byte Padding1;
    public ushort Padding2;
    public int Index;
    public ushort State;
    public byte Flags;
    public byte Type;

    public const int Size = 12;
}

/// <summary>struct tcmsg (linux/rtnetlink.h): the header of qdisc and filter messages.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct TrafficControlMessageHeader
{
    public byte Family;
    public byte Padding1;
    public ushort Padding2;
    /// <summary>The device, or <see cref="MagicBlockIndex"/> when <see cref="Parent"/> names a shared filter block.</summary>
    public int Index;
    public uint Handle;
    /// <summary>The parent qdisc or class; the block index when <see cref="Index"/> is the block magic (tcm_block_index).</summary>
    public uint Parent;
    /// <summary>For filters: priority in the upper 16 bits, protocol (network byte order) in the lower.</summary>
    public uint Info;

    public const int Size = 20;
    public const int MagicBlockIndex = unchecked((int)0xFFFFFFFF);   // TCM_IFINDEX_MAGIC_BLOCK
}

/// <summary>struct tc_u32_sel (linux/pkt_cls.h) without its trailing keys.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct U32Selector
{
    public byte Flags;
    public byte OffsetShift;
    public byte KeyCount;
    public byte Padding;
    public ushort OffsetMask;      // big-endian in the kernel struct; skein leaves it 0
    public ushort Offset;
    public short OffsetOffset;
    public short HashOffset;
    public uint HashMask;          // big-endian; 0

    public const int Size = 16;
    public const byte Terminal = 1;  // TC_U32_TERMINAL: a leaf that runs its actions
}

/// <summary>struct tc_u32_key: 32 bits of packet at <see cref="Offset"/> (from the network header) under a mask.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct U32Key
{
    public uint Mask;              // big-endian
    public uint Value;             // big-endian
    public int Offset;
    public int OffsetMask;

    public const int Size = 16;
}

/// <summary>struct tc_mirred (linux/tc_act/tc_mirred.h), tc_gen included.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct MirredParameters
{
    public uint Index;
    public uint Capabilities;
    public int Action;
    public int ReferenceCount;
    public int BindCount;
    public int MirredAction;
    public uint TargetIndex;

    public const int Size = 28;
    public const int ActionStolen = 4;   // TC_ACT_STOLEN: the packet is consumed by the redirect
    public const int EgressRedirect = 1; // TCA_EGRESS_REDIR
}
