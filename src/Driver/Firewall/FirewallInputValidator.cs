using System.Net;
using System.Net.Sockets;
using Skein.Ipam;

namespace Skein.Driver.Firewall;

/// <summary>
/// Checks what callers hand the firewall before any command runs, so bad input changes nothing and the error
/// names what was wrong. Names end up inside iptables-restore text, so only plain characters pass.
/// </summary>
internal static class FirewallInputValidator
{
    private const int MaxInterfaceNameLength = 15;
    private const int MaxEndpointIdLength = 64;

    public static void ValidateBridgeName(string? bridgeName, IptablesOptions options)
    {
        if (string.IsNullOrEmpty(bridgeName))
            throw SkeinException.Invalid("firewall: bridge name is empty");
        if (bridgeName.Length > MaxInterfaceNameLength)
            throw SkeinException.Invalid($"firewall: bridge name '{bridgeName}' is longer than {MaxInterfaceNameLength} characters");
        if (!bridgeName.All(IsNameCharacter))
            throw SkeinException.Invalid($"firewall: bridge name '{bridgeName}' may only hold letters, digits, '-', '_' and '.'");
        if (!bridgeName.StartsWith(options.BridgeNamePrefix, StringComparison.Ordinal) || bridgeName.Length == options.BridgeNamePrefix.Length)
            throw SkeinException.Invalid($"firewall: '{bridgeName}' is not a skein bridge name (they start with '{options.BridgeNamePrefix}')");
    }

    public static void ValidateEndpointId(string? endpointId)
    {
        if (string.IsNullOrEmpty(endpointId))
            throw SkeinException.Invalid("firewall: endpoint id is empty");
        if (endpointId.Length > MaxEndpointIdLength || !endpointId.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9')))
            throw SkeinException.Invalid($"firewall: endpoint id '{endpointId}' is not 1 to {MaxEndpointIdLength} lower-case letters and digits");
    }

    public static void ValidateNetwork(NetworkFirewall? network, IptablesOptions options)
    {
        if (network is null) throw SkeinException.Invalid("firewall: network is missing");
        ValidateBridgeName(network.BridgeName, options);
        if (network.Subnets is null)
            throw SkeinException.Invalid($"firewall: network on bridge '{network.BridgeName}' has no subnet list");
        foreach (var subnet in network.Subnets)
        {
            if (subnet.BaseAddress.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
                throw SkeinException.Invalid($"firewall: network on bridge '{network.BridgeName}' has subnet '{subnet}' that is neither IPv4 nor IPv6");
        }
    }

    public static void ValidateEndpoint(EndpointPorts? endpoint, IptablesOptions options)
    {
        if (endpoint is null) throw SkeinException.Invalid("firewall: endpoint is missing");
        ValidateEndpointId(endpoint.EndpointId);
        ValidateBridgeName(endpoint.BridgeName, options);
        var id = endpoint.EndpointId;
        if (endpoint.ContainerIPv4 is { } v4 && FirewallRuleBuilder.Normalize(v4).AddressFamily != AddressFamily.InterNetwork)
            throw SkeinException.Invalid($"firewall: endpoint {id}: ContainerIPv4 '{v4}' is not an IPv4 address");
        if (endpoint.ContainerIPv6 is { } v6 && (v6.AddressFamily != AddressFamily.InterNetworkV6 || v6.IsIPv4MappedToIPv6))
            throw SkeinException.Invalid($"firewall: endpoint {id}: ContainerIPv6 '{v6}' is not an IPv6 address");
        if (endpoint.Ports is null)
            throw SkeinException.Invalid($"firewall: endpoint {id} has no port list");
        if (endpoint.Ports.Count > 0 && endpoint.ContainerIPv4 is null && endpoint.ContainerIPv6 is null)
            throw SkeinException.Invalid($"firewall: endpoint {id} publishes ports but has no address to forward them to");
        foreach (var port in endpoint.Ports)
        {
            if (port is null) throw SkeinException.Invalid($"firewall: endpoint {id} has an empty port mapping");
            var what = $"firewall: endpoint {id}: port mapping {port.HostPort}->{port.ContainerPort}/{port.Protocol}";
            if (!FirewallRuleBuilder.IsPublishable(port.Protocol))
                throw SkeinException.Invalid($"{what}: protocol {port.Protocol} cannot be published (tcp, udp or sctp)");
            if (port.ContainerPort == 0)
                throw SkeinException.Invalid($"{what}: container port 0 is not a port");
            if (port.HostPort == 0)
                throw SkeinException.Invalid($"{what}: host port 0 must be resolved to a real port before programming");
            if (port.HostPortEnd != 0 && port.HostPortEnd < port.HostPort)
                throw SkeinException.Invalid($"{what}: host port range ends ({port.HostPortEnd}) before it starts ({port.HostPort})");
            if (port.HostIP is { } hostIP && hostIP.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
                throw SkeinException.Invalid($"{what}: host address '{hostIP}' is neither IPv4 nor IPv6");
        }
    }

    public static void ValidateOptions(IptablesOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var prefix = options.ChainPrefix;
        // The longest chain name is PREFIX-ISOLATION-OUT; xtables allows 28 characters.
        if (string.IsNullOrEmpty(prefix) || prefix.Length > 14 || !char.IsAsciiLetterUpper(prefix[0])
            || !prefix.All(c => char.IsAsciiLetterUpper(c) || char.IsAsciiDigit(c) || c == '-'))
            throw new ArgumentException($"chain prefix '{prefix}' must be 1 to 14 upper-case letters, digits or '-', starting with a letter", nameof(options));
        if (string.IsNullOrEmpty(options.BridgeNamePrefix) || options.BridgeNamePrefix.Length >= MaxInterfaceNameLength
            || !options.BridgeNamePrefix.All(IsNameCharacter))
            throw new ArgumentException($"bridge name prefix '{options.BridgeNamePrefix}' is not a usable interface name prefix", nameof(options));
        foreach (var pattern in options.DockerBridgePatterns)
        {
            var stem = pattern.EndsWith('+') ? pattern[..^1] : pattern;
            if (stem.Length == 0 || stem.Length > MaxInterfaceNameLength || !stem.All(IsNameCharacter))
                throw new ArgumentException($"Docker bridge pattern '{pattern}' is not an interface name or prefix followed by '+'", nameof(options));
        }
        if (options.CommandPrefix.Any(string.IsNullOrEmpty))
            throw new ArgumentException("command prefix holds an empty word", nameof(options));
    }

    private static bool IsNameCharacter(char c) => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.';
}
