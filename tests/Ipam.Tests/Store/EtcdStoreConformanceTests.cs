using System.Text;
using Skein.Ipam.Store;
using Skein.Ipam.Store.Etcd;

namespace Skein.Ipam.Tests.Store;

/// <summary>One real etcd for a whole test class; null when the binary is missing (tests then skip).</summary>
public sealed class EtcdFixture : IAsyncLifetime
{
    public EtcdServer? Server { get; private set; }

    public async Task InitializeAsync()
    {
        if (EtcdServer.Available)
            Server = await EtcdServer.StartAsync();
    }

    public async Task DisposeAsync()
    {
        if (Server is not null)
            await Server.DisposeAsync();
    }

    public EtcdStore Open(string root, StoreHttpPolicy? http = null, string? user = null, string? password = null) => new(new EtcdStoreOptions
    {
        BaseAddress = Server!.BaseAddress,
        RootPrefix = root,
        User = user,
        Password = password,
        WatchRetryMaxDelay = TimeSpan.FromMilliseconds(500),
        Http = http ?? new StoreHttpPolicy { RequestTimeout = TimeSpan.FromSeconds(5), RetryBaseDelay = TimeSpan.FromMilliseconds(20) },
    });

    /// <summary>Revokes a lease behind the client's back, as another operator or an expiry would.</summary>
    public async Task RevokeLeaseAsync(string leaseId)
    {
        using var http = new HttpClient { BaseAddress = Server!.BaseAddress };
        using var response = await http.PostAsync("v3/lease/revoke", new StringContent($"{{\"ID\":\"{leaseId}\"}}", Encoding.UTF8, "application/json"));
        response.EnsureSuccessStatusCode();
    }
}

public sealed class EtcdStoreConformanceTests(EtcdFixture fixture) : StoreConformanceTests, IClassFixture<EtcdFixture>
{
    protected override string? UnavailableReason => fixture.Server is null ? EtcdServer.SkipReason : null;

    private readonly string _root = FakeConsulFixture.UniqueRoot();

    protected override Task<IClusterStore> OpenStoreAsync() => Task.FromResult<IClusterStore>(fixture.Open(_root));

    protected override Task<IClusterStore?> OpenSecondClientAsync() => Task.FromResult<IClusterStore?>(fixture.Open(_root));

    protected override Func<ILiveness, Task>? KillLivenessServerSide => liveness => fixture.RevokeLeaseAsync(liveness.Id);
}
