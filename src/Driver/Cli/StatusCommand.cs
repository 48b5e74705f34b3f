using System.Text.Json;
using Skein.Driver.Plugin;

namespace Skein.Driver.Cli;

/// <summary>
/// `skein status [--socket PATH] [--state-dir DIR] [--json]`: networks and endpoints as the running plugin holds
/// them; when no plugin answers, read from the state directory's embedded store instead (its lock is free then).
/// </summary>
public static class StatusCommand
{
    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error)
    {
        var socket = Environment.GetEnvironmentVariable("SKEIN_SOCKET") is { Length: > 0 } env ? env : ServeOptions.DefaultSocket;
        var json = false;
        var stateDir = Environment.GetEnvironmentVariable("SKEIN_STATE_DIR") is { Length: > 0 } dir ? dir : ServeOptions.DefaultStateDir;
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] == "--socket" && i + 1 < args.Length)
                socket = args[++i];
            else if (args[i].StartsWith("--socket=", StringComparison.Ordinal))
                socket = args[i]["--socket=".Length..];
            else if (args[i] == "--state-dir" && i + 1 < args.Length)
                stateDir = args[++i];
            else if (args[i].StartsWith("--state-dir=", StringComparison.Ordinal))
                stateDir = args[i]["--state-dir=".Length..];
            else if (args[i] == "--json")
                json = true;
            else
            {
                await error.WriteLineAsync($"skein status: unknown argument '{args[i]}' (known: --socket PATH, --state-dir DIR, --json)").ConfigureAwait(false);
                return 2;
            }
        }

        using var client = UnixSocketHttp.Create(socket, TimeSpan.FromSeconds(10));
        HttpResponseMessage response;
        try
        {
            response = await client.PostAsync(StatusRoute.Path, new ByteArrayContent([])).ConfigureAwait(false);
        }
        catch (HttpRequestException ex)
        {
            var offline = await ReadStoreAsync(stateDir).ConfigureAwait(false);
            if (offline is null)
            {
                await error.WriteLineAsync($"skein status: no skein answers on {socket} ({ex.Message}) and {stateDir} holds no readable state").ConfigureAwait(false);
                return 1;
            }
            await error.WriteLineAsync($"skein status: no skein answers on {socket}; showing the records in {stateDir}").ConfigureAwait(false);
            return await PrintAsync(offline, json, output).ConfigureAwait(false);
        }
        var body = await response.Content.ReadAsByteArrayAsync().ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            var err = JsonSerializer.Deserialize(body, PluginJsonContext.Default.ErrorResponse);
            await error.WriteLineAsync($"skein status: {err?.Err ?? response.StatusCode.ToString()}").ConfigureAwait(false);
            return 1;
        }
        return await PrintAsync(JsonSerializer.Deserialize(body, StatusJsonContext.Default.StatusReport)!, json, output).ConfigureAwait(false);
    }

    /// <summary>The driver's records straight from the embedded store; null when there is none or it is in use.</summary>
    private static async Task<StatusReport?> ReadStoreAsync(string stateDir)
    {
        // With Consul or etcd the host-local records live in <state-dir>/local; with the embedded store, in store/.
        foreach (var sub in new[] { "local", "store" })
        {
            var directory = Path.Combine(stateDir, sub);
            if (!Directory.Exists(directory))
                continue;
            try
            {
                await using var store = await Skein.Ipam.Store.Embedded.EmbeddedStore.OpenAsync(directory).ConfigureAwait(false);
                var (networks, endpoints) = await new Network.State.DriverStateStore(store).LoadAsync(CancellationToken.None).ConfigureAwait(false);
                var nodeFile = Path.Combine(stateDir, "node-id");
                var node = File.Exists(nodeFile) ? (await File.ReadAllTextAsync(nodeFile).ConfigureAwait(false)).Trim() : "?";
                return new StatusReport(node, networks, endpoints);
            }
            catch (Exception)
            {
                // Locked by a running (if silent) skein, unreadable or damaged: nothing to show offline.
                return null;
            }
        }
        return null;
    }

    private static async Task<int> PrintAsync(StatusReport report, bool json, TextWriter output)
    {
        if (json)
        {
            await output.WriteLineAsync(JsonSerializer.Serialize(report, StatusJsonContext.Default.StatusReport)).ConfigureAwait(false);
            return 0;
        }
        await output.WriteLineAsync($"node {report.NodeId}: {report.Networks.Count} network(s), {report.Endpoints.Count} endpoint(s)").ConfigureAwait(false);
        if (report.Cluster is { } cluster)
        {
            await output.WriteLineAsync(cluster.Joined
                ? $"cluster: incarnation {cluster.Incarnation}, liveness last confirmed {cluster.LastConfirmed?.ToString("u") ?? "never"}, {cluster.JournaledChanges} journaled change(s) to write back"
                : $"cluster: not joined yet (the store has not answered since start-up), {cluster.JournaledChanges} journaled change(s) to write back").ConfigureAwait(false);
            foreach (var net in cluster.Networks)
                await output.WriteLineAsync($"  cluster network {net.Net}: {(net.Watching ? "watching" : "not watching")}, {net.RemoteVteps.Count} remote host(s) [{string.Join(" ", net.RemoteVteps)}], {net.RemoteEndpoints} remote endpoint(s), {net.ViewsApplied} view(s) applied{(net.HeldDownNodes.Count > 0 ? ", held down: " + string.Join(" ", net.HeldDownNodes) : "")}{(net.BridgeBypass is { } bypass ? ", bridge bypass " + bypass : "")}").ConfigureAwait(false);
        }
        foreach (var network in report.Networks)
        {
            await output.WriteLineAsync($"network {network.NetworkId[..Math.Min(12, network.NetworkId.Length)]}  bridge {network.BridgeName}  mtu {network.Mtu}{(network.Internal ? "  internal" : "")}  subnets {string.Join(" ", network.IPv4Subnets.Concat(network.IPv6Subnets))}  gateways {string.Join(" ", network.IPv4Gateways.Concat(network.IPv6Gateways))}").ConfigureAwait(false);
            foreach (var endpoint in report.Endpoints.Where(e => e.NetworkId == network.NetworkId))
            {
                var ports = string.Join(",", endpoint.PortMappings.Select(p => $"{p.HostPort}->{p.ContainerPort}/{(p.Proto == 6 ? "tcp" : "udp")}"));
                await output.WriteLineAsync($"  endpoint {endpoint.EndpointId[..Math.Min(12, endpoint.EndpointId.Length)]}  {endpoint.HostVeth}/{endpoint.ContainerVeth}  mac {endpoint.MacAddress}  {endpoint.IPv4Address ?? "-"} {endpoint.IPv6Address ?? "-"}{(endpoint.Joined ? "  joined" : "")}{(ports.Length > 0 ? "  ports " + ports : "")}").ConfigureAwait(false);
            }
        }
        return 0;
    }
}
