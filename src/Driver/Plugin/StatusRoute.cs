using System.Text.Json.Serialization;
using Skein.Driver.Network.State;

namespace Skein.Driver.Plugin;

/// <summary>What `skein status` prints: the driver's records as the running process holds them.</summary>
public sealed record StatusReport(string NodeId, IReadOnlyCollection<NetworkRecord> Networks, IReadOnlyCollection<EndpointRecord> Endpoints);

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
                var report = new StatusReport(runtime.NodeId, runtime.Driver.Networks, runtime.Driver.Endpoints);
                await PluginRoutes.WriteAsync(context, StatusCodes.Status200OK, report, StatusJsonContext.Default.StatusReport).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                var reply = ErrorFunnel.Classify(ex);
                await PluginRoutes.WriteAsync(context, (int)reply.Status, new ErrorResponse(reply.Message, null), PluginJsonContext.Default.ErrorResponse).ConfigureAwait(false);
            }
        });
}
