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

/// <summary>A macvlan device on top of <see cref="ParentIndex"/>.</summary>
public sealed record MacvlanSpec(string Name, int ParentIndex) : LinkSpec(Name)
{
    public override string Kind => "macvlan";

    public MacvlanMode Mode { get; init; } = MacvlanMode.Bridge;
}
