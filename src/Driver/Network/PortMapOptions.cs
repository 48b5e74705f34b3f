using System.Net;
using System.Text.Json;
using Skein.Driver.Network.State;
using Skein.Ipam;
using static Skein.Driver.Network.RequestValidation;

namespace Skein.Driver.Network;

/// <summary>Reads com.docker.network.portmap ([{Proto, IP, Port, HostIP, HostPort, HostPortEnd}]) strictly.</summary>
public static class PortMapOptions
{
    public const string PortMapKey = "com.docker.network.portmap";
    public const int Tcp = 6;
    public const int Udp = 17;
    public const int Sctp = 132;

    /// <summary>The mappings in the bag, or null when the bag does not carry the key at all.</summary>
    public static IReadOnlyList<PortMappingRecord>? Parse(Dictionary<string, JsonElement>? options)
    {
        if (options is null || !options.TryGetValue(PortMapKey, out var element))
            return null;
        if (element.ValueKind == JsonValueKind.Null)
            return [];
        if (element.ValueKind != JsonValueKind.Array)
            throw SkeinException.Invalid($"Options[\"{PortMapKey}\"] must be an array of port bindings, got a JSON {Kind(element)}");
        var result = new List<PortMappingRecord>();
        var index = 0;
        foreach (var item in element.EnumerateArray())
        {
            result.Add(ParseOne(item, $"{PortMapKey}[{index}]"));
            index++;
        }
        return result;
    }

    private static PortMappingRecord ParseOne(JsonElement item, string where)
    {
        if (item.ValueKind != JsonValueKind.Object)
            throw SkeinException.Invalid($"{where} must be an object, got a JSON {Kind(item)}");
        var proto = ReadInt(item, "Proto", where, required: true, 0, 255);
        if (proto == Sctp)
            throw SkeinException.Invalid($"{where}: SCTP port publishing is not supported by skein (only tcp and udp)");
        if (proto is not (Tcp or Udp))
            throw SkeinException.Invalid($"{where}.Proto {proto} is not a protocol skein publishes (6 = tcp, 17 = udp)");
        var port = ReadInt(item, "Port", where, required: true, 1, 65535);
        var hostPort = ReadInt(item, "HostPort", where, required: false, 0, 65535);
        var hostPortEnd = ReadInt(item, "HostPortEnd", where, required: false, 0, 65535);
        if (hostPortEnd == 0)
            hostPortEnd = hostPort;
        if (hostPort != 0 && hostPortEnd < hostPort)
            throw SkeinException.Invalid($"{where}: HostPortEnd {hostPortEnd} is below HostPort {hostPort}");
        string? hostIp = null;
        if (item.TryGetProperty("HostIP", out var hostIpElement) && hostIpElement.ValueKind != JsonValueKind.Null)
        {
            if (hostIpElement.ValueKind != JsonValueKind.String)
                throw SkeinException.Invalid($"{where}.HostIP must be a string, got a JSON {Kind(hostIpElement)}");
            var text = hostIpElement.GetString()!;
            if (text.Length > 0)
            {
                if (!IsCanonicalAddressText(text) || !IPAddress.TryParse(text, out var address))
                    throw SkeinException.Invalid($"{where}.HostIP {Show(text)} is not an IP address");
                // 0.0.0.0 and :: mean "every host address", which the firewall expresses as no address at all.
                hostIp = address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any) ? null : address.ToString();
            }
        }
        return new PortMappingRecord(proto, (ushort)port, (ushort)hostPort, (ushort)hostPortEnd, hostIp);
    }

    private static int ReadInt(JsonElement item, string name, string where, bool required, int min, int max)
    {
        if (!item.TryGetProperty(name, out var element) || element.ValueKind == JsonValueKind.Null)
            return required ? throw SkeinException.Invalid($"{where}.{name} is missing") : 0;
        if (element.ValueKind != JsonValueKind.Number || !element.TryGetInt32(out var value))
            throw SkeinException.Invalid($"{where}.{name} must be a whole number, got {Show(element.GetRawText())}");
        if (value < min || value > max)
            throw SkeinException.Invalid($"{where}.{name} {value} is outside {min}..{max}");
        return value;
    }

    private static string Kind(JsonElement element) => element.ValueKind.ToString().ToLowerInvariant();
}
