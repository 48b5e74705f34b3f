namespace Skein.Ipam.Store;

public enum StoreKind { Embedded, Consul, Etcd }

/// <summary>
/// Where the cluster store lives, parsed from <c>--store</c> plus the environment.
/// Secrets (token, password) are held here but never printed: <see cref="ToString"/> omits them.
/// </summary>
public sealed record StoreLocation
{
    public required StoreKind Kind { get; init; }
    /// <summary>http(s)://host:port/ of the Consul agent or etcd client URL; null for the embedded store.</summary>
    public Uri? BaseAddress { get; init; }
    /// <summary>Root under which every skein key lives (cluster-store §4.4), no leading or trailing '/'.</summary>
    public string RootPrefix { get; init; } = ClusterStoreFactory.DefaultRootPrefix;
    /// <summary>Consul ACL token (CONSUL_HTTP_TOKEN / CONSUL_HTTP_TOKEN_FILE).</summary>
    public string? Token { get; init; }
    /// <summary>etcd user and password (ETCDCTL_USER "name[:password]", ETCDCTL_PASSWORD).</summary>
    public string? User { get; init; }
    public string? Password { get; init; }
    /// <summary>PEM file of the CA that signs the store's server certificate.</summary>
    public string? CaFile { get; init; }
    /// <summary>Directory of PEM CA certificates (CONSUL_CAPATH).</summary>
    public string? CaPath { get; init; }
    public string? ClientCertFile { get; init; }
    public string? ClientKeyFile { get; init; }
    /// <summary>Name to expect in the server certificate when it differs from the host in the URL.</summary>
    public string? TlsServerName { get; init; }
    /// <summary>False only when the operator explicitly disabled verification (CONSUL_HTTP_SSL_VERIFY=false).</summary>
    public bool VerifyTls { get; init; } = true;

    public override string ToString() => Kind switch
    {
        StoreKind.Embedded => "embedded",
        _ => $"{Kind.ToString().ToLowerInvariant()} {BaseAddress}{RootPrefix}" +
             (Token is null ? "" : " (token set)") + (User is null ? "" : $" (user {User})"),
    };
}
