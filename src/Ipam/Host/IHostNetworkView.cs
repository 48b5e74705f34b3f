using Skein.Ipam.Addressing;

namespace Skein.Ipam.Host;

/// <summary>A network this host already reaches directly, so a default pool must not overlap it.</summary>
/// <param name="Prefix">The network.</param>
/// <param name="Source">Where it comes from, for error messages: "on-link route 10.0.0.0/8 dev eth0", "nameserver 10.1.2.3 in /etc/resolv.conf".</param>
public sealed record HostReservedNetwork(IpPrefix Prefix, string Source);

/// <summary>
/// What the host's own configuration reserves: on-link routes and resolv.conf nameservers, the
/// same inputs as Docker's netutils.InferReservedNetworks. Read on each pool choice (routes change).
/// </summary>
public interface IHostNetworkView
{
    IReadOnlyList<HostReservedNetwork> GetReservedNetworks(bool v6);
}
