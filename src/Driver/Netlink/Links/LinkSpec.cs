using System.Net.NetworkInformation;
using System.Text;
using Skein.Driver.Netlink.Wire;

namespace Skein.Driver.Netlink;

/// <summary>
/// What to create: the attributes every link kind shares. Each kind (bridge, veth, vxlan, dummy,
/// macvlan) is a record in its own file that adds its settings and knows how to encode and decode them.
/// </summary>
public abstract record LinkSpec(string Name)
{
    /// <summary>IFNAMSIZ - 1.</summary>
    public const int MaxNameLength = 15;

    public int? Mtu { get; init; }
    public PhysicalAddress? MacAddress { get; init; }
    public int? MasterIndex { get; init; }
    public bool Up { get; init; }

    /// <summary>IFLA_INFO_KIND, e.g. "vxlan".</summary>
    public abstract string Kind { get; }

    /// <summary>Top-level attributes a kind needs besides IFLA_LINKINFO (macvlan's parent in IFLA_LINK).</summary>
    internal virtual void WriteLinkAttributes(AttributeWriter<LinkAttribute> link) { }

    /// <summary>Writes IFLA_INFO_DATA (and anything else inside IFLA_LINKINFO) for this kind.</summary>
    internal virtual void WriteInfoData(AttributeWriter<LinkInfoAttribute> info) { }

    /// <summary>Refuses bad settings before anything is sent, naming what is wrong.</summary>
    internal virtual void Validate()
    {
        ValidateName(Name, nameof(Name));
        if (Mtu is < 68 or > 65535) throw new ArgumentOutOfRangeException(nameof(Mtu), Mtu, $"MTU of link '{Name}' must be between 68 and 65535");
        if (MasterIndex is <= 0) throw new ArgumentOutOfRangeException(nameof(MasterIndex), MasterIndex, $"master index of link '{Name}' must be positive");
        if (MacAddress is { } mac) ValidateMac(mac, nameof(MacAddress));
    }

    /// <summary>The kernel's dev_valid_name rules, checked here so the error names the field.</summary>
    internal static void ValidateName(string name, string parameter)
    {
        if (string.IsNullOrEmpty(name)) throw new ArgumentException("a link name must not be empty", parameter);
        if (Encoding.UTF8.GetByteCount(name) > MaxNameLength)
            throw new ArgumentException($"link name '{name}' is longer than {MaxNameLength} bytes", parameter);
        if (name is "." or "..") throw new ArgumentException($"'{name}' is not a valid link name", parameter);
        foreach (char c in name)
            if (c == '/' || c == ':' || char.IsWhiteSpace(c) || char.IsControl(c))
                throw new ArgumentException($"link name '{name}' contains '{c}' (no '/', ':' or whitespace allowed)", parameter);
    }

    internal static void ValidateMac(PhysicalAddress mac, string parameter)
    {
        if (mac.GetAddressBytes().Length != 6) throw new ArgumentException($"MAC address {mac} must have 6 bytes", parameter);
    }
}

/// <summary>A link as the kernel reports it. <see cref="Details"/> holds the decoded kind-specific settings.</summary>
public sealed record Link(int Index, string Name, string? Kind, int Mtu, PhysicalAddress? MacAddress, int? MasterIndex, bool IsUp, LinkSpec? Details)
{
    /// <summary>IFLA_LINK: the lower device (VXLAN underlay, macvlan parent, veth peer).</summary>
    public int? ParentIndex { get; init; }

    /// <summary>IFLA_LINK_NETNSID: set when <see cref="ParentIndex"/> lives in another namespace.</summary>
    public int? ParentNamespaceId { get; init; }

    /// <summary>IFLA_INFO_SLAVE_KIND, e.g. "bridge" for a bridge port.</summary>
    public string? PortKind { get; init; }

    /// <summary>IFF_* flags (ifi_flags).</summary>
    public uint Flags { get; init; }

    /// <summary>IFLA_OPERSTATE (RFC 2863: 6 = up, 2 = down, 0 = unknown...).</summary>
    public byte OperationalState { get; init; }
}
