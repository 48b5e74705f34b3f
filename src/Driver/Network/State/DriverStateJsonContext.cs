using System.Text.Json.Serialization;

namespace Skein.Driver.Network.State;

/// <summary>The store format of the driver's own records (not a Docker wire format: camelCase is fine here).</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(NetworkRecord))]
[JsonSerializable(typeof(EndpointRecord))]
public sealed partial class DriverStateJsonContext : JsonSerializerContext;
