using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Skein.Driver.Network;
using Skein.Driver.Network.Protocol;
using Skein.Ipam.Protocol;

namespace Skein.Driver.Plugin;

/// <summary>
/// Maps every plugin call to its handler. Each call reads its body by hand (no minimal-API binding: Docker sends
/// no Content-Type and sometimes no body), parses it strictly before waiting for start-up, and answers 200 with a
/// JSON object or, through the one error funnel, a non-200 status with {"Err": "..."}.
/// </summary>
public static class PluginRoutes
{
    public const string ReplyContentType = "application/vnd.docker.plugins.v1.2+json";

    private static readonly ActivateResponse Activation = new(["NetworkDriver", "IpamDriver"]);

    /// <summary>Constant, so it can be answered before anything is ready (pitfall 6); equals IpamService.GetCapabilities.</summary>
    public static readonly GetCapabilitiesResponse IpamCapabilities = new() { RequiresMACAddress = true, RequiresRequestReplay = false };

    public static void Map(WebApplication app, PluginHost host)
    {
        var nd = NetworkDriverJsonContext.Default;
        var ip = IpamJsonContext.Default;

        Constant(app, host, "Plugin.Activate", Activation, PluginJsonContext.Default.ActivateResponse);
        Constant(app, host, "NetworkDriver.GetCapabilities", BridgeDriver.CapabilitiesFor(host.Options.MultiHost, host.Options.GlobalScope), nd.GetCapabilityResponse);
        Constant(app, host, "IpamDriver.GetCapabilities", IpamCapabilities, ip.GetCapabilitiesResponse);

        Call(app, host, "NetworkDriver.GwAllocCheck", Strict(nd.GwAllocCheckerRequest), nd.GwAllocCheckerResponse, (_, r, _) => Task.FromResult(BridgeDriver.GwAllocCheck(r)), needsRuntime: false);
        Call(app, host, "NetworkDriver.CreateNetwork", Checked(nd.CreateNetworkRequest, RequestChecks.Check), nd.EmptyResponse, (rt, r, ct) => rt!.Driver.CreateNetworkAsync(r, ct));
        Call(app, host, "NetworkDriver.DeleteNetwork", Checked(nd.DeleteNetworkRequest, RequestChecks.Check), nd.EmptyResponse, (rt, r, ct) => rt!.Driver.DeleteNetworkAsync(r, ct));
        Call(app, host, "NetworkDriver.AllocateNetwork", Strict(nd.AllocateNetworkRequest), nd.AllocateNetworkResponse, (_, r, _) => Task.FromResult(BridgeDriver.AllocateNetwork(r)), needsRuntime: false);
        Call(app, host, "NetworkDriver.FreeNetwork", Strict(nd.FreeNetworkRequest), nd.EmptyResponse, (_, r, _) => Task.FromResult(BridgeDriver.FreeNetwork(r)), needsRuntime: false);
        Call(app, host, "NetworkDriver.CreateEndpoint", Checked(nd.CreateEndpointRequest, RequestChecks.Check), nd.CreateEndpointResponse, (rt, r, ct) => rt!.Driver.CreateEndpointAsync(r, ct));
        Call(app, host, "NetworkDriver.DeleteEndpoint", Checked(nd.DeleteEndpointRequest, RequestChecks.Check), nd.EmptyResponse, (rt, r, ct) => rt!.Driver.DeleteEndpointAsync(r, ct));
        Call(app, host, "NetworkDriver.EndpointOperInfo", Checked(nd.EndpointInfoRequest, RequestChecks.Check), nd.EndpointInfoResponse, (rt, r, _) => Task.FromResult(rt!.Driver.EndpointOperInfo(r)));
        Call(app, host, "NetworkDriver.Join", Checked(nd.JoinRequest, RequestChecks.Check), nd.JoinResponse, (rt, r, ct) => rt!.Driver.JoinAsync(r, ct));
        Call(app, host, "NetworkDriver.Leave", Checked(nd.LeaveRequest, RequestChecks.Check), nd.EmptyResponse, (rt, r, ct) => rt!.Driver.LeaveAsync(r, ct));
        Call(app, host, "NetworkDriver.ProgramExternalConnectivity", Checked(nd.ProgramExternalConnectivityRequest, RequestChecks.Check), nd.EmptyResponse, (rt, r, ct) => rt!.Driver.ProgramExternalConnectivityAsync(r, ct));
        Call(app, host, "NetworkDriver.RevokeExternalConnectivity", Checked(nd.RevokeExternalConnectivityRequest, RequestChecks.Check), nd.EmptyResponse, (rt, r, ct) => rt!.Driver.RevokeExternalConnectivityAsync(r, ct));
        Call(app, host, "NetworkDriver.DiscoverNew", Strict(nd.DiscoveryNotification), nd.EmptyResponse, (_, _, _) => Task.FromResult(new EmptyResponse()), needsRuntime: false);
        Call(app, host, "NetworkDriver.DiscoverDelete", Strict(nd.DiscoveryNotification), nd.EmptyResponse, (_, _, _) => Task.FromResult(new EmptyResponse()), needsRuntime: false);

        Call(app, host, "IpamDriver.GetDefaultAddressSpaces", (_, _) => new EmptyResponse(), ip.GetAddressSpacesResponse, (rt, _, _) => Task.FromResult(rt!.Ipam.GetDefaultAddressSpaces()), ipam: true);
        Call(app, host, "IpamDriver.RequestPool", (body, _) => IpamRequestParser.ParseRequestPool(body), ip.RequestPoolResponse, (rt, r, ct) => rt!.Ipam.RequestPoolAsync(r, ct), ipam: true);
        Call(app, host, "IpamDriver.ReleasePool", (body, _) => IpamRequestParser.ParseReleasePool(body), nd.EmptyResponse, async (rt, r, ct) => { await rt!.Ipam.ReleasePoolAsync(r, ct); return new EmptyResponse(); }, ipam: true);
        Call(app, host, "IpamDriver.RequestAddress", (body, _) => IpamRequestParser.ParseRequestAddress(body), ip.RequestAddressResponse, (rt, r, ct) => rt!.Ipam.RequestAddressAsync(r, ct), ipam: true);
        Call(app, host, "IpamDriver.ReleaseAddress", (body, _) => IpamRequestParser.ParseReleaseAddress(body), nd.EmptyResponse, async (rt, r, ct) => { await rt!.Ipam.ReleaseAddressAsync(r, ct); return new EmptyResponse(); }, ipam: true);

        StatusRoute.Map(app, host);

        // "{*path}", not the default fallback pattern: that one skips paths that look like file names, and every
        // plugin call has a dot in it.
        app.MapFallback("{*path}", async context =>
        {
            var path = context.Request.Path.Value ?? "";
            var call = path.TrimStart('/');
            var ipam = call.StartsWith("IpamDriver.", StringComparison.Ordinal);
            var message = context.Request.Method == HttpMethods.Post
                ? $"unknown plugin call {RequestValidation.Show(path)}: skein implements Plugin.Activate, NetworkDriver.* and IpamDriver.*"
                : $"plugin calls are POST requests, not {RequestValidation.Show(context.Request.Method)} {RequestValidation.Show(path)}";
            await WriteAsync(context, StatusCodes.Status404NotFound, new ErrorResponse(message, ipam ? message : null), PluginJsonContext.Default.ErrorResponse).ConfigureAwait(false);
        });
    }

