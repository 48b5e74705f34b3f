using System.Net;
using Skein.Driver.Plugin;
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
}
