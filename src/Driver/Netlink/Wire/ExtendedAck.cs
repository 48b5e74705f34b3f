using System.Runtime.InteropServices;

namespace Skein.Driver.Netlink.Wire;

/// <summary>
/// Reads NLMSG_ERROR (struct nlmsgerr: int error, then the offending request's header, or the whole
/// request unless NLM_F_CAPPED) and the extended-ack TLVs after it (NLM_F_ACK_TLVS), and the error
/// code an NLMSG_DONE may carry.
/// </summary>
internal static class ExtendedAck
{
    /// <summary>Returns the (negative) errno, 0 for an ACK, and the kernel's message when present.</summary>
    public static int ReadError(in ReceivedMessage message, out string? kernelMessage)
    {
        kernelMessage = null;
        var payload = message.Payload;
        if (payload.Length < 4)
            throw new NetlinkTransportException("receive", $"NLMSG_ERROR of {payload.Length} bytes is too short");
        int error = MemoryMarshal.Read<int>(payload);
        if ((message.Flags & MessageFlags.AckTlvs) == 0) return error;

        // The echoed request: its header only when capped, else the full request.
        int echoed = NetlinkMessageHeader.Size;
        if ((message.Flags & MessageFlags.Capped) == 0 && payload.Length >= 4 + NetlinkMessageHeader.Size)
            echoed = (int)MemoryMarshal.Read<NetlinkMessageHeader>(payload[4..]).Length;
        int tlvStart = 4 + NetlinkAlignment.Align(echoed);
        if (tlvStart < payload.Length) kernelMessage = ReadMessage(payload[tlvStart..]);
        return error;
    }

    /// <summary>NLMSG_DONE carries an int error (0 = success) and, with extended acks, TLVs.</summary>
    public static int ReadDoneError(in ReceivedMessage message, out string? kernelMessage)
    {
        kernelMessage = null;
        var payload = message.Payload;
        if (payload.Length < 4) return 0;
        int error = MemoryMarshal.Read<int>(payload);
        if (error != 0 && (message.Flags & MessageFlags.AckTlvs) != 0 && payload.Length > 4)
            kernelMessage = ReadMessage(payload[4..]);
        return error;
    }

    private static string? ReadMessage(ReadOnlySpan<byte> tlvs)
    {
        var reader = new AttributeReader<ErrorAttribute>(tlvs);
        while (reader.Next(out var id, out var value))
            if (id == ErrorAttribute.Message) return AttributeValue.String(value);
        return null;
    }
}
