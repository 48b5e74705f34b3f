namespace Skein.Driver.Netlink.Wire;

/// <summary>
/// The one place that knows netlink's 4-byte alignment (NLMSG_ALIGNTO and NLA_ALIGNTO are both 4):
/// message headers, fixed family headers and attributes all start on a 4-byte boundary.
/// </summary>
internal static class NetlinkAlignment
{
    public const int Boundary = 4;

    public static int Align(int length) => (length + Boundary - 1) & ~(Boundary - 1);
}
