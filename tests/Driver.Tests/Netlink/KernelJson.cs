using System.Text.Json;

namespace Skein.Driver.Tests.Netlink;

/// <summary>Reads `ip -j` / `bridge -j` output, the independent view of what the kernel holds.</summary>
internal static class KernelJson
{
    public static List<JsonElement> Array(string json)
    {
        if (string.IsNullOrWhiteSpace(json)) return [];
        using var document = JsonDocument.Parse(json);
        return document.RootElement.EnumerateArray().Select(e => e.Clone()).ToList();
    }

    public static JsonElement Single(string json) => Assert.Single(Array(json));

    public static string? String(this JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    public static int? Int(this JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number ? value.GetInt32() : null;

    public static bool? Bool(this JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) ? value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            JsonValueKind.Number => value.GetInt32() != 0,
            _ => null,
        } : null;

    public static JsonElement Path(this JsonElement element, params string[] names)
    {
        foreach (var name in names) element = element.GetProperty(name);
        return element;
    }

    public static IEnumerable<string> Strings(this JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Array
            ? value.EnumerateArray().Select(v => v.GetString() ?? "")
            : [];
}
