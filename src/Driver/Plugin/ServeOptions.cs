using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Skein.Ipam;
using Skein.Ipam.Store;

namespace Skein.Driver.Plugin;

/// <summary>
/// How `skein serve` is configured. Every flag also reads an environment variable because a managed plugin is
/// configured only through its environment; a flag given on the command line wins over the variable.
/// </summary>
public sealed record ServeOptions
{
    public const string DefaultSocket = "/run/docker/plugins/skein.sock";
    public const string DefaultStateDir = "/var/lib/skein";
    public const string EmbeddedStore = "embedded";
    /// <summary>IANA's VXLAN port, also Linux's and Docker's default.</summary>
    public const ushort DefaultVxlanPort = 4789;
    public static readonly TimeSpan DefaultReclaimAfter = TimeSpan.FromSeconds(600);
    /// <summary>Below this a host that merely restarts or loses the store briefly would have its addresses taken.</summary>
    public static readonly TimeSpan MinimumReclaimAfter = TimeSpan.FromSeconds(60);

    public string SocketPath { get; init; } = DefaultSocket;
    public string StateDir { get; init; } = DefaultStateDir;
    /// <summary>"embedded", or a consul:// / etcd:// URL understood by ClusterStoreFactory.</summary>
    public string StoreUrl { get; init; } = EmbeddedStore;
    /// <summary>
    /// The network namespace whose links and firewall skein programs; null means the namespace skein runs in
    /// (the host's). Tests point it at a scratch namespace to run the whole driver in-process.
    /// </summary>
    public string? NetNsPath { get; init; }
    /// <summary>How often the reconciler re-checks kernel state against the records; zero turns the timer off.</summary>
    public TimeSpan ReconcileInterval { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>Least severe log level written: trace, debug, info, warn, error (also SKEIN_LOG_LEVEL).</summary>
    public Microsoft.Extensions.Logging.LogLevel LogLevel { get; init; } = Microsoft.Extensions.Logging.LogLevel.Information;
    /// <summary>
    /// This host's underlay address (its VTEP). With a Consul or etcd store it turns multi-host networking on;
    /// it must be held by a link of the programmed namespace (checked at start-up).
    /// </summary>
    public IPAddress? AdvertiseAddress { get; init; }
    /// <summary>UDP port of VXLAN on every host of the cluster.</summary>
    public ushort VxlanPort { get; init; } = DefaultVxlanPort;
    /// <summary>Overrides the node id kept in &lt;state-dir&gt;/node-id.</summary>
    public string? NodeId { get; init; }
    /// <summary>How long a host may be gone before its addresses are reclaimed by the others.</summary>
    public TimeSpan ReclaimAfter { get; init; } = DefaultReclaimAfter;

    /// <summary>Report Scope "global" (swarm managers allocate; `--driver-scope global`, SKEIN_DRIVER_SCOPE). Needs multi-host.</summary>
    public bool GlobalScope { get; init; }

    /// <summary>Multi-host (VXLAN) networking: a shared store and an underlay address to advertise.</summary>
    public bool MultiHost => AdvertiseAddress is not null && !IsEmbedded(StoreUrl);

    /// <summary>Largest request body accepted; Docker's bodies are a few hundred bytes.</summary>
    public int MaxBodyBytes { get; init; } = 1 << 20;

    public static ServeOptions Parse(IReadOnlyList<string> args, Func<string, string?> environment)
    {
        var options = new ServeOptions();
        options = ApplyEnvironment(options, environment);
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            string Value()
            {
                var eq = arg.IndexOf('=');
                if (eq > 0)
                    return arg[(eq + 1)..];
                if (i + 1 >= args.Count)
                    throw SkeinException.Invalid($"option {arg} needs a value");
                return args[++i];
            }
            var name = arg.Split('=', 2)[0];
            options = name switch
            {
                "--socket" => options with { SocketPath = NonEmpty(name, Value()) },
                "--state-dir" => options with { StateDir = NonEmpty(name, Value()) },
                "--store" => options with { StoreUrl = NonEmpty(name, Value()) },
                "--netns" => options with { NetNsPath = NonEmpty(name, Value()) },
                "--reconcile-interval" => options with { ReconcileInterval = ParseSeconds(name, Value()) },
                "--log-level" => options with { LogLevel = ParseLogLevel(name, Value()) },
                "--advertise-addr" => options with { AdvertiseAddress = ParseAdvertiseAddress(name, Value()) },
                "--vxlan-port" => options with { VxlanPort = ParsePort(name, Value()) },
                "--node-id" => options with { NodeId = ParseNodeId(name, Value()) },
                "--reclaim-after" => options with { ReclaimAfter = ParseReclaimAfter(name, Value()) },
                "--driver-scope" => options with { GlobalScope = ParseDriverScope(name, Value()) },
                _ => throw SkeinException.Invalid($"unknown option '{arg}' for skein serve (known: --socket, --state-dir, --store, --netns, --reconcile-interval, --log-level, --advertise-addr, --vxlan-port, --node-id, --reclaim-after, --driver-scope)"),
            };
        }
        Validate(options);
        return options;
    }

