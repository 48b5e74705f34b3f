using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Skein.Driver.Tests.Firewall;

/// <summary>Real TCP and UDP exchanges between scratch namespaces, with short time-outs for what must fail.</summary>
internal static class NetProbe
{
    public static readonly TimeSpan Blocked = TimeSpan.FromMilliseconds(400);
    public static readonly TimeSpan Allowed = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Listens on <paramref name="listenPort"/> in <paramref name="server"/>, connects from <paramref name="client"/> to
    /// <paramref name="target"/>; returns the client address the server saw, or null when no connection was made.
    /// </summary>
    public static IPEndPoint? TcpPeerSeenBy(FirewallScratchNamespace client, FirewallScratchNamespace server, int listenPort, IPEndPoint target, TimeSpan timeout)
    {
        var family = target.AddressFamily;
        using var listener = server.OpenSocket(family, SocketType.Stream, ProtocolType.Tcp);
        listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        listener.Bind(new IPEndPoint(family == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any, listenPort));
        listener.Listen(4);
        using var connector = client.OpenSocket(family, SocketType.Stream, ProtocolType.Tcp);
        using var deadline = new CancellationTokenSource(timeout);
        try
        {
            connector.ConnectAsync(target, deadline.Token).AsTask().GetAwaiter().GetResult();
            using var accepted = listener.AcceptAsync(deadline.Token).AsTask().GetAwaiter().GetResult();
            return (IPEndPoint?)accepted.RemoteEndPoint;
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            return null;
        }
    }

    /// <summary>
    /// Sends one datagram from <paramref name="client"/> to <paramref name="target"/>, received on
    /// <paramref name="listenPort"/> in <paramref name="server"/>, which answers. Returns who the server saw
    /// (null: nothing arrived) and whether the answer made it back. With <paramref name="oneWay"/> no answer is
    /// sent or awaited: for paths whose replies the lab drops on purpose.
    /// </summary>
    public static (IPEndPoint? ServerSawFrom, bool Answered) UdpExchange(
        FirewallScratchNamespace client, FirewallScratchNamespace server, int listenPort, IPEndPoint target, TimeSpan timeout, IPAddress? from = null, bool oneWay = false)
    {
        var family = target.AddressFamily;
        using var receiver = server.OpenSocket(family, SocketType.Dgram, ProtocolType.Udp);
        receiver.Bind(new IPEndPoint(family == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any, listenPort));
        using var sender = client.OpenSocket(family, SocketType.Dgram, ProtocolType.Udp);
        sender.Bind(new IPEndPoint(from ?? (family == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any), 0));
        sender.SendTo(Encoding.ASCII.GetBytes("ping"), target);

        var buffer = new byte[64];
        IPEndPoint? seen;
        using (var deadline = new CancellationTokenSource(timeout))
        {
            try
            {
                var got = receiver.ReceiveFromAsync(buffer, SocketFlags.None, new IPEndPoint(family == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any, 0), deadline.Token)
                    .AsTask().GetAwaiter().GetResult();
                seen = (IPEndPoint)got.RemoteEndPoint;
            }
            catch (OperationCanceledException)
            {
                return (null, false);
            }
        }
        if (oneWay) return (seen, false);
        receiver.SendTo(Encoding.ASCII.GetBytes("pong"), seen);
        using var replyDeadline = new CancellationTokenSource(timeout);
        try
        {
            sender.ReceiveAsync(buffer, SocketFlags.None, replyDeadline.Token).AsTask().GetAwaiter().GetResult();
            return (seen, true);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            return (seen, false);
        }
    }

    public static bool Pings(FirewallScratchNamespace from, IPAddress to) =>
        from.Exec("ping", to.AddressFamily == AddressFamily.InterNetworkV6 ? "-6" : "-4", "-c", "1", "-W", "3", "-q", to.ToString()).Ok;
}
