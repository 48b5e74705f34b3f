namespace Skein.Ipam.Protocol;

/// <summary>Option keys the engine and users put into IPAM requests (libnetwork ipamapi/labels.go, netlabel).</summary>
public static class IpamLabels
{
    /// <summary>RequestAddress option whose value <see cref="GatewayRequest"/> marks the network gateway request.</summary>
    public const string RequestAddressType = "RequestAddressType";
    public const string GatewayRequest = "com.docker.network.gateway";
    /// <summary>The endpoint's MAC (colon form), sent because skein declares RequiresMACAddress.</summary>
    public const string MacAddress = "com.docker.network.endpoint.macaddress";
    /// <summary>Swarm manager requests carry this; informational only.</summary>
    public const string Serial = "com.docker.network.ipam.serial";
    /// <summary>--ipam-opt naming the logical network a pool belongs to (decisions #1, #5).</summary>
    public const string NetworkName = "skein.network";
    /// <summary>RequestPool reply Data key that imposes a gateway; skein leaves it out so the engine asks.</summary>
    public const string GatewayData = "com.docker.network.gateway";
}
