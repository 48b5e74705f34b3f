using System.Text.Json.Serialization;

namespace Skein.Driver.Network.Protocol;

/// <summary>
/// The one source-generated context for the NetworkDriver wire format. Property names are used as declared
/// (Go's field names), never camelCased; duplicate keys are refused so a body cannot say two things at once.
/// </summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.Unspecified,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    AllowDuplicateProperties = false,
    ReadCommentHandling = System.Text.Json.JsonCommentHandling.Disallow,
    AllowTrailingCommas = false)]
[JsonSerializable(typeof(GetCapabilityResponse))]
[JsonSerializable(typeof(GwAllocCheckerRequest))]
[JsonSerializable(typeof(GwAllocCheckerResponse))]
[JsonSerializable(typeof(CreateNetworkRequest))]
[JsonSerializable(typeof(DeleteNetworkRequest))]
[JsonSerializable(typeof(AllocateNetworkRequest))]
[JsonSerializable(typeof(AllocateNetworkResponse))]
[JsonSerializable(typeof(FreeNetworkRequest))]
[JsonSerializable(typeof(CreateEndpointRequest))]
[JsonSerializable(typeof(CreateEndpointResponse))]
[JsonSerializable(typeof(DeleteEndpointRequest))]
[JsonSerializable(typeof(EndpointInfoRequest))]
[JsonSerializable(typeof(EndpointInfoResponse))]
[JsonSerializable(typeof(JoinRequest))]
[JsonSerializable(typeof(JoinResponse))]
[JsonSerializable(typeof(LeaveRequest))]
[JsonSerializable(typeof(ProgramExternalConnectivityRequest))]
[JsonSerializable(typeof(RevokeExternalConnectivityRequest))]
[JsonSerializable(typeof(DiscoveryNotification))]
[JsonSerializable(typeof(EmptyResponse))]
public sealed partial class NetworkDriverJsonContext : JsonSerializerContext;
