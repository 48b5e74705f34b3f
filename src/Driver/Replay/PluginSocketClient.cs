using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace Skein.Driver.Replay;

/// <summary>A plugin's answer to one call: the HTTP status and the raw body.</summary>
public sealed record PluginReply(int Status, string ContentType, byte[] Body)
{
    public string BodyText => Encoding.UTF8.GetString(Body);
}

/// <summary>Something that carries one plugin call and brings back the answer.</summary>
public interface IPluginTransport
{
    /// <summary>Where the calls go, for reports.</summary>
    string Target { get; }

    Task<PluginReply> PostAsync(string path, byte[]? body, IEnumerable<KeyValuePair<string, string>>? headers = null, CancellationToken cancel = default);
}

/// <summary>
/// Talks to a plugin on a Unix socket the way the Docker engine does: HTTP/1.1 POST, an empty Host
/// header, <c>Accept: application/vnd.docker.plugins.v1.2+json</c>, no Content-Type, one kept-alive
/// connection. Written by hand rather than with HttpClient because HttpClient cannot send an empty
/// Host header, and that header is one of the things a plugin must accept.
/// </summary>
public sealed class PluginSocketClient(string socketPath, TimeSpan? callTimeout = null) : IPluginTransport, IAsyncDisposable
{
    public const string DockerAccept = "application/vnd.docker.plugins.v1.2+json";

    /// <summary>The headers the engine sends (Content-Length is added per call).</summary>
    public static readonly IReadOnlyList<KeyValuePair<string, string>> EngineHeaders =
    [
        new("Host", ""),
        new("User-Agent", "Go-http-client/1.1"),
        new("Accept", DockerAccept),
    ];

    private readonly TimeSpan timeout = callTimeout ?? TimeSpan.FromSeconds(30);
    private Socket? socket;
    private NetworkStream? stream;
    private readonly byte[] buffer = new byte[64 * 1024];
    private int bufferStart;
    private int bufferEnd;

    public string SocketPath { get; } = socketPath;

    public string Target => SocketPath;

    /// <summary>Posts <paramref name="body"/> (null: an empty body) with the given headers, minus any
    /// Content-Length/Content-Type in them. Retries once on a connection the server closed.</summary>
    public async Task<PluginReply> PostAsync(string path, byte[]? body, IEnumerable<KeyValuePair<string, string>>? headers = null, CancellationToken cancel = default)
    {
        var request = BuildRequest(path, body ?? [], headers ?? EngineHeaders);
        using var timeoutSource = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        timeoutSource.CancelAfter(timeout);
        for (var attempt = 0; ; attempt++)
        {
            var reused = stream is not null;
            try
            {
                await EnsureConnectedAsync(timeoutSource.Token);
                await stream!.WriteAsync(request, timeoutSource.Token);
                return await ReadResponseAsync(timeoutSource.Token);
            }
            catch (Exception e) when (reused && attempt == 0 && e is IOException or SocketException or EndOfStreamException)
            {
                // The server may close an idle kept-alive connection; the engine's Go client
                // re-dials in that case, and so do we (once).
                Disconnect();
            }
            catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
            {
                Disconnect();
                throw new TimeoutException($"no answer to {path} from {SocketPath} within {timeout.TotalSeconds:0} s");
            }
            catch
            {
                Disconnect();
                throw;
            }
        }
    }

