using System.Net;
using Skein.Driver.Plugin;
using Skein.Driver.Tests.Overlay.Control;
using Skein.Driver.Tests.TestSupport;

namespace Skein.Driver.Tests.Plugin;

/// <summary>Start-up checks of multi-host mode that need a namespace: the advertise address must be this host's.</summary>
public sealed class MultiHostStartupTests
{
    [SkippableFact]
    public async Task An_advertise_address_no_local_link_holds_fails_start_up_naming_it()
    {
        Skip.IfNot(PluginTestHost.IsSupported, PluginTestHost.SkipReason);
        using var ns = NetNs.Create();
        var id = Guid.NewGuid().ToString("N")[..10];
        var stateDir = Path.Combine(Path.GetTempPath(), $"skein-mhs-{id}");
        try
        {
            // No store is contacted before the check: nothing needs to listen on the store's port.
            var options = new ServeOptions
            {
                SocketPath = $"/tmp/skh-{id}.sock",
                StateDir = stateDir,
                NetNsPath = ns.Path,
                StoreUrl = "etcd://127.0.0.1:9/skein",
                AdvertiseAddress = IPAddress.Parse("198.51.100.77"),
                ReconcileInterval = TimeSpan.Zero,
            };
            await using var host = await PluginHost.StartAsync(options, new PluginHostSettings { ConfigureLogging = _ => { } });
            var ex = await Assert.ThrowsAnyAsync<Exception>(() => host.Ready.WaitAsync(TimeSpan.FromSeconds(30)));
            Assert.Contains("198.51.100.77", ex.Message);
            Assert.Contains("--advertise-addr", ex.Message);
            // GetCapabilities answers from a constant even when start-up failed: multi-host connectivity.
            using var client = PluginTestHost.CreateClient(options.SocketPath);
            var reply = await client.PostAsync("/NetworkDriver.GetCapabilities", new ByteArrayContent([]));
            Assert.Contains("\"ConnectivityScope\":\"global\"", await reply.Content.ReadAsStringAsync());
        }
        finally
        {
            if (Directory.Exists(stateDir))
                Directory.Delete(stateDir, recursive: true);
        }
    }

    /// <summary>
    /// A restart while the store is down must not take the plugin away from Docker (it could not even stop
    /// containers): skein serves from local state, and joins the cluster by itself once the store answers.
    /// </summary>
    [SkippableFact]
    public async Task With_the_store_unreachable_skein_serves_and_joins_the_cluster_when_it_returns()
    {
        Skip.IfNot(PluginTestHost.IsSupported, PluginTestHost.SkipReason);
        Skip.IfNot(LoopbackEtcd.Available, LoopbackEtcd.SkipReason);
        using var ns = NetNs.Create();
        ns.Exec("ip", "addr", "add", "198.51.100.7/32", "dev", "lo");
        ns.Exec("ip", "link", "set", "lo", "up");
        var id = Guid.NewGuid().ToString("N")[..10];
        var stateDir = Path.Combine(Path.GetTempPath(), $"skein-mhs-{id}");
        var port = LoopbackEtcd.FreePort();
        try
        {
            var options = new ServeOptions
            {
                SocketPath = $"/tmp/skh-{id}.sock",
                StateDir = stateDir,
                NetNsPath = ns.Path,
                StoreUrl = $"etcd://127.0.0.1:{port}/skein-{id}",
                AdvertiseAddress = IPAddress.Parse("198.51.100.7"),
                NodeId = "restart-" + id,
                ReconcileInterval = TimeSpan.Zero,
            };
            await using var host = await PluginHost.StartAsync(options, new PluginHostSettings { ConfigureLogging = _ => { } });
            var runtime = await host.Ready.WaitAsync(TimeSpan.FromSeconds(60));
            Assert.Null(runtime.Membership);
            using (var client = PluginTestHost.CreateClient(options.SocketPath))
            {
                var activate = await client.PostAsync("/Plugin.Activate", new ByteArrayContent([]));
                Assert.True(activate.IsSuccessStatusCode, await activate.Content.ReadAsStringAsync());
            }

            await using var etcd = await LoopbackEtcd.StartAsync(port);
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
            while (runtime.Membership is null && DateTime.UtcNow < deadline)
                await Task.Delay(250);
            Assert.NotNull(runtime.Membership);
            await using var store = await etcd.OpenStoreAsync($"skein-{id}");
            Assert.NotNull(await store.GetAsync($"nodes/restart-{id}", CancellationToken.None));
        }
        finally
        {
            if (Directory.Exists(stateDir))
                Directory.Delete(stateDir, recursive: true);
        }
    }
}
