using System.Net;
using System.Net.Sockets;

namespace Skein.Driver.Firewall;

/// <summary>
/// One published port, as Docker's PortBinding: host port <paramref name="HostPort"/> (through
/// <paramref name="HostPortEnd"/> when that is larger; 0 means a single port) forwards to
/// <paramref name="ContainerPort"/>. A <paramref name="HostIP"/> restricts which host address accepts it;
/// null or an unspecified address means all of them. The caller resolves an ephemeral host port (0) first.
/// </summary>
public sealed record PortMapping(
    ProtocolType Protocol,
    ushort ContainerPort,
    ushort HostPort,
    ushort HostPortEnd,
    IPAddress? HostIP);
