using System.Globalization;
using System.Text.Json;
using Skein.Ipam;
using static Skein.Driver.Network.RequestValidation;

namespace Skein.Driver.Network;

/// <summary>What CreateNetwork's option bag asks for (plugin-protocol §2.3), read strictly.</summary>
public sealed record NetworkOptions(bool EnableIPv6, bool EnableIPv4, bool Internal, int Mtu, bool InterContainerConnectivity, bool BridgeBypass, IReadOnlyDictionary<string, string> Generic)
{
    public const string GenericKey = "com.docker.network.generic";
    public const string EnableIPv6Key = "com.docker.network.enable_ipv6";
    public const string EnableIPv4Key = "com.docker.network.enable_ipv4";
    public const string InternalKey = "com.docker.network.internal";
    public const string MtuKey = "com.docker.network.driver.mtu";
    public const string SkeinMtuKey = "skein.mtu";
    public const string IccKey = "com.docker.network.bridge.enable_icc";
    /// <summary>Whether cross-host unicast may skip the bridge on multi-host networks (default true; see README).</summary>
    public const string BridgeBypassKey = "skein.bridge-bypass";

    /// <summary>Docker's bridge default; the host's own MTU does not matter to a bridge without an uplink.</summary>
    public const int DefaultMtu = 1500;
    public const int MinimumMtu = 68;
    public const int MinimumIPv6Mtu = 1280;
    public const int MaximumMtu = 65535;

    /// <summary>True when -o gave the MTU; otherwise <see cref="Mtu"/> is the default (or, for a cluster network, replaced by the underlay's).</summary>
    public bool MtuExplicit => Generic.ContainsKey(MtuKey) || Generic.ContainsKey(SkeinMtuKey);

    public static NetworkOptions Parse(Dictionary<string, JsonElement>? options)
    {
        options ??= [];
        var generic = ParseGeneric(options.GetValueOrDefault(GenericKey));
        var enableIPv6 = ReadBool(options, EnableIPv6Key, false);
        var enableIPv4 = ReadBool(options, EnableIPv4Key, true);
        var isInternal = ReadBool(options, InternalKey, false);
        var mtu = ParseMtu(generic, enableIPv6);
        var icc = true;
        if (generic.TryGetValue(IccKey, out var iccText))
            icc = ParseBoolText(iccText, $"option {IccKey}");
        var bypass = icc;
        if (generic.TryGetValue(BridgeBypassKey, out var bypassText))
        {
            bypass = ParseBoolText(bypassText, $"option {BridgeBypassKey}");
            if (bypass && !icc)
                throw SkeinException.Invalid($"option {BridgeBypassKey}=true needs inter-container connectivity: with {IccKey}=false every frame between containers must cross the bridge's DROP rules");
        }
        return new NetworkOptions(enableIPv6, enableIPv4, isInternal, mtu, icc, bypass, generic);
    }

    private static Dictionary<string, string> ParseGeneric(JsonElement element)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        if (element.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null)
            return result;
        if (element.ValueKind != JsonValueKind.Object)
            throw SkeinException.Invalid($"Options[\"{GenericKey}\"] must be an object of driver options, got a JSON {element.ValueKind.ToString().ToLowerInvariant()}");
        foreach (var property in element.EnumerateObject())
        {
            result[property.Name] = property.Value.ValueKind switch
            {
                JsonValueKind.String => property.Value.GetString()!,
                JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False => property.Value.GetRawText(),
                _ => throw SkeinException.Invalid($"driver option {Show(property.Name)} must be a string, got a JSON {property.Value.ValueKind.ToString().ToLowerInvariant()}"),
            };
        }
        return result;
    }

    private static int ParseMtu(IReadOnlyDictionary<string, string> generic, bool enableIPv6)
    {
        generic.TryGetValue(MtuKey, out var dockerText);
        generic.TryGetValue(SkeinMtuKey, out var skeinText);
        if (dockerText is not null && skeinText is not null && dockerText.Trim() != skeinText.Trim())
            throw SkeinException.Invalid($"options {MtuKey}={Show(dockerText)} and {SkeinMtuKey}={Show(skeinText)} disagree; give one MTU");
        var (key, text) = dockerText is not null ? (MtuKey, dockerText) : (SkeinMtuKey, skeinText);
        if (text is null)
            return DefaultMtu;
        if (!int.TryParse(text.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var mtu))
            throw SkeinException.Invalid($"option {key}={Show(text)} is not a whole number of bytes");
        var minimum = enableIPv6 ? MinimumIPv6Mtu : MinimumMtu;
        if (mtu < minimum || mtu > MaximumMtu)
            throw SkeinException.Invalid($"option {key}={mtu} is outside {minimum}..{MaximumMtu}{(enableIPv6 ? " (IPv6 needs at least 1280)" : "")}");
        return mtu;
    }

    /// <summary>Docker sends JSON booleans; a copy passed with -o arrives as a string, so accept both.</summary>
    private static bool ReadBool(Dictionary<string, JsonElement> options, string key, bool absent)
    {
        if (!options.TryGetValue(key, out var element))
            return absent;
        return element.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            JsonValueKind.Null => absent,
            JsonValueKind.String => ParseBoolText(element.GetString()!, $"Options[\"{key}\"]"),
            _ => throw SkeinException.Invalid($"Options[\"{key}\"] must be a boolean, got a JSON {element.ValueKind.ToString().ToLowerInvariant()}"),
        };
    }

    private static bool ParseBoolText(string text, string what) => text.Trim().ToLowerInvariant() switch
    {
        "true" or "1" => true,
        "false" or "0" or "" => false,
        _ => throw SkeinException.Invalid($"{what} must be true or false, got {Show(text)}"),
    };
}
