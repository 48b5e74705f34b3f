namespace Skein.Driver.Netlink;

/// <summary>
/// The kernel refused a request: carries the errno it returned, the operation we asked for and the
/// kernel's extended-ack text when it sent one. Transport failures (the socket itself failing or
/// timing out) are <see cref="NetlinkTransportException"/> instead, so callers can tell "the kernel
/// said no" from "we could not talk to the kernel".
/// </summary>
public class NetlinkException : Exception
{
    public NetlinkException(int errno, string operation, string? kernelMessage)
        : base(Format(errno, operation, kernelMessage))
    {
        Errno = errno;
        Operation = operation;
        KernelMessage = kernelMessage;
    }

    /// <summary>Positive errno value (EEXIST = 17, ENODEV = 19, ...).</summary>
    public int Errno { get; }

    /// <summary>What was asked, e.g. "add link vx0 (vxlan)".</summary>
    public string Operation { get; }

    /// <summary>The kernel's extended-ack message, when it sent one.</summary>
    public string? KernelMessage { get; }

    /// <summary>The object already exists (EEXIST).</summary>
    public bool IsAlreadyExists => Errno == Errnos.EEXIST;

    /// <summary>The object (or the device it refers to) does not exist (ENOENT, ENODEV, ESRCH, EADDRNOTAVAIL).</summary>
    public bool IsNotFound => Errno is Errnos.ENOENT or Errnos.ENODEV or Errnos.ESRCH or Errnos.EADDRNOTAVAIL;

    private static string Format(int errno, string operation, string? kernelMessage)
    {
        string text = $"netlink: {operation} failed: {Errnos.Describe(errno)}";
        return string.IsNullOrEmpty(kernelMessage) ? text : $"{text}; kernel says: {kernelMessage}";
    }
}

/// <summary>Talking to the kernel failed (socket error, time-out, malformed reply): not a refusal by the kernel.</summary>
public sealed class NetlinkTransportException : IOException
{
    public NetlinkTransportException(string operation, string detail, int errno = 0)
        : base(errno == 0
            ? $"netlink transport: {operation}: {detail}"
            : $"netlink transport: {operation}: {detail}: {Errnos.Describe(errno)}")
    {
        Operation = operation;
        Errno = errno;
    }

    public string Operation { get; }
    public int Errno { get; }
}
