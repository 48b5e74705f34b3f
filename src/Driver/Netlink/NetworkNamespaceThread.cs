using Skein.Driver.Netlink.Wire;
using Tmds.Linux;

namespace Skein.Driver.Netlink;

/// <summary>
/// Runs a short piece of work inside another network namespace on a dedicated thread that is
/// created for it and ends with it. setns(CLONE_NEWNET) changes only the calling thread, so the
/// namespace never leaks into a thread-pool thread: the work thread joins the namespace, does its
/// work (creating a socket, opening a /proc/sys file), tries to go back, and exits either way.
/// </summary>
internal static class NetworkNamespaceThread
{
    private const int CloneNewNet = 0x40000000; // CLONE_NEWNET

    public static T Run<T>(int namespaceFd, string description, Func<T> work)
    {
        T result = default!;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                int original = NetlinkNative.OpenNetworkNamespace("/proc/thread-self/ns/net");
                try
                {
                    if (LibC.setns(namespaceFd, CloneNewNet) != 0)
                    {
                        int errno = NetlinkNative.LastErrno;
                        throw errno == Errnos.EINVAL
                            ? new ArgumentException($"{description}: fd {namespaceFd} is not a network namespace")
                            : new NetlinkTransportException(description, "setns(CLONE_NEWNET) failed", errno);
                    }
                    try
                    {
                        result = work();
                    }
                    finally
                    {
                        // If this fails the thread still ends right after, taking the namespace with it.
                        if (original >= 0) LibC.setns(original, CloneNewNet);
                    }
                }
                finally
                {
                    if (original >= 0) LibC.close(original);
                }
            }
            catch (Exception e)
            {
                failure = e;
            }
        })
        {
            IsBackground = true,
            Name = "skein-netns",
        };
        thread.Start();
        thread.Join();
        if (failure is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
        return result;
    }
}