    /// <summary>A NetworkDriver body parsed, then checked for everything that needs no state.</summary>
    private static Func<byte[], string, T> Checked<T>(JsonTypeInfo<T> type, Func<T, T> check) where T : class =>
        (body, _) => check(RequestBody.Parse(body, type));

    /// <summary>A NetworkDriver body: parsed with the wire context, errors naming the call.</summary>
    private static Func<byte[], string, T> Strict<T>(JsonTypeInfo<T> type) where T : class =>
        (body, _) => RequestBody.Parse(body, type);

    /// <summary>Calls with no request body: answered from a constant, never failing (a stray body is ignored).</summary>
    private static void Constant<T>(WebApplication app, PluginHost host, string call, T reply, JsonTypeInfo<T> type) =>
        app.MapPost("/" + call, async context =>
        {
            try
            {
                await RequestBody.ReadBytesAsync(context.Request, host.Options.MaxBodyBytes, context.RequestAborted).ConfigureAwait(false);
            }
            catch (RequestTooLargeException)
            {
                // Still answer: a failed GetCapabilities would leave the driver unregistered for the daemon's lifetime.
            }
            await WriteAsync(context, StatusCodes.Status200OK, reply, type).ConfigureAwait(false);
        });

    private static void Call<TRequest, TResponse>(
        WebApplication app, PluginHost host, string call,
        Func<byte[], string, TRequest> parse, JsonTypeInfo<TResponse> responseType,
        Func<SkeinRuntime?, TRequest, CancellationToken, Task<TResponse>> handle,
        bool needsRuntime = true, bool ipam = false)
    {
        var log = host.Logs.CreateLogger("skein.calls");
        app.MapPost("/" + call, async context =>
        {
            var started = Stopwatch.GetTimestamp();
            try
            {
                var body = await RequestBody.ReadBytesAsync(context.Request, host.Options.MaxBodyBytes, context.RequestAborted).ConfigureAwait(false);
                var request = parse(body, call);
                // The work is not tied to the caller's connection: a half-done change would only be repeated by the
                // engine's retry, so it is finished even when the caller gives up.
                var runtime = needsRuntime ? await host.RuntimeAsync(context.RequestAborted).ConfigureAwait(false) : null;
                var response = await handle(runtime, request, host.Stopping).ConfigureAwait(false);
                await WriteAsync(context, StatusCodes.Status200OK, response, responseType).ConfigureAwait(false);
                log.LogDebug("{Call} ok in {Ms:0.0} ms", call, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            }
            catch (Exception ex)
            {
                var reply = ErrorFunnel.Classify(ex is BadHttpRequestException { StatusCode: 413 } ? new RequestTooLargeException("request body is too large") : ex);
                if (reply.IsBug)
                    log.LogError(ex, "{Call} failed with {Status}: {Error}", call, (int)reply.Status, reply.Message);
                else
                    log.LogWarning("{Call} failed with {Status}: {Error}", call, (int)reply.Status, reply.Message);
                if (!context.Response.HasStarted)
                    await WriteAsync(context, (int)reply.Status, new ErrorResponse(reply.Message, ipam ? reply.Message : null), PluginJsonContext.Default.ErrorResponse).ConfigureAwait(false);
            }
        });
    }

    public static async Task WriteAsync<T>(HttpContext context, int status, T value, JsonTypeInfo<T> type)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = ReplyContentType;
        await JsonSerializer.SerializeAsync(context.Response.Body, value, type, context.RequestAborted).ConfigureAwait(false);
    }
}
