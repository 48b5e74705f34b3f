using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Skein.Functional.Tests.Infrastructure;

/// <summary>
/// Opens a socket inside another network namespace (a container's, or the outside namespace), so a
/// test can send and receive UDP there without depending on tools the busybox image lacks (its nc
/// has no UDP). A socket belongs to the namespace it was created in; the creating thread switches
/// there and back on a thread of its own.
/// </summary>
public static class NetnsSocket
{
    private const int CloneNewNet = 0x40000000;

    [DllImport("libc", SetLastError = true)]
    private static extern int setns(int fd, int nstype);

    /// <param name="namespacePath">/run/netns/NAME or /proc/PID/ns/net</param>
    public static Socket Create(string namespacePath, SocketType type, ProtocolType protocol) =>
        Create(namespacePath, AddressFamily.InterNetwork, type, protocol);

    public static Socket Create(string namespacePath, AddressFamily family, SocketType type, ProtocolType protocol)
    {
        Socket? socket = null;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                using var original = File.OpenHandle("/proc/thread-self/ns/net");
                using var target = File.OpenHandle(namespacePath);
                if (setns((int)target.DangerousGetHandle(), CloneNewNet) != 0)
                    throw new IOException($"setns({namespacePath}) failed: errno {Marshal.GetLastPInvokeError()}");
                try
                {
                    socket = new Socket(family, type, protocol);
                }
                finally
                {
                    if (setns((int)original.DangerousGetHandle(), CloneNewNet) != 0)
                        Environment.FailFast("could not return a thread to its own network namespace");
                }
            }
            catch (Exception e)
            {
                failure = e;
            }
        });
        thread.Start();
        thread.Join();
        return socket ?? throw new IOException($"cannot open a socket in {namespacePath}", failure);
    }
}
