using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Skein.Ipam.Store;
using Skein.Ipam.Store.Embedded;
using Skein.Ipam.Store.Etcd;

namespace Skein.Benchmarks;

/// <summary>
/// Issue 4's figures, against a real etcd started here on loopback (and the embedded store as the anchor, same run):
/// conditional writes per second from 1 and from 8 concurrent clients, and the latency from a write to a watcher
/// seeing it. `scripted-store [--seconds N]`; needs the etcd binary (Debian's etcd-server).
/// </summary>
internal static class StoreBench
{
    public static async Task<int> RunAsync(string[] args)
    {
        var seconds = double.Parse(ScriptedEntry.Option(args, "--seconds", "5"), System.Globalization.CultureInfo.InvariantCulture);
        var duration = TimeSpan.FromSeconds(seconds);
        var dataDir = Directory.CreateTempSubdirectory("skein-bench-etcd-").FullName;
        var embeddedDir = Directory.CreateTempSubdirectory("skein-bench-embedded-").FullName;
        var (clientPort, peerPort) = (FreePort(), FreePort());
        var psi = new ProcessStartInfo("etcd") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[]
                 {
                     "--name", "bench", "--data-dir", dataDir,
                     "--listen-client-urls", $"http://127.0.0.1:{clientPort}", "--advertise-client-urls", $"http://127.0.0.1:{clientPort}",
                     "--listen-peer-urls", $"http://127.0.0.1:{peerPort}", "--initial-advertise-peer-urls", $"http://127.0.0.1:{peerPort}",
                     "--initial-cluster", $"bench=http://127.0.0.1:{peerPort}", "--log-level", "error",
                 })
            psi.ArgumentList.Add(a);
        using var etcd = Process.Start(psi) ?? throw new InvalidOperationException("could not start etcd");
        etcd.BeginErrorReadLine();
        etcd.BeginOutputReadLine();
        try
        {
            var baseUri = new Uri($"http://127.0.0.1:{clientPort}/");
            await WaitHealthyAsync(baseUri);
            Console.WriteLine($"store benchmark: etcd at {baseUri}, {Environment.ProcessorCount} cores, {seconds} s per figure");
            var etcdRates = new Dictionary<int, double>();
            foreach (var clients in new[] { 1, 8 })
                etcdRates[clients] = await CasWritesAsync(clients, duration, () => new EtcdStore(new EtcdStoreOptions { BaseAddress = baseUri, RootPrefix = "bench" }), disposeEach: true);
            var etcdWatch = await WatchLatencyAsync(new EtcdStore(new EtcdStoreOptions { BaseAddress = baseUri, RootPrefix = "benchw" }), dispose: true);

            var embedded = await EmbeddedStore.OpenAsync(embeddedDir);
            var embeddedRates = new Dictionary<int, double>();
            foreach (var clients in new[] { 1, 8 })
                embeddedRates[clients] = await CasWritesAsync(clients, duration, () => embedded, disposeEach: false);
            var embeddedWatch = await WatchLatencyAsync(embedded, dispose: false);
            await embedded.DisposeAsync();

            foreach (var clients in new[] { 1, 8 })
                Console.WriteLine($"conditional writes/s, {clients} client(s): etcd {etcdRates[clients]:F0}, embedded {embeddedRates[clients]:F0}");
            Console.WriteLine($"etcd 8 clients vs 1: {etcdRates[8] / etcdRates[1]:F2}x");
            Console.WriteLine($"write -> watcher sees it: etcd p50 {etcdWatch.P50:F2} ms p99 {etcdWatch.P99:F2} ms; embedded p50 {embeddedWatch.P50:F2} ms p99 {embeddedWatch.P99:F2} ms");
            return 0;
        }
        finally
        {
            etcd.Kill(entireProcessTree: true);
            etcd.WaitForExit();
            Directory.Delete(dataDir, recursive: true);
            Directory.Delete(embeddedDir, recursive: true);
        }
    }

    private static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    private static async Task WaitHealthyAsync(Uri baseUri)
    {
        using var http = new HttpClient();
        for (var i = 0; i < 200; i++)
        {
            try
            {
                if ((await http.GetStringAsync(new Uri(baseUri, "health"))).Contains("true"))
                    return;
            }
            catch (HttpRequestException)
            {
            }
            await Task.Delay(50);
        }
        throw new InvalidOperationException("etcd did not become healthy within 10 s");
    }

    /// <summary>Each client CAS-updates its own key in a loop (no contention): the store's conditional write rate.</summary>
    private static async Task<double> CasWritesAsync(int clients, TimeSpan duration, Func<IClusterStore> open, bool disposeEach)
    {
        var stores = Enumerable.Range(0, clients).Select(_ => open()).ToList();
        await Task.WhenAll(stores.Select((s, i) => s.PutAsync($"w/{i}", Encoding.UTF8.GetBytes("0"), Precondition.None, false, default)));
        long total = 0;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(stores.Select((store, i) => Task.Run(async () =>
        {
            var version = (await store.GetAsync($"w/{i}", default))!.Version;
            long n = 0;
            while (clock.Elapsed < duration)
            {
                var result = await store.PutAsync($"w/{i}", Encoding.UTF8.GetBytes(n.ToString()), Precondition.VersionIs(version), false, default);
                if (result.Outcome != WriteOutcome.Applied)
                    throw new InvalidOperationException($"unexpected {result.Outcome} on an uncontended key");
                version = result.NewVersion;
                n++;
            }
            Interlocked.Add(ref total, n);
        })));
        var rate = total / clock.Elapsed.TotalSeconds;
        if (disposeEach)
            foreach (var s in stores)
                await s.DisposeAsync();
        return rate;
    }

    /// <summary>Time from starting a write until the prefix watch yields it (includes the write's own round trip).</summary>
    private static async Task<(double P50, double P99)> WatchLatencyAsync(IClusterStore store, bool dispose)
    {
        using var cts = new CancellationTokenSource();
        var watch = store.WatchPrefixAsync("lat/", cts.Token).GetAsyncEnumerator(cts.Token);
        await watch.MoveNextAsync(); // the initial snapshot
        var samples = new List<double>();
        for (var i = 0; i < 300; i++)
        {
            var expected = i.ToString();
            var clock = Stopwatch.StartNew();
            await store.PutAsync("lat/k", Encoding.UTF8.GetBytes(expected), Precondition.None, false, default);
            while (await watch.MoveNextAsync())
                if (watch.Current is WatchUpdate.Upsert u && Encoding.UTF8.GetString(u.Entry.Value.Span) == expected)
                    break;
            samples.Add(clock.Elapsed.TotalMilliseconds);
        }
        cts.Cancel();
        try { await watch.DisposeAsync(); } catch (OperationCanceledException) { }
        if (dispose)
            await store.DisposeAsync();
        samples.Sort();
        return (ScriptedEntry.Percentile(samples, 50), ScriptedEntry.Percentile(samples, 99));
    }
}
