using System.Net.NetworkInformation;
using System.Net.Sockets;
using Skein.Driver.Netlink.Messages;
using Skein.Driver.Netlink.Wire;
using Tmds.Linux;

namespace Skein.Driver.Netlink;

/// <summary>
/// A NETLINK_ROUTE handle bound to one network namespace. All requests go through one socket,
/// serialised by a lock, so a handle may be shared between threads. A handle opened in another
/// namespace stays there: its socket was created inside it, and nothing switches a running thread.
/// Kernel refusals throw <see cref="NetlinkException"/>; socket failures and time-outs
/// <see cref="NetlinkTransportException"/>; bad arguments are refused before anything is sent.
/// </summary>
public sealed partial class RtNetlink : IDisposable
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(10);

    // Requests are small (the largest, a veth with a peer, is under 200 bytes).
    private const int RequestBufferSize = 1024;

    private readonly NetlinkSocket _socket;
    private readonly int _namespaceFd; // -1 for the namespace the handle was opened in by Open()

    private RtNetlink(NetlinkSocket socket, int namespaceFd, string? namespacePath)
    {
        _socket = socket;
        _namespaceFd = namespaceFd;
        NamespacePath = namespacePath;
    }

    /// <summary>A handle in the calling thread's network namespace.</summary>
    public static RtNetlink Open() => Open(DefaultTimeout);

    public static RtNetlink Open(TimeSpan timeout) => new(NetlinkSocket.Create(timeout), -1, null);

    /// <summary>A handle inside the namespace at <paramref name="path"/> (/var/run/netns/X, a Docker SandboxKey, /proc/PID/ns/net).</summary>
    public static RtNetlink OpenNamespace(string path) => OpenNamespace(path, DefaultTimeout);

    public static RtNetlink OpenNamespace(string path, TimeSpan timeout)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        int fd = NetlinkNative.OpenNetworkNamespace(path);
        if (fd < 0)
        {
            int errno = NetlinkNative.LastErrno;
            throw new NetlinkTransportException($"open network namespace {path}", "open failed", errno);
        }
        try
        {
            var socket = NetworkNamespaceThread.Run(fd, $"open network namespace {path}", () => NetlinkSocket.Create(timeout));
            return new RtNetlink(socket, fd, path);
        }
        catch
        {
            LibC.close(fd);
            throw;
        }
    }

    /// <summary>A handle inside the namespace of <paramref name="nsFd"/>; the handle keeps its own duplicate of the fd.</summary>
    public static RtNetlink OpenNamespace(int nsFd) => OpenNamespace(nsFd, DefaultTimeout);

    public static RtNetlink OpenNamespace(int nsFd, TimeSpan timeout)
    {
        if (nsFd < 0) throw new ArgumentOutOfRangeException(nameof(nsFd), nsFd, "namespace fd must not be negative");
        int fd = LibC.fcntl(nsFd, LibC.F_DUPFD_CLOEXEC, 0);
        if (fd < 0) throw new NetlinkTransportException($"open network namespace fd {nsFd}", "fcntl(F_DUPFD_CLOEXEC) failed", NetlinkNative.LastErrno);
        try
        {
            var socket = NetworkNamespaceThread.Run(fd, $"open network namespace fd {nsFd}", () => NetlinkSocket.Create(timeout));
            return new RtNetlink(socket, fd, null);
        }
        catch
        {
            LibC.close(fd);
            throw;
        }
    }

    /// <summary>The path the handle was opened from; null for <see cref="Open()"/> and fd-opened handles.</summary>
    public string? NamespacePath { get; }

    public void Dispose()
    {
        _socket.Dispose();
        if (_namespaceFd >= 0) LibC.close(_namespaceFd);
    }

    // ---- links ----

    public void AddLink(LinkSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        spec.Validate();
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        _socket.Execute($"add link {spec.Name} ({spec.Kind})", LinkMessages.Add(buffer, spec));
    }

    public void DeleteLink(string name)
    {
        LinkSpec.ValidateName(name, nameof(name));
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        _socket.Execute($"delete link {name}", LinkMessages.Delete(buffer, name));
    }

    public void DeleteLink(int index)
    {
        RequireIndex(index, nameof(index));
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        _socket.Execute($"delete link {index}", LinkMessages.Delete(buffer, index));
    }

    /// <summary>The link, or null when there is none of that name.</summary>
    public Link? GetLink(string name)
    {
        LinkSpec.ValidateName(name, nameof(name));
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        return GetOrNull($"get link {name}", LinkMessages.Get(buffer, name));
    }

    /// <summary>The link, or null when there is none with that index.</summary>
    public Link? GetLink(int index)
    {
        RequireIndex(index, nameof(index));
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        return GetOrNull($"get link {index}", LinkMessages.Get(buffer, index));
    }

    /// <summary>All links; a veth's peer name is filled in when the peer is in this namespace.</summary>
    public IReadOnlyList<Link> ListLinks()
    {
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        var links = _socket.Dump("list links", LinkMessages.Dump(buffer), LinkMessages.Decoder);
        var names = links.ToDictionary(l => l.Index, l => l.Name);
        for (int i = 0; i < links.Count; i++)
        {
            if (links[i] is { Details: VethSpec veth, ParentNamespaceId: null } link && veth.PeerIndex is { } peer && names.TryGetValue(peer, out var peerName))
                links[i] = link with { Details = veth with { PeerName = peerName } };
        }
        return links;
    }

    public void SetLinkUp(int index) => SetUp(index, true);

    public void SetLinkDown(int index) => SetUp(index, false);

    public void SetMtu(int index, int mtu)
    {
        RequireIndex(index, nameof(index));
        if (mtu is < 68 or > 65535) throw new ArgumentOutOfRangeException(nameof(mtu), mtu, "MTU must be between 68 and 65535");
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        _socket.Execute($"set mtu {mtu} on link {index}", LinkMessages.SetMtu(buffer, index, mtu));
    }

    public void SetMacAddress(int index, PhysicalAddress mac)
    {
        RequireIndex(index, nameof(index));
        ArgumentNullException.ThrowIfNull(mac);
        LinkSpec.ValidateMac(mac, nameof(mac));
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        _socket.Execute($"set address {mac} on link {index}", LinkMessages.SetMac(buffer, index, mac));
    }

    public void SetMaster(int index, int masterIndex)
    {
        RequireIndex(index, nameof(index));
        RequireIndex(masterIndex, nameof(masterIndex));
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        _socket.Execute($"set master {masterIndex} on link {index}", LinkMessages.SetMaster(buffer, index, masterIndex));
    }

    public void SetNoMaster(int index)
    {
        RequireIndex(index, nameof(index));
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        _socket.Execute($"release link {index} from its master", LinkMessages.SetMaster(buffer, index, 0));
    }

    public void Rename(int index, string newName)
    {
        RequireIndex(index, nameof(index));
        LinkSpec.ValidateName(newName, nameof(newName));
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        _socket.Execute($"rename link {index} to {newName}", LinkMessages.Rename(buffer, index, newName));
    }

    public void MoveToNamespace(int index, int nsFd)
    {
        RequireIndex(index, nameof(index));
        if (nsFd < 0) throw new ArgumentOutOfRangeException(nameof(nsFd), nsFd, "namespace fd must not be negative");
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        _socket.Execute($"move link {index} to namespace fd {nsFd}", LinkMessages.SetNamespace(buffer, index, nsFd));
    }

    private void SetUp(int index, bool up)
    {
        RequireIndex(index, nameof(index));
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        _socket.Execute($"set link {index} {(up ? "up" : "down")}", LinkMessages.SetUp(buffer, index, up));
    }

    private Link? GetOrNull(string operation, Span<byte> request)
    {
        try
        {
            return _socket.Get(operation, request, LinkMessages.Decoder);
        }
        catch (NetlinkException e) when (e.Errno == Errnos.ENODEV)
        {
            return null;
        }
    }

    // ---- addresses ----

    public void AddAddress(int index, IpPrefix address, AddressFlags flags = AddressFlags.None)
    {
        RequireIndex(index, nameof(index));
        RequirePrefix(address, nameof(address));
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        _socket.Execute($"add address {address} to link {index}", AddressMessages.Add(buffer, index, address, flags));
    }

    public void DeleteAddress(int index, IpPrefix address)
    {
        RequireIndex(index, nameof(index));
        RequirePrefix(address, nameof(address));
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        _socket.Execute($"delete address {address} from link {index}", AddressMessages.Delete(buffer, index, address));
    }

    public IReadOnlyList<AddressInfo> ListAddresses(int? index = null, AddressFamily? family = null)
    {
        byte kernelFamily = family is { } f ? KernelAddressFamily.From(f) : KernelAddressFamily.Unspecified;
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        var addresses = _socket.Dump("list addresses", AddressMessages.Dump(buffer, kernelFamily), AddressMessages.Decoder);
        addresses.RemoveAll(a => !AddressMessages.Matches(a, index, family));
        return addresses;
    }

    // ---- routes ----

    public void AddRoute(Route route)
    {
        RouteMessages.Validate(route);
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        _socket.Execute($"add route {route.Destination} (table {route.Table})", RouteMessages.Add(buffer, route));
    }

    public void ReplaceRoute(Route route)
    {
        RouteMessages.Validate(route);
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        _socket.Execute($"replace route {route.Destination} (table {route.Table})", RouteMessages.Replace(buffer, route));
    }

    public void DeleteRoute(Route route)
    {
        RouteMessages.Validate(route);
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        _socket.Execute($"delete route {route.Destination} (table {route.Table})", RouteMessages.Delete(buffer, route));
    }

    public IReadOnlyList<Route> ListRoutes(AddressFamily family, int table = Route.MainTable)
    {
        byte kernelFamily = KernelAddressFamily.From(family);
        if (kernelFamily == KernelAddressFamily.Unspecified) throw new ArgumentOutOfRangeException(nameof(family), family, "list routes of IPv4 or IPv6");
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        var routes = _socket.Dump($"list routes (table {table})", RouteMessages.Dump(buffer, kernelFamily), RouteMessages.Decoder);
        routes.RemoveAll(r => r.Table != table);
        return routes;
    }

    // ---- neighbours ----

    public void AddNeighbor(Neighbor n)
    {
        NeighborMessages.Validate(n, needsMac: true);
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        _socket.Execute($"add neighbour {n.Address} on link {n.Index}", NeighborMessages.Add(buffer, n));
    }

    public void ReplaceNeighbor(Neighbor n)
    {
        NeighborMessages.Validate(n, needsMac: true);
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        _socket.Execute($"replace neighbour {n.Address} on link {n.Index}", NeighborMessages.Replace(buffer, n));
    }

    public void DeleteNeighbor(Neighbor n)
    {
        NeighborMessages.Validate(n, needsMac: false);
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        _socket.Execute($"delete neighbour {n.Address} on link {n.Index}", NeighborMessages.Delete(buffer, n));
    }

    public IReadOnlyList<Neighbor> ListNeighbors(int? index = null, AddressFamily? family = null)
    {
        var neighbors = new List<Neighbor>();
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        // One dump per IP family: an AF_UNSPEC neighbour dump would include the bridge FDB too.
        foreach (var f in family is { } only ? [only] : new[] { AddressFamily.InterNetwork, AddressFamily.InterNetworkV6 })
        {
            byte kernelFamily = KernelAddressFamily.From(f);
            if (kernelFamily == KernelAddressFamily.Unspecified) throw new ArgumentOutOfRangeException(nameof(family), family, "list neighbours of IPv4 or IPv6");
            neighbors.AddRange(_socket.Dump("list neighbours", NeighborMessages.Dump(buffer, kernelFamily), NeighborMessages.Decoder));
        }
        if (index is { } i) neighbors.RemoveAll(n => n.Index != i);
        return neighbors;
    }

    // ---- bridge FDB ----

    /// <summary>Adds an entry alongside existing ones for the same MAC (how several flood destinations coexist).</summary>
    public void AppendFdb(FdbEntry e)
    {
        FdbMessages.Validate(e);
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        _socket.Execute($"append fdb {e.MacAddress} dst {e.Destination} on link {e.Index}", FdbMessages.Append(buffer, e));
    }

    /// <summary>Adds an entry that must not exist yet (CREATE|EXCL).</summary>
    public void AddFdb(FdbEntry e)
    {
        FdbMessages.Validate(e);
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        _socket.Execute($"add fdb {e.MacAddress} dst {e.Destination} on link {e.Index}", FdbMessages.Add(buffer, e));
    }

    public void ReplaceFdb(FdbEntry e)
    {
        FdbMessages.Validate(e);
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        _socket.Execute($"replace fdb {e.MacAddress} dst {e.Destination} on link {e.Index}", FdbMessages.Replace(buffer, e));
    }

    public void DeleteFdb(FdbEntry e)
    {
        FdbMessages.Validate(e);
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        _socket.Execute($"delete fdb {e.MacAddress} dst {e.Destination} on link {e.Index}", FdbMessages.Delete(buffer, e));
    }

    public IReadOnlyList<FdbEntry> ListFdb(int? index = null)
    {
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        var entries = _socket.Dump("list fdb", FdbMessages.Dump(buffer), FdbMessages.Decoder);
        if (index is { } i) entries.RemoveAll(e => e.Index != i);
        return entries;
    }

    /// <summary>
    /// Makes the device's own remote entries (NTF_SELF with a destination: MAC → VTEP, including
    /// flood entries) exactly <paramref name="desired"/>, from one dump. The all-zeros and multicast
    /// MACs may list several destinations (appended one by one); a unicast MAC has one, so a changed
    /// destination is replaced in place. Bridge (master) entries are left alone.
    /// </summary>
    public FdbSyncResult SyncFdb(int index, IEnumerable<FdbEntry> desired)
    {
        RequireIndex(index, nameof(index));
        ArgumentNullException.ThrowIfNull(desired);
        var wanted = new Dictionary<(PhysicalAddress, System.Net.IPAddress), FdbEntry>();
        var unicastDestination = new Dictionary<PhysicalAddress, System.Net.IPAddress>();
        foreach (var entry in desired)
        {
            if (entry.Destination is null || !entry.Self || entry.Master)
                throw new ArgumentException($"FDB sync handles the device's own remote entries: {entry.MacAddress} needs a destination and Self only", nameof(desired));
            var normalised = entry with { Index = index };
            FdbMessages.Validate(normalised);
            if (!IsFloodOrMulticast(normalised.MacAddress)
                && unicastDestination.TryGetValue(normalised.MacAddress, out var other) && !other.Equals(normalised.Destination))
                throw new ArgumentException($"FDB sync: unicast MAC {normalised.MacAddress} cannot go to both {other} and {normalised.Destination}", nameof(desired));
            if (!IsFloodOrMulticast(normalised.MacAddress)) unicastDestination[normalised.MacAddress] = normalised.Destination!;
            wanted[(normalised.MacAddress, normalised.Destination!)] = normalised;
        }

        var present = new HashSet<(PhysicalAddress, System.Net.IPAddress)>();
        var unicastPresent = new HashSet<PhysicalAddress>();
        int added = 0, removed = 0, replaced = 0;
        foreach (var entry in ListFdb(index))
        {
            if (!entry.Self || entry.Destination is null) continue;
            var key = (entry.MacAddress, entry.Destination);
            if (wanted.ContainsKey(key))
            {
                present.Add(key);
                continue;
            }
            if (!IsFloodOrMulticast(entry.MacAddress) && unicastDestination.ContainsKey(entry.MacAddress))
            {
                unicastPresent.Add(entry.MacAddress); // moved to another VTEP: replaced below
                continue;
            }
            DeleteFdb(entry with { Master = false, Vni = null, Port = null, Vlan = null });
            removed++;
        }
        foreach (var (key, entry) in wanted)
        {
            if (present.Contains(key)) continue;
            if (unicastPresent.Contains(entry.MacAddress))
            {
                ReplaceFdb(entry);
                replaced++;
            }
            else
            {
                AppendFdb(entry);
                added++;
            }
        }
        return new FdbSyncResult(added, removed, replaced);
    }

    private static bool IsFloodOrMulticast(PhysicalAddress mac)
    {
        var bytes = mac.GetAddressBytes();
        return (bytes[0] & 1) != 0 || bytes.All(b => b == 0);
    }

    // ---- bridge port flags ----

    /// <summary>
    /// Sets the flags given (null ones are left alone). Reads the port first: a flag the kernel does
    /// not report is one it does not know, and asking for it throws <see cref="NotSupportedException"/>
    /// instead of being silently ignored by an older kernel.
    /// </summary>
    public void SetBridgePortFlags(int index, BridgePortSettings settings)
    {
        RequireIndex(index, nameof(index));
        ArgumentNullException.ThrowIfNull(settings);
        var requested = BridgePortMessages.Requested(settings).ToList();
        if (requested.Count == 0) return;
        var reported = GetBridgePortFlags(index);
        var unsupported = requested.Where(r => !BridgePortMessages.IsReported(reported, r.Attribute)).Select(r => r.Attribute).ToList();
        if (unsupported.Count > 0)
            throw new NotSupportedException($"this kernel does not support bridge port flag(s) {string.Join(", ", unsupported)} (link {index})");
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        _socket.Execute($"set bridge port flags on link {index}", BridgePortMessages.Set(buffer, index, settings));
    }

    /// <summary>The port's flags as the kernel reports them; throws <see cref="ArgumentException"/> if the link is not a bridge port.</summary>
    public BridgePortSettings GetBridgePortFlags(int index)
    {
        RequireIndex(index, nameof(index));
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        var ports = _socket.Dump("list bridge ports", BridgePortMessages.Dump(buffer), BridgePortMessages.Decoder);
        foreach (var (portIndex, settings) in ports)
            if (portIndex == index) return settings;
        throw new ArgumentException($"link {index} is not a bridge port", nameof(index));
    }

    // ---- per-device IPv4 settings ----

    public void SetIPv4DeviceConf(int index, IPv4DeviceConf key, int value)
    {
        RequireIndex(index, nameof(index));
        if (!Enum.IsDefined(key)) throw new ArgumentOutOfRangeException(nameof(key), key, "unknown IPv4 device setting");
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        _socket.Execute($"set ipv4 {key}={value} on link {index}", DeviceConfigurationMessages.SetIPv4(buffer, index, key, value));
    }

    public int GetIPv4DeviceConf(int index, IPv4DeviceConf key)
    {
        RequireIndex(index, nameof(index));
        if (!Enum.IsDefined(key)) throw new ArgumentOutOfRangeException(nameof(key), key, "unknown IPv4 device setting");
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        int? value = _socket.Get($"get ipv4 {key} of link {index}", LinkMessages.Get(buffer, index),
            (in ReceivedMessage message, out int? result) =>
            {
                result = message.Type == MessageType.NewLink ? DeviceConfigurationMessages.ReadIPv4(message, key) : null;
                return message.Type == MessageType.NewLink;
            });
        return value ?? throw new NotSupportedException($"link {index} reports no IPv4 configuration (IFLA_INET_CONF)");
    }

    /// <summary>How the link makes its IPv6 link-local address (`ip link set DEV addrgenmode none|eui64|...`).</summary>
    public void SetIPv6AddressGenerationMode(int index, IPv6AddressGenerationMode mode)
    {
        RequireIndex(index, nameof(index));
        if (!Enum.IsDefined(mode)) throw new ArgumentOutOfRangeException(nameof(mode), mode, "unknown IPv6 address generation mode");
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        _socket.Execute($"set ipv6 addrgenmode {mode} on link {index}", DeviceConfigurationMessages.SetIPv6AddressGenerationMode(buffer, index, mode));
    }

    /// <summary>The link's IPv6 address generation mode; null when the link reports no IPv6 data (IPv6 off for it).</summary>
    public IPv6AddressGenerationMode? GetIPv6AddressGenerationMode(int index)
    {
        RequireIndex(index, nameof(index));
        Span<byte> buffer = stackalloc byte[RequestBufferSize];
        return _socket.Get($"get ipv6 addrgenmode of link {index}", LinkMessages.Get(buffer, index),
            (in ReceivedMessage message, out IPv6AddressGenerationMode? result) =>
            {
                result = message.Type == MessageType.NewLink ? DeviceConfigurationMessages.ReadIPv6AddressGenerationMode(message) : null;
                return message.Type == MessageType.NewLink;
            });
    }

    // ---- sysctl ----

    /// <summary>Reads a sysctl (e.g. "net.ipv6.conf.eth0.disable_ipv6") as seen from this handle's namespace.</summary>
    public string ReadSysctl(string key) => _namespaceFd < 0 ? Sysctl.Read(key) : Sysctl.Read(key, _namespaceFd);

    /// <summary>Writes a sysctl in this handle's namespace (fails where /proc/sys is read-only, e.g. in a managed plugin).</summary>
    public void WriteSysctl(string key, string value)
    {
        if (_namespaceFd < 0) Sysctl.Write(key, value);
        else Sysctl.Write(key, value, _namespaceFd);
    }

    private static void RequireIndex(int index, string parameter)
    {
        if (index <= 0) throw new ArgumentOutOfRangeException(parameter, index, "link index must be positive");
    }

    private static void RequirePrefix(IpPrefix prefix, string parameter)
    {
        if (prefix.Address is null) throw new ArgumentException("address is missing", parameter);
    }
}
