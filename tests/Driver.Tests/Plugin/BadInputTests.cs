using System.Net;
using Skein.Driver.Tests.TestSupport;
using static Skein.Driver.Tests.TestSupport.TraceBodies;

namespace Skein.Driver.Tests.Plugin;

/// <summary>
/// Malformed, mistyped, incomplete, out-of-range and hostile requests: each gets the right status and an Err naming
/// what was wrong (and Error too for IPAM calls), and none of them changes the store, the links or the firewall.
/// </summary>
public sealed class BadInputTests
{
    private sealed record Case(string Call, string? Body, HttpStatusCode Status, params string[] ErrMentions);

    [SkippableFact]
    public async Task Bad_requests_get_a_clear_error_and_change_nothing()
    {
        Skip.IfNot(PluginTestHost.IsSupported, PluginTestHost.SkipReason);
        await using var host = await PluginTestHost.StartAsync();
        var net = NewId();
        var ep = NewId();
        var otherNet = NewId();
        await host.CallOkAsync("NetworkDriver.CreateNetwork", CreateNetwork(net));
        await host.CallOkAsync("NetworkDriver.CreateNetwork", CreateNetwork(otherNet, "10.99.0.0/24", "10.99.0.1/24"));
        await host.CallOkAsync("NetworkDriver.CreateEndpoint", CreateEndpoint(net, ep));
        await host.CallOkAsync("NetworkDriver.Join", Join(net, ep));
        var fresh = NewId();
        var before = await StateSnapshot.TakeAsync(host);

        const HttpStatusCode Bad = HttpStatusCode.BadRequest;
        const HttpStatusCode NotFound = HttpStatusCode.NotFound;
        var cases = new List<Case>
        {
            // Bodies that are not a JSON object.
            new("NetworkDriver.CreateNetwork", null, Bad, "empty"),
            new("NetworkDriver.CreateNetwork", "\n", Bad, "empty"),
            new("NetworkDriver.CreateNetwork", "null", Bad, "null"),
            new("NetworkDriver.CreateNetwork", "{\"NetworkID\": \"" + fresh + "\"", Bad, "malformed JSON"),
            new("NetworkDriver.CreateNetwork", "[]", Bad, "malformed JSON"),
            new("NetworkDriver.CreateNetwork", "\"x\"", Bad, "malformed JSON"),
            new("NetworkDriver.Join", "{'NetworkID': 1}", Bad, "malformed JSON"),
            new("NetworkDriver.CreateNetwork", CreateNetwork(fresh) + "{}", Bad, "malformed JSON"),
            new("NetworkDriver.CreateNetwork", "{\"NetworkID\": \"" + fresh + "\", \"NetworkID\": \"" + NewId() + "\"}", Bad, "malformed JSON"),
            // Wrong types.
            new("NetworkDriver.CreateNetwork", "{\"NetworkID\": 5}", Bad, "NetworkID"),
            new("NetworkDriver.CreateNetwork", "{\"NetworkID\": \"" + fresh + "\", \"IPv4Data\": \"10.1.0.0/24\"}", Bad, "IPv4Data"),
            new("NetworkDriver.CreateNetwork", "{\"NetworkID\": \"" + fresh + "\", \"Options\": []}", Bad, "Options"),
            new("NetworkDriver.CreateNetwork", CreateNetwork(fresh).Replace("\"com.docker.network.enable_ipv6\": false", "\"com.docker.network.enable_ipv6\": 5"), Bad, "enable_ipv6"),
            new("NetworkDriver.CreateNetwork", CreateNetwork(fresh).Replace("\"com.docker.network.generic\": {}", "\"com.docker.network.generic\": \"mtu=1400\""), Bad, "com.docker.network.generic"),
            new("NetworkDriver.CreateNetwork", CreateNetwork(fresh, generic: "{\"foo\": {\"a\": 1}}"), Bad, "'foo'"),
            new("NetworkDriver.CreateEndpoint", "{\"NetworkID\": \"" + net + "\", \"EndpointID\": \"" + fresh + "\", \"Interface\": 5}", Bad, "Interface"),
            new("NetworkDriver.Join", "{\"NetworkID\": \"" + net + "\", \"EndpointID\": \"" + ep + "\", \"SandboxKey\": 7}", Bad, "SandboxKey"),
            new("NetworkDriver.DiscoverNew", "{\"DiscoveryType\": \"one\"}", Bad, "DiscoveryType"),
            new("NetworkDriver.AllocateNetwork", "{\"NetworkID\": \"" + fresh + "\", \"Options\": {\"a\": 1}}", Bad, "Options"),
            // Missing fields.
            new("NetworkDriver.CreateNetwork", "{}", Bad, "NetworkID is missing"),
            new("NetworkDriver.CreateEndpoint", "{\"NetworkID\": \"" + net + "\"}", Bad, "EndpointID is missing"),
            new("NetworkDriver.DeleteNetwork", "{}", Bad, "NetworkID is missing"),
            new("NetworkDriver.Leave", "{\"EndpointID\": \"" + ep + "\"}", Bad, "NetworkID is missing"),
            new("NetworkDriver.CreateNetwork", "{\"NetworkID\": \"" + fresh + "\", \"IPv4Data\": [{\"Gateway\": \"10.1.0.1/24\"}]}", Bad, "IPv4Data[0].Pool is missing"),
            new("NetworkDriver.CreateNetwork", "{\"NetworkID\": \"" + fresh + "\", \"IPv4Data\": [null]}", Bad, "IPv4Data[0] is null"),
            // Bad CIDRs and addresses.
            new("NetworkDriver.CreateNetwork", CreateNetwork(fresh, "10.1.0.0/33", "10.1.0.1/24"), Bad, "IPv4Data[0].Pool", "10.1.0.0/33"),
            new("NetworkDriver.CreateNetwork", CreateNetwork(fresh, "banana", "10.1.0.1/24"), Bad, "IPv4Data[0].Pool", "banana"),
            new("NetworkDriver.CreateNetwork", CreateNetwork(fresh, "10.1.0.1/24", "10.1.0.2/24"), Bad, "host bits"),
            new("NetworkDriver.CreateNetwork", CreateNetwork(fresh, "fd00::/64", "fd00::1/64"), Bad, "IPv6", "expected IPv4"),
            new("NetworkDriver.CreateNetwork", CreateNetwork(fresh, "10.1.0.0/24", "10.1.0.1"), Bad, "Gateway", "prefix length"),
            new("NetworkDriver.CreateNetwork", CreateNetwork(fresh, "10.1.0.0/24", "10.2.0.1/24"), Bad, "outside the pool"),
            new("NetworkDriver.CreateNetwork", CreateNetworkWithOptions(fresh).Replace("10.50.0.11/16", "10.51.0.11/16"), Bad, "AuxAddresses['host2']", "outside"),
            new("NetworkDriver.CreateEndpoint", CreateEndpoint(net, fresh, "10.123.0.2"), Bad, "Interface.Address"),
            new("NetworkDriver.CreateEndpoint", CreateEndpoint(net, fresh, "10.9.0.2/24"), Bad, "outside the network's subnets"),
            new("NetworkDriver.CreateEndpoint", CreateEndpoint(net, fresh, addressV6: "fd00::5/64"), Bad, "no IPv6 subnet"),
            new("NetworkDriver.CreateEndpoint", CreateEndpoint(net, fresh, mac: "zz:42:45:9b:78:95"), Bad, "MacAddress", "zz:42"),
            new("NetworkDriver.CreateEndpoint", CreateEndpoint(net, fresh, mac: "01:00:5e:00:00:01"), Bad, "multicast"),
            // Options out of range.
            new("NetworkDriver.CreateNetwork", CreateNetwork(fresh, generic: "{\"com.docker.network.driver.mtu\": \"abc\"}"), Bad, "com.docker.network.driver.mtu", "abc"),
            new("NetworkDriver.CreateNetwork", CreateNetwork(fresh, generic: "{\"com.docker.network.driver.mtu\": \"70000\"}"), Bad, "outside"),
            new("NetworkDriver.CreateNetwork", CreateNetwork(fresh, generic: "{\"com.docker.network.driver.mtu\": \"1400\", \"skein.mtu\": \"1500\"}"), Bad, "disagree"),
            new("NetworkDriver.CreateNetwork", CreateNetwork(fresh, generic: "{\"com.docker.network.bridge.enable_icc\": \"maybe\"}"), Bad, "enable_icc"),
            new("NetworkDriver.CreateEndpoint", CreateEndpoint(net, fresh, ports: "[{\"Proto\": 132, \"Port\": 80, \"HostPort\": 8080}]"), Bad, "SCTP"),
            new("NetworkDriver.CreateEndpoint", CreateEndpoint(net, fresh, ports: "[{\"Proto\": 6, \"Port\": 70000}]"), Bad, "portmap[0].Port", "70000"),
            new("NetworkDriver.CreateEndpoint", CreateEndpoint(net, fresh, ports: "[{\"Proto\": 6, \"Port\": 80, \"HostPort\": 9000, \"HostPortEnd\": 8000}]"), Bad, "HostPortEnd"),
            new("NetworkDriver.CreateEndpoint", CreateEndpoint(net, fresh, ports: "[{\"Proto\": 6, \"Port\": 80, \"HostIP\": \"1.2.3\"}]"), Bad, "HostIP", "1.2.3"),
            new("NetworkDriver.CreateEndpoint", CreateEndpoint(net, fresh, ports: "\"80:80\""), Bad, "portmap"),
            new("NetworkDriver.ProgramExternalConnectivity", ProgramExternalConnectivity(net, ep, "[{\"Proto\": \"tcp\", \"Port\": 80}]"), Bad, "Proto"),
            // Hostile ids: they would end up in keys and link names.
            new("NetworkDriver.CreateNetwork", CreateNetwork("../x"), Bad, "NetworkID", "'../x'"),
            new("NetworkDriver.CreateNetwork", CreateNetwork(new string('a', 65)), Bad, "NetworkID", "65 characters"),
            new("NetworkDriver.CreateNetwork", CreateNetwork("ABCDEF"), Bad, "NetworkID", "lower-case"),
            new("NetworkDriver.CreateNetwork", CreateNetwork("n\u00e9t"), Bad, "NetworkID", "\\u00e9"),
            new("NetworkDriver.CreateNetwork", CreateNetwork("a b"), Bad, "NetworkID"),
            new("NetworkDriver.CreateNetwork", CreateNetwork("x\\u0000y"), Bad, "NetworkID", "\\u0000"),
            new("NetworkDriver.CreateNetwork", CreateNetwork(""), Bad, "NetworkID is missing"),
            new("NetworkDriver.CreateEndpoint", CreateEndpoint(net, "ep/../../etc"), Bad, "EndpointID"),
            new("NetworkDriver.DeleteEndpoint", Endpoint(net, "X"), Bad, "EndpointID"),
            new("NetworkDriver.DeleteNetwork", NetworkBody("skbr-" + net[..10]), Bad, "NetworkID"),
            new("NetworkDriver.EndpointOperInfo", Endpoint("$(reboot)", ep), Bad, "NetworkID"),
            // Unknown ids where the call needs the object.
            new("NetworkDriver.CreateEndpoint", CreateEndpoint(fresh, NewId()), NotFound, "network", "not known"),
            new("NetworkDriver.Join", Join(net, fresh), NotFound, "endpoint", "not known"),
            new("NetworkDriver.EndpointOperInfo", Endpoint(net, fresh), NotFound, "not known"),
            new("NetworkDriver.ProgramExternalConnectivity", ProgramExternalConnectivity(net, fresh), NotFound, "not known"),
            new("NetworkDriver.Join", Join(otherNet, ep), Bad, "belongs to network"),
            new("NetworkDriver.DeleteEndpoint", Endpoint(otherNet, ep), Bad, "belongs to network"),
            // Oversized body and unknown calls.
            new("NetworkDriver.CreateNetwork", "{\"NetworkID\": \"" + fresh + "\", \"Options\": {\"pad\": \"" + new string('x', 2 << 20) + "\"}}", HttpStatusCode.RequestEntityTooLarge, "limit"),
            new("NetworkDriver.Frobnicate", "{}", NotFound, "unknown plugin call", "NetworkDriver.Frobnicate"),
            new("../../etc/passwd", "{}", NotFound, "unknown plugin call"),
            // IPAM: Err and Error both.
            new("IpamDriver.RequestPool", null, Bad, "empty"),
            new("IpamDriver.RequestPool", "{\"AddressSpace\": \"LocalDefault\", \"Pool\": \"10.1.0.0/33\"}", Bad, "10.1.0.0/33"),
            new("IpamDriver.RequestPool", "{\"AddressSpace\": \"LocalDefault\", \"V6\": \"yes\"}", Bad, "V6"),
            new("IpamDriver.RequestAddress", "{\"PoolID\": \"LocalDefault/10.200.0.0/24\", \"Address\": \"\"}", NotFound, "10.200.0.0/24"),
            new("IpamDriver.ReleasePool", "{", Bad, "not valid JSON"),
            new("IpamDriver.Frobnicate", "{}", NotFound, "unknown plugin call"),
        };

        var failures = new List<string>();
        foreach (var c in cases)
        {
            var reply = await host.CallAsync(c.Call, c.Body);
            var shown = c.Body is null ? "(no body)" : c.Body.Length > 160 ? c.Body[..160] + "…" : c.Body;
            if (reply.Status != c.Status)
                failures.Add($"{c.Call} {shown}: expected {(int)c.Status}, got {reply}");
            var err = reply.Err;
            if (string.IsNullOrWhiteSpace(err))
            {
                failures.Add($"{c.Call} {shown}: no Err in {reply}");
                continue;
            }
            foreach (var mention in c.ErrMentions)
                if (!err.Contains(mention, StringComparison.Ordinal))
                    failures.Add($"{c.Call} {shown}: Err does not mention \"{mention}\": {err}");
            // The engine prefixes the call name itself; repeating it would show twice to the user.
            if (err.StartsWith(c.Call + ":", StringComparison.Ordinal))
                failures.Add($"{c.Call} {shown}: Err repeats the call name the engine already adds: {err}");
            var error = reply.Json?["Error"]?.GetValue<string>();
            if (c.Call.StartsWith("IpamDriver.", StringComparison.Ordinal) && error != err)
                failures.Add($"{c.Call} {shown}: IPAM reply without Error = Err: {reply}");
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        Assert.Equal(before, await StateSnapshot.TakeAsync(host));
    }

    [SkippableFact]
    public async Task Calls_that_undo_something_are_idempotent_for_unknown_ids()
    {
        Skip.IfNot(PluginTestHost.IsSupported, PluginTestHost.SkipReason);
        await using var host = await PluginTestHost.StartAsync();
        var before = await StateSnapshot.TakeAsync(host);
        var net = NewId();
        var ep = NewId();
        foreach (var (call, body) in new[]
                 {
                     ("NetworkDriver.DeleteNetwork", NetworkBody(net)),
                     ("NetworkDriver.DeleteEndpoint", Endpoint(net, ep)),
                     ("NetworkDriver.Leave", Endpoint(net, ep)),
                     ("NetworkDriver.RevokeExternalConnectivity", Endpoint(net, ep)),
                     ("NetworkDriver.FreeNetwork", NetworkBody(net)),
                     ("NetworkDriver.DiscoverNew", """{"DiscoveryType": 1, "DiscoveryData": {"Address": "192.0.2.10", "BindAddress": "0.0.0.0", "Self": true}}"""),
                     ("NetworkDriver.DiscoverDelete", """{"DiscoveryType": 1, "DiscoveryData": {"Address": "192.0.2.10", "BindAddress": "0.0.0.0", "Self": false}}"""),
                 })
            Assert.Equal("{}", (await host.CallOkAsync(call, body)).Body);
        Assert.Equal(before, await StateSnapshot.TakeAsync(host));
    }

    [SkippableFact]
    public async Task Calls_without_a_body_answer_from_constants()
    {
        Skip.IfNot(PluginTestHost.IsSupported, PluginTestHost.SkipReason);
        await using var host = await PluginTestHost.StartAsync();
        Assert.Equal("""{"Implements":["NetworkDriver","IpamDriver"]}""", (await host.CallOkAsync("Plugin.Activate", null)).Body);
        Assert.Equal("""{"Scope":"local","ConnectivityScope":"local","GwAllocChecker":false}""", (await host.CallOkAsync("NetworkDriver.GetCapabilities", null)).Body);
        var ipamCaps = (await host.CallOkAsync("IpamDriver.GetCapabilities", null)).Json!;
        Assert.True(ipamCaps["RequiresMACAddress"]!.GetValue<bool>());
        Assert.Equal(System.Text.Json.JsonSerializer.Serialize(host.Runtime.Ipam.GetCapabilities(), Skein.Ipam.Protocol.IpamJsonContext.Default.GetCapabilitiesResponse),
            (await host.CallOkAsync("IpamDriver.GetCapabilities", null)).Body);
        var spaces = (await host.CallOkAsync("IpamDriver.GetDefaultAddressSpaces", null)).Json!;
        Assert.Equal("LocalDefault", spaces["LocalDefaultAddressSpace"]!.GetValue<string>());
        var allocate = (await host.CallOkAsync("NetworkDriver.AllocateNetwork", """{"NetworkID": "n0xabc", "Options": {"skein.vni": "4100"}, "IPv4Data": [{"AddressSpace": "", "Pool": "10.0.1.0/24", "Gateway": "10.0.1.1/24"}], "IPv6Data": null}""")).Json!;
        Assert.Equal("4100", allocate["Options"]!["skein.vni"]!.GetValue<string>());
    }
}
