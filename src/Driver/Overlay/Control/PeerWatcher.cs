using System.Net;
using System.Net.NetworkInformation;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Skein.Driver.Overlay.Dataplane;
using Skein.Ipam.Store;

namespace Skein.Driver.Overlay.Control;

/// <summary>
/// One logical network's view of the other hosts, from a prefix watch on peers/&lt;net&gt;/ (cluster-store §4.10).
/// Level-triggered: every snapshot, change, hold-down expiry or resync recomputes the whole remote view and hands
/// it to <c>apply</c>, which diffs it against the kernel. Store trouble never empties the view: the watch backs off
/// and retries while the kernel keeps what it has, so running containers keep their connectivity.
/// Hold-down: when a node's keys vanish together with its nodes/&lt;node&gt; key (its liveness ended, not an orderly
/// leave), its entries stay for <see cref="HoldDown"/> and go only if they are not re-published by then.
/// </summary>
public sealed class PeerWatcher : IAsyncDisposable
{
    private sealed record RemoteNode(IPAddress Vtep, IReadOnlyList<RemoteEndpoint> Endpoints);

    private readonly IClusterStore _store;
    private readonly ClusterKeys _keys;
    private readonly string _net;
    private readonly string _self;
    private readonly Action<PeerView> _apply;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, KvEntry> _entries = new(StringComparer.Ordinal);
    private readonly Dictionary<string, RemoteNode> _live = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (RemoteNode Node, DateTimeOffset Until)> _held = new(StringComparer.Ordinal);
    /// <summary>
    /// Endpoints that went from a node still listed, with when: a lost liveness removes all of a node's keys at once,
    /// but the watch may deliver them one at a time, so the endpoints can vanish a moment before the node does.
    /// </summary>
    private readonly Dictionary<string, List<(RemoteEndpoint Endpoint, DateTimeOffset Gone)>> _recentlyGone = new(StringComparer.Ordinal);
    private static readonly TimeSpan SameEventWindow = TimeSpan.FromSeconds(2);
    private readonly Channel<bool> _wake = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly CancellationTokenSource _stop = new();
    private readonly HashSet<string> _reportedBadKeys = new(StringComparer.Ordinal);
    private Task _watching = Task.CompletedTask;
    private Task _applying = Task.CompletedTask;
    private bool _synced;
    private long _applied;

    public PeerWatcher(IClusterStore store, ClusterKeys keys, string net, string self, Action<PeerView> apply, TimeProvider time, ILogger log)
    {
        _store = store;
        _keys = keys;
        _net = net;
        _self = self;
        _apply = apply;
        _time = time;
        _log = log;
    }

