using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Skein.Functional.Tests.Infrastructure;

/// <summary>
/// Sockets that belong to another network namespace (the lab's store namespace), so the test process
/// can serve the in-test Consul there and talk to the store without any link into its own namespace.
/// A socket keeps the namespace it was created in; only its creation happens on a thread that
/// switches there and back.
/// </summary>
public static class MultiHostNetns
{
    private const int CloneNewNet = 0x40000000;

    [DllImport("libc", SetLastError = true)]
    private static extern int setns(int fd, int nstype);

    /// <param name="namespacePath">/run/netns/NAME</param>
    public static Socket CreateSocket(string namespacePath, AddressFamily family, SocketType type, ProtocolType protocol)
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

    /// <summary>A bound TCP socket in the namespace (Kestrel listens on it).</summary>
    public static Socket BoundTcp(string namespacePath, EndPoint endpoint)
    {
        var ip = (IPEndPoint)endpoint;
        var socket = CreateSocket(namespacePath, ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            socket.Bind(ip);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>An HttpClient whose connections are opened inside the namespace.</summary>
    public static HttpClient HttpClient(string namespacePath, TimeSpan timeout) =>
        new(new SocketsHttpHandler
        {
            ConnectCallback = async (context, ct) =>
            {
                var address = IPAddress.Parse(context.DnsEndPoint.Host);
                var socket = CreateSocket(namespacePath, address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                try
                {
                    await socket.ConnectAsync(new IPEndPoint(address, context.DnsEndPoint.Port), ct);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
            PooledConnectionLifetime = TimeSpan.FromSeconds(30),
        })
        { Timeout = timeout };
}
