namespace Skein.Driver.Netlink;

/// <summary>A Linux bridge. VLAN filtering and STP are written explicitly (off unless asked).</summary>
public sealed record BridgeSpec(string Name) : LinkSpec(Name)
{
    public override string Kind => "bridge";

    public bool VlanFiltering { get; init; }
    public bool StpEnabled { get; init; }

    /// <summary>FDB ageing time in centiseconds (kernel default 30000 = 300 s).</summary>
    public int? AgeingTimeCentiseconds { get; init; }

    /// <summary>Forward delay in centiseconds.</summary>
    public int? ForwardDelayCentiseconds { get; init; }

    public bool? MulticastSnooping { get; init; }
}
