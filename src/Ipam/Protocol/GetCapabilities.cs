namespace Skein.Ipam.Protocol;

/// <summary>Reply to IpamDriver.GetCapabilities (the request has an empty body). Go: ipams/remote/api GetCapabilityResponse.</summary>
public sealed record GetCapabilitiesResponse
{
    public bool RequiresMACAddress { get; init; }
    public bool RequiresRequestReplay { get; init; }
}
