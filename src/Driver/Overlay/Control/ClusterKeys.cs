namespace Skein.Driver.Overlay.Control;

/// <summary>
/// The multi-host keys of cluster-store §4.5 under the store's root: the network registry (networks/, vnis/), the
/// per-network peer lists (peers/) and node presence (nodes/). Segments are already store-safe: logical names are
/// [a-z0-9-], node ids [a-z0-9-], endpoint ids [a-z0-9].
/// </summary>
public sealed class ClusterKeys(string root)
{
    public string Root { get; } = root.Trim('/');

    /// <summary>The root followed by '/', or nothing when the store applies the root (Consul, etcd).</summary>
    private string P => Root.Length == 0 ? "" : Root + "/";

    public string Network(string net) => $"{P}networks/{net}";
    public string Vni(int vni) => $"{P}vnis/{vni}";
    public string Node(string node) => $"{P}nodes/{node}";
    /// <summary>peers/&lt;net&gt;/: the one prefix each host watches per logical network.</summary>
    public string PeersOf(string net) => $"{P}peers/{net}/";
    public string PeerNode(string net, string node) => PeersOf(net) + node;
    public string PeerEndpoint(string net, string node, string endpointId) => $"{PeersOf(net)}{node}/{endpointId}";

    /// <summary>Splits a key under <see cref="PeersOf"/> into (node, endpoint id or null); null for anything else.</summary>
    public (string Node, string? EndpointId)? ParsePeerKey(string net, string key)
    {
        var prefix = PeersOf(net);
        if (!key.StartsWith(prefix, StringComparison.Ordinal))
            return null;
        var parts = key[prefix.Length..].Split('/');
        return parts switch
        {
            [var node] when node.Length > 0 => (node, null),
            [var node, var eid] when node.Length > 0 && eid.Length > 0 => (node, eid),
            _ => null,
        };
    }
}
