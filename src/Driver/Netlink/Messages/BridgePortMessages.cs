using Skein.Driver.Netlink.Wire;

namespace Skein.Driver.Netlink.Messages;

/// <summary>
/// Bridge port flags: RTM_SETLINK with family AF_BRIDGE and IFLA_PROTINFO marked NLA_F_NESTED (the
/// kernel reads an unmarked IFLA_PROTINFO as the old one-byte STP state), as `bridge link set` does;
/// read back from an AF_BRIDGE link dump.
/// </summary>
internal static class BridgePortMessages
{
    public static Span<byte> Set(Span<byte> buffer, int index, BridgePortSettings settings)
    {
        var message = new MessageWriter(buffer, MessageType.SetLink, MessageFlags.Request | MessageFlags.Ack);
        message.WriteFixed(new InterfaceInfoMessage { Family = KernelAddressFamily.Bridge, Index = index });
        var link = message.Attributes<LinkAttribute>();
        using (var port = link.BeginNest<BridgePortAttribute>(LinkAttribute.ProtocolInfo, markNested: true))
        {
            foreach (var (attribute, value) in Requested(settings))
                port.WriteBool(attribute, value);
        }
        return message.Finish();
    }

    public static Span<byte> Dump(Span<byte> buffer) => LinkMessages.Dump(buffer, KernelAddressFamily.Bridge);

    /// <summary>The flags a settings record asks to change, with the attribute each travels in.</summary>
    public static IEnumerable<(BridgePortAttribute Attribute, bool Value)> Requested(BridgePortSettings settings)
    {
        if (settings.Learning is { } learning) yield return (BridgePortAttribute.Learning, learning);
        if (settings.NeighSuppress is { } suppress) yield return (BridgePortAttribute.NeighSuppress, suppress);
        if (settings.Flood is { } flood) yield return (BridgePortAttribute.UnicastFlood, flood);
        if (settings.MulticastFlood is { } multicast) yield return (BridgePortAttribute.MulticastFlood, multicast);
        if (settings.BroadcastFlood is { } broadcast) yield return (BridgePortAttribute.BroadcastFlood, broadcast);
        if (settings.Hairpin is { } hairpin) yield return (BridgePortAttribute.Hairpin, hairpin);
        if (settings.Isolated is { } isolated) yield return (BridgePortAttribute.Isolated, isolated);
        if (settings.ProxyArp is { } proxyArp) yield return (BridgePortAttribute.ProxyArp, proxyArp);
    }

    /// <summary>Decodes one port of an AF_BRIDGE dump; skips links that carry no IFLA_PROTINFO.</summary>
    public static readonly ReplyDecoder<(int Index, BridgePortSettings Settings)> Decoder =
        (in ReceivedMessage message, out (int Index, BridgePortSettings Settings) port) =>
        {
            port = default;
            if (message.Type != MessageType.NewLink) return false;
            var header = message.FixedHeader<InterfaceInfoMessage>();
            var reader = message.Attributes<InterfaceInfoMessage, LinkAttribute>();
            while (reader.Next(out var id, out var value))
            {
                if (id != LinkAttribute.ProtocolInfo) continue;
                port = (header.Index, Decode(value));
                return true;
            }
            return false;
        };

    public static BridgePortSettings Decode(ReadOnlySpan<byte> protocolInfo)
    {
        var settings = new BridgePortSettings();
        var reader = new AttributeReader<BridgePortAttribute>(protocolInfo);
        while (reader.Next(out var id, out var value))
        {
            settings = id switch
            {
                BridgePortAttribute.Learning => settings with { Learning = AttributeValue.Bool(value) },
                BridgePortAttribute.NeighSuppress => settings with { NeighSuppress = AttributeValue.Bool(value) },
                BridgePortAttribute.UnicastFlood => settings with { Flood = AttributeValue.Bool(value) },
                BridgePortAttribute.MulticastFlood => settings with { MulticastFlood = AttributeValue.Bool(value) },
                BridgePortAttribute.BroadcastFlood => settings with { BroadcastFlood = AttributeValue.Bool(value) },
                BridgePortAttribute.Hairpin => settings with { Hairpin = AttributeValue.Bool(value) },
                BridgePortAttribute.Isolated => settings with { Isolated = AttributeValue.Bool(value) },
                BridgePortAttribute.ProxyArp => settings with { ProxyArp = AttributeValue.Bool(value) },
                _ => settings,
            };
        }
        return settings;
    }

    /// <summary>Whether the kernel reported the attribute, i.e. knows the flag.</summary>
    public static bool IsReported(BridgePortSettings reported, BridgePortAttribute attribute) => attribute switch
    {
        BridgePortAttribute.Learning => reported.Learning is not null,
        BridgePortAttribute.NeighSuppress => reported.NeighSuppress is not null,
        BridgePortAttribute.UnicastFlood => reported.Flood is not null,
        BridgePortAttribute.MulticastFlood => reported.MulticastFlood is not null,
        BridgePortAttribute.BroadcastFlood => reported.BroadcastFlood is not null,
        BridgePortAttribute.Hairpin => reported.Hairpin is not null,
        BridgePortAttribute.Isolated => reported.Isolated is not null,
        BridgePortAttribute.ProxyArp => reported.ProxyArp is not null,
        _ => false,
    };
}