    public string Network => _net;
    public TimeSpan HoldDown { get; init; } = TimeSpan.FromSeconds(30);
    public TimeSpan MaxRetryDelay { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>The view last handed to the kernel; empty until the first snapshot.</summary>
    public PeerView Current { get; private set; } = PeerView.Empty;
    /// <summary>How many times a view was applied (tests wait on it instead of sleeping).</summary>
    public long Applied => Interlocked.Read(ref _applied);
    public bool IsRunning => !_watching.IsCompleted && !_applying.IsCompleted;
    public IReadOnlyCollection<string> HeldNodes
    {
        get
        {
            lock (_gate)
                return _held.Keys.ToList();
        }
    }

    public void Start()
    {
        _watching = Task.Run(() => WatchAsync(_stop.Token));
        _applying = Task.Run(() => ApplyLoopAsync(_stop.Token));
    }

    /// <summary>Drift repair: recompute and re-apply even when nothing changed in the store.</summary>
    public void Resync() => _wake.Writer.TryWrite(true);

    private async Task WatchAsync(CancellationToken ct)
    {
        var prefix = _keys.PeersOf(_net);
        var delay = TimeSpan.FromMilliseconds(100);
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await foreach (var update in _store.WatchPrefixAsync(prefix, ct).ConfigureAwait(false))
                {
                    lock (_gate)
                    {
                        switch (update)
                        {
                            case WatchUpdate.Snapshot snapshot:
                                _entries.Clear();
                                foreach (var (key, entry) in snapshot.Entries)
                                    _entries[key] = entry;
                                _synced = true;
                                break;
                            case WatchUpdate.Upsert upsert:
                                _entries[upsert.Entry.Key] = upsert.Entry;
                                break;
                            case WatchUpdate.Removed removed:
                                _entries.Remove(removed.Key);
                                break;
                        }
                    }
                    delay = TimeSpan.FromMilliseconds(100);
                    _wake.Writer.TryWrite(true);
                }
                // The stream ends quietly only when the store is disposed: nothing more will come.
                return;
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                _log.LogWarning("watch of {Prefix} failed ({Error}); keeping the current peers and retrying in {Delay} ms",
                    prefix, ex.Message, (int)delay.TotalMilliseconds);
            }
            try
            {
                await Task.Delay(delay, _time, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, MaxRetryDelay.Ticks));
        }
    }

    private async Task ApplyLoopAsync(CancellationToken ct)
    {
        try
        {
            while (await _wake.Reader.WaitToReadAsync(ct).ConfigureAwait(false))
            {
                _wake.Reader.TryRead(out _);
                bool synced;
                lock (_gate)
                    synced = _synced;
                if (!synced)
                    continue;
                try
                {
                    var (view, nextExpiry) = await ComputeAsync(ct).ConfigureAwait(false);
                    _apply(view);
                    Current = view;
                    Interlocked.Increment(ref _applied);
                    if (nextExpiry is { } expiry)
                        _ = WakeAtAsync(expiry, ct);
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                    return;
                }
                catch (Exception ex)
                {
                    // The next change or the reconciler's resync tries again.
                    _log.LogError("programming the peers of cluster network {Net} failed: {Error}", _net, ex.Message);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task WakeAtAsync(DateTimeOffset when, CancellationToken ct)
    {
        try
        {
            var wait = when - _time.GetUtcNow();
            if (wait > TimeSpan.Zero)
                await Task.Delay(wait, _time, ct).ConfigureAwait(false);
            _wake.Writer.TryWrite(true);
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>The remote view: live nodes from the store, plus nodes in hold-down; and when the next hold ends.</summary>
    private async Task<(PeerView View, DateTimeOffset? NextExpiry)> ComputeAsync(CancellationToken ct)
    {
        Dictionary<string, RemoteNode> current;
        lock (_gate)
            current = Parse();

        // Nodes that were live and are gone now: an orderly leave (their nodes/ key is still there) goes at once,
        // a lost liveness (nodes/ key gone too, or the store cannot say) is held down.
        var vanished = _live.Keys.Where(n => !current.ContainsKey(n)).ToList();
        var now = _time.GetUtcNow();
        foreach (var (node, remote) in current)
        {
            if (!_live.TryGetValue(node, out var before))
                continue;
            var gone = before.Endpoints.Where(e => !remote.Endpoints.Contains(e)).ToList();
            if (gone.Count == 0)
                continue;
            if (!_recentlyGone.TryGetValue(node, out var list))
                _recentlyGone[node] = list = [];
            list.AddRange(gone.Select(e => (e, now)));
        }
        foreach (var (node, list) in _recentlyGone.ToList())
        {
            list.RemoveAll(g => now - g.Gone > SameEventWindow);
            if (list.Count == 0)
                _recentlyGone.Remove(node);
        }
        foreach (var node in vanished)
        {
            bool present;
            try
            {
                present = await _store.GetAsync(_keys.Node(node), ct).ConfigureAwait(false) is not null;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                present = false;
            }
            if (present)
            {
                _log.LogInformation("cluster network {Net}: node {Node} left", _net, node);
                continue;
            }
            var last = _live[node];
            if (_recentlyGone.Remove(node, out var justGone))
                last = last with { Endpoints = [.. last.Endpoints, .. justGone.Select(g => g.Endpoint).Where(e => !last.Endpoints.Contains(e))] };
            lock (_gate)
                _held[node] = (last, now + HoldDown);
            _log.LogInformation("cluster network {Net}: node {Node} vanished with its presence; keeping its {Count} endpoint(s) for {Seconds:0} s",
                _net, node, last.Endpoints.Count, HoldDown.TotalSeconds);
        }
        _live.Clear();
        foreach (var (node, remote) in current)
            _live[node] = remote;

        DateTimeOffset? next = null;
        var nodes = new Dictionary<string, RemoteNode>(current, StringComparer.Ordinal);
        lock (_gate)
        {
            foreach (var (node, (remote, until)) in _held.ToList())
            {
                if (current.TryGetValue(node, out var back))
                {
                    // Back: its node key comes before its endpoint keys, so keep what it had until they follow
                    // (briefly: what it no longer has goes after the same short window).
                    var leftovers = remote.Endpoints.Where(e => !back.Endpoints.Any(l => l.Mac.Equals(e.Mac))).ToList();
                    var graceEnd = until < now + SameEventWindow ? until : now + SameEventWindow;
                    if (leftovers.Count == 0 || graceEnd <= now)
                    {
                        _held.Remove(node);
                        _log.LogInformation("cluster network {Net}: node {Node} is back", _net, node);
                    }
                    else
                    {
                        _held[node] = (remote with { Endpoints = leftovers }, graceEnd);
                        nodes[node] = back with { Endpoints = [.. back.Endpoints, .. leftovers.Select(e => e with { Vtep = back.Vtep })] };
                        next = next is { } n && n <= graceEnd ? n : graceEnd;
                    }
                }
                else if (until <= now)
                {
                    _held.Remove(node);
                    _log.LogInformation("cluster network {Net}: node {Node} did not come back within the hold-down; dropping its peers", _net, node);
                }
                else
                {
                    nodes[node] = remote;
                    next = next is { } n && n <= until ? n : until;
                }
            }
        }
        var vteps = nodes.Values.Select(n => n.Vtep).Distinct().ToList();
        var endpoints = nodes.Values.SelectMany(n => n.Endpoints).ToList();
        return (new PeerView(vteps, endpoints), next);
    }

    /// <summary>Remote nodes with a valid node key and their valid endpoints; bad records are logged once and skipped.</summary>
    private Dictionary<string, RemoteNode> Parse()
    {
        var vteps = new Dictionary<string, IPAddress>(StringComparer.Ordinal);
        var endpointEntries = new List<(string Node, KvEntry Entry)>();
        foreach (var (key, entry) in _entries)
        {
            if (_keys.ParsePeerKey(_net, key) is not var (node, eid) || node == _self)
                continue;
            if (eid is not null)
            {
                endpointEntries.Add((node, entry));
                continue;
            }
            try
            {
                var record = ClusterJsonContext.Decode(key, entry.Value, ClusterJsonContext.Default.PeerNodeRecord);
                if (!IPAddress.TryParse(record.Vtep, out var vtep))
                    throw new InvalidDataException($"store key '{key}' names VTEP '{record.Vtep}', which is not an IP address");
                vteps[node] = vtep;
            }
            catch (InvalidDataException ex)
            {
                ReportBad(key, ex.Message);
            }
        }
        var result = vteps.ToDictionary(v => v.Key, v => new List<RemoteEndpoint>(), StringComparer.Ordinal);
        foreach (var (node, entry) in endpointEntries)
        {
            if (!result.TryGetValue(node, out var list))
                continue; // published before its node key, or after it went: no VTEP to send to
            try
            {
                var record = ClusterJsonContext.Decode(entry.Key, entry.Value, ClusterJsonContext.Default.PeerEndpointRecord);
                if (!PhysicalAddress.TryParse(record.Mac.Replace(':', '-').ToUpperInvariant(), out var mac) || mac.GetAddressBytes().Length != 6)
                    throw new InvalidDataException($"store key '{entry.Key}' holds MAC '{record.Mac}', which is not a MAC address");
                list.Add(new RemoteEndpoint(mac, ParseAddress(entry.Key, record.Ip4), ParseAddress(entry.Key, record.Ip6), vteps[node]));
            }
            catch (InvalidDataException ex)
            {
                ReportBad(entry.Key, ex.Message);
            }
        }
        return result.ToDictionary(r => r.Key, r => new RemoteNode(vteps[r.Key], r.Value), StringComparer.Ordinal);
    }

    private static IPAddress? ParseAddress(string key, string? text)
    {
        if (string.IsNullOrEmpty(text))
            return null;
        var bare = text.Split('/')[0];
        return IPAddress.TryParse(bare, out var address)
            ? address
            : throw new InvalidDataException($"store key '{key}' holds address '{text}', which is not an IP address");
    }

    private void ReportBad(string key, string message)
    {
        if (_reportedBadKeys.Add(key))
            _log.LogWarning("cluster network {Net}: ignoring {Key}: {Error}", _net, key, message);
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _wake.Writer.TryComplete();
        try
        {
            await Task.WhenAll(_watching, _applying).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        _stop.Dispose();
    }
}
