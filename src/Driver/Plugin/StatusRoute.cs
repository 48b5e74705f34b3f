using System.Text.Json.Serialization;
using Skein.Driver.Network.State;

namespace Skein.Driver.Plugin;

/// <summary>What `skein status` prints: the driver's records as the running process holds them, and its cluster view.</summary>
public sealed record StatusReport(string NodeId, IReadOnlyCollection<NetworkRecord> Networks, IReadOnlyCollection<EndpointRecord> Endpoints)
{
    /// <summary>Null on a single host (no shared store, or no advertise address).</summary>
    public ClusterStatus? Cluster { get; init; }
}

/// <summary>This host in the cluster: membership, the outage journal, and each cluster network's peer view.</summary>
public sealed record ClusterStatus
{
    /// <summary>False until the store was reached once (skein serves from local state meanwhile).</summary>
    public bool Joined { get; init; }
    public long Incarnation { get; init; }
    /// <summary>When the store last confirmed this host's liveness (UTC); the outage allowance counts from here.</summary>
    public DateTimeOffset? LastConfirmed { get; init; }
    /// <summary>Address changes made while the store was unreachable and not yet written back.</summary>
    public int JournaledChanges { get; init; }
    public IReadOnlyList<ClusterNetworkStatus> Networks { get; init; } = [];
}

public sealed record ClusterNetworkStatus(string Net, bool Watching, long ViewsApplied, IReadOnlyList<string> RemoteVteps, int RemoteEndpoints,
    IReadOnlyList<string> HeldDownNodes)
{
    /// <summary>The bridge bypass: "on (…)", "off (why)" or "unavailable: why".</summary>
    public string? BridgeBypass { get; init; }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull, WriteIndented = true)]
[JsonSerializable(typeof(StatusReport))]
public sealed partial class StatusJsonContext : JsonSerializerContext;

/// <summary>
/// /Skein.Status on the plugin socket: the engine never calls it; `skein status` does, because the running
/// process holds the embedded store's lock and is the one that knows.
/// </summary>
public static class StatusRoute
{
    public const string Path = "/Skein.Status";

    public static void Map(WebApplication app, PluginHost host) =>
        app.MapPost(Path, async context =>
        {
            try
            {
                var runtime = await host.RuntimeAsync(context.RequestAborted).ConfigureAwait(false);
                var report = new StatusReport(runtime.NodeId, runtime.Driver.Networks, runtime.Driver.Endpoints) { Cluster = runtime.ClusterStatus() };
                await PluginRoutes.WriteAsync(context, StatusCodes.Status200OK, report, StatusJsonContext.Default.StatusReport).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                var reply = ErrorFunnel.Classify(ex);
                await PluginRoutes.WriteAsync(context, (int)reply.Status, new ErrorResponse(reply.Message, null), PluginJsonContext.Default.ErrorResponse).ConfigureAwait(false);
            }
        });
}
