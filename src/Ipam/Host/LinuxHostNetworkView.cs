using System.Globalization;
using System.Net;
using Skein.Ipam.Addressing;

namespace Skein.Ipam.Host;

/// <summary>
/// Reads /proc/net/route, /proc/net/ipv6_route and /etc/resolv.conf directly (no shelling out,
/// no netlink needed for a read this small). Unreadable files count as empty: a host without
/// them reserves nothing, as in Docker.
/// </summary>
public sealed class LinuxHostNetworkView(
    string ipv4RoutesPath = "/proc/net/route",
    string ipv6RoutesPath = "/proc/net/ipv6_route",
    string resolvConfPath = "/etc/resolv.conf") : IHostNetworkView
{
    private const uint RtfGateway = 0x0002;
    private const uint RtfReject = 0x0200;

    public IReadOnlyList<HostReservedNetwork> GetReservedNetworks(bool v6)
    {
        var result = new List<HostReservedNetwork>();
        result.AddRange(ReadNameservers(v6));
        result.AddRange(v6 ? ReadIpv6OnLinkRoutes() : ReadIpv4OnLinkRoutes());
        return result;
    }

    /// <summary>/proc/net/route: Iface Destination Gateway Flags RefCnt Use Metric Mask ...; addresses are little-endian hex.</summary>
    internal IEnumerable<HostReservedNetwork> ReadIpv4OnLinkRoutes()
    {
        foreach (string line in ReadLines(ipv4RoutesPath).Skip(1))
        {
            string[] f = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 8
                || !uint.TryParse(f[1], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out uint destination)
                || !uint.TryParse(f[3], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out uint flags)
                || !uint.TryParse(f[7], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out uint mask))
                continue;
            if ((flags & (RtfGateway | RtfReject)) != 0)
                continue;
            int length = System.Numerics.BitOperations.PopCount(mask);
            if (length == 0)
                continue;
            var network = new IPAddress(BitConverter.IsLittleEndian ? destination : System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(destination));
            var prefix = IpPrefix.Containing(network, length);
            yield return new HostReservedNetwork(prefix, $"on-link route {prefix} dev {f[0]}");
        }
    }

    /// <summary>/proc/net/ipv6_route: dest destlen src srclen nexthop metric refcnt use flags iface (hex, no colons).</summary>
    internal IEnumerable<HostReservedNetwork> ReadIpv6OnLinkRoutes()
    {
        foreach (string line in ReadLines(ipv6RoutesPath))
        {
            string[] f = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 10 || f[0].Length != 32 || f[4].Length != 32
                || !UInt128.TryParse(f[0], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var destination)
                || !int.TryParse(f[1], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out int length)
                || !UInt128.TryParse(f[4], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var nextHop)
                || !uint.TryParse(f[8], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out uint flags))
                continue;
            if (length is 0 or > 127 || nextHop != 0 || (flags & (RtfGateway | RtfReject)) != 0 || f[9] == "lo")
                continue;
            var prefix = IpPrefix.Containing(IpAddressText.FromNumber(destination, isV6: true), length);
            var address = prefix.Network;
            if (address.IsIPv6LinkLocal || address.IsIPv6Multicast)
                continue;
            yield return new HostReservedNetwork(prefix, $"on-link route {prefix} dev {f[9]}");
        }
    }

    internal IEnumerable<HostReservedNetwork> ReadNameservers(bool v6)
    {
        foreach (string raw in ReadLines(resolvConfPath))
        {
            string line = raw.Trim();
            if (!line.StartsWith("nameserver", StringComparison.Ordinal))
                continue;
            string[] f = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 2 || f[0] != "nameserver")
                continue;
            string text = f[1];
            int zone = text.IndexOf('%');
            if (zone >= 0)
                text = text[..zone];
            if (!IpAddressText.TryParse(text, out var address, out _) || IpAddressText.IsV6(address) != v6)
                continue;
            var prefix = IpPrefix.Containing(address, v6 ? 128 : 32);
            yield return new HostReservedNetwork(prefix, $"nameserver {text} in {resolvConfPath}");
        }
    }

    private static IEnumerable<string> ReadLines(string path)
    {
        string[] lines;
        try
        {
            lines = File.ReadAllLines(path);
        }
        catch (IOException)
        {
            yield break;
        }
        catch (UnauthorizedAccessException)
        {
            yield break;
        }
        foreach (string line in lines)
            yield return line;
    }
}
