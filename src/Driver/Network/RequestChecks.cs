using System.Net.Sockets;
using Skein.Driver.Network.Protocol;
using static Skein.Driver.Network.RequestValidation;

namespace Skein.Driver.Network;

/// <summary>
/// Everything about a NetworkDriver request that can be checked without state: run before the call waits for
/// start-up or takes the driver's lock, so bad input is refused at once and never queues behind good work. The
/// handlers check again what needs state (the network's subnets, known ids).
/// </summary>
public static class RequestChecks
{
    public static CreateNetworkRequest Check(CreateNetworkRequest request)
    {
        BridgeDriver.DescribeNetwork(request, DateTimeOffset.UnixEpoch);
        return request;
    }

    public static CreateEndpointRequest Check(CreateEndpointRequest request)
    {
        RequireId(request.NetworkID, "NetworkID");
        RequireId(request.EndpointID, "EndpointID");
        var iface = request.Interface;
        OptionalPrefix(iface?.Address, "Interface.Address", AddressFamily.InterNetwork);
        OptionalPrefix(iface?.AddressIPv6, "Interface.AddressIPv6", AddressFamily.InterNetworkV6);
        if (!string.IsNullOrEmpty(iface?.MacAddress))
            RequireMac(iface.MacAddress, "Interface.MacAddress");
        PortMapOptions.Parse(request.Options);
        return request;
    }

    public static JoinRequest Check(JoinRequest request)
    {
        Ids(request.NetworkID, request.EndpointID);
        PortMapOptions.Parse(request.Options);
        return request;
    }

    public static ProgramExternalConnectivityRequest Check(ProgramExternalConnectivityRequest request)
    {
        Ids(request.NetworkID, request.EndpointID);
        PortMapOptions.Parse(request.Options);
        return request;
    }

    public static DeleteNetworkRequest Check(DeleteNetworkRequest request)
    {
        RequireId(request.NetworkID, "NetworkID");
        return request;
    }

    public static DeleteEndpointRequest Check(DeleteEndpointRequest request) { Ids(request.NetworkID, request.EndpointID); return request; }
    public static LeaveRequest Check(LeaveRequest request) { Ids(request.NetworkID, request.EndpointID); return request; }
    public static EndpointInfoRequest Check(EndpointInfoRequest request) { Ids(request.NetworkID, request.EndpointID); return request; }
    public static RevokeExternalConnectivityRequest Check(RevokeExternalConnectivityRequest request) { Ids(request.NetworkID, request.EndpointID); return request; }

    private static void Ids(string? networkId, string? endpointId)
    {
        RequireId(networkId, "NetworkID");
        RequireId(endpointId, "EndpointID");
    }
}
