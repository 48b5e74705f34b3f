using Skein.Driver.Netlink;

namespace Skein.Driver.Network.Kernel;

/// <summary>
/// The slice of rtnetlink the bridge driver uses, in the namespace skein programs. It exists so that tests can
/// wrap the real kernel and make one step fail, proving that a half-done creation is undone.
/// </summary>
public interface IHostKernel : IDisposable
{
    Link? GetLink(string name);
    IReadOnlyList<Link> ListLinks();
    void AddLink(LinkSpec spec);
    /// <summary>False when no such link existed: deleting what is gone is success for the driver.</summary>
    bool DeleteLink(string name);
    void SetLinkUp(int index);
    void SetMtu(int index, int mtu);
    void SetMaster(int index, int masterIndex);
    /// <summary>Whether the bridge sends a frame back out of the port it came in on (a container reaching its own published port).</summary>
    bool GetHairpin(int index);
    void SetHairpin(int index, bool on);
    IReadOnlyList<AddressInfo> ListAddresses(int index);
    void AddAddress(int index, IpPrefix address, AddressFlags flags);
    void DeleteAddress(int index, IpPrefix address);
    void SetIPv4DeviceConf(int index, IPv4DeviceConf key, int value);
    int GetIPv4DeviceConf(int index, IPv4DeviceConf key);
    /// <summary>A sysctl as seen from the programmed namespace, or null when it cannot be read.</summary>
    string? TryReadSysctl(string key);

    // The VXLAN data plane (Overlay/Dataplane): underlay lookup, bridge port flags, FDB and neighbour entries.

    /// <summary>Every address of every link, from one dump.</summary>
    IReadOnlyList<AddressInfo> ListAllAddresses();
    /// <summary>The bridge port flags as the kernel reports them; throws <see cref="ArgumentException"/> when the link is no bridge port.</summary>
    BridgePortSettings GetBridgePortSettings(int index);
    /// <summary>Sets the flags that are not null; a flag the kernel does not know throws <see cref="NotSupportedException"/>.</summary>
    void SetBridgePortSettings(int index, BridgePortSettings settings);
    /// <summary>Null when the link reports no IPv6 data (IPv6 off for it).</summary>
    IPv6AddressGenerationMode? GetIPv6AddressGenerationMode(int index);
    void SetIPv6AddressGenerationMode(int index, IPv6AddressGenerationMode mode);
    /// <summary>The FDB entries reported for one link (its own and its master bridge's), from one dump.</summary>
    IReadOnlyList<FdbEntry> ListFdb(int index);
    void AppendFdb(FdbEntry entry);
    void ReplaceFdb(FdbEntry entry);
    /// <summary>False when no such entry existed.</summary>
    bool DeleteFdb(FdbEntry entry);
    /// <summary>The IPv4 and IPv6 neighbour entries of one link (one dump per family).</summary>
    IReadOnlyList<Neighbor> ListNeighbors(int index);
    void ReplaceNeighbor(Neighbor neighbor);
    /// <summary>False when no such entry existed.</summary>
    bool DeleteNeighbor(Neighbor neighbor);

    // The bridge bypass of multi-host networks (Overlay/Dataplane/OverlayDataplane.Bypass.cs): tc clsact and
    // destination-MAC redirect filters.

    /// <summary>Every link's clsact qdisc, from one dump.</summary>
    IReadOnlyList<ClsactQdisc> ListClsactQdiscs();
    /// <summary>Adds a clsact qdisc whose ingress runs shared block <paramref name="ingressBlock"/> (0: its own filters).</summary>
    void AddClsactQdisc(int index, uint ingressBlock);
    /// <summary>False when the link had no clsact qdisc.</summary>
    bool DeleteClsactQdisc(int index);
    IReadOnlyList<MacRedirectFilter> ListFilters(FilterAttachment at);
    /// <summary>With a nonzero <paramref name="hashTable"/>, into that table's bucket for the MAC's last byte.</summary>
    void AddMacRedirect(FilterAttachment at, MacRedirectFilter filter, uint hashTable);
    /// <summary>A 256-bucket table keyed on the destination MAC's last byte, with the root node that links to it.</summary>
    void AddMacHashTable(FilterAttachment at, ushort priority, uint table);
    /// <summary>False when no such filter existed.</summary>
    bool DeleteFilter(FilterAttachment at, MacRedirectFilter filter);
    /// <summary>False when there were no filters of that priority.</summary>
    bool DeleteFilterPriority(FilterAttachment at, ushort priority, ushort protocol);
}

/// <summary>The real kernel, through one rtnetlink handle opened in the programmed namespace.</summary>
public sealed class RtNetlinkKernel(RtNetlink handle) : IHostKernel
{
    public static RtNetlinkKernel Open(string? namespacePath) =>
        new(namespacePath is null ? RtNetlink.Open() : RtNetlink.OpenNamespace(namespacePath));

