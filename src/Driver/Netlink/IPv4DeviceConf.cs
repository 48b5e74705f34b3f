namespace Skein.Driver.Netlink;

/// <summary>
/// IPV4_DEVCONF_* ids (linux/ip.h): the per-device IPv4 settings that netlink can set through
/// IFLA_AF_SPEC → AF_INET → IFLA_INET_CONF (the same values as /proc/sys/net/ipv4/conf/DEV/*).
/// </summary>
public enum IPv4DeviceConf
{
    Forwarding = 1,
    MulticastForwarding = 2,
    ProxyArp = 3,
    AcceptRedirects = 4,
    SecureRedirects = 5,
    SendRedirects = 6,
    SharedMedia = 7,
    ReversePathFilter = 8,
    AcceptSourceRoute = 9,
    BootpRelay = 10,
    LogMartians = 11,
    Tag = 12,
    ArpFilter = 13,
    MediumId = 14,
    NoXfrm = 15,
    NoPolicy = 16,
    ForceIgmpVersion = 17,
    ArpAnnounce = 18,
    ArpIgnore = 19,
    PromoteSecondaries = 20,
    ArpAccept = 21,
    ArpNotify = 22,
    AcceptLocal = 23,
    SourceValidMark = 24,
    ProxyArpPrivateVlan = 25,
    RouteLocalnet = 26,
}

/// <summary>
/// IN6_ADDR_GEN_MODE_* (IFLA_INET6_ADDR_GEN_MODE): how a link makes its IPv6 link-local address. None keeps a
/// link that only carries frames (a VXLAN bridge port) from sending DAD, MLD and router solicitations of its own.
/// </summary>
public enum IPv6AddressGenerationMode : byte
{
    Eui64 = 0,
    None = 1,
    StablePrivacy = 2,
    Random = 3,
}
