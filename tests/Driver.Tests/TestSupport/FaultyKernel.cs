using Skein.Driver.Netlink;
using Skein.Driver.Network.Kernel;

namespace Skein.Driver.Tests.TestSupport;

/// <summary>
/// The real kernel with one chosen operation made to fail, as a refusal from the kernel would: proves that a
/// failed step undoes the steps before it. <see cref="FailWhen"/> sees the operation name and the link name.
/// </summary>
public sealed class FaultyKernel(IHostKernel inner) : IHostKernel
{
    public Func<string, string?, bool> FailWhen { get; set; } = (_, _) => false;
    public int Failures { get; private set; }

    private void Check(string operation, string? link)
    {
        if (FailWhen(operation, link))
        {
            Failures++;
            throw new NetlinkException(95, $"{operation} {link} (injected by the test)", "injected failure");
        }
    }

    private string? NameOf(int index) => inner.ListLinks().FirstOrDefault(l => l.Index == index)?.Name;

    public Link? GetLink(string name) => inner.GetLink(name);
    public IReadOnlyList<Link> ListLinks() => inner.ListLinks();
    public void AddLink(LinkSpec spec) { Check(nameof(AddLink), spec.Name); inner.AddLink(spec); }
    public bool DeleteLink(string name) { Check(nameof(DeleteLink), name); return inner.DeleteLink(name); }
    public void SetLinkUp(int index) { Check(nameof(SetLinkUp), NameOf(index)); inner.SetLinkUp(index); }
    public void SetMtu(int index, int mtu) { Check(nameof(SetMtu), NameOf(index)); inner.SetMtu(index, mtu); }
    public void SetMaster(int index, int masterIndex) { Check(nameof(SetMaster), NameOf(index)); inner.SetMaster(index, masterIndex); }
    public bool GetHairpin(int index) => inner.GetHairpin(index);
    public void SetHairpin(int index, bool on) { Check(nameof(SetHairpin), NameOf(index)); inner.SetHairpin(index, on); }
    public IReadOnlyList<AddressInfo> ListAddresses(int index) => inner.ListAddresses(index);
    public void AddAddress(int index, IpPrefix address, AddressFlags flags) { Check(nameof(AddAddress), NameOf(index)); inner.AddAddress(index, address, flags); }
    public void DeleteAddress(int index, IpPrefix address) { Check(nameof(DeleteAddress), NameOf(index)); inner.DeleteAddress(index, address); }
    public void SetIPv4DeviceConf(int index, IPv4DeviceConf key, int value) { Check(nameof(SetIPv4DeviceConf), NameOf(index)); inner.SetIPv4DeviceConf(index, key, value); }
    public int GetIPv4DeviceConf(int index, IPv4DeviceConf key) => inner.GetIPv4DeviceConf(index, key);
    public string? TryReadSysctl(string key) => inner.TryReadSysctl(key);
    public IReadOnlyList<AddressInfo> ListAllAddresses() => inner.ListAllAddresses();
    public BridgePortSettings GetBridgePortSettings(int index) => inner.GetBridgePortSettings(index);
    public void SetBridgePortSettings(int index, BridgePortSettings settings) { Check(nameof(SetBridgePortSettings), NameOf(index)); inner.SetBridgePortSettings(index, settings); }
    public IPv6AddressGenerationMode? GetIPv6AddressGenerationMode(int index) => inner.GetIPv6AddressGenerationMode(index);
    public void SetIPv6AddressGenerationMode(int index, IPv6AddressGenerationMode mode) { Check(nameof(SetIPv6AddressGenerationMode), NameOf(index)); inner.SetIPv6AddressGenerationMode(index, mode); }
    public IReadOnlyList<FdbEntry> ListFdb(int index) => inner.ListFdb(index);
    public void AppendFdb(FdbEntry entry) { Check(nameof(AppendFdb), NameOf(entry.Index)); inner.AppendFdb(entry); }
    public void ReplaceFdb(FdbEntry entry) { Check(nameof(ReplaceFdb), NameOf(entry.Index)); inner.ReplaceFdb(entry); }
    public bool DeleteFdb(FdbEntry entry) { Check(nameof(DeleteFdb), NameOf(entry.Index)); return inner.DeleteFdb(entry); }
    public IReadOnlyList<Neighbor> ListNeighbors(int index) => inner.ListNeighbors(index);
    public void ReplaceNeighbor(Neighbor neighbor) { Check(nameof(ReplaceNeighbor), NameOf(neighbor.Index)); inner.ReplaceNeighbor(neighbor); }
    public bool DeleteNeighbor(Neighbor neighbor) { Check(nameof(DeleteNeighbor), NameOf(neighbor.Index)); return inner.DeleteNeighbor(neighbor); }
    public IReadOnlyList<ClsactQdisc> ListClsactQdiscs() { Check(nameof(ListClsactQdiscs), null); return inner.ListClsactQdiscs(); }
    public void AddClsactQdisc(int index, uint ingressBlock) { Check(nameof(AddClsactQdisc), NameOf(index)); inner.AddClsactQdisc(index, ingressBlock); }
    public bool DeleteClsactQdisc(int index) { Check(nameof(DeleteClsactQdisc), NameOf(index)); return inner.DeleteClsactQdisc(index); }
    public IReadOnlyList<MacRedirectFilter> ListFilters(FilterAttachment at) { Check(nameof(ListFilters), at.ToString()); return inner.ListFilters(at); }
    public void AddMacRedirect(FilterAttachment at, MacRedirectFilter filter, uint hashTable) { Check(nameof(AddMacRedirect), at.ToString()); inner.AddMacRedirect(at, filter, hashTable); }
    public void AddMacHashTable(FilterAttachment at, ushort priority, uint table) { Check(nameof(AddMacHashTable), at.ToString()); inner.AddMacHashTable(at, priority, table); }
    public bool DeleteFilterPriority(FilterAttachment at, ushort priority, ushort protocol) { Check(nameof(DeleteFilterPriority), at.ToString()); return inner.DeleteFilterPriority(at, priority, protocol); }
    public bool DeleteFilter(FilterAttachment at, MacRedirectFilter filter) { Check(nameof(DeleteFilter), at.ToString()); return inner.DeleteFilter(at, filter); }
    public void Dispose() => inner.Dispose();
}
