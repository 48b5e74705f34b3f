using System.Net;
using System.Net.NetworkInformation;

namespace Skein.Driver.Netlink;

/// <summary>
/// A bridge forwarding-database entry (AF_BRIDGE neighbour). On a VXLAN device it maps a MAC to the
/// remote VTEP <see cref="Destination"/>; the all-zeros MAC is the flood entry (BUM traffic goes to
/// every such destination).
/// </summary>
public sealed record FdbEntry(int Index, PhysicalAddress MacAddress, IPAddress? Destination)
{
    public static readonly PhysicalAddress FloodMac = new(new byte[6]);

    /// <summary>NTF_SELF: the entry lives in the device's own table (VXLAN).</summary>
    public bool Self { get; init; } = true;

    /// <summary>NTF_MASTER: the entry lives in the master bridge's table.</summary>
    public bool Master { get; init; }

    /// <summary>NUD_PERMANENT (else NUD_NOARP only, i.e. "static" in bridge-fdb terms... see iproute2).</summary>
    public bool Permanent { get; init; } = true;

    /// <summary>NDA_VNI: remote VNI when it differs from the device's.</summary>
    public int? Vni { get; init; }

    /// <summary>NDA_PORT: remote UDP port when it differs from the device's.</summary>
    public ushort? Port { get; init; }

    /// <summary>NDA_VLAN.</summary>
    public int? Vlan { get; init; }

    /// <summary>NDA_MASTER as reported by a dump (the bridge holding a master entry).</summary>
    public int? MasterIndex { get; init; }

    public bool IsFloodEntry => MacAddress.Equals(FloodMac);
}

/// <summary>What <see cref="RtNetlink.SyncFdb"/> changed.</summary>
public readonly record struct FdbSyncResult(int Added, int Removed, int Replaced)
{
    public int Changes => Added + Removed + Replaced;
}
