using System.Runtime.InteropServices;
using Tmds.Linux;

namespace Skein.Driver.Netlink.Wire;

/// <summary>
/// The syscalls the netlink code uses. All come from Tmds.LibC (socket, bind, getsockname,
/// setsockopt, sendto, recvfrom, open, close, setns, fcntl, strerror_r); Tmds.LibC has no
/// sockaddr_nl or timeval, so those two structs are declared here with the uapi layout.
/// </summary>
internal static unsafe class NetlinkNative
{
    /// <summary>struct sockaddr_nl (linux/netlink.h).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct SocketAddressNetlink
    {
        public ushort Family;
        public ushort Padding;
        public uint PortId;
        public uint Groups;
    }

    /// <summary>struct timeval on 64-bit Linux (for SO_RCVTIMEO / SO_SNDTIMEO).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct TimeValue
    {
        public long Seconds;
        public long Microseconds;
    }

    public const int MsgPeek = 0x02;   // MSG_PEEK
    public const int MsgTrunc = 0x20;  // MSG_TRUNC

    /// <summary>Tmds.LibC declares its imports with SetLastError = true, so this is the errno of the call just made.</summary>
    public static int LastErrno => Marshal.GetLastPInvokeError() is var e && e != 0 ? e : LibC.errno;

    public static int OpenNetworkNamespace(string path)
    {
        byte[] bytes = System.Text.Encoding.UTF8.GetBytes(path + "\0");
        fixed (byte* p = bytes)
            return LibC.open(p, LibC.O_RDONLY | LibC.O_CLOEXEC, 0);
    }
}
