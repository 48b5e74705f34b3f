namespace Skein.Driver.Netlink.Wire;

/// <summary>nlmsg_type values: the netlink control messages and the rtnetlink requests we send (linux/netlink.h, linux/rtnetlink.h).</summary>
internal enum MessageType : ushort
{
    Noop = 1,
    Error = 2,
    Done = 3,
    Overrun = 4,

    NewLink = 16,
    DeleteLink = 17,
    GetLink = 18,
    SetLink = 19,
    NewAddress = 20,
    DeleteAddress = 21,
    GetAddress = 22,
    NewRoute = 24,
    DeleteRoute = 25,
    GetRoute = 26,
    NewNeighbor = 28,
    DeleteNeighbor = 29,
    GetNeighbor = 30,
    NewQdisc = 36,
    DeleteQdisc = 37,
    GetQdisc = 38,
    NewFilter = 44,
    DeleteFilter = 45,
    GetFilter = 46,
}

/// <summary>nlmsg_flags (NLM_F_*). Some bits mean different things for GET and NEW requests, as in the kernel header.</summary>
[Flags]
internal enum MessageFlags : ushort
{
    None = 0,
    Request = 0x01,
    Multi = 0x02,
    Ack = 0x04,
    Echo = 0x08,
    DumpInterrupted = 0x10,
    DumpFiltered = 0x20,

    // GET requests
    Root = 0x100,
    Match = 0x200,
    Dump = Root | Match,

    // NEW requests
    Replace = 0x100,
    Exclusive = 0x200,
    Create = 0x400,
    Append = 0x800,

    // flags of an NLMSG_ERROR acknowledgement
    Capped = 0x100,
    AckTlvs = 0x200,
}

/// <summary>Socket-level constants not exposed by Tmds.LibC's names we use.</summary>
internal static class NetlinkSocketOptions
{
    public const int AddressFamilyNetlink = 16; // AF_NETLINK
    public const int NetlinkRoute = 0;          // NETLINK_ROUTE
    public const int SolNetlink = 270;          // SOL_NETLINK
    public const int CapAck = 10;               // NETLINK_CAP_ACK: do not echo our request back in errors
    public const int ExtendedAck = 11;          // NETLINK_EXT_ACK: kernel error text in NLMSGERR_ATTR_MSG
    public const int GetStrictCheck = 12;       // NETLINK_GET_STRICT_CHK
}

/// <summary>Attribute ids inside an extended acknowledgement (enum nlmsgerr_attrs).</summary>
internal enum ErrorAttribute : ushort
{
    Message = 1,
    Offset = 2,
    Cookie = 3,
    Policy = 4,
    MissingType = 5,
    MissingNest = 6,
}

/// <summary>Address families as the kernel numbers them (not .NET's AddressFamily values).</summary>
internal static class KernelAddressFamily
{
    public const byte Unspecified = 0;
    public const byte Inet = 2;
    public const byte Bridge = 7;
    public const byte Inet6 = 10;

    public static byte From(System.Net.Sockets.AddressFamily family) => family switch
    {
        System.Net.Sockets.AddressFamily.InterNetwork => Inet,
        System.Net.Sockets.AddressFamily.InterNetworkV6 => Inet6,
        System.Net.Sockets.AddressFamily.Unspecified => Unspecified,
        _ => throw new ArgumentOutOfRangeException(nameof(family), family, "only IPv4 and IPv6 are supported"),
    };

    public static System.Net.Sockets.AddressFamily ToDotNet(byte family) => family switch
    {
        Inet => System.Net.Sockets.AddressFamily.InterNetwork,
        Inet6 => System.Net.Sockets.AddressFamily.InterNetworkV6,
        _ => System.Net.Sockets.AddressFamily.Unknown,
    };
}

/// <summary>IFF_* device flags we use (linux/if.h).</summary>
internal static class DeviceFlags
{
    public const uint Up = 0x1;
}
