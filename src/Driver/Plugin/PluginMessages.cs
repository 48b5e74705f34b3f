using System.Text.Json.Serialization;

namespace Skein.Driver.Plugin;

/// <summary>/Plugin.Activate reply; the subsystem names are case-sensitive.</summary>
public sealed record ActivateResponse(IReadOnlyList<string> Implements);

/// <summary>
/// Every failure, for both subsystems: the engine reads Err from a non-200 reply; Error is what an IPAM reply
/// carries inside a 200, so setting it too costs nothing and keeps old readers happy (decisions #8).
/// </summary>
public sealed record ErrorResponse(string Err, string? Error);

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.Unspecified,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(ActivateResponse))]
[JsonSerializable(typeof(ErrorResponse))]
public sealed partial class PluginJsonContext : JsonSerializerContext;
