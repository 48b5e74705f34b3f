using System.Text.Json;
using Skein.Driver.Plugin;

namespace Skein.Driver.Cli;

/// <summary>`skein status [--socket PATH] [--json]`: networks and endpoints as the running plugin holds them.</summary>
public static class StatusCommand
{
    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error)
    {
        var socket = Environment.GetEnvironmentVariable("SKEIN_SOCKET") is { Length: > 0 } env ? env : ServeOptions.DefaultSocket;
        var json = false;
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] == "--socket" && i + 1 < args.Length)
                socket = args[++i];
            else if (args[i].StartsWith("--socket=", StringComparison.Ordinal))
                socket = args[i]["--socket=".Length..];
            else if (args[i] == "--json")
                json = true;
            else
            {
                await error.WriteLineAsync($"skein status: unknown argument '{args[i]}' (known: --socket PATH, --json)").ConfigureAwait(false);
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
            await error.WriteLineAsync($"skein status: no skein answers on {socket}: {ex.Message}").ConfigureAwait(false);
            return 1;
        }
        var body = await response.Content.ReadAsByteArrayAsync().ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            var err = JsonSerializer.Deserialize(body, PluginJsonContext.Default.ErrorResponse);
            await error.WriteLineAsync($"skein status: {err?.Err ?? response.StatusCode.ToString()}").ConfigureAwait(false);
            return 1;
        }
        if (json)
        {
            await output.WriteLineAsync(System.Text.Encoding.UTF8.GetString(body)).ConfigureAwait(false);
            return 0;
        }
        var report = JsonSerializer.Deserialize(body, StatusJsonContext.Default.StatusReport)!;
        await output.WriteLineAsync($"node {report.NodeId}: {report.Networks.Count} network(s), {report.Endpoints.Count} endpoint(s)").ConfigureAwait(false);
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
