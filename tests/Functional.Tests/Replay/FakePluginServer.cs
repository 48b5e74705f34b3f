using System.Globalization;
using System.Net.Sockets;
using System.Text;
using Skein.Driver.Replay;

namespace Skein.Functional.Tests.Replay;

/// <summary>Serves a <see cref="FakePlugin"/> over HTTP/1.1 on a Unix socket in a temp directory, and
/// keeps the raw request heads so tests can check what the harness sends.</summary>
public sealed class FakePluginServer : IAsyncDisposable
{
    private readonly Socket listener;
    private readonly CancellationTokenSource stop = new();
    private readonly Task acceptLoop;
    private readonly string directory;
    private readonly Func<string, string, PluginReply> handler;

    public string SocketPath { get; }
    public List<string> RequestHeads { get; } = [];
    public bool Chunked { get; init; }

    public FakePluginServer(Func<string, string, PluginReply> handler)
    {
        this.handler = handler;
        directory = Directory.CreateTempSubdirectory("skein-fake-").FullName;
        SocketPath = Path.Combine(directory, "fake.sock");
        listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(SocketPath));
        listener.Listen(16);
        acceptLoop = AcceptAsync();
    }

    private async Task AcceptAsync()
    {
        try
        {
            while (!stop.IsCancellationRequested)
            {
                var connection = await listener.AcceptAsync(stop.Token);
                _ = ServeAsync(connection);
            }
        }
        catch (OperationCanceledException) { }
        catch (SocketException) { }
        catch (ObjectDisposedException) { }
    }

    private async Task ServeAsync(Socket connection)
    {
        using var stream = new NetworkStream(connection, ownsSocket: true);
        var pending = new List<byte>();
        var buffer = new byte[8192];
        try
        {
            while (true)
            {
                int headEnd;
                while ((headEnd = IndexOf(pending, "\r\n\r\n"u8)) < 0)
                {
                    var n = await stream.ReadAsync(buffer, stop.Token);
                    if (n == 0)
                        return;
                    pending.AddRange(buffer.AsSpan(0, n).ToArray());
                }
                var head = Encoding.ASCII.GetString(pending.GetRange(0, headEnd).ToArray());
                pending.RemoveRange(0, headEnd + 4);
                lock (RequestHeads)
                    RequestHeads.Add(head);
                var lines = head.Split("\r\n");
                var path = lines[0].Split(' ')[1];
                var length = lines.Skip(1).Select(l => l.Split(':', 2)).Where(p => p[0].Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
                    .Select(p => int.Parse(p[1].Trim(), CultureInfo.InvariantCulture)).FirstOrDefault();
                while (pending.Count < length)
                {
                    var n = await stream.ReadAsync(buffer, stop.Token);
                    if (n == 0)
                        return;
                    pending.AddRange(buffer.AsSpan(0, n).ToArray());
                }
                var body = Encoding.UTF8.GetString(pending.GetRange(0, length).ToArray());
                pending.RemoveRange(0, length);

                PluginReply reply;
                lock (handler)
                    reply = handler(path, body);
                var status = reply.Status == 200 ? "200 OK" : $"{reply.Status} Error";
                byte[] response;
                if (Chunked)
                {
                    var half = reply.Body.Length / 2;
                    response = [.. Encoding.ASCII.GetBytes($"HTTP/1.1 {status}\r\nContent-Type: {reply.ContentType}\r\nTransfer-Encoding: chunked\r\n\r\n{half:x}\r\n"),
                        .. reply.Body.AsSpan(0, half), .. Encoding.ASCII.GetBytes($"\r\n{reply.Body.Length - half:x}\r\n"),
                        .. reply.Body.AsSpan(half), .. "\r\n0\r\n\r\n"u8];
                }
                else
                {
                    response = [.. Encoding.ASCII.GetBytes($"HTTP/1.1 {status}\r\nContent-Type: {reply.ContentType}\r\nContent-Length: {reply.Body.Length}\r\n\r\n"), .. reply.Body];
                }
                await stream.WriteAsync(response, stop.Token);
            }
        }
        catch (OperationCanceledException) { }
        catch (IOException) { }
    }

    private static int IndexOf(List<byte> data, ReadOnlySpan<byte> pattern)
    {
        for (var i = 0; i + pattern.Length <= data.Count; i++)
        {
            var match = true;
            for (var j = 0; j < pattern.Length && match; j++)
                match = data[i + j] == pattern[j];
            if (match)
                return i;
        }
        return -1;
    }

    public async ValueTask DisposeAsync()
    {
        stop.Cancel();
        listener.Dispose();
        await acceptLoop;
        Directory.Delete(directory, recursive: true);
    }
}