    private static byte[] BuildRequest(string path, byte[] body, IEnumerable<KeyValuePair<string, string>> headers)
    {
        var head = new StringBuilder();
        head.Append("POST ").Append(path).Append(" HTTP/1.1\r\n");
        var sawHost = false;
        foreach (var (name, value) in headers)
        {
            if (name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase) ||
                name.Equals("Content-Type", StringComparison.OrdinalIgnoreCase) ||
                name.Equals("Connection", StringComparison.OrdinalIgnoreCase) ||
                name.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase))
                continue;
            sawHost |= name.Equals("Host", StringComparison.OrdinalIgnoreCase);
            head.Append(name).Append(": ").Append(value).Append("\r\n");
        }
        if (!sawHost)
            head.Insert(head.ToString().IndexOf('\n') + 1, "Host: \r\n");
        head.Append("Content-Length: ").Append(body.Length.ToString(CultureInfo.InvariantCulture)).Append("\r\n\r\n");
        var headBytes = Encoding.ASCII.GetBytes(head.ToString());
        var request = new byte[headBytes.Length + body.Length];
        headBytes.CopyTo(request, 0);
        body.CopyTo(request, headBytes.Length);
        return request;
    }

    private async Task EnsureConnectedAsync(CancellationToken cancel)
    {
        if (stream is not null)
            return;
        var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await s.ConnectAsync(new UnixDomainSocketEndPoint(SocketPath), cancel);
        }
        catch
        {
            s.Dispose();
            throw;
        }
        socket = s;
        stream = new NetworkStream(s, ownsSocket: true);
        bufferStart = bufferEnd = 0;
    }

    private void Disconnect()
    {
        stream?.Dispose();
        stream = null;
        socket = null;
        bufferStart = bufferEnd = 0;
    }

    private async Task<PluginReply> ReadResponseAsync(CancellationToken cancel)
    {
        var statusLine = await ReadLineAsync(cancel);
        var parts = statusLine.Split(' ', 3);
        if (parts.Length < 2 || !parts[0].StartsWith("HTTP/1.", StringComparison.Ordinal) ||
            !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var status))
            throw new IOException($"malformed HTTP status line from plugin: \"{statusLine}\"");

        long? contentLength = null;
        var chunked = false;
        var close = false;
        var contentType = "";
        while (true)
        {
            var line = await ReadLineAsync(cancel);
            if (line.Length == 0)
                break;
            var colon = line.IndexOf(':');
            if (colon <= 0)
                throw new IOException($"malformed HTTP header line from plugin: \"{line}\"");
            var name = line[..colon].Trim();
            var value = line[(colon + 1)..].Trim();
            if (name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
                contentLength = long.Parse(value, CultureInfo.InvariantCulture);
            else if (name.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase))
                chunked = value.Contains("chunked", StringComparison.OrdinalIgnoreCase);
            else if (name.Equals("Connection", StringComparison.OrdinalIgnoreCase))
                close = value.Equals("close", StringComparison.OrdinalIgnoreCase);
            else if (name.Equals("Content-Type", StringComparison.OrdinalIgnoreCase))
                contentType = value;
        }

        byte[] body;
        if (chunked)
        {
            using var collected = new MemoryStream();
            while (true)
            {
                var sizeLine = await ReadLineAsync(cancel);
                var semicolon = sizeLine.IndexOf(';');
                var size = int.Parse(semicolon >= 0 ? sizeLine[..semicolon] : sizeLine, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                if (size == 0)
                {
                    while ((await ReadLineAsync(cancel)).Length != 0) { } // trailers
                    break;
                }
                collected.Write(await ReadExactAsync(size, cancel));
                await ReadLineAsync(cancel);
            }
            body = collected.ToArray();
        }
        else if (contentLength is { } length)
        {
            body = await ReadExactAsync(checked((int)length), cancel);
        }
        else
        {
            body = await ReadToEndAsync(cancel);
            close = true;
        }
        if (close)
            Disconnect();
        return new PluginReply(status, contentType, body);
    }

    private async Task<bool> FillAsync(CancellationToken cancel)
    {
        if (bufferStart > 0 && bufferStart == bufferEnd)
            bufferStart = bufferEnd = 0;
        if (bufferEnd == buffer.Length)
        {
            Buffer.BlockCopy(buffer, bufferStart, buffer, 0, bufferEnd - bufferStart);
            bufferEnd -= bufferStart;
            bufferStart = 0;
            if (bufferEnd == buffer.Length)
                throw new IOException("HTTP header line from plugin too long");
        }
        var read = await stream!.ReadAsync(buffer.AsMemory(bufferEnd), cancel);
        bufferEnd += read;
        return read > 0;
    }

    private async Task<string> ReadLineAsync(CancellationToken cancel)
    {
        while (true)
        {
            var span = buffer.AsSpan(bufferStart, bufferEnd - bufferStart);
            var newline = span.IndexOf((byte)'\n');
            if (newline >= 0)
            {
                var line = Encoding.ASCII.GetString(span[..newline]).TrimEnd('\r');
                bufferStart += newline + 1;
                return line;
            }
            if (!await FillAsync(cancel))
                throw new EndOfStreamException("plugin closed the connection before answering");
        }
    }

    private async Task<byte[]> ReadExactAsync(int count, CancellationToken cancel)
    {
        var result = new byte[count];
        var filled = 0;
        while (filled < count)
        {
            if (bufferStart == bufferEnd && !await FillAsync(cancel))
                throw new EndOfStreamException("plugin closed the connection in the middle of a reply body");
            var take = Math.Min(count - filled, bufferEnd - bufferStart);
            Buffer.BlockCopy(buffer, bufferStart, result, filled, take);
            bufferStart += take;
            filled += take;
        }
        return result;
    }

    private async Task<byte[]> ReadToEndAsync(CancellationToken cancel)
    {
        using var collected = new MemoryStream();
        while (true)
        {
            if (bufferStart < bufferEnd)
            {
                collected.Write(buffer, bufferStart, bufferEnd - bufferStart);
                bufferStart = bufferEnd;
            }
            if (!await FillAsync(cancel))
                break;
        }
        return collected.ToArray();
    }

    public ValueTask DisposeAsync()
    {
        Disconnect();
        return ValueTask.CompletedTask;
    }
}
