using Skein.Ipam;

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
                _ => throw SkeinException.Invalid($"unknown option '{arg}' for skein serve (known: --socket, --state-dir, --store, --netns, --reconcile-interval, --log-level)"),
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
