using System.Runtime.InteropServices;
using Tmds.Linux;
using static Skein.Driver.Netlink.Wire.NetlinkNative;

namespace Skein.Driver.Netlink.Wire;

/// <summary>Turns one reply message into a result; returns false to skip it.</summary>
internal delegate bool ReplyDecoder<T>(in ReceivedMessage message, out T result);

/// <summary>
/// One NETLINK_ROUTE socket and its strict request loop. One request at a time (a lock); each gets a
/// fresh sequence number and the loop only accepts kernel-sent replies carrying that sequence and
/// our port id, so a late reply to an earlier timed-out request can never be taken for this one.
/// Changes always ask for an ACK; dumps read multipart replies to NLMSG_DONE and are retried when
/// the kernel flags them NLM_F_DUMP_INTR (the table changed under the dump).
/// </summary>
internal sealed unsafe class NetlinkSocket : IDisposable
{
    public const int MaxDumpAttempts = 10;
    private const int InitialReceiveBufferSize = 64 * 1024;

    private readonly object _lock = new();
    private readonly int _fd;
    private uint _sequence;
    private byte[] _receiveBuffer = new byte[InitialReceiveBufferSize];
    private bool _disposed;

    private NetlinkSocket(int fd, uint portId)
    {
        _fd = fd;
        PortId = portId;
        // A time-based start, as iproute2 does, keeps sequences of successive handles apart.
        _sequence = (uint)Environment.TickCount;
    }

    /// <summary>The port id the kernel assigned at bind time.</summary>
    public uint PortId { get; }

    /// <summary>Creates the socket in the calling thread's network namespace.</summary>
    public static NetlinkSocket Create(TimeSpan timeout)
    {
        if (timeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(timeout), timeout, "the netlink time-out must be positive");
        int fd = LibC.socket(NetlinkSocketOptions.AddressFamilyNetlink, LibC.SOCK_RAW | LibC.SOCK_CLOEXEC, NetlinkSocketOptions.NetlinkRoute);
        if (fd < 0) throw new NetlinkTransportException("open socket", "socket(AF_NETLINK, NETLINK_ROUTE) failed", LastErrno);
        try
        {
            // Best effort: older kernels lack some; errors then arrive without text, which still works.
            SetOption(fd, NetlinkSocketOptions.SolNetlink, NetlinkSocketOptions.ExtendedAck, 1);
            SetOption(fd, NetlinkSocketOptions.SolNetlink, NetlinkSocketOptions.CapAck, 1);

            var timeValue = new TimeValue
            {
                Seconds = (long)timeout.TotalSeconds,
                Microseconds = (long)(timeout.TotalMicroseconds % 1_000_000),
            };
            if (LibC.setsockopt(fd, LibC.SOL_SOCKET, LibC.SO_RCVTIMEO, &timeValue, (socklen_t)(uint)sizeof(TimeValue)) != 0)
                throw new NetlinkTransportException("open socket", "setsockopt(SO_RCVTIMEO) failed", LastErrno);
            if (LibC.setsockopt(fd, LibC.SOL_SOCKET, LibC.SO_SNDTIMEO, &timeValue, (socklen_t)(uint)sizeof(TimeValue)) != 0)
                throw new NetlinkTransportException("open socket", "setsockopt(SO_SNDTIMEO) failed", LastErrno);

            var address = new SocketAddressNetlink { Family = NetlinkSocketOptions.AddressFamilyNetlink };
            if (LibC.bind(fd, (sockaddr*)&address, (socklen_t)(uint)sizeof(SocketAddressNetlink)) != 0)
                throw new NetlinkTransportException("open socket", "bind failed", LastErrno);
            socklen_t length = (socklen_t)(uint)sizeof(SocketAddressNetlink);
            if (LibC.getsockname(fd, (sockaddr*)&address, &length) != 0)
                throw new NetlinkTransportException("open socket", "getsockname failed", LastErrno);
            return new NetlinkSocket(fd, address.PortId);
        }
        catch
        {
            LibC.close(fd);
            throw;
        }
    }

