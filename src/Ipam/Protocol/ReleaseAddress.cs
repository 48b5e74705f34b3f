namespace Skein.Ipam.Protocol;

/// <summary>IpamDriver.ReleaseAddress; Address is a bare IP. The reply is an empty object.</summary>
public sealed record ReleaseAddressRequest
{
    public string? PoolID { get; init; }
    public string? Address { get; init; }
}
