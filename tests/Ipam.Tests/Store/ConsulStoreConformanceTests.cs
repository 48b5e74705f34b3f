using Skein.Ipam.Store;
using Skein.Ipam.Store.Consul;
using Skein.Ipam.Tests.Store.FakeConsul;

namespace Skein.Ipam.Tests.Store;

/// <summary>One fake Consul agent for the whole class; each test works under its own root prefix.</summary>
public sealed class FakeConsulFixture : IAsyncLifetime
{
    public FakeConsulServer Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await FakeConsulServer.StartAsync();

    public async Task DisposeAsync() => await Server.DisposeAsync();

    public ConsulStore Open(string root, string? token = null, StoreHttpPolicy? http = null) => new(new ConsulStoreOptions
    {
        BaseAddress = Server.BaseAddress,
        RootPrefix = root,
        Token = token,
        WatchWait = TimeSpan.FromSeconds(5),
        WatchMinInterval = TimeSpan.FromMilliseconds(20),
        WatchRetryMaxDelay = TimeSpan.FromMilliseconds(500),
        Http = http ?? new StoreHttpPolicy { RequestTimeout = TimeSpan.FromSeconds(5), RetryBaseDelay = TimeSpan.FromMilliseconds(20) },
    });

    public static string UniqueRoot() => $"test/{Guid.NewGuid():N}";
}

public sealed class ConsulStoreConformanceTests(FakeConsulFixture fixture) : StoreConformanceTests, IClassFixture<FakeConsulFixture>
{
    private readonly string _root = FakeConsulFixture.UniqueRoot();

    protected override Task<IClusterStore> OpenStoreAsync() => Task.FromResult<IClusterStore>(fixture.Open(_root));

    protected override Task<IClusterStore?> OpenSecondClientAsync() => Task.FromResult<IClusterStore?>(fixture.Open(_root));

    protected override Func<ILiveness, Task>? KillLivenessServerSide => liveness =>
    {
        fixture.Server.DestroySession(liveness.Id);
        return Task.CompletedTask;
    };
}