    public Link? GetLink(string name) => handle.GetLink(name);
    public IReadOnlyList<Link> ListLinks() => handle.ListLinks();
    public void AddLink(LinkSpec spec) => handle.AddLink(spec);

    public bool DeleteLink(string name) => Existed(() => handle.DeleteLink(name));

    public void SetLinkUp(int index) => handle.SetLinkUp(index);
    public void SetMtu(int index, int mtu) => handle.SetMtu(index, mtu);
    public void SetMaster(int index, int masterIndex) => handle.SetMaster(index, masterIndex);
    public bool GetHairpin(int index) => handle.GetBridgePortFlags(index).Hairpin == true;
    public void SetHairpin(int index, bool on) => handle.SetBridgePortFlags(index, new BridgePortSettings { Hairpin = on });
    public IReadOnlyList<AddressInfo> ListAddresses(int index) => handle.ListAddresses(index);
    public void AddAddress(int index, IpPrefix address, AddressFlags flags) => handle.AddAddress(index, address, flags);
    public void DeleteAddress(int index, IpPrefix address) => handle.DeleteAddress(index, address);
    public void SetIPv4DeviceConf(int index, IPv4DeviceConf key, int value) => handle.SetIPv4DeviceConf(index, key, value);
    public int GetIPv4DeviceConf(int index, IPv4DeviceConf key) => handle.GetIPv4DeviceConf(index, key);

    public string? TryReadSysctl(string key)
    {
        try
        {
            return handle.ReadSysctl(key).Trim();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or NetlinkException or InvalidOperationException)
        {
            return null;
        }
    }

    public IReadOnlyList<AddressInfo> ListAllAddresses() => handle.ListAddresses();
    public BridgePortSettings GetBridgePortSettings(int index) => handle.GetBridgePortFlags(index);
    public void SetBridgePortSettings(int index, BridgePortSettings settings) => handle.SetBridgePortFlags(index, settings);
    public IPv6AddressGenerationMode? GetIPv6AddressGenerationMode(int index) => handle.GetIPv6AddressGenerationMode(index);
    public void SetIPv6AddressGenerationMode(int index, IPv6AddressGenerationMode mode) => handle.SetIPv6AddressGenerationMode(index, mode);
    public IReadOnlyList<FdbEntry> ListFdb(int index) => handle.ListFdb(index);
    public void AppendFdb(FdbEntry entry) => handle.AppendFdb(entry);
    public void ReplaceFdb(FdbEntry entry) => handle.ReplaceFdb(entry);

    public bool DeleteFdb(FdbEntry entry) => Existed(() => handle.DeleteFdb(entry));

    public IReadOnlyList<Neighbor> ListNeighbors(int index) => handle.ListNeighbors(index);
    public void ReplaceNeighbor(Neighbor neighbor) => handle.ReplaceNeighbor(neighbor);

    public bool DeleteNeighbor(Neighbor neighbor) => Existed(() => handle.DeleteNeighbor(neighbor));

    public IReadOnlyList<ClsactQdisc> ListClsactQdiscs() => handle.ListClsactQdiscs();
    public void AddClsactQdisc(int index, uint ingressBlock) => handle.AddClsactQdisc(index, ingressBlock);

    // The kernel answers EINVAL ("Cannot find specified qdisc on specified device") when there is none.
    public bool DeleteClsactQdisc(int index) => Existed(() => handle.DeleteClsactQdisc(index), alsoWhen: Errnos.EINVAL);

    public IReadOnlyList<MacRedirectFilter> ListFilters(FilterAttachment at) => handle.ListFilters(at);
    public void AddMacRedirect(FilterAttachment at, MacRedirectFilter filter, uint hashTable) => handle.AddMacRedirect(at, filter, hashTable);
    public void AddMacHashTable(FilterAttachment at, ushort priority, uint table) => handle.AddMacHashTable(at, priority, table);

    public bool DeleteFilterPriority(FilterAttachment at, ushort priority, ushort protocol) => Existed(() => handle.DeleteFilterPriority(at, priority, protocol));

    public bool DeleteFilter(FilterAttachment at, MacRedirectFilter filter) => Existed(() => handle.DeleteFilter(at, filter));

    public void Dispose() => handle.Dispose();

    /// <summary>Runs a delete; false when the kernel says there was nothing to delete (deleting what is gone is success).</summary>
    private static bool Existed(Action delete, int? alsoWhen = null)
    {
        try
        {
            delete();
            return true;
        }
        catch (NetlinkException ex) when (ex.IsNotFound || ex.Errno == alsoWhen)
        {
            return false;
        }
    }
}
