using Skein.Ipam.Addressing;

namespace Skein.Ipam.Allocation;

/// <summary>
/// Key layout of cluster-store §4.5 under the configured root. An empty root means the store itself applies the
/// root (the Consul and etcd backends do); the embedded store, shared with the driver's host-local records, does not.
/// </summary>
internal sealed class StoreKeys(string root, string nodeId)
{
    public string Root { get; } = root.Trim('/');

    /// <summary>The root followed by '/', or nothing when the store applies the root.</summary>
    private string P => Root.Length == 0 ? "" : Root + "/";

    public static string SpaceSegment(string space) => space.ToLowerInvariant();

    public string Space(string space) => $"{P}spaces/{SpaceSegment(space)}";
    public string Pools => $"{P}pools/";
    public string Pool(string space, IpPrefix pool) => $"{P}pools/{SpaceSegment(space)}/{pool.ToKeySegment()}";
    public string PoolName(string space, string net) => $"{P}poolnames/{SpaceSegment(space)}/{net}";
    public string BlocksOf(string space, IpPrefix pool) => $"{P}blocks/{SpaceSegment(space)}/{pool.ToKeySegment()}/";
    public string Block(string space, IpPrefix pool, IpPrefix block) => BlocksOf(space, pool) + block.ToKeySegment();
    public string MyAffinitiesOf(string space, IpPrefix pool) => AffinitiesOf(nodeId, space, pool);
    public string AffinitiesOf(string node, string space, IpPrefix pool) => $"{P}affinity/{node}/{SpaceSegment(space)}/{pool.ToKeySegment()}/";
    public string Affinity(string node, string space, IpPrefix pool, IpPrefix block) => AffinitiesOf(node, space, pool) + block.ToKeySegment();

    public string Blocks => $"{P}blocks/";
    public string Networks => $"{P}networks/";
    public string Nodes => $"{P}nodes/";
    public string Node(string node) => Nodes + node;
    public string NodeInfos => $"{P}nodeinfo/";
    public string NodeInfo(string node) => NodeInfos + node;
    public string GcLeader => $"{P}gc/leader";
    public string Affinities => $"{P}affinity/";
    /// <summary>Every affinity entry of one node, across spaces and pools.</summary>
    public string AffinitiesOfNode(string node) => $"{P}affinity/{node}/";

    /// <summary>The last segment of a key.</summary>
    public static string LastSegment(string key) => key[(key.LastIndexOf('/') + 1)..];
}
