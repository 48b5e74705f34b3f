using System.Net;

namespace Skein.Driver.Netlink;

/// <summary>rtm_protocol values (who installed the route).</summary>
public enum RouteProtocol : byte
{
    Unspecified = 0,
    Redirect = 1,
    Kernel = 2,
    /// <summary>What `ip route add` uses by default.</summary>
    Boot = 3,
    Static = 4,
}

/// <summary>rtm_type values.</summary>
public enum RouteType : byte
{
    Unspecified = 0,
    Unicast = 1,
    Local = 2,
    Broadcast = 3,
    Anycast = 4,
    Multicast = 5,
    Blackhole = 6,
    Unreachable = 7,
    Prohibit = 8,
}

/// <summary>A route in one table (main = 254 by default).</summary>
public sealed record Route(IpPrefix Destination)
{
    public const int MainTable = 254;
    public const int LocalTable = 255;

    public IPAddress? Gateway { get; init; }

    /// <summary>RTA_OIF: the output device index.</summary>
    public int? OutputIndex { get; init; }

    /// <summary>Null = what `ip route` picks: link scope for a device route without a gateway, universe otherwise.</summary>
    public RouteScope? Scope { get; init; }

    /// <summary>RTA_PRIORITY.</summary>
    public int? Metric { get; init; }

    public int Table { get; init; } = MainTable;

    /// <summary>Null = boot, as `ip route add` does.</summary>
    public RouteProtocol? Protocol { get; init; }

    public RouteType Type { get; init; } = RouteType.Unicast;

    /// <summary>RTA_PREFSRC: the source address preferred for traffic on this route.</summary>
    public IPAddress? PreferredSource { get; init; }

    /// <summary>Route MTU (RTA_METRICS/RTAX_MTU); null leaves it unset.</summary>
    public int? Mtu { get; init; }

    /// <summary>RTNH_F_ONLINK: the gateway is reachable on the device even if no address says so.</summary>
    public bool OnLink { get; init; }
}
