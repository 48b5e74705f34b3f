using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;

namespace Skein.Driver.Overlay.Dataplane;

/// <summary>
/// The kernel entries a <see cref="PeerView"/> asks for on one device, worked out before the kernel is touched:
/// flood destinations (remote VTEPs), unicast MAC → VTEP, and IP → MAC for the bridge's neighbour table. Entries
/// that cannot be programmed are left out and described in <see cref="Skipped"/>: a VTEP of the wrong family or
/// this host's own, a MAC that is not unicast, one MAC behind two VTEPs, one IP claimed by two MACs. The store
/// is shared by many hosts, so one bad record must not keep the others from being programmed.
/// </summary>
internal sealed class DesiredPeerState
{
    public HashSet<IPAddress> FloodVteps { get; } = [];
    public Dictionary<PhysicalAddress, IPAddress> UnicastVteps { get; } = [];
    public Dictionary<IPAddress, PhysicalAddress> Neighbors { get; } = [];
    public List<string> Skipped { get; } = [];

    public static DesiredPeerState From(OverlayDevice device, PeerView view)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(view);
        ArgumentNullException.ThrowIfNull(view.RemoteVteps, nameof(view.RemoteVteps));
        ArgumentNullException.ThrowIfNull(view.Endpoints, nameof(view.Endpoints));
        var state = new DesiredPeerState();

        foreach (var vtep in view.RemoteVteps)
        {
            if (VtepProblem(vtep, device) is { } problem)
                state.Skipped.Add($"flood destination {vtep?.ToString() ?? "(null)"}: {problem}");
            else
                state.FloodVteps.Add(vtep!);
        }

        var macConflicts = new HashSet<PhysicalAddress>();
        var ipConflicts = new HashSet<IPAddress>();
        var accepted = new List<RemoteEndpoint>();
        foreach (var endpoint in view.Endpoints)
        {
            if (EndpointProblem(endpoint, device) is { } problem)
            {
                state.Skipped.Add($"endpoint {Describe(endpoint)}: {problem}");
                continue;
            }
            if (state.UnicastVteps.TryGetValue(endpoint.Mac, out var otherVtep) && !otherVtep.Equals(endpoint.Vtep))
                macConflicts.Add(endpoint.Mac);
            else
                state.UnicastVteps[endpoint.Mac] = endpoint.Vtep;
            foreach (var ip in Addresses(endpoint))
            {
                if (state.Neighbors.TryGetValue(ip, out var otherMac) && !otherMac.Equals(endpoint.Mac))
                    ipConflicts.Add(ip);
                else
                    state.Neighbors[ip] = endpoint.Mac;
            }
            accepted.Add(endpoint);
        }

        foreach (var mac in macConflicts)
        {
            var vteps = accepted.Where(e => e.Mac.Equals(mac)).Select(e => e.Vtep).Distinct().Order(AddressOrder.Instance);
            state.Skipped.Add($"MAC {Format(mac)} is announced behind several VTEPs ({string.Join(", ", vteps)})");
            state.UnicastVteps.Remove(mac);
            foreach (var (ip, neighborMac) in state.Neighbors.ToList())
                if (neighborMac.Equals(mac)) state.Neighbors.Remove(ip);
        }
        foreach (var ip in ipConflicts)
        {
            var macs = accepted.Where(e => Addresses(e).Contains(ip)).Select(e => Format(e.Mac)).Distinct().Order(StringComparer.Ordinal);
            state.Skipped.Add($"address {ip} is announced with several MACs ({string.Join(", ", macs)})");
            state.Neighbors.Remove(ip);
        }
        return state;
    }

    public static string Format(PhysicalAddress mac) =>
        string.Join(':', mac.GetAddressBytes().Select(b => b.ToString("x2", System.Globalization.CultureInfo.InvariantCulture)));

    private static IEnumerable<IPAddress> Addresses(RemoteEndpoint endpoint)
    {
        if (endpoint.IPv4 is { } v4) yield return v4;
        if (endpoint.IPv6 is { } v6) yield return v6;
    }

    private static string Describe(RemoteEndpoint? endpoint) =>
        endpoint is null ? "(null)" : $"{(endpoint.Mac is null ? "(no MAC)" : Format(endpoint.Mac))} at {endpoint.Vtep?.ToString() ?? "(no VTEP)"}";

    private static string? VtepProblem(IPAddress? vtep, OverlayDevice device)
    {
        if (vtep is null) return "no address";
        if (vtep.AddressFamily != device.LocalVtep.AddressFamily)
            return $"the local VTEP {device.LocalVtep} is {FamilyName(device.LocalVtep)}, this one is {FamilyName(vtep)}";
        if (vtep.Equals(device.LocalVtep)) return "this is the local VTEP";
        if (IPAddress.Any.Equals(vtep) || IPAddress.IPv6Any.Equals(vtep) || IsMulticast(vtep)) return "not a unicast address";
        return null;
    }

    private static string? EndpointProblem(RemoteEndpoint? endpoint, OverlayDevice device)
    {
        if (endpoint is null) return "missing";
        if (endpoint.Mac is null) return "no MAC";
        var mac = endpoint.Mac.GetAddressBytes();
        if (mac.Length != 6) return $"MAC {endpoint.Mac} does not have 6 bytes";
        if ((mac[0] & 1) != 0 || mac.All(b => b == 0)) return "the MAC is not a unicast address";
        if (VtepProblem(endpoint.Vtep, device) is { } vtep) return $"VTEP {endpoint.Vtep}: {vtep}";
        if (endpoint.IPv4 is { AddressFamily: not AddressFamily.InterNetwork } v4) return $"IPv4 address {v4} is not IPv4";
        if (endpoint.IPv6 is { AddressFamily: not AddressFamily.InterNetworkV6 } v6) return $"IPv6 address {v6} is not IPv6";
        return null;
    }

    private static bool IsMulticast(IPAddress address) =>
        address.AddressFamily == AddressFamily.InterNetworkV6 ? address.IsIPv6Multicast : (address.GetAddressBytes()[0] & 0xF0) == 0xE0;

    private static string FamilyName(IPAddress address) => address.AddressFamily == AddressFamily.InterNetworkV6 ? "IPv6" : "IPv4";

    /// <summary>Orders addresses by their bytes so messages read the same on every run.</summary>
    private sealed class AddressOrder : IComparer<IPAddress>
    {
        public static readonly AddressOrder Instance = new();

        public int Compare(IPAddress? x, IPAddress? y) =>
            ((ReadOnlySpan<byte>)(x?.GetAddressBytes() ?? [])).SequenceCompareTo(y?.GetAddressBytes() ?? []);
    }
}
