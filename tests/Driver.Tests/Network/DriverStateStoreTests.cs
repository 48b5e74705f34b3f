using System.Reflection;
using System.Runtime.ExceptionServices;
using Skein.Driver.Network.State;
using Skein.Ipam.Store;
using Skein.Ipam.Store.Embedded;

namespace Skein.Driver.Tests.Network;

/// <summary>
/// The driver's records on the real embedded store: a put that would store the bytes already stored costs no
/// durable write (the store's revision does not move), what is stored survives a reopen, and a write whose
/// outcome is unknown is never skipped afterwards.
/// </summary>
public sealed class DriverStateStoreTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "skein-dss-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir))
            Directory.Delete(_dir, recursive: true);
    }

    private static EndpointRecord Endpoint(string id = "ep1") => new()
    {
        EndpointId = id,
        NetworkId = "net1",
        HostVeth = "skv000000000001",
        ContainerVeth = "skc000000000001",
        MacAddress = "02:42:0a:00:00:02",
        MacGenerated = false,
        IPv4Address = "10.0.0.2/24",
        CreatedAt = DateTimeOffset.UnixEpoch,
    };

    [Fact]
    public async Task Program_and_Revoke_without_port_mappings_write_nothing_and_Leave_does()
    {
        await using var store = await EmbeddedStore.OpenAsync(_dir);
        var state = new DriverStateStore(store);
        var created = Endpoint();
        await state.PutEndpointAsync(created, CancellationToken.None);
        var joined = created with { Joined = true };
        await state.PutEndpointAsync(joined, CancellationToken.None);
        var afterJoin = store.Revision;

        await state.PutEndpointAsync(joined with { ExternallyConnected = true }, CancellationToken.None); // Program, no -p
        await state.PutEndpointAsync(joined with { ExternallyConnected = false }, CancellationToken.None); // Revoke
        await state.PutEndpointAsync(joined, CancellationToken.None); // a repeated Join
        Assert.Equal(afterJoin, store.Revision);
        Assert.Equal(3, state.SkippedWrites);

        await state.PutEndpointAsync(joined with { Joined = false }, CancellationToken.None); // Leave
        Assert.Equal(afterJoin + 1, store.Revision);
        var (_, endpoints) = await new DriverStateStore(store).LoadAsync(CancellationToken.None);
        Assert.False(Assert.Single(endpoints).Joined);
    }

    [Fact]
    public async Task The_connected_flag_with_port_mappings_is_written_and_survives_a_reopen()
    {
        var published = Endpoint() with
        {
            Joined = true,
            ExternallyConnected = true,
            PortMappings = [new PortMappingRecord(6, 80, 8080, 8080, null)],
        };
        await using (var store = await EmbeddedStore.OpenAsync(_dir))
        {
            var state = new DriverStateStore(store);
            await state.PutEndpointAsync(published with { ExternallyConnected = false }, CancellationToken.None);
            var before = store.Revision;
            await state.PutEndpointAsync(published, CancellationToken.None);
            Assert.Equal(before + 1, store.Revision);
        }
        await using (var store = await EmbeddedStore.OpenAsync(_dir))
        {
            var state = new DriverStateStore(store);
            var (_, endpoints) = await state.LoadAsync(CancellationToken.None);
            var loaded = Assert.Single(endpoints);
            Assert.True(loaded.ExternallyConnected);
            Assert.Equal(published.PortMappings, loaded.PortMappings);

            // What was loaded counts as stored: the same record again is no write, a change is.
            var revision = store.Revision;
            await state.PutEndpointAsync(loaded, CancellationToken.None);
            Assert.Equal(revision, store.Revision);
            await state.PutEndpointAsync(loaded with { ExternallyConnected = false }, CancellationToken.None);
            Assert.Equal(revision + 1, store.Revision);
        }
    }

    [Fact]
    public async Task A_put_after_a_delete_is_written_again()
    {
        await using var store = await EmbeddedStore.OpenAsync(_dir);
        var state = new DriverStateStore(store);
        await state.PutEndpointAsync(Endpoint(), CancellationToken.None);
        await state.DeleteEndpointAsync("ep1", CancellationToken.None);
        await state.PutEndpointAsync(Endpoint(), CancellationToken.None);
        var (_, endpoints) = await new DriverStateStore(store).LoadAsync(CancellationToken.None);
        Assert.Equal("ep1", Assert.Single(endpoints).EndpointId);
        Assert.Equal(0, state.SkippedWrites);
    }

    [Fact]
    public async Task A_failed_put_is_not_remembered_so_its_retry_is_written()
    {
        await using var inner = await EmbeddedStore.OpenAsync(_dir);
        var failing = FailingStore.Create(inner);
        var state = new DriverStateStore(failing.Store);
        var record = Endpoint();
        await state.PutEndpointAsync(record, CancellationToken.None);

        failing.FailPuts = true;
        var changed = record with { Joined = true };
        await Assert.ThrowsAsync<StoreUnavailableException>(() => state.PutEndpointAsync(changed, CancellationToken.None));
        // The old bytes are no longer assumed either: even a put of the first record goes to the store.
        await Assert.ThrowsAsync<StoreUnavailableException>(() => state.PutEndpointAsync(record, CancellationToken.None));

        failing.FailPuts = false;
        await state.PutEndpointAsync(changed, CancellationToken.None);
        var (_, endpoints) = await new DriverStateStore(inner).LoadAsync(CancellationToken.None);
        Assert.True(Assert.Single(endpoints).Joined);
        Assert.Equal(0, state.SkippedWrites);
    }
}

/// <summary>An <see cref="IClusterStore"/> whose puts can be made to fail; everything else goes to the inner store.</summary>
public class FailingStore : DispatchProxy
{
    private IClusterStore _inner = null!;
    public bool FailPuts { get; set; }
    public IClusterStore Store => (IClusterStore)(object)this;

    public static FailingStore Create(IClusterStore inner)
    {
        var proxy = DispatchProxy.Create<IClusterStore, FailingStore>();
        var self = (FailingStore)(object)proxy;
        self._inner = inner;
        return self;
    }

    protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
    {
        ArgumentNullException.ThrowIfNull(targetMethod);
        if (FailPuts && targetMethod.Name == nameof(IClusterStore.PutAsync))
            return Task.FromException<WriteResult>(new StoreUnavailableException("put refused by the test"));
        try
        {
            return targetMethod.Invoke(_inner, args);
        }
        catch (TargetInvocationException ex) when (ex.InnerException is not null)
        {
            ExceptionDispatchInfo.Capture(ex.InnerException).Throw();
            throw;
        }
    }
}
