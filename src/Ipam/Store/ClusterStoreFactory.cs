using Skein.Ipam.Store.Consul;
using Skein.Ipam.Store.Embedded;
using Skein.Ipam.Store.Etcd;

namespace Skein.Ipam.Store;

/// <summary>
/// Turns <c>--store</c> into a store. Accepted forms:
/// <list type="bullet">
/// <item>empty, null or <c>embedded</c>: the single-host store in <c>&lt;stateDir&gt;/store</c>;</item>
/// <item><c>consul://host[:port][/root/prefix]</c> (HTTP, port 8500) and <c>consul+https://host[:port][/root/prefix]</c> (port 8501);
/// <c>consul://</c> with no host takes CONSUL_HTTP_ADDR (and CONSUL_HTTP_SSL), else 127.0.0.1:8500;</item>
/// <item><c>etcd://host[:port][/root/prefix]</c> (HTTP, port 2379) and <c>etcd+https://...</c>.</item>
/// </list>
/// The root prefix defaults to <c>skein/v1</c>. Credentials never go in the URL: Consul reads
/// CONSUL_HTTP_TOKEN, CONSUL_HTTP_TOKEN_FILE, CONSUL_CACERT, CONSUL_CAPATH, CONSUL_CLIENT_CERT,
/// CONSUL_CLIENT_KEY, CONSUL_TLS_SERVER_NAME, CONSUL_HTTP_SSL_VERIFY (cluster-store §1.1, decisions #22);
/// etcd reads ETCDCTL_USER, ETCDCTL_PASSWORD, ETCDCTL_CACERT, ETCDCTL_CERT, ETCDCTL_KEY.
/// </summary>
public static class ClusterStoreFactory
{
    public const string DefaultRootPrefix = "skein/v1";
    public const string EmbeddedSubdirectory = "store";

    public static async Task<IClusterStore> OpenAsync(
        string? url,
        string stateDir,
        TimeProvider? time = null,
        Func<string, string?>? environment = null,
        CancellationToken ct = default)
    {
        var location = Parse(url, environment);
        switch (location.Kind)
        {
            case StoreKind.Embedded:
                ArgumentException.ThrowIfNullOrEmpty(stateDir);
                return await EmbeddedStore.OpenAsync(Path.Combine(stateDir, EmbeddedSubdirectory), time, ct).ConfigureAwait(false);
            case StoreKind.Consul:
                return ConsulStore.Create(location, time);
            case StoreKind.Etcd:
                return EtcdStore.Create(location, time);
            default:
                throw new ArgumentException($"unknown store kind {location.Kind}");
        }
    }

    /// <summary>Parses a store URL and the environment; throws ArgumentException naming what is wrong.</summary>
    public static StoreLocation Parse(string? url, Func<string, string?>? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        url = url?.Trim();
        if (string.IsNullOrEmpty(url) || url.Equals("embedded", StringComparison.OrdinalIgnoreCase))
            return new StoreLocation { Kind = StoreKind.Embedded };

        var separator = url.IndexOf("://", StringComparison.Ordinal);
        if (separator <= 0)
            throw new ArgumentException($"store '{url}' is not a store URL; use 'embedded', consul://host:port/prefix, consul+https://host:port/prefix, etcd://host:port/prefix or etcd+https://host:port/prefix");
        var scheme = url[..separator].ToLowerInvariant();
        var rest = url[(separator + 3)..];
        if (rest.Contains('?') || rest.Contains('#'))
            throw new ArgumentException($"store URL '{url}' has a query or fragment; settings come from the environment (CONSUL_* / ETCDCTL_*)");
        var slash = rest.IndexOf('/');
        var authority = slash < 0 ? rest : rest[..slash];
        var path = slash < 0 ? "" : rest[(slash + 1)..];
        if (authority.Contains('@'))
            throw new ArgumentException($"store URL '{Redact(url)}' carries credentials; put them in CONSUL_HTTP_TOKEN(_FILE) or ETCDCTL_USER/ETCDCTL_PASSWORD instead");
        var root = ParseRootPrefix(path, url);

        return scheme switch
        {
            "consul" => ConsulLocation(authority, https: false, explicitScheme: false, root, environment, url),
            "consul+http" => ConsulLocation(authority, https: false, explicitScheme: true, root, environment, url),
            "consul+https" => ConsulLocation(authority, https: true, explicitScheme: true, root, environment, url),
            "etcd" or "etcd+http" => EtcdLocation(authority, https: false, root, environment, url),
            "etcd+https" => EtcdLocation(authority, https: true, root, environment, url),
            _ => throw new ArgumentException($"store URL '{url}' has unknown scheme '{scheme}'; use consul://, consul+https://, etcd:// or etcd+https://"),
        };
    }

