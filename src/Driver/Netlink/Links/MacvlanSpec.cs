using Skein.Driver.Netlink.Wire;

namespace Skein.Driver.Netlink;

/// <summary>MACVLAN_MODE_* (linux/if_link.h).</summary>
public enum MacvlanMode : uint
{
    Private = 1,
    Vepa = 2,
    Bridge = 4,
    Passthru = 8,
    Source = 16,
}

/// <summary>A macvlan device on top of <see cref="ParentIndex"/> (sent as IFLA_LINK).</summary>
public sealed record MacvlanSpec(string Name, int ParentIndex) : LinkSpec(Name)
{
    public override string Kind => "macvlan";

    public MacvlanMode Mode { get; init; } = MacvlanMode.Bridge;

    internal override void Validate()
    {
        base.Validate();
        if (ParentIndex <= 0) throw new ArgumentOutOfRangeException(nameof(ParentIndex), ParentIndex, $"parent index of macvlan '{Name}' must be positive");
        if (!Enum.IsDefined(Mode)) throw new ArgumentOutOfRangeException(nameof(Mode), Mode, $"unknown macvlan mode for '{Name}'");
    }

    internal override void WriteLinkAttributes(AttributeWriter<LinkAttribute> link) =>
        link.WriteUInt32(LinkAttribute.Link, (uint)ParentIndex);

    internal override void WriteInfoData(AttributeWriter<LinkInfoAttribute> info)
    {
        using var data = info.BeginNest<MacvlanAttribute>(LinkInfoAttribute.Data);
        data.WriteUInt32(MacvlanAttribute.Mode, (uint)Mode);
    }

    internal static MacvlanSpec Decode(string name, int? parentIndex, ReadOnlySpan<byte> data)
    {
        var spec = new MacvlanSpec(name, parentIndex ?? 0);
        var reader = new AttributeReader<MacvlanAttribute>(data);
        while (reader.Next(out var id, out var value))
            if (id == MacvlanAttribute.Mode) spec = spec with { Mode = (MacvlanMode)AttributeValue.UInt32(value) };
        return spec;
    }
}

/// <summary>IFLA_MACVLAN_* inside IFLA_INFO_DATA of a macvlan.</summary>
internal enum MacvlanAttribute : ushort
{
    Mode = 1,
    Flags = 2,
}
