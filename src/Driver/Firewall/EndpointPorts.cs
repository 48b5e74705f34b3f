using System.Net;

namespace Skein.Driver.Firewall;

/// <summary>An endpoint's published ports, with the bridge it hangs off and the addresses Docker gave it.</summary>
public sealed record EndpointPorts(
    string EndpointId,
    string BridgeName,
    IPAddress? ContainerIPv4,
    IPAddress? ContainerIPv6,
    IReadOnlyList<PortMapping> Ports);