    private static ServeOptions ApplyEnvironment(ServeOptions options, Func<string, string?> environment)
    {
        if (environment("SKEIN_SOCKET") is { Length: > 0 } socket)
            options = options with { SocketPath = socket };
        if (environment("SKEIN_STATE_DIR") is { Length: > 0 } stateDir)
            options = options with { StateDir = stateDir };
        if (environment("SKEIN_STORE") is { Length: > 0 } store)
            options = options with { StoreUrl = store };
        if (environment("SKEIN_NETNS") is { Length: > 0 } netns)
            options = options with { NetNsPath = netns };
        if (environment("SKEIN_LOG_LEVEL") is { Length: > 0 } level)
            options = options with { LogLevel = ParseLogLevel("SKEIN_LOG_LEVEL", level) };
        if (environment("SKEIN_ADVERTISE_ADDR") is { Length: > 0 } advertise)
            options = options with { AdvertiseAddress = ParseAdvertiseAddress("SKEIN_ADVERTISE_ADDR", advertise) };
        if (environment("SKEIN_VXLAN_PORT") is { Length: > 0 } port)
            options = options with { VxlanPort = ParsePort("SKEIN_VXLAN_PORT", port) };
        if (environment("SKEIN_NODE_ID") is { Length: > 0 } node)
            options = options with { NodeId = ParseNodeId("SKEIN_NODE_ID", node) };
        if (environment("SKEIN_RECLAIM_AFTER") is { Length: > 0 } reclaim)
            options = options with { ReclaimAfter = ParseReclaimAfter("SKEIN_RECLAIM_AFTER", reclaim) };
        if (environment("SKEIN_DRIVER_SCOPE") is { Length: > 0 } scope)
            options = options with { GlobalScope = ParseDriverScope("SKEIN_DRIVER_SCOPE", scope) };
        return options;
    }

    private static void Validate(ServeOptions options)
    {
        // sockaddr_un.sun_path is 108 bytes including the terminating NUL.
        if (System.Text.Encoding.UTF8.GetByteCount(options.SocketPath) > 107)
            throw SkeinException.Invalid($"socket path '{options.SocketPath}' is longer than the 107 bytes a Unix socket address holds");
        if (!Path.IsPathRooted(options.SocketPath))
            throw SkeinException.Invalid($"socket path '{options.SocketPath}' must be absolute");
        if (!Path.IsPathRooted(options.StateDir))
            throw SkeinException.Invalid($"state directory '{options.StateDir}' must be absolute");
        if (options.NetNsPath is { } ns && !File.Exists(ns))
            throw SkeinException.Invalid($"network namespace '{ns}' does not exist");
        if (options.AdvertiseAddress is { } advertise && IsEmbedded(options.StoreUrl))
            throw SkeinException.Invalid($"--advertise-addr {advertise} needs a shared store (--store consul://HOST:8500 or etcd://HOST:2379); with the embedded store every network stays on this host");
        if (options.GlobalScope && !options.MultiHost)
            throw SkeinException.Invalid("--driver-scope global needs multi-host mode: a shared store (consul:// or etcd://) and --advertise-addr");
    }

