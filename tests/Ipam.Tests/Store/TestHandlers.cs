using System.Net;
using System.Text;

namespace Skein.Ipam.Tests.Store;

/// <summary>
/// Sits between a store client and the real server: records request bodies, can answer chosen
/// paths itself, can cut every open response stream and hold new requests (a network blip).
/// </summary>
public sealed class InterposingHandler() : DelegatingHandler(new SocketsHttpHandler())
{
    private readonly List<(string Path, string Body)> _requests = [];
    private CancellationTokenSource _cut = new();
    private TaskCompletionSource _open = CompletedGate();

    /// <summary>Answers requests whose path matches with this status instead of forwarding them.</summary>
    public Func<string, HttpStatusCode?>? Override { get; set; }

    public IReadOnlyList<(string Path, string Body)> Requests
    {
        get { lock (_requests) return _requests.ToList(); }
    }

    private static TaskCompletionSource CompletedGate()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        gate.SetResult();
        return gate;
    }

    /// <summary>Breaks every open response stream and holds new requests until <see cref="Resume"/>.</summary>
    public void Pause()
    {
        lock (_requests)
        {
            _open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _cut.Cancel();
            _cut = new CancellationTokenSource();
        }
    }

    public void Resume()
    {
        lock (_requests)
            _open.TrySetResult();
    }

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken ct)
    {
        var body = request.Content is null ? "" : await request.Content.ReadAsStringAsync(ct);
        Task gate;
        CancellationToken cut;
        lock (_requests)
        {
            _requests.Add((request.RequestUri!.AbsolutePath, body));
            gate = _open.Task;
            cut = _cut.Token;
        }
        await gate.WaitAsync(ct);
        if (Override?.Invoke(request.RequestUri!.AbsolutePath) is { } status)
            return new HttpResponseMessage(status) { Content = new StringContent("{\"error\":\"injected\",\"message\":\"injected\",\"code\":14}", Encoding.UTF8, "application/json") };
        var response = await base.SendAsync(request, ct);
        var inner = await response.Content.ReadAsStreamAsync(ct);
        var replaced = new StreamContent(new CuttableStream(inner, cut));
        foreach (var header in response.Content.Headers)
            replaced.Headers.TryAddWithoutValidation(header.Key, header.Value);
        response.Content = replaced;
        return response;
    }

    private sealed class CuttableStream(Stream inner, CancellationToken cut) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer, offset, count).GetAwaiter().GetResult();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken ct) => ReadAsync(buffer.AsMemory(offset, count), ct).AsTask();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default)
        {
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, cut);
            try
            {
                return await inner.ReadAsync(buffer, linked.Token);
            }
            catch (OperationCanceledException) when (cut.IsCancellationRequested && !ct.IsCancellationRequested)
            {
                throw new IOException("connection cut by the test");
            }
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
                inner.Dispose();
            base.Dispose(disposing);
        }
    }
}