    private static StoreLocation ConsulLocation(string authority, bool https, bool explicitScheme, string root, Func<string, string?> env, string url)
    {
        if (authority.Length == 0)
        {
            // consul:// with no host: the agent address the Consul CLI would use.
            var address = NonEmpty(env("CONSUL_HTTP_ADDR"));
            if (address is not null)
            {
                if (address.StartsWith("https://", StringComparison.OrdinalIgnoreCase))
                    (https, address) = (true, address["https://".Length..]);
                else if (address.StartsWith("http://", StringComparison.OrdinalIgnoreCase))
                    (https, address) = (false, address["http://".Length..]);
                else if (address.Contains("://", StringComparison.Ordinal))
                    throw new ArgumentException($"CONSUL_HTTP_ADDR '{address}' uses a scheme skein does not support; use host:port or http(s)://host:port");
                authority = address.TrimEnd('/');
            }
            else
            {
                authority = "127.0.0.1:8500";
            }
            if (!explicitScheme && IsTrue(env("CONSUL_HTTP_SSL")))
                https = true;
        }
        var verifyText = NonEmpty(env("CONSUL_HTTP_SSL_VERIFY"));
        return new StoreLocation
        {
            Kind = StoreKind.Consul,
            BaseAddress = BaseUri(authority, https, https ? 8501 : 8500, url),
            RootPrefix = root,
            Token = ReadConsulToken(env),
            CaFile = NonEmpty(env("CONSUL_CACERT")),
            CaPath = NonEmpty(env("CONSUL_CAPATH")),
            ClientCertFile = NonEmpty(env("CONSUL_CLIENT_CERT")),
            ClientKeyFile = NonEmpty(env("CONSUL_CLIENT_KEY")),
            TlsServerName = NonEmpty(env("CONSUL_TLS_SERVER_NAME")),
            VerifyTls = verifyText is null || !IsFalse(verifyText),
        };
    }

    private static string? ReadConsulToken(Func<string, string?> env)
    {
        var token = NonEmpty(env("CONSUL_HTTP_TOKEN"));
        if (token is not null)
            return token;
        var file = NonEmpty(env("CONSUL_HTTP_TOKEN_FILE"));
        if (file is null)
            return null;
        try
        {
            return NonEmpty(File.ReadAllText(file).Trim())
                ?? throw new ArgumentException($"CONSUL_HTTP_TOKEN_FILE '{file}' is empty");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"CONSUL_HTTP_TOKEN_FILE '{file}' cannot be read: {e.Message}", e);
        }
    }

    private static StoreLocation EtcdLocation(string authority, bool https, string root, Func<string, string?> env, string url)
    {
        if (authority.Length == 0)
            throw new ArgumentException($"store URL '{url}' names no etcd host; use etcd://host:port/prefix");
        var user = NonEmpty(env("ETCDCTL_USER"));
        var password = NonEmpty(env("ETCDCTL_PASSWORD"));
        if (user is not null && password is null && user.Contains(':'))
        {
            var colon = user.IndexOf(':');
            (user, password) = (user[..colon], user[(colon + 1)..]);
        }
        if (user is not null && password is null)
            throw new ArgumentException("ETCDCTL_USER is set without a password (use ETCDCTL_USER=name:password or ETCDCTL_PASSWORD)");
        return new StoreLocation
        {
            Kind = StoreKind.Etcd,
            BaseAddress = BaseUri(authority, https, 2379, url),
            RootPrefix = root,
            User = user,
            Password = password,
            CaFile = NonEmpty(env("ETCDCTL_CACERT")),
            ClientCertFile = NonEmpty(env("ETCDCTL_CERT")),
            ClientKeyFile = NonEmpty(env("ETCDCTL_KEY")),
        };
    }

    private static Uri BaseUri(string authority, bool https, int defaultPort, string url)
    {
        var withPort = HasPort(authority) ? authority : $"{authority}:{defaultPort}";
        if (!Uri.TryCreate($"{(https ? "https" : "http")}://{withPort}/", UriKind.Absolute, out var uri) || uri.AbsolutePath != "/")
            throw new ArgumentException($"store URL '{url}' has an invalid host or port '{authority}'");
        return uri;
    }

    private static bool HasPort(string authority)
    {
        var bracket = authority.LastIndexOf(']');
        var colon = authority.LastIndexOf(':');
        return colon > bracket && (bracket >= 0 || authority.IndexOf(':') == colon);
    }

    private static string ParseRootPrefix(string path, string url)
    {
        var root = path.Trim('/');
        if (root.Length == 0)
            return DefaultRootPrefix;
        try
        {
            StoreRequestValidator.ValidateKey(root, StoreLimits.Default);
        }
        catch (StoreRejectedException e)
        {
            throw new ArgumentException($"store URL '{url}' has an invalid root prefix: {e.Message}", e);
        }
        return root;
    }

    private static string Redact(string url)
    {
        var start = url.IndexOf("://", StringComparison.Ordinal) + 3;
        var at = url.IndexOf('@', start);
        return at < 0 ? url : string.Concat(url.AsSpan(0, start), "***", url.AsSpan(at));
    }

    private static string? NonEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();

    private static bool IsTrue(string? value) => value is not null && (value.Trim() is "1" || value.Trim().Equals("true", StringComparison.OrdinalIgnoreCase));

    private static bool IsFalse(string value) => value.Trim() is "0" || value.Trim().Equals("false", StringComparison.OrdinalIgnoreCase);
}
