using System.Net;
using System.Net.Sockets;

namespace Skein.Functional.Tests.Infrastructure;

/// <summary>
/// Sockets that belong to the lab's store namespace (made by <see cref="NetnsSocket"/>), so the test
/// process can serve the in-test Consul there and talk to the store without any link into its own namespace.
/// </summary>
public static class MultiHostNetns
{
    /// <summary>A bound TCP socket in the namespace (Kestrel listens on it).</summary>
    public static Socket BoundTcp(string namespacePath, EndPoint endpoint)
    {
        var ip = (IPEndPoint)endpoint;
        var socket = NetnsSocket.Create(namespacePath, ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
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
                var socket = NetnsSocket.Create(namespacePath, address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
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
