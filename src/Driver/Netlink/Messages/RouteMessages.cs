using System.Net;
using Skein.Driver.Netlink.Wire;

namespace Skein.Driver.Netlink.Messages;

/// <summary>RTM_NEWROUTE / RTM_DELROUTE / RTM_GETROUTE.</summary>
internal static class RouteMessages
{
    public const byte TableUnspecified = 0;
    public const uint OnLinkFlag = 4; // RTNH_F_ONLINK

    public static Span<byte> Add(Span<byte> buffer, Route route) =>
        Encode(buffer, MessageType.NewRoute, MessageFlags.Request | MessageFlags.Ack | MessageFlags.Create | MessageFlags.Exclusive, route);

    public static Span<byte> Replace(Span<byte> buffer, Route route) =>
        Encode(buffer, MessageType.NewRoute, MessageFlags.Request | MessageFlags.Ack | MessageFlags.Create | MessageFlags.Replace, route);

    public static Span<byte> Delete(Span<byte> buffer, Route route) =>
        Encode(buffer, MessageType.DeleteRoute, MessageFlags.Request | MessageFlags.Ack, route);

    public static Span<byte> Dump(Span<byte> buffer, byte family)
    {
        var message = new MessageWriter(buffer, MessageType.GetRoute, MessageFlags.Request | MessageFlags.Dump);
        message.WriteFixed(new RouteMessageHeader { Family = family });
        return message.Finish();
    }

    /// <summary>The scope `ip route` would pick: link for a gateway-less device route, host for local routes.</summary>
    public static RouteScope DefaultScope(Route route) => route switch
    {
        { Scope: { } scope } => scope,
        { Type: RouteType.Local } => RouteScope.Host,
        { Gateway: null, OutputIndex: not null, Type: RouteType.Unicast } => RouteScope.Link,
        _ => RouteScope.Universe,
    };

    /// <summary>
    /// As iproute2: tables below 256 go in rtm_table, larger ones in RTA_TABLE; the default route has
    /// no RTA_DST. A delete leaves protocol and type unspecified and scope "nowhere" unless given,
    /// so it matches the route however it was added.
    /// </summary>
    private static Span<byte> Encode(Span<byte> buffer, MessageType type, MessageFlags flags, Route route)
    {
        bool delete = type == MessageType.DeleteRoute;
        var message = new MessageWriter(buffer, type, flags);
        message.WriteFixed(new RouteMessageHeader
        {
            Family = KernelAddressFamily.From(route.Destination.Family),
            DestinationLength = (byte)route.Destination.PrefixLength,
            Table = route.Table < 256 ? (byte)route.Table : TableUnspecified,
            Protocol = (byte)(delete ? route.Protocol ?? RouteProtocol.Unspecified : route.Protocol ?? RouteProtocol.Boot),
            Scope = (byte)(delete ? route.Scope ?? RouteScope.Nowhere : DefaultScope(route)),
            Type = (byte)(delete && route.Type == RouteType.Unicast ? RouteType.Unspecified : route.Type),
            Flags = route.OnLink ? OnLinkFlag : 0,
        });
        var attributes = message.Attributes<RouteAttribute>();
        if (route.Table >= 256) attributes.WriteUInt32(RouteAttribute.Table, (uint)route.Table);
        if (route.Destination.PrefixLength > 0)
            attributes.WriteAddress(RouteAttribute.Destination, route.Destination.Network.Address);
        // The order of `ip route add DST via GW metric N src S dev D`, so captures compare byte for byte.
        if (route.Gateway is { } gateway) attributes.WriteAddress(RouteAttribute.Gateway, gateway);
        if (route.Metric is { } metric) attributes.WriteUInt32(RouteAttribute.Priority, (uint)metric);
        if (route.PreferredSource is { } source) attributes.WriteAddress(RouteAttribute.PreferredSource, source);
        if (route.OutputIndex is { } device) attributes.WriteUInt32(RouteAttribute.OutputInterface, (uint)device);
        if (route.Mtu is { } mtu)
        {
            using var metrics = attributes.BeginNest<RouteMetricAttribute>(RouteAttribute.Metrics);
            metrics.WriteUInt32(RouteMetricAttribute.Mtu, (uint)mtu);
        }
        return message.Finish();
    }

    public static void Validate(Route route)
    {
        ArgumentNullException.ThrowIfNull(route);
        var family = route.Destination.Family;
        if (route.Destination.Address is null) throw new ArgumentException("route destination is missing", nameof(route));
        if (route.Gateway is { } gateway && gateway.AddressFamily != family)
            throw new ArgumentException($"route {route.Destination}: gateway {gateway} is not of the destination's family", nameof(route));
        if (route.PreferredSource is { } source && source.AddressFamily != family)
            throw new ArgumentException($"route {route.Destination}: source {source} is not of the destination's family", nameof(route));
        if (route.OutputIndex is <= 0) throw new ArgumentException($"route {route.Destination}: output index {route.OutputIndex} must be positive", nameof(route));
        if (route.Table is <= 0) throw new ArgumentException($"route {route.Destination}: table {route.Table} must be positive", nameof(route));
        if (route.Metric is < 0) throw new ArgumentException($"route {route.Destination}: metric {route.Metric} must not be negative", nameof(route));
        if (route.Mtu is < 68) throw new ArgumentException($"route {route.Destination}: MTU {route.Mtu} is below 68", nameof(route));
    }

    public static readonly ReplyDecoder<Route> Decoder = (in ReceivedMessage message, out Route route) =>
    {
        route = null!;
        if (message.Type != MessageType.NewRoute) return false;
        var header = message.FixedHeader<RouteMessageHeader>();
        if (header.Family is not (KernelAddressFamily.Inet or KernelAddressFamily.Inet6)) return false;
        if ((header.Flags & RouteMessageHeader.FlagCloned) != 0) return false; // cache entries, not routes
        IPAddress? destination = null, gateway = null, source = null;
        int? device = null, metric = null, mtu = null;
        int table = header.Table;
        var reader = message.Attributes<RouteMessageHeader, RouteAttribute>();
        while (reader.Next(out var id, out var value))
        {
            switch (id)
            {
                case RouteAttribute.Destination: destination = AttributeValue.Address(value); break;
                case RouteAttribute.Gateway: gateway = AttributeValue.Address(value); break;
                case RouteAttribute.PreferredSource: source = AttributeValue.Address(value); break;
                case RouteAttribute.OutputInterface: device = (int)AttributeValue.UInt32(value); break;
                case RouteAttribute.Priority: metric = (int)AttributeValue.UInt32(value); break;
                case RouteAttribute.Table: table = (int)AttributeValue.UInt32(value); break;
                case RouteAttribute.Metrics:
                    var metrics = new AttributeReader<RouteMetricAttribute>(value);
                    while (metrics.Next(out var metricId, out var metricValue))
                        if (metricId == RouteMetricAttribute.Mtu) mtu = (int)AttributeValue.UInt32(metricValue);
                    break;
            }
        }
        var family = KernelAddressFamily.ToDotNet(header.Family);
        var prefix = destination is null ? IpPrefix.Default(family) : new IpPrefix(destination, header.DestinationLength);
        route = new Route(prefix)
        {
            Gateway = gateway,
            OutputIndex = device,
            Scope = (RouteScope)header.Scope,
            Metric = metric,
            Table = table,
            Protocol = (RouteProtocol)header.Protocol,
            Type = (RouteType)header.Type,
            PreferredSource = source,
            Mtu = mtu,
            OnLink = (header.Flags & OnLinkFlag) != 0,
        };
        return true;
    };
}
