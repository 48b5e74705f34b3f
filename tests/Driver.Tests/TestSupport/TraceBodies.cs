namespace Skein.Driver.Tests.TestSupport;

/// <summary>
/// Request bodies exactly as dockerd 20.10.24 sent them in the shared traces (basic.jsonl, options.jsonl,
/// internal.jsonl, ipv6.jsonl), with the ids as parameters so each test uses its own.
/// </summary>
public static class TraceBodies
{
    public static string NewId() => Convert.ToHexStringLower(Guid.NewGuid().ToByteArray()) + Convert.ToHexStringLower(Guid.NewGuid().ToByteArray());

    /// <summary>basic.jsonl line 3: a default pool with a gateway.</summary>
    public static string CreateNetwork(string networkId, string pool = "10.123.0.0/24", string gateway = "10.123.0.1/24", string generic = "{}") =>
        $$$"""{"NetworkID": "{{{networkId}}}", "Options": {"com.docker.network.enable_ipv6": false, "com.docker.network.generic": {{{generic}}}}, "IPv4Data": [{"AddressSpace": "rec-local", "Gateway": "{{{gateway}}}", "Pool": "{{{pool}}}"}], "IPv6Data": []}""";

    /// <summary>options.jsonl: explicit subnet, gateway, aux addresses and -o options.</summary>
    public static string CreateNetworkWithOptions(string networkId) =>
        $$$"""{"NetworkID": "{{{networkId}}}", "Options": {"com.docker.network.enable_ipv6": false, "com.docker.network.generic": {"com.example.mtu": "1400", "foo": "bar"}}, "IPv4Data": [{"AddressSpace": "rec-local", "AuxAddresses": {"host1": "10.50.0.10/16", "host2": "10.50.0.11/16"}, "Gateway": "10.50.0.254/16", "Pool": "10.50.0.0/16"}], "IPv6Data": []}""";

    /// <summary>internal.jsonl: --internal --attachable.</summary>
    public static string CreateInternalNetwork(string networkId, string pool = "10.124.0.0/24", string gateway = "10.124.0.1/24") =>
        $$$"""{"NetworkID": "{{{networkId}}}", "Options": {"com.docker.network.enable_ipv6": false, "com.docker.network.generic": {}, "com.docker.network.internal": true}, "IPv4Data": [{"AddressSpace": "rec-local", "Gateway": "{{{gateway}}}", "Pool": "{{{pool}}}"}], "IPv6Data": []}""";

    /// <summary>ipv6.jsonl: dual stack.</summary>
    public static string CreateDualStackNetwork(string networkId) =>
        $$$"""{"NetworkID": "{{{networkId}}}", "Options": {"com.docker.network.enable_ipv6": true, "com.docker.network.generic": {}}, "IPv4Data": [{"AddressSpace": "rec-local", "Gateway": "10.60.0.1/24", "Pool": "10.60.0.0/24"}], "IPv6Data": [{"AddressSpace": "rec-local", "Gateway": "fd60::1/64", "Pool": "fd60::/64"}]}""";

    public static string CreateEndpoint(string networkId, string endpointId, string address = "10.123.0.2/24", string mac = "02:42:45:9b:78:95", string addressV6 = "", string ports = "[]", string exposed = "[]") =>
        $$$"""{"NetworkID": "{{{networkId}}}", "EndpointID": "{{{endpointId}}}", "Interface": {"Address": "{{{address}}}", "AddressIPv6": "{{{addressV6}}}", "MacAddress": "{{{mac}}}"}, "Options": {"com.docker.network.endpoint.exposedports": {{{exposed}}}, "com.docker.network.portmap": {{{ports}}}}}""";

    public static string Join(string networkId, string endpointId, string ports = "[]", string exposed = "[]") =>
        $$$"""{"NetworkID": "{{{networkId}}}", "EndpointID": "{{{endpointId}}}", "SandboxKey": "/tmp/dk/exec/netns/eb0db9e3f78e", "Options": {"com.docker.network.endpoint.exposedports": {{{exposed}}}, "com.docker.network.portmap": {{{ports}}}}}""";

    public static string ProgramExternalConnectivity(string networkId, string endpointId, string ports = "[]", string exposed = "[]") =>
        $$$"""{"NetworkID": "{{{networkId}}}", "EndpointID": "{{{endpointId}}}", "Options": {"com.docker.network.endpoint.exposedports": {{{exposed}}}, "com.docker.network.portmap": {{{ports}}}}}""";

    public static string Endpoint(string networkId, string endpointId) =>
        $$$"""{"NetworkID": "{{{networkId}}}", "EndpointID": "{{{endpointId}}}"}""";

    public static string NetworkBody(string networkId) => $$$"""{"NetworkID": "{{{networkId}}}"}""";

    /// <summary>options.jsonl: -p 18081:80 -p 18082:53/udp.</summary>
    public const string PublishedPorts = """[{"Proto": 6, "IP": "", "Port": 80, "HostIP": "", "HostPort": 18081, "HostPortEnd": 18081}, {"Proto": 17, "IP": "", "Port": 53, "HostIP": "", "HostPort": 18082, "HostPortEnd": 18082}]""";
    public const string ExposedPorts = """[{"Proto": 6, "Port": 80}, {"Proto": 17, "Port": 53}]""";
}
