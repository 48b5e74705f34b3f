using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;

namespace Skein.Driver.Netlink;

/// <summary>
/// A NETLINK_ROUTE handle bound to one network namespace. All requests go through one socket,
/// serialised by a lock, so a handle may be shared between threads.
/// </summary>
public sealed partial class RtNetlink : IDisposable
{
    public static RtNetlink Open() => throw new NotImplementedException();
    public static RtNetlink OpenNamespace(string path) => throw new NotImplementedException();
    public static RtNetlink OpenNamespace(int nsFd) => throw new NotImplementedException();
    public string? NamespacePath => throw new NotImplementedException();
    public void Dispose() => throw new NotImplementedException();

    public void AddLink(LinkSpec spec) => throw new NotImplementedException();
    public void DeleteLink(string name) => throw new NotImplementedException();
    public void DeleteLink(int index) => throw new NotImplementedException();
    public Link? GetLink(string name) => throw new NotImplementedException();
    public Link? GetLink(int index) => throw new NotImplementedException();
    public IReadOnlyList<Link> ListLinks() => throw new NotImplementedException();
    public void SetLinkUp(int index) => throw new NotImplementedException();
    public void SetLinkDown(int index) => throw new NotImplementedException();
    public void SetMtu(int index, int mtu) => throw new NotImplementedException();
    public void SetMacAddress(int index, PhysicalAddress mac) => throw new NotImplementedException();
    public void SetMaster(int index, int masterIndex) => throw new NotImplementedException();
    public void SetNoMaster(int index) => throw new NotImplementedException();
    public void Rename(int index, string newName) => throw new NotImplementedException();
    public void MoveToNamespace(int index, int nsFd) => throw new NotImplementedException();

    public void AddAddress(int index, IpPrefix address, AddressFlags flags = AddressFlags.None) => throw new NotImplementedException();
    public void DeleteAddress(int index, IpPrefix address) => throw new NotImplementedException();
    public IReadOnlyList<AddressInfo> ListAddresses(int? index = null, AddressFamily? family = null) => throw new NotImplementedException();

    public void AddRoute(Route route) => throw new NotImplementedException();
    public void ReplaceRoute(Route route) => throw new NotImplementedException();
    public void DeleteRoute(Route route) => throw new NotImplementedException();
    public IReadOnlyList<Route> ListRoutes(AddressFamily family, int table = 254) => throw new NotImplementedException();

    public void AddNeighbor(Neighbor n) => throw new NotImplementedException();
    public void ReplaceNeighbor(Neighbor n) => throw new NotImplementedException();
    public void DeleteNeighbor(Neighbor n) => throw new NotImplementedException();
    public IReadOnlyList<Neighbor> ListNeighbors(int? index = null, AddressFamily? family = null) => throw new NotImplementedException();

    public void AppendFdb(FdbEntry e) => throw new NotImplementedException();
    public void ReplaceFdb(FdbEntry e) => throw new NotImplementedException();
    public void DeleteFdb(FdbEntry e) => throw new NotImplementedException();
    public IReadOnlyList<FdbEntry> ListFdb(int? index = null) => throw new NotImplementedException();

    public void SetBridgePortFlags(int index, BridgePortSettings settings) => throw new NotImplementedException();
    public BridgePortSettings GetBridgePortFlags(int index) => throw new NotImplementedException();

    public void SetIPv4DeviceConf(int index, IPv4DeviceConf key, int value) => throw new NotImplementedException();
    public int GetIPv4DeviceConf(int index, IPv4DeviceConf key) => throw new NotImplementedException();

    /// <summary>Reads a sysctl (e.g. "net.ipv6.conf.eth0.disable_ipv6") as seen from this handle's namespace.</summary>
    public string ReadSysctl(string key) => throw new NotImplementedException();
    public void WriteSysctl(string key, string value) => throw new NotImplementedException();
}
