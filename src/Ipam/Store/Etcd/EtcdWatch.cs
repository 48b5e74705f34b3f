using System.Net;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;

namespace Skein.Ipam.Store.Etcd;

/// <summary>Prefix watches: a range snapshot, then a /v3/watch stream from the next revision (cluster-store §2.6, §4.11).</summary>
public sealed partial class EtcdStore
{
    public IAsyncEnumerable<WatchUpdate> WatchPrefixAsync(string prefix, CancellationToken ct) =>
        StoreWatch.SurfaceCancellation(token => WatchCoreAsync(prefix, token), ct);

    private async IAsyncEnumerable<WatchUpdate> WatchCoreAsync(string prefix, [EnumeratorCancellation] CancellationToken ct)
    {
        StoreRequestValidator.ValidatePrefix(prefix, Limits);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, _disposing.Token);
        var token = linked.Token;
        long lastRevision = 0; // highest revision delivered; 0 = a snapshot is needed
        var failures = 0;

        while (!token.IsCancellationRequested)
        {
            if (lastRevision == 0)
            {
                (List<KvEntry> Entries, long Revision)? snapshot = null;
                try
                {
                    snapshot = await RangePrefixAsync(prefix, keysOnly: false, token).ConfigureAwait(false);
                }
                catch (StoreUnavailableException)
                {
                }
                catch (Exception e) when (token.IsCancellationRequested && e is OperationCanceledException or ObjectDisposedException)
                {
                    yield break;
                }
                if (snapshot is null)
                {
                    if (!await DelayQuietlyAsync(StoreHttp.Backoff(TimeSpan.FromMilliseconds(250), ++failures, _options.WatchRetryMaxDelay), token).ConfigureAwait(false))
                        yield break;
                    continue;
                }
                lastRevision = snapshot.Value.Revision;
                yield return new WatchUpdate.Snapshot(snapshot.Value.Entries.ToDictionary(e => e.Key, StringComparer.Ordinal), lastRevision);
            }

            var stream = new WatchStream(this, prefix, lastRevision + 1, token);
            await using (stream.ConfigureAwait(false))
            {
                while (true)
                {
                    var batch = await stream.NextAsync().ConfigureAwait(false);
                    if (batch is null)
                        break;
                    failures = 0;
                    foreach (var update in batch)
                        yield return update;
                    lastRevision = Math.Max(lastRevision, stream.LastRevision);
                }
            }
            if (stream.Compacted)
            {
                lastRevision = 0; // history we need is gone: back to a fresh snapshot (§2.6)
                continue;
            }
            if (stream.Fatal is { } fatal)
                throw fatal;
            if (stream.Recycled)
                continue;
            if (!await DelayQuietlyAsync(StoreHttp.Backoff(TimeSpan.FromMilliseconds(250), ++failures, _options.WatchRetryMaxDelay), token).ConfigureAwait(false))
                yield break;
        }
    }

    private async Task<bool> DelayQuietlyAsync(TimeSpan delay, CancellationToken token)
    {
        try
        {
            await Task.Delay(delay, _options.Time, token).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>One HTTP watch stream; ends on error, cancellation, compaction or recycling.</summary>
    private sealed class WatchStream(EtcdStore store, string prefix, long startRevision, CancellationToken outer) : IAsyncDisposable
    {
        private readonly CancellationTokenSource _life = CreateLife(store, outer);
        private HttpResponseMessage? _response;
        private StreamReader? _reader;

        public long LastRevision { get; private set; } = startRevision - 1;
        public bool Compacted { get; private set; }
        public bool Recycled { get; private set; }
        /// <summary>A failure retrying cannot fix (permission, bad request).</summary>
        public Exception? Fatal { get; private set; }

        private static CancellationTokenSource CreateLife(EtcdStore store, CancellationToken outer)
        {
            var life = CancellationTokenSource.CreateLinkedTokenSource(outer);
            life.CancelAfter(store._options.WatchRecycleAfter);
            return life;
        }

        /// <summary>The next batch of updates, or null when the stream is over.</summary>
        public async Task<List<WatchUpdate>?> NextAsync()
        {
            try
            {
                if (_reader is null && !await OpenAsync().ConfigureAwait(false))
                    return null;
                while (true)
                {
                    var line = await _reader!.ReadLineAsync(_life.Token).ConfigureAwait(false);
                    if (line is null)
                        return null;
                    if (line.Length == 0)
                        continue;
                    var parsed = JsonSerializer.Deserialize(line, EtcdJsonContext.Default.EtcdWatchLine);
                    if (parsed?.Error is { } error)
                    {
                        if (error.HttpCode is 401 or 403 || error.GrpcCode is 7 or 16)
                            Fatal = new StoreAuthException($"{store.Describe}: watch {prefix}: {error.Message}");
                        return null;
                    }
                    if (parsed?.Result is not { } result)
                        continue;
                    if (result.Canceled)
                    {
                        if (result.CompactRevision > 0)
                            Compacted = true;
                        else
                            Fatal = new StoreAuthException($"{store.Describe}: watch {prefix} canceled by the server: {result.CancelReason ?? "no reason given"}");
                        return null;
                    }
                    if (result.Events is not { Count: > 0 } events)
                        continue; // "created" confirmation or progress notification
                    var updates = new List<WatchUpdate>(events.Count);
                    foreach (var e in events)
                    {
                        if (e.Kv is not { } kv || store.Relative(kv.Key) is not { } rel)
                            continue;
                        updates.Add(e.Type == "DELETE"
                            ? new WatchUpdate.Removed(rel, kv.ModRevision)
                            : new WatchUpdate.Upsert(store.ToEntry(kv, rel)));
                        LastRevision = Math.Max(LastRevision, kv.ModRevision);
                    }
                    return updates;
                }
            }
            catch (OperationCanceledException) when (!outer.IsCancellationRequested && _life.IsCancellationRequested)
            {
                Recycled = true; // periodic re-creation (§4.11 step 5)
                return null;
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException && outer.IsCancellationRequested)
            {
                return null;
            }
            catch (Exception e) when (e is HttpRequestException or IOException or JsonException or StoreUnavailableException)
            {
                return null; // reconnect from LastRevision + 1
            }
        }

        private async Task<bool> OpenAsync()
        {
            var start = store.FullKey(prefix);
            var body = JsonSerializer.SerializeToUtf8Bytes(new EtcdWatchRequest
            {
                CreateRequest = new EtcdWatchCreate { Key = start, RangeEnd = PrefixEnd(start), StartRevision = startRevision },
            }, EtcdJsonContext.Default.EtcdWatchRequest);
            var token = await store.AuthTokenAsync(forceRefresh: false, _life.Token).ConfigureAwait(false);
            using var request = JsonRequest("v3/watch", body);
            if (token is not null)
                request.Headers.TryAddWithoutValidation("Authorization", token);
            _response = await store._watchClient.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, _life.Token).ConfigureAwait(false);
            if (_response.StatusCode != HttpStatusCode.OK)
            {
                var failed = new EtcdResponse(_response.StatusCode, await _response.Content.ReadAsByteArrayAsync(_life.Token).ConfigureAwait(false));
                if (_response.StatusCode == HttpStatusCode.Unauthorized && store._options.User is not null)
                {
                    await store.AuthTokenAsync(forceRefresh: true, _life.Token).ConfigureAwait(false);
                    return false;
                }
                if (StoreHttp.IsRetryableStatus(_response.StatusCode))
                    return false;
                try
                {
                    store.EnsureSuccess(failed, $"watch {prefix}");
                }
                catch (Exception e) when (e is StoreAuthException or StoreRejectedException)
                {
                    Fatal = e;
                }
                return false;
            }
            _reader = new StreamReader(await _response.Content.ReadAsStreamAsync(_life.Token).ConfigureAwait(false), Encoding.UTF8);
            return true;
        }

        public ValueTask DisposeAsync()
        {
            _reader?.Dispose();
            _response?.Dispose();
            _life.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
