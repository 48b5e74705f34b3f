using System.Text;

namespace Skein.Driver.Netlink;

/// <summary>errno values the netlink code reasons about, and a readable description of any errno.</summary>
internal static class Errnos
{
    public const int EPERM = 1;
    public const int ENOENT = 2;
    public const int ESRCH = 3;
    public const int EINTR = 4;
    public const int EBADF = 9;
    public const int EAGAIN = 11;
    public const int ENOMEM = 12;
    public const int EBUSY = 16;
    public const int EEXIST = 17;
    public const int ENODEV = 19;
    public const int EINVAL = 22;
    public const int ERANGE = 34;
    public const int ENOBUFS = 105;
    public const int EOPNOTSUPP = 95;
    public const int EADDRNOTAVAIL = 99;
    public const int ETIMEDOUT = 110;

    private static readonly Dictionary<int, string> Names = new()
    {
        [EPERM] = "EPERM", [ENOENT] = "ENOENT", [ESRCH] = "ESRCH", [EINTR] = "EINTR", [EBADF] = "EBADF",
        [EAGAIN] = "EAGAIN", [ENOMEM] = "ENOMEM", [EBUSY] = "EBUSY", [EEXIST] = "EEXIST", [ENODEV] = "ENODEV",
        [EINVAL] = "EINVAL", [ERANGE] = "ERANGE", [ENOBUFS] = "ENOBUFS", [EOPNOTSUPP] = "EOPNOTSUPP",
        [EADDRNOTAVAIL] = "EADDRNOTAVAIL", [ETIMEDOUT] = "ETIMEDOUT", [13] = "EACCES", [24] = "EMFILE",
        [28] = "ENOSPC", [93] = "EPROTONOSUPPORT", [97] = "EAFNOSUPPORT", [98] = "EADDRINUSE",
        [101] = "ENETUNREACH", [113] = "EHOSTUNREACH", [7] = "E2BIG", [90] = "EMSGSIZE", [61] = "ENODATA",
        [524] = "ENOTSUPP",
    };

    /// <summary>"File exists (EEXIST, errno 17)".</summary>
    public static unsafe string Describe(int errno)
    {
        string name = Names.TryGetValue(errno, out var n) ? n : "errno";
        byte* buffer = stackalloc byte[256];
        string text;
        try
        {
            text = Tmds.Linux.LibC.strerror_r(errno, buffer, 256) == 0
                ? Encoding.UTF8.GetString(new ReadOnlySpan<byte>(buffer, 256).TrimEnd((byte)0).SplitFirstNull())
                : "unknown error";
        }
        catch (Exception)
        {
            text = "unknown error";
        }
        return $"{text} ({name}, errno {errno})";
    }

    private static ReadOnlySpan<byte> SplitFirstNull(this ReadOnlySpan<byte> span)
    {
        int end = span.IndexOf((byte)0);
        return end < 0 ? span : span[..end];
    }
}
