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