    /// <summary>Sends a change that asks for an ACK and waits for it; kernel errors become <see cref="NetlinkException"/>.</summary>
    public void Execute(string operation, Span<byte> request)
    {
        RequireFlags(request, MessageFlags.Request | MessageFlags.Ack, operation);
        lock (_lock)
        {
            uint sequence = Send(operation, request);
            ReceiveUntilComplete<byte>(operation, sequence, expectAck: true, decoder: null, results: null, out _);
        }
    }

    /// <summary>Sends a GET for one object; returns its decoded reply, or throws the kernel's error.</summary>
    public T Get<T>(string operation, Span<byte> request, ReplyDecoder<T> decoder)
    {
        var results = new List<T>(1);
        lock (_lock)
        {
            uint sequence = Send(operation, request);
            ReceiveUntilComplete(operation, sequence, expectAck: false, decoder, results, out _);
        }
        return results.Count > 0
            ? results[0]
            : throw new NetlinkTransportException(operation, "the kernel sent no reply message");
    }

    /// <summary>Runs a dump to NLMSG_DONE, restarting it when the kernel marks it interrupted.</summary>
    public List<T> Dump<T>(string operation, Span<byte> request, ReplyDecoder<T> decoder)
    {
        RequireFlags(request, MessageFlags.Request | MessageFlags.Dump, operation);
        var results = new List<T>();
        lock (_lock)
        {
            for (int attempt = 1; ; attempt++)
            {
                results.Clear();
                uint sequence = Send(operation, request);
                ReceiveUntilComplete(operation, sequence, expectAck: false, decoder, results, out bool interrupted);
                if (!interrupted) return results;
                if (attempt == MaxDumpAttempts)
                    throw new NetlinkTransportException(operation, $"dump interrupted by concurrent changes {MaxDumpAttempts} times in a row");
            }
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed) return;
            _disposed = true;
            LibC.close(_fd);
        }
    }

    private uint Send(string operation, Span<byte> request)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        uint sequence = unchecked(++_sequence);
        if (sequence == 0) sequence = unchecked(++_sequence);
        var header = MemoryMarshal.Read<NetlinkMessageHeader>(request);
        if (header.Length != request.Length)
            throw new InvalidOperationException($"{operation}: message length field {header.Length} differs from its {request.Length} bytes");
        header.Sequence = sequence;
        header.PortId = PortId;
        MemoryMarshal.Write(request, in header);

        var kernel = new SocketAddressNetlink { Family = NetlinkSocketOptions.AddressFamilyNetlink };
        fixed (byte* p = request)
        {
            while (true)
            {
                long sent = LibC.sendto(_fd, p, (size_t)(ulong)request.Length, 0, (sockaddr*)&kernel, (socklen_t)(uint)sizeof(SocketAddressNetlink));
                if (sent == request.Length) return sequence;
                int errno = LastErrno;
                if (sent < 0 && errno == Errnos.EINTR) continue;
                throw new NetlinkTransportException(operation, sent < 0 ? "send failed" : $"short send ({sent} of {request.Length} bytes)", sent < 0 ? errno : 0);
            }
        }
    }

    private void ReceiveUntilComplete<T>(string operation, uint sequence, bool expectAck, ReplyDecoder<T>? decoder, List<T>? results, out bool interrupted)
    {
        interrupted = false;
        while (true)
        {
            int received = ReceiveDatagram(operation, out bool fromKernel);
            if (!fromKernel) continue;
            if (ProcessDatagram(_receiveBuffer.AsSpan(0, received), sequence, PortId, operation, expectAck, decoder, results, ref interrupted))
                return;
        }
    }

    /// <summary>
    /// Handles one received datagram for the request (<paramref name="sequence"/>, <paramref name="portId"/>):
    /// skips messages that are not replies to it, decodes the rest, throws the kernel's error, and
    /// returns true once the request is complete (its ACK, NLMSG_DONE, or a single GET reply).
    /// </summary>
    internal static bool ProcessDatagram<T>(ReadOnlySpan<byte> datagram, uint sequence, uint portId, string operation, bool expectAck,
        ReplyDecoder<T>? decoder, List<T>? results, ref bool interrupted)
    {
        while (datagram.Length > 0)
        {
            int consumed = ReceivedMessage.Next(datagram, out var message);
            datagram = datagram[consumed..];

            // Stale replies (to a request that timed out earlier) and notifications are not ours.
            if (message.Header.Sequence != sequence || message.Header.PortId != portId) continue;

            if ((message.Flags & MessageFlags.DumpInterrupted) != 0) interrupted = true;

            switch (message.Type)
            {
                case MessageType.Error:
                    int error = ExtendedAck.ReadError(message, out string? kernelMessage);
                    if (error != 0) throw new NetlinkException(-error, operation, kernelMessage);
                    return true; // the ACK: the request is complete
                case MessageType.Done:
                    int doneError = ExtendedAck.ReadDoneError(message, out string? doneMessage);
                    if (doneError != 0) throw new NetlinkException(-doneError, operation, doneMessage);
                    if (!expectAck) return true;
                    continue;
                case MessageType.Noop:
                    continue;
                case MessageType.Overrun:
                    throw new NetlinkTransportException(operation, "the kernel reported a data overrun");
            }

            if (decoder is not null && results is not null && decoder(in message, out T result))
                results.Add(result);

            // A single (non-multipart) reply to a GET completes it.
            if ((message.Flags & MessageFlags.Multi) == 0 && !expectAck) return true;
        }
        return false;
    }

    /// <summary>Receives one datagram, first peeking its size so a large reply is never truncated.</summary>
    private int ReceiveDatagram(string operation, out bool fromKernel)
    {
        while (true)
        {
            var sender = new SocketAddressNetlink();
            socklen_t senderLength = (socklen_t)(uint)sizeof(SocketAddressNetlink);
            long size;
            fixed (byte* p = _receiveBuffer)
                size = LibC.recvfrom(_fd, p, (size_t)(ulong)_receiveBuffer.Length, MsgPeek | MsgTrunc, (sockaddr*)&sender, &senderLength);
            if (size < 0)
            {
                int errno = LastErrno;
                if (errno == Errnos.EINTR) continue;
                if (errno == Errnos.EAGAIN)
                    throw new NetlinkTransportException(operation, "timed out waiting for the kernel's reply", Errnos.ETIMEDOUT);
                throw new NetlinkTransportException(operation, "receive failed", errno);
            }
            if (size > _receiveBuffer.Length)
                _receiveBuffer = new byte[NetlinkAlignment.Align((int)size)];

            fixed (byte* p = _receiveBuffer)
                size = LibC.recvfrom(_fd, p, (size_t)(ulong)_receiveBuffer.Length, 0, (sockaddr*)&sender, &senderLength);
            if (size < 0)
            {
                int errno = LastErrno;
                if (errno == Errnos.EINTR) continue;
                throw new NetlinkTransportException(operation, "receive failed", errno);
            }
            fromKernel = sender.PortId == 0;
            return (int)size;
        }
    }

    private static void SetOption(int fd, int level, int name, int value)
    {
        LibC.setsockopt(fd, level, name, &value, (socklen_t)(uint)sizeof(int));
    }

    private static void RequireFlags(ReadOnlySpan<byte> request, MessageFlags required, string operation)
    {
        var flags = (MessageFlags)MemoryMarshal.Read<NetlinkMessageHeader>(request).Flags;
        if ((flags & required) != required)
            throw new InvalidOperationException($"{operation}: request flags {flags} lack {required}");
    }
}
