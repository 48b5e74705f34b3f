using System.Text.Json;

namespace Skein.Driver.Network.Protocol;

// Wire records of libnetwork's remote NetworkDriver protocol, mirroring drivers/remote/api/api.go field for
// field: the JSON names are the Go field names. Every map or array may arrive as null, empty or absent
// (Go nil maps serialise as null), so all of them are nullable here and treated alike by the handlers.
// Free-form option bags stay JsonElement: their values are strings, booleans, numbers, arrays or objects.

public sealed record GetCapabilityResponse(string Scope, string ConnectivityScope, bool GwAllocChecker);

public sealed record GwAllocCheckerRequest(Dictionary<string, JsonElement>? Options);

public sealed record GwAllocCheckerResponse(bool SkipIPv4, bool SkipIPv6);

/// <summary>driverapi.IPAMData: Pool, Gateway and AuxAddresses values are address/prefix strings.</summary>
public sealed record IpamData(string? AddressSpace, string? Pool, string? Gateway, Dictionary<string, string>? AuxAddresses);

public sealed record CreateNetworkRequest(
    string? NetworkID,
    Dictionary<string, JsonElement>? Options,
    List<IpamData?>? IPv4Data,
    List<IpamData?>? IPv6Data);

public sealed record DeleteNetworkRequest(string? NetworkID);

/// <summary>Swarm managers only (Scope global): Options is a flat string map here.</summary>
public sealed record AllocateNetworkRequest(
    string? NetworkID,
    Dictionary<string, string>? Options,
    List<IpamData?>? IPv4Data,
    List<IpamData?>? IPv6Data);

public sealed record AllocateNetworkResponse(Dictionary<string, string> Options);

public sealed record FreeNetworkRequest(string? NetworkID);

public sealed record EndpointInterface(string? Address, string? AddressIPv6, string? MacAddress);

public sealed record CreateEndpointRequest(
    string? NetworkID,
    string? EndpointID,
    EndpointInterface? Interface,
    Dictionary<string, JsonElement>? Options);

/// <summary>Interface null means "nothing to add"; only fields that were empty in the request may be filled.</summary>
public sealed record CreateEndpointResponse(EndpointInterface? Interface);

public sealed record DeleteEndpointRequest(string? NetworkID, string? EndpointID);

public sealed record EndpointInfoRequest(string? NetworkID, string? EndpointID);

public sealed record EndpointInfoResponse(Dictionary<string, string> Value);

public sealed record JoinRequest(
    string? NetworkID,
    string? EndpointID,
    string? SandboxKey,
    Dictionary<string, JsonElement>? Options);

public sealed record InterfaceName(string SrcName, string DstPrefix);

/// <summary>RouteType 0 = via NextHop, 1 = connected.</summary>
public sealed record StaticRoute(string Destination, int RouteType, string? NextHop);

public sealed record JoinResponse(
    InterfaceName InterfaceName,
    string? Gateway,
    string? GatewayIPv6,
    List<StaticRoute>? StaticRoutes,
    bool DisableGatewayService);

public sealed record LeaveRequest(string? NetworkID, string? EndpointID);

public sealed record ProgramExternalConnectivityRequest(
    string? NetworkID,
    string? EndpointID,
    Dictionary<string, JsonElement>? Options);

public sealed record RevokeExternalConnectivityRequest(string? NetworkID, string? EndpointID);

/// <summary>Only DiscoveryType 1 (node discovery) reaches plugins; DiscoveryData stays free-form.</summary>
public sealed record DiscoveryNotification(int DiscoveryType, JsonElement? DiscoveryData);

/// <summary>The reply to calls that carry nothing back: Docker needs a JSON object, never an empty body.</summary>
public sealed record EmptyResponse;
