using System.Net;
using Skein.Ipam.Addressing;

namespace Skein.Ipam.Allocation;

/// <summary>What the network driver needs to know about a pool the IPAM holds.</summary>
/// <param name="PoolId">"&lt;Space&gt;/&lt;pool&gt;" (without any sub-pool).</param>
/// <param name="AddressSpace">The address space as the engine named it.</param>
/// <param name="Pool">The pool's CIDR.</param>
/// <param name="SubPools">Sub-pools (--ip-range) the pool's users asked for.</param>
/// <param name="Gateway">The agreed gateway, once one was requested.</param>
/// <param name="NetworkName">--ipam-opt skein.network, else a name derived from the pool (decision #5).</param>
/// <param name="NameIsExplicit">True when the name came from --ipam-opt skein.network.</param>
/// <param name="Users">Node ids holding a claim on the pool.</param>
/// <param name="HeldByThisNode">Whether this node is one of them.</param>
/// <param name="ChosenByIpam">True when the IPAM picked the pool for a request with no subnet and no name (host-local, decisions #1).</param>
public sealed record PoolInfo(
    string PoolId,
    string AddressSpace,
    IpPrefix Pool,
    IReadOnlyList<IpPrefix> SubPools,
    IPAddress? Gateway,
    string NetworkName,
    bool NameIsExplicit,
    IReadOnlyList<string> Users,
    bool HeldByThisNode,
    bool ChosenByIpam = false);