    private static bool ParseDriverScope(string name, string value) => value switch
    {
        "local" => false,
        "global" => true,
        _ => throw SkeinException.Invalid($"{name} '{value}' is not a driver scope: give 'local' (swarm networks with --config-from) or 'global' (the swarm manager allocates)"),
    };

    private static bool IsEmbedded(string storeUrl)
    {
        try
        {
            return ClusterStoreFactory.Parse(storeUrl).Kind == StoreKind.Embedded;
        }
        catch (ArgumentException)
        {
            // A bad URL is reported when the store is opened; it is not an embedded store either way.
            return false;
        }
    }

    /// <summary>A unicast address other hosts can send VXLAN to: not unspecified, loopback, multicast or broadcast.</summary>
    public static IPAddress ParseAdvertiseAddress(string name, string value)
    {
        var text = value.Trim();
        if (!IPAddress.TryParse(text, out var address) || text.Contains('/') || text.Contains('%')
            || address.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6)
            || address.AddressFamily == AddressFamily.InterNetwork && text.Count(c => c == '.') != 3)
            throw SkeinException.Invalid($"{name} needs this host's underlay IP address (e.g. 192.0.2.10), got '{value}'");
        if (address.IsIPv4MappedToIPv6)
            address = address.MapToIPv4();
        string? why = address switch
        {
            _ when address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any) => "is unspecified",
            _ when IPAddress.IsLoopback(address) => "is a loopback address other hosts cannot reach",
            _ when address.Equals(IPAddress.Broadcast) => "is the broadcast address",
            _ when address.AddressFamily == AddressFamily.InterNetwork && address.GetAddressBytes()[0] >= 224 => "is a multicast or reserved address",
            _ when address.IsIPv6Multicast => "is a multicast address",
            _ when address.IsIPv6LinkLocal => "is link-local; VXLAN needs a routable underlay address",
            _ => null,
        };
        if (why is not null)
            throw SkeinException.Invalid($"{name} {address} {why}; give this host's underlay IP address");
        return address;
    }

    private static ushort ParsePort(string name, string value) =>
        int.TryParse(value.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var port) && port is >= 1 and <= 65535
            ? (ushort)port
            : throw SkeinException.Invalid($"{name} needs a UDP port number in 1-65535, got '{value}'");

    private static string ParseNodeId(string name, string value)
    {
        var id = value.Trim();
        if (id.Length is 0 or > 63 || !id.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-') || id.StartsWith('-') || id.EndsWith('-'))
            throw SkeinException.Invalid($"{name} '{value}' is not a node id: 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'");
        return id;
    }

    private static TimeSpan ParseReclaimAfter(string name, string value)
    {
        var seconds = ParseSeconds(name, value);
        if (seconds < MinimumReclaimAfter)
            throw SkeinException.Invalid($"{name} {seconds.TotalSeconds:0.###} s is too short: a host that restarts or loses the store for a moment would have its addresses reclaimed; give at least {MinimumReclaimAfter.TotalSeconds:0} seconds");
        return seconds;
    }

    private static string NonEmpty(string name, string value) =>
        value.Length > 0 ? value : throw SkeinException.Invalid($"option {name} needs a non-empty value");

    private static Microsoft.Extensions.Logging.LogLevel ParseLogLevel(string name, string value) =>
        value.ToLowerInvariant() switch
        {
            "trace" => Microsoft.Extensions.Logging.LogLevel.Trace,
            "debug" => Microsoft.Extensions.Logging.LogLevel.Debug,
            "info" or "information" => Microsoft.Extensions.Logging.LogLevel.Information,
            "warn" or "warning" => Microsoft.Extensions.Logging.LogLevel.Warning,
            "error" => Microsoft.Extensions.Logging.LogLevel.Error,
            _ => throw SkeinException.Invalid($"{name} must be one of trace, debug, info, warn, error; got '{value}'"),
        };

    private static TimeSpan ParseSeconds(string name, string value) =>
        double.TryParse(value, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var seconds) && seconds >= 0
            ? TimeSpan.FromSeconds(seconds)
            : throw SkeinException.Invalid($"option {name} needs a number of seconds, got '{value}'");
}
