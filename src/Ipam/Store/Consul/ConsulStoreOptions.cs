namespace Skein.Ipam.Store.Consul;

public sealed record ConsulStoreOptions
{
    /// <summary>http(s)://agent:port/ — talk to the local agent when there is one (cluster-store §1.1).</summary>
    public required Uri BaseAddress { get; init; }
    public string RootPrefix { get; init; } = ClusterStoreFactory.DefaultRootPrefix;
    /// <summary>Sent as X-Consul-Token; never logged, never part of an error message.</summary>
    public string? Token { get; init; }
    /// <summary>Handler for short calls and one for blocking watches (separate pools so watches cannot starve writes, §1.13). Null: built here.</summary>
    public HttpMessageHandler? Handler { get; init; }
    public HttpMessageHandler? WatchHandler { get; init; }
    public TimeProvider Time { get; init; } = TimeProvider.System;
    public StoreHttpPolicy Http { get; init; } = StoreHttpPolicy.Default;
    /// <summary>Server-side hold of one blocking query (§1.10: default 5 min, capped at 10 min).</summary>
    public TimeSpan WatchWait { get; init; } = TimeSpan.FromMinutes(5);
    /// <summary>Blocking calls start at most this often: changes in between coalesce into one diff (decisions #19).</summary>
    public TimeSpan WatchMinInterval { get; init; } = TimeSpan.FromMilliseconds(250);
    /// <summary>Upper bound of the jittered back-off after a failed watch call.</summary>
    public TimeSpan WatchRetryMaxDelay { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>Consul refuses session TTLs below 10 s (§1.8, decisions #20).</summary>
    public static readonly TimeSpan MinSessionTtl = TimeSpan.FromSeconds(10);
}
