using System.Text;
using Microsoft.Extensions.Logging;
using Skein.Driver.Firewall;
using Skein.Driver.Network;
using Skein.Driver.Network.Kernel;
using Skein.Driver.Network.State;
using Skein.Ipam;
using Skein.Ipam.Allocation;
using Skein.Ipam.Host;
using Skein.Ipam.Store;
using Skein.Ipam.Store.Embedded;

namespace Skein.Driver.Plugin;

/// <summary>
/// Everything a serving skein holds, built once: the store(s), the IPAM, the kernel handle, the firewall and the
/// bridge driver. The embedded store locks its directory, so one instance is opened per process and shared: the
/// IPAM under skein/v1/..., the driver's host-local records under local/driver/... When the cluster store is
/// Consul or etcd, the host-local records go to an embedded store in &lt;state-dir&gt;/local instead.
/// </summary>
public sealed class SkeinRuntime : IAsyncDisposable
{
    private readonly IClusterStore _clusterStore;
    private readonly IClusterStore? _localStore;

    private SkeinRuntime(IClusterStore clusterStore, IClusterStore? localStore, IpamService ipam, IHostKernel kernel, IFirewall firewall, BridgeDriver driver, string nodeId)
    {
        _clusterStore = clusterStore;
        _localStore = localStore;
        Ipam = ipam;
        Kernel = kernel;
        Firewall = firewall;
        Driver = driver;
        NodeId = nodeId;
    }

    /// <summary>The store the IPAM coordinates through (embedded, Consul or etcd).</summary>
    public IClusterStore ClusterStore => _clusterStore;
    /// <summary>Where the driver keeps its host-local records: the cluster store when embedded, else &lt;state-dir&gt;/local.</summary>
    public IClusterStore DriverStore => _localStore ?? _clusterStore;
    public IpamService Ipam { get; }
    public IHostKernel Kernel { get; }
    public IFirewall Firewall { get; }
    public BridgeDriver Driver { get; }
    public string NodeId { get; }

    /// <summary>Test seams: a kernel or firewall to use instead of the real ones (e.g. one that fails a chosen step).</summary>
    public sealed record Overrides(Func<IHostKernel, IHostKernel>? WrapKernel = null, Func<IFirewall, IFirewall>? WrapFirewall = null);

    public static async Task<SkeinRuntime> OpenAsync(ServeOptions options, ILoggerFactory logs, TimeProvider time, Overrides? overrides, CancellationToken ct)
    {
        var log = logs.CreateLogger("skein.runtime");
        Directory.CreateDirectory(options.StateDir);
        var nodeId = LoadOrCreateNodeId(options.StateDir);
        var location = ClusterStoreFactory.Parse(options.StoreUrl);
        var clusterStore = await ClusterStoreFactory.OpenAsync(options.StoreUrl, options.StateDir, time, ct: ct).ConfigureAwait(false);
        IClusterStore? localStore = null;
        IHostKernel? kernel = null;
        try
        {
            if (location.Kind != StoreKind.Embedded)
                localStore = await EmbeddedStore.OpenAsync(Path.Combine(options.StateDir, "local"), time, ct).ConfigureAwait(false);
            var ipam = new IpamService(clusterStore, new IpamOptions { NodeId = nodeId, KeyRoot = location.RootPrefix }, new LinuxHostNetworkView(), time);

            kernel = RtNetlinkKernel.Open(options.NetNsPath);
            if (overrides?.WrapKernel is { } wrapKernel)
                kernel = wrapKernel(kernel);
            var firewallLog = logs.CreateLogger("skein.firewall");
            var kernelForSysctl = kernel;
            IFirewall firewall = new IptablesFirewall(new IptablesOptions
            {
                CommandPrefix = options.NetNsPath is null ? [] : ["nsenter", $"--net={options.NetNsPath}"],
                Log = line => firewallLog.LogInformation("{Line}", line),
                ReadSysctl = options.NetNsPath is null ? null : key => kernelForSysctl.TryReadSysctl(key),
            });
            if (overrides?.WrapFirewall is { } wrapFirewall)
                firewall = wrapFirewall(firewall);

            var driver = new BridgeDriver(new DriverStateStore(localStore ?? clusterStore), kernel, firewall,
                new IpamEndpointBinding(ipam, logs.CreateLogger("skein.ipam")), time, logs.CreateLogger("skein.driver"));
            log.LogInformation("node {Node}, store {Store}, state {StateDir}, programming namespace {Namespace}",
                nodeId, location, options.StateDir, options.NetNsPath ?? "(own)");
            return new SkeinRuntime(clusterStore, localStore, ipam, kernel, firewall, driver, nodeId);
        }
        catch
        {
            kernel?.Dispose();
            if (localStore is not null)
                await localStore.DisposeAsync().ConfigureAwait(false);
            await clusterStore.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// The node id names this host in the store ([a-z0-9-]{1,63}); derived from the host name once and kept in the
    /// state directory so that renaming the host does not orphan its allocations.
    /// </summary>
    public static string LoadOrCreateNodeId(string stateDir)
    {
        var path = Path.Combine(stateDir, "node-id");
        if (File.Exists(path))
        {
            var stored = File.ReadAllText(path).Trim();
            if (stored.Length is > 0 and <= 63 && stored.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-'))
                return stored;
            throw SkeinException.Invalid($"{path} holds '{stored}', which is not a node id ([a-z0-9-], 1-63 characters)");
        }
        var derived = DeriveNodeId(Environment.MachineName);
        var temp = path + ".tmp";
        File.WriteAllText(temp, derived + "\n");
        File.Move(temp, path, overwrite: true);
        return derived;
    }

    public static string DeriveNodeId(string hostName)
    {
        var text = new StringBuilder();
        foreach (var c in hostName.ToLowerInvariant())
        {
            if (text.Length == 63)
                break;
            text.Append(c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-' ? c : '-');
        }
        var id = text.ToString().Trim('-');
        return id.Length > 0 ? id : "node";
    }

    public async ValueTask DisposeAsync()
    {
        Kernel.Dispose();
        if (_localStore is not null)
            await _localStore.DisposeAsync().ConfigureAwait(false);
        await _clusterStore.DisposeAsync().ConfigureAwait(false);
    }
}
