using System.Buffers.Binary;
using System.Text;
using Skein.Driver.Netlink;
using Skein.Driver.Netlink.Messages;
using Skein.Driver.Netlink.Wire;

namespace Skein.Driver.Tests.Netlink;

/// <summary>
/// The strict reply handling, on datagrams built from the uapi layouts: struct nlmsgerr is
/// int error + the request's nlmsghdr (only the header when NLM_F_CAPPED 0x100), then with
/// NLM_F_ACK_TLVS 0x200 the attributes NLMSGERR_ATTR_MSG 1 (string) and NLMSGERR_ATTR_OFFS 2.
/// </summary>
public class RequestLoopTests
{
    private const uint Sequence = 77;
    private const uint Port = 4242;

    private static byte[] Message(ushort type, ushort flags, uint sequence, uint port, byte[] payload)
    {
        int length = 16 + payload.Length;
        var bytes = new byte[(length + 3) & ~3];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, (uint)length);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(4), type);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(6), flags);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(8), sequence);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(12), port);
        payload.CopyTo(bytes, 16);
        return bytes;
    }

    private static byte[] Attribute(ushort type, byte[] value)
    {
        var bytes = new byte[(4 + value.Length + 3) & ~3];
        BinaryPrimitives.WriteUInt16LittleEndian(bytes, (ushort)(4 + value.Length));
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(2), type);
        value.CopyTo(bytes, 4);
        return bytes;
    }

    private static byte[] Int(int value)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, value);
        return bytes;
    }

    private static byte[] Link(int index, string name, ushort flags = 0x2, uint sequence = Sequence, uint port = Port)
    {
        var ifinfo = new byte[16];
        BinaryPrimitives.WriteInt32LittleEndian(ifinfo.AsSpan(4), index);
        return Message(16, flags, sequence, port, [.. ifinfo, .. Attribute(3, Encoding.ASCII.GetBytes(name + "\0"))]);
    }

    private static readonly byte[] RequestHeader = new byte[16];

    private static bool Run(byte[] datagram, List<Link> results, ref bool interrupted, bool expectAck = false) =>
        NetlinkSocket.ProcessDatagram(datagram, Sequence, Port, "op", expectAck, LinkMessages.Decoder, results, ref interrupted);

    [Fact]
    public void Replies_with_another_sequence_or_port_are_ignored()
    {
        var results = new List<Link>();
        bool interrupted = false;
        byte[] datagram =
        [
            .. Link(1, "stale", sequence: Sequence - 1),
            .. Link(2, "other-socket", port: Port + 1),
            .. Link(3, "ours"),
            .. Message(3, 0x2, Sequence, Port, Int(0)),
        ];
        Assert.True(Run(datagram, results, ref interrupted));
        Assert.Equal("ours", Assert.Single(results).Name);
        Assert.False(interrupted);
    }

    [Fact]
    public void Dump_interrupted_flag_is_reported()
    {
        var results = new List<Link>();
        bool interrupted = false;
        byte[] datagram = [.. Link(3, "a", flags: 0x2 | 0x10), .. Message(3, 0x2, Sequence, Port, Int(0))];
        Assert.True(Run(datagram, results, ref interrupted));
        Assert.True(interrupted);
    }

    [Fact]
    public void Multipart_without_done_is_not_complete()
    {
        var results = new List<Link>();
        bool interrupted = false;
        Assert.False(Run([.. Link(3, "a"), .. Link(4, "b")], results, ref interrupted));
        Assert.Equal(2, results.Count);
    }

    [Fact]
    public void Ack_completes_a_change_and_done_alone_does_not()
    {
        var results = new List<Link>();
        bool interrupted = false;
        Assert.False(Run(Message(3, 0x2, Sequence, Port, Int(0)), results, ref interrupted, expectAck: true));
        Assert.True(Run(Message(2, 0x100, Sequence, Port, [.. Int(0), .. RequestHeader]), results, ref interrupted, expectAck: true));
    }

    [Fact]
    public void Capped_error_with_extended_ack_carries_the_kernel_message()
    {
        var payload = new byte[][]
        {
            Int(-34),
            RequestHeader,
            Attribute(1, Encoding.ASCII.GetBytes("VXLAN ID must be lower than 16777216\0")),
            Attribute(2, Int(52)),
        }.SelectMany(b => b).ToArray();
        var datagram = Message(2, 0x100 | 0x200, Sequence, Port, payload);

        var results = new List<Link>();
        bool interrupted = false;
        var e = Assert.Throws<NetlinkException>(() => Run(datagram, results, ref interrupted, expectAck: true));
        Assert.Equal(34, e.Errno);
        Assert.Equal("op", e.Operation);
        Assert.Equal("VXLAN ID must be lower than 16777216", e.KernelMessage);
        Assert.Contains("ERANGE", e.Message);
        Assert.Contains("op", e.Message);
        Assert.Contains("VXLAN ID must be lower", e.Message);
    }

    [Fact]
    public void Uncapped_error_skips_the_echoed_request_before_the_tlvs()
    {
        var echoed = Message(16, 0x605, Sequence, 0, new byte[24]); // a 40-byte request echoed whole
        var payload = new byte[][] { Int(-22), echoed, Attribute(1, Encoding.ASCII.GetBytes("Invalid thing\0")) }.SelectMany(b => b).ToArray();
        var results = new List<Link>();
        bool interrupted = false;
        var e = Assert.Throws<NetlinkException>(() => Run(Message(2, 0x200, Sequence, Port, payload), results, ref interrupted, expectAck: true));
        Assert.Equal(22, e.Errno);
        Assert.Equal("Invalid thing", e.KernelMessage);
    }

    [Fact]
    public void Error_in_done_fails_the_dump()
    {
        var results = new List<Link>();
        bool interrupted = false;
        var payload = new byte[][] { Int(-95), Attribute(1, Encoding.ASCII.GetBytes("Filter not supported\0")) }.SelectMany(b => b).ToArray();
        var e = Assert.Throws<NetlinkException>(() => Run(Message(3, 0x2 | 0x200, Sequence, Port, payload), results, ref interrupted));
        Assert.Equal(95, e.Errno);
        Assert.Equal("Filter not supported", e.KernelMessage);
    }

    [Fact]
    public void Overrun_and_truncated_messages_are_transport_errors()
    {
        var results = new List<Link>();
        bool interrupted = false;
        Assert.Throws<NetlinkTransportException>(() => Run(Message(4, 0, Sequence, Port, []), results, ref interrupted));
        var truncated = Link(3, "a");
        Assert.Throws<NetlinkTransportException>(() => Run(truncated[..20], results, ref interrupted));
    }
}
