using Skein.Ipam.Addressing;

namespace Skein.Ipam.Allocation;

/// <summary>Key layout of cluster-store §4.5 under the configured root.</summary>
internal sealed class StoreKeys(string root, string nodeId)
{
    public string Root { get; } = root.TrimEnd('/');

    public static string SpaceSegment(string space) => space.ToLowerInvariant();

    public string Space(string space) => $"{Root}/spaces/{SpaceSegment(space)}";
    public string Pools => $"{Root}/pools/";
    public string Pool(string space, IpPrefix pool) => $"{Root}/pools/{SpaceSegment(space)}/{pool.ToKeySegment()}";
    public string PoolName(string space, string net) => $"{Root}/poolnames/{SpaceSegment(space)}/{net}";
    public string BlocksOf(string space, IpPrefix pool) => $"{Root}/blocks/{SpaceSegment(space)}/{pool.ToKeySegment()}/";
    public string Block(string space, IpPrefix pool, IpPrefix block) => BlocksOf(space, pool) + block.ToKeySegment();
    public string MyAffinitiesOf(string space, IpPrefix pool) => AffinitiesOf(nodeId, space, pool);
    public string AffinitiesOf(string node, string space, IpPrefix pool) => $"{Root}/affinity/{node}/{SpaceSegment(space)}/{pool.ToKeySegment()}/";
    public string Affinity(string node, string space, IpPrefix pool, IpPrefix block) => AffinitiesOf(node, space, pool) + block.ToKeySegment();

    public string Blocks => $"{Root}/blocks/";
    public string Networks => $"{Root}/networks/";
    public string Nodes => $"{Root}/nodes/";
    public string Node(string node) => Nodes + node;
    public string NodeInfos => $"{Root}/nodeinfo/";
    public string NodeInfo(string node) => NodeInfos + node;
    public string GcLeader => $"{Root}/gc/leader";
    public string Affinities => $"{Root}/affinity/";
    /// <summary>Every affinity entry of one node, across spaces and pools.</summary>
    public string AffinitiesOfNode(string node) => $"{Root}/affinity/{node}/";

    /// <summary>The last segment of a key.</summary>
    public static string LastSegment(string key) => key[(key.LastIndexOf('/') + 1)..];
}
