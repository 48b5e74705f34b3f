using Skein.Driver.Netlink.Wire;

namespace Skein.Driver.Netlink;

/// <summary>A Linux bridge. STP is written explicitly (off unless asked); VLAN filtering is off unless asked.</summary>
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

    internal override void Validate()
    {
        base.Validate();
        if (AgeingTimeCentiseconds is < 0) throw new ArgumentOutOfRangeException(nameof(AgeingTimeCentiseconds), AgeingTimeCentiseconds, $"ageing time of bridge '{Name}' must not be negative");
        if (ForwardDelayCentiseconds is < 0) throw new ArgumentOutOfRangeException(nameof(ForwardDelayCentiseconds), ForwardDelayCentiseconds, $"forward delay of bridge '{Name}' must not be negative");
    }

    internal override void WriteInfoData(AttributeWriter<LinkInfoAttribute> info)
    {
        using var data = info.BeginNest<BridgeAttribute>(LinkInfoAttribute.Data);
        if (ForwardDelayCentiseconds is { } delay) data.WriteUInt32(BridgeAttribute.ForwardDelay, (uint)delay);
        if (AgeingTimeCentiseconds is { } ageing) data.WriteUInt32(BridgeAttribute.AgeingTime, (uint)ageing);
        data.WriteUInt32(BridgeAttribute.StpState, StpEnabled ? 1u : 0u);
        // Off is the kernel's default, and a kernel built without CONFIG_BRIDGE_VLAN_FILTERING
        // refuses the attribute (EOPNOTSUPP) even with value 0, so it is only sent to turn it on.
        if (VlanFiltering) data.WriteUInt8(BridgeAttribute.VlanFiltering, 1);
        if (MulticastSnooping is { } snooping) data.WriteBool(BridgeAttribute.MulticastSnooping, snooping);
    }

    internal static BridgeSpec Decode(string name, ReadOnlySpan<byte> data)
    {
        var spec = new BridgeSpec(name);
        var reader = new AttributeReader<BridgeAttribute>(data);
        while (reader.Next(out var id, out var value))
        {
            spec = id switch
            {
                BridgeAttribute.ForwardDelay => spec with { ForwardDelayCentiseconds = (int)AttributeValue.UInt32(value) },
                BridgeAttribute.AgeingTime => spec with { AgeingTimeCentiseconds = (int)AttributeValue.UInt32(value) },
                BridgeAttribute.StpState => spec with { StpEnabled = AttributeValue.UInt32(value) != 0 },
                BridgeAttribute.VlanFiltering => spec with { VlanFiltering = AttributeValue.Bool(value) },
                BridgeAttribute.MulticastSnooping => spec with { MulticastSnooping = AttributeValue.Bool(value) },
                _ => spec,
            };
        }
        return spec;
    }
}

/// <summary>IFLA_BR_* inside IFLA_INFO_DATA of a bridge.</summary>
internal enum BridgeAttribute : ushort
{
    ForwardDelay = 1,
    HelloTime = 2,
    MaxAge = 3,
    AgeingTime = 4,
    StpState = 5,
    Priority = 6,
    VlanFiltering = 7,
    MulticastSnooping = 23,
}
