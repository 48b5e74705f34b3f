using System.Text.Json.Serialization;

namespace Skein.Ipam.Protocol;

/// <summary>IpamDriver.RequestPool. Pool = --subnet (empty: the IPAM chooses), SubPool = --ip-range, Options = --ipam-opt.</summary>
public sealed record RequestPoolRequest
{
    public string? AddressSpace { get; init; }
    public string? Pool { get; init; }
    public string? SubPool { get; init; }
    [JsonConverter(typeof(OptionsMapConverter))]
    public Dictionary<string, string>? Options { get; init; }
    public bool V6 { get; init; }
}

public sealed record RequestPoolResponse
{
    public string PoolID { get; init; } = "";
    public string Pool { get; init; } = "";
    public Dictionary<string, string> Data { get; init; } = [];
}
