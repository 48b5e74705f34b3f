namespace Skein.Ipam.Protocol;

/// <summary>Reply to IpamDriver.GetDefaultAddressSpaces (the request has an empty body).</summary>
public sealed record GetAddressSpacesResponse
{
    public string LocalDefaultAddressSpace { get; init; } = "";
    public string GlobalDefaultAddressSpace { get; init; } = "";
}
