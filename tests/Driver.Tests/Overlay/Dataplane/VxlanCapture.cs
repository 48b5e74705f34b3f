using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Skein.Driver.Netlink;
using Skein.Driver.Netlink.Wire;
using Skein.Driver.Tests.TestSupport;
using Tmds.Linux;

namespace Skein.Driver.Tests.Overlay.Dataplane;

/// <summary>
/// Counts what travels inside VXLAN on a test namespace's underlay: an AF_PACKET socket opened in the namespace sees
/// every frame sent and received there; frames to the VXLAN UDP port are unwrapped and their inner frames counted
/// by kind (ARP, ICMPv6 neighbour solicitation/advertisement, other). Frames wait in the socket until
/// <see cref="Read"/> drains them, so a count taken after a command has finished includes all its frames.
/// No tool needed (tcpdump is not installed in CI).
/// </summary>
internal sealed unsafe class VxlanCapture : IDisposable
{
    public readonly record struct Counts(int Arp, int NeighborSolicitations, int NeighborAdvertisements, int Other);

    private const int AddressFamilyPacket = 17;      // AF_PACKET
    private const int EthernetAllProtocols = 0x0300; // htons(ETH_P_ALL)
    private const int MsgDontWait = 0x40;

    private readonly int _fd;
    private readonly ushort _port;
    private readonly byte[] _buffer = new byte[65536];
    private int _arp, _solicitations, _advertisements, _other;

    /// <summary>Source, destination and target of each solicitation seen, for failure messages.</summary>
    public List<string> Solicitations { get; } = [];

    private VxlanCapture(int fd, ushort port)
    {
        _fd = fd;
        _port = port;
    }

    public static VxlanCapture Start(NetNs ns, ushort port)
    {
        using var handle = ns.Open();
        int fd = NetworkNamespaceThread.Run((int)handle.DangerousGetHandle(), $"open a packet socket in {ns.Name}", () =>
        {
            int socket = LibC.socket(AddressFamilyPacket, LibC.SOCK_RAW | LibC.SOCK_CLOEXEC, EthernetAllProtocols);
            if (socket < 0) throw new InvalidOperationException($"socket(AF_PACKET) failed with errno {NetlinkNative.LastErrno}");
            return socket;
        });
        return new VxlanCapture(fd, port);
    }

    /// <summary>Drains what arrived so far and returns the totals since <see cref="Start"/>.</summary>
    public Counts Read()
    {
        while (true)
        {
            long size;
            fixed (byte* p = _buffer)
                size = LibC.recv(_fd, p, (size_t)(ulong)_buffer.Length, MsgDontWait);
            if (size < 0)
            {
                int errno = NetlinkNative.LastErrno;
                if (errno == Errnos.EINTR) continue;
                if (errno == Errnos.EAGAIN) break;
                throw new InvalidOperationException($"recv on the packet socket failed with errno {errno}");
            }
            Count(_buffer.AsSpan(0, (int)size));
        }
        return new Counts(_arp, _solicitations, _advertisements, _other);
    }

    private void Count(ReadOnlySpan<byte> frame)
    {
        // Outer Ethernet → IPv4 or IPv6 → UDP to the VXLAN port → 8 bytes of VXLAN → inner Ethernet.
        if (frame.Length < 14) return;
        int udp;
        ushort outerType = BinaryPrimitives.ReadUInt16BigEndian(frame[12..]);
        if (outerType == 0x0800 && frame.Length >= 34 && frame[23] == 17)
            udp = 14 + (frame[14] & 0x0F) * 4;
        else if (outerType == 0x86DD && frame.Length >= 54 && frame[20] == 17)
            udp = 54;
        else
            return;
        if (frame.Length < udp + 8 + 8 + 14 || BinaryPrimitives.ReadUInt16BigEndian(frame[(udp + 2)..]) != _port) return;
        var inner = frame[(udp + 16)..];
        ushort innerType = BinaryPrimitives.ReadUInt16BigEndian(inner[12..]);
        if (innerType == 0x0806)
            _arp++;
        else if (innerType == 0x86DD && inner.Length >= 14 + 40 + 24 && inner[14 + 6] == 58 && inner[14 + 40] == 135)
        {
            _solicitations++;
            Solicitations.Add($"NS {new System.Net.IPAddress(inner.Slice(14 + 8, 16))} → {new System.Net.IPAddress(inner.Slice(14 + 24, 16))} for {new System.Net.IPAddress(inner.Slice(14 + 40 + 8, 16))} (inner MAC {Convert.ToHexString(inner[6..12])} → {Convert.ToHexString(inner[..6])})");
        }
        else if (innerType == 0x86DD && inner.Length >= 14 + 40 + 1 && inner[14 + 6] == 58 && inner[14 + 40] == 136)
            _advertisements++;
        else
            _other++;
    }

    public void Dispose() => LibC.close(_fd);
}
