using System.Net;
using System.Text;
using System.Text.Json;
using Skein.Driver.Network.Protocol;
using Skein.Driver.Plugin;
using Skein.Ipam;
using Skein.Ipam.Store;

namespace Skein.Driver.Tests.Plugin;

/// <summary>Command line and environment, body parsing and the error funnel: no socket, no root.</summary>
public sealed class ServeOptionsTests
{
    [Fact]
    public void Defaults_environment_and_flags_combine_with_flags_winning()
    {
        var none = ServeOptions.Parse([], _ => null);
        Assert.Equal("/run/docker/plugins/skein.sock", none.SocketPath);
        Assert.Equal("/var/lib/skein", none.StateDir);
        Assert.Equal("embedded", none.StoreUrl);
        Assert.Null(none.NetNsPath);

        var env = new Dictionary<string, string> { ["SKEIN_SOCKET"] = "/tmp/a.sock", ["SKEIN_STATE_DIR"] = "/tmp/state", ["SKEIN_STORE"] = "consul://127.0.0.1:8500" };
        var fromEnv = ServeOptions.Parse([], k => env.GetValueOrDefault(k));
        Assert.Equal("/tmp/a.sock", fromEnv.SocketPath);
        Assert.Equal("/tmp/state", fromEnv.StateDir);
        Assert.Equal("consul://127.0.0.1:8500", fromEnv.StoreUrl);

        var flags = ServeOptions.Parse(["--socket", "/tmp/b.sock", "--state-dir=/tmp/other", "--store", "embedded"], k => env.GetValueOrDefault(k));
        Assert.Equal("/tmp/b.sock", flags.SocketPath);
        Assert.Equal("/tmp/other", flags.StateDir);
        Assert.Equal("embedded", flags.StoreUrl);
    }

    [Theory]
    [InlineData("--bogus", "unknown option")]
    [InlineData("--socket", "needs a value")]
    [InlineData("--socket=relative.sock", "absolute")]
    [InlineData("--netns=/nonexistent/ns", "does not exist")]
    [InlineData("--reconcile-interval=soon", "seconds")]
    [InlineData("--log-level=loud", "trace, debug, info, warn, error")]
    public void Bad_flags_are_named(string flag, string mention)
    {
        var ex = Assert.Throws<SkeinException>(() => ServeOptions.Parse([flag], _ => null));
        Assert.Contains(mention, ex.Message);
    }

    [Fact]
    public void Log_level_comes_from_flag_or_environment_and_an_empty_variable_means_unset()
    {
        Assert.Equal(Microsoft.Extensions.Logging.LogLevel.Information, ServeOptions.Parse([], _ => null).LogLevel);
        var env = new Dictionary<string, string> { ["SKEIN_LOG_LEVEL"] = "debug", ["SKEIN_STORE"] = "" };
        var fromEnv = ServeOptions.Parse([], k => env.GetValueOrDefault(k));
        Assert.Equal(Microsoft.Extensions.Logging.LogLevel.Debug, fromEnv.LogLevel);
        // A managed plugin passes every variable of its manifest, empty ones included.
        Assert.Equal("embedded", fromEnv.StoreUrl);
        Assert.Equal(Microsoft.Extensions.Logging.LogLevel.Warning, ServeOptions.Parse(["--log-level", "WARN"], k => env.GetValueOrDefault(k)).LogLevel);
        Assert.Throws<SkeinException>(() => ServeOptions.Parse([], k => k == "SKEIN_LOG_LEVEL" ? "verbose" : null));
    }

    [Fact]
    public void A_socket_path_longer_than_sun_path_is_refused()
    {
        var ex = Assert.Throws<SkeinException>(() => ServeOptions.Parse(["--socket", "/tmp/" + new string('s', 110)], _ => null));
        Assert.Contains("107 bytes", ex.Message);
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData(" \n", "empty")]
    [InlineData("null", "JSON null")]
    [InlineData("{\"NetworkID\": 12}", "field $.NetworkID")]
    [InlineData("{\"NetworkID\": \"a\"", "malformed JSON")]
    public void Bodies_are_parsed_strictly_with_the_call_named(string body, string mention)
    {
        var ex = Assert.Throws<SkeinException>(() => RequestBody.Parse(Encoding.UTF8.GetBytes(body), NetworkDriverJsonContext.Default.DeleteNetworkRequest));
        // The engine prefixes the call name itself ("NetworkDriver.DeleteNetwork: <Err>").
        Assert.DoesNotContain("NetworkDriver.DeleteNetwork", ex.Message);
        Assert.Contains(mention, ex.Message);
    }

    [Fact]
    public void The_funnel_maps_every_failure_to_a_non_200_status_with_text()
    {
        Assert.Equal(HttpStatusCode.BadRequest, ErrorFunnel.Classify(SkeinException.Invalid("x")).Status);
        Assert.Equal(HttpStatusCode.NotFound, ErrorFunnel.Classify(SkeinException.NotFound("x")).Status);
        Assert.Equal(HttpStatusCode.Conflict, ErrorFunnel.Classify(SkeinException.Conflict("x")).Status);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, ErrorFunnel.Classify(new RequestTooLargeException("C: too big")).Status);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, ErrorFunnel.Classify(new StoreUnavailableException("consul down")).Status);
        var kernel = ErrorFunnel.Classify(new Skein.Driver.Netlink.NetlinkException(17, "add link skbr-1", "File exists"));
        Assert.Equal(HttpStatusCode.InternalServerError, kernel.Status);
        Assert.Contains("add link skbr-1", kernel.Message);
        Assert.False(kernel.IsBug);
        var bug = ErrorFunnel.Classify(new NullReferenceException("oops"));
        Assert.True(bug.IsBug);
        Assert.Contains("oops", bug.Message);
        Assert.Equal("x", ErrorFunnel.Classify(SkeinException.Invalid("x")).Message);
    }

    [Fact]
    public void Replies_use_Go_field_names()
    {
        var json = JsonSerializer.Serialize(new JoinResponse(new InterfaceName("skc0", "eth"), "10.0.0.1", null, null, false), NetworkDriverJsonContext.Default.JoinResponse);
        Assert.Equal("""{"InterfaceName":{"SrcName":"skc0","DstPrefix":"eth"},"Gateway":"10.0.0.1","DisableGatewayService":false}""", json);
        Assert.Equal("""{"Err":"e","Error":"e"}""", JsonSerializer.Serialize(new ErrorResponse("e", "e"), PluginJsonContext.Default.ErrorResponse));
        Assert.Equal("{}", JsonSerializer.Serialize(new CreateEndpointResponse(null), NetworkDriverJsonContext.Default.CreateEndpointResponse));
    }

    [Fact]
    public void Node_ids_are_derived_from_the_host_name_safely()
    {
        Assert.Equal("web-1", SkeinRuntime.DeriveNodeId("Web_1"));
        Assert.Equal("node", SkeinRuntime.DeriveNodeId("___"));
        Assert.Equal(63, SkeinRuntime.DeriveNodeId(new string('a', 100)).Length);
    }
}
