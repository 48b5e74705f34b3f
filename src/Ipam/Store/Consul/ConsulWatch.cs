using System.Net;
using System.Runtime.CompilerServices;

namespace Skein.Ipam.Store.Consul;

/// <summary>Prefix watches as a blocking-query loop (cluster-store §1.10, §4.11; decisions #19).</summary>
public sealed partial class ConsulStore
{
    public IAsyncEnumerable<WatchUpdate> WatchPrefixAsync(string prefix, CancellationToken ct) =>
        StoreWatch.SurfaceCancellation(token => WatchCoreAsync(prefix, token), ct);

    private async IAsyncEnumerable<WatchUpdate> WatchCoreAsync(string prefix, [EnumeratorCancellation] CancellationToken ct)
    {
        StoreRequestValidator.ValidatePrefix(prefix, Limits);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, _disposing.Token);
        var token = linked.Token;
        var time = _options.Time;
        ulong index = 0;
        Dictionary<string, KvEntry>? view = null;
        long? lastCallStart = null;
        var failures = 0;

        while (!token.IsCancellationRequested)
        {
            // Coalesce: at most one call per WatchMinInterval, so a burst of writes becomes one diff
            // and a churning key cannot turn the loop hot (§1.10 rule 3).
            if (lastCallStart is { } started && time.GetElapsedTime(started) is var since && since < _options.WatchMinInterval)
            {
                if (!await DelayQuietlyAsync(_options.WatchMinInterval - since, token).ConfigureAwait(false))
                    yield break;
            }
            lastCallStart = time.GetTimestamp();

            var fetched = await FetchPrefixAsync(prefix, index, token).ConfigureAwait(false);
            if (fetched is null)
            {
                if (token.IsCancellationRequested)
                    yield break;
                // Transport error or 5xx: back off with jitter, then start over from index 0 (a new snapshot).
                failures++;
                index = 0;
                view = null;
                if (!await DelayQuietlyAsync(StoreHttp.Backoff(TimeSpan.FromMilliseconds(250), failures, _options.WatchRetryMaxDelay), token).ConfigureAwait(false))
                    yield break;
                continue;
            }
            failures = 0;
            var (current, newIndex) = fetched.Value;

            if (view is null || newIndex < index)
            {
                // First answer, or the index went backwards (§1.10 rule 1): the body is the full state.
                view = current;
                yield return new WatchUpdate.Snapshot(current, (long)newIndex);
            }
            else if (newIndex != index)
            {
                // Deletions are implicit (§1.10 rule 5): diff by key and ModifyIndex.
                foreach (var key in view.Keys.Where(k => !current.ContainsKey(k)).Order(StringComparer.Ordinal).ToList())
                    yield return new WatchUpdate.Removed(key, (long)newIndex);
                foreach (var entry in current.Values
                             .Where(e => !view.TryGetValue(e.Key, out var old) || old.Version != e.Version)
                             .OrderBy(e => e.Version).ThenBy(e => e.Key, StringComparer.Ordinal).ToList())
                    yield return new WatchUpdate.Upsert(entry);
                view = current;
            }
            index = Math.Max(newIndex, 1); // never block on index 0 (§1.10 rule 2)
        }
    }

    /// <summary>One recursive read, blocking when index &gt; 0; null on a failure worth retrying.</summary>
    private async Task<(Dictionary<string, KvEntry> Entries, ulong Index)?> FetchPrefixAsync(string prefix, ulong index, CancellationToken token)
    {
        var full = FullKey(prefix);
        var wait = _options.WatchWait;
        var query = index == 0 ? "?recurse" : $"?recurse&index={index}&wait={(long)wait.TotalMilliseconds}ms";
        // The server may hold for wait + wait/16 of jitter (§1.10 rule 4).
        var deadline = index == 0 ? _options.Http.RequestTimeout : wait + wait / 16 + TimeSpan.FromSeconds(15);
        try
        {
            var response = await SendAsync($"watch {full}", () => new HttpRequestMessage(HttpMethod.Get, KvPath(full) + query),
                idempotent: false, token, _watchClient, deadline).ConfigureAwait(false);
            var entries = new Dictionary<string, KvEntry>(StringComparer.Ordinal);
            if (IsMissingKey(response, $"watch {full}"))
                return (entries, response.Index);
            EnsureStatus(response, $"watch {full}", HttpStatusCode.OK);
            EnsureUnfiltered(response, full);
            foreach (var pair in Deserialize(response, ConsulJsonContext.Default.ListConsulKvPair, $"watch {full}"))
            {
                if (Relative(pair.Key) is { } rel && StoreRequestValidator.IsUnder(rel, prefix))
                    entries[rel] = ToEntry(pair, rel);
            }
            return (entries, response.Index);
        }
        catch (StoreUnavailableException)
        {
            return null;
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            return null;
        }
        catch (ObjectDisposedException) when (token.IsCancellationRequested || Volatile.Read(ref _disposed) != 0)
        {
            return null;
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
}
