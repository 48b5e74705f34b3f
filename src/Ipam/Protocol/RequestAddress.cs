using System.Text.Json.Serialization;

namespace Skein.Ipam.Protocol;

/// <summary>
/// IpamDriver.RequestAddress. Address is a bare IP or empty; Options tell a gateway request
/// (RequestAddressType) from an aux reservation (no options) from an endpoint (MAC option).
/// </summary>
public sealed record RequestAddressRequest
{
    public string? PoolID { get; init; }
    public string? Address { get; init; }
    [JsonConverter(typeof(OptionsMapConverter))]
    public Dictionary<string, string>? Options { get; init; }
}

/// <summary>Address is "ip/prefixlen" with the pool's prefix length; a bare IP is a parse error in the engine.</summary>
public sealed record RequestAddressResponse
{
    public string Address { get; init; } = "";
    public Dictionary<string, string> Data { get; init; } = [];
}
