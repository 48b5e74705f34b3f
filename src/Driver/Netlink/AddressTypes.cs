using System.Net;

namespace Skein.Driver.Netlink;

/// <summary>IFA_F_* address flags (linux/if_addr.h). Values above 0xff travel in IFA_FLAGS.</summary>
[Flags]
public enum AddressFlags : uint
{
    None = 0,
    Secondary = 0x01,
    /// <summary>Skip duplicate address detection: use on IPv6 addresses that several hosts share (e.g. a distributed gateway).</summary>
    NoDad = 0x02,
    Optimistic = 0x04,
    DadFailed = 0x08,
    HomeAddress = 0x10,
    Deprecated = 0x20,
    Tentative = 0x40,
    Permanent = 0x80,
    ManageTemporaryAddress = 0x100,
    NoPrefixRoute = 0x200,
    MulticastAutoJoin = 0x400,
    StablePrivacy = 0x800,
}

/// <summary>rtm_scope / ifa_scope values (linux/rtnetlink.h, enum rt_scope_t).</summary>
public enum RouteScope : byte
{
    Universe = 0,
    Site = 200,
    Link = 253,
    Host = 254,
    Nowhere = 255,
}

/// <summary>An address as the kernel reports it.</summary>
public sealed record AddressInfo(int Index, IpPrefix Address, RouteScope Scope, AddressFlags Flags)
{
    /// <summary>IFA_LABEL (IPv4 only), e.g. "eth0:1".</summary>
    public string? Label { get; init; }

    /// <summary>IFA_ADDRESS when it differs from IFA_LOCAL (the peer of a point-to-point address).</summary>
    public IPAddress? Peer { get; init; }
}
