namespace Skein.Ipam.Protocol;

/// <summary>IpamDriver.ReleasePool; the reply is an empty object.</summary>
public sealed record ReleasePoolRequest
{
    public string? PoolID { get; init; }
}
