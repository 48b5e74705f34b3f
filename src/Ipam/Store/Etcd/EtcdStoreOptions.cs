namespace Skein.Ipam.Store.Etcd;

public sealed record EtcdStoreOptions
{
    /// <summary>http(s)://host:port/ of one etcd client URL (the JSON gateway lives under /v3/, §2.1).</summary>
    public required Uri BaseAddress { get; init; }
    public string RootPrefix { get; init; } = ClusterStoreFactory.DefaultRootPrefix;
    /// <summary>With auth enabled: exchanged for a token at /v3/auth/authenticate (§2.7). Never logged.</summary>
    public string? User { get; init; }
    public string? Password { get; init; }
    public HttpMessageHandler? Handler { get; init; }
    public HttpMessageHandler? WatchHandler { get; init; }
    public TimeProvider Time { get; init; } = TimeProvider.System;
    public StoreHttpPolicy Http { get; init; } = StoreHttpPolicy.Default;
    /// <summary>Page size of prefix reads.</summary>
    public int RangePageSize { get; init; } = 1000;
    /// <summary>Long-lived watch streams are re-created this often to catch silently dead connections (§4.11).</summary>
    public TimeSpan WatchRecycleAfter { get; init; } = TimeSpan.FromMinutes(10);
    public TimeSpan WatchRetryMaxDelay { get; init; } = TimeSpan.FromSeconds(10);
}
