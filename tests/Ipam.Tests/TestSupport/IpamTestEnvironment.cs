using Skein.Ipam.Addressing;
using Skein.Ipam.Allocation;
using Skein.Ipam.Host;
using Skein.Ipam.Store;
using Skein.Ipam.Store.Embedded;

namespace Skein.Ipam.Tests.TestSupport;

/// <summary>
/// A clock the test moves by hand (quarantine, timestamps, and the monotonic timestamp the dead-node
/// collector measures absence with). Timers still run in real time.
/// </summary>
public sealed class ManualTimeProvider(DateTimeOffset start) : TimeProvider
{
    private long _ticks = start.UtcTicks;
    public ManualTimeProvider() : this(new DateTimeOffset(2026, 11, 28, 12, 0, 0, TimeSpan.Zero)) { }
    public override DateTimeOffset GetUtcNow() => new(Interlocked.Read(ref _ticks), TimeSpan.Zero);
    public override long TimestampFrequency => TimeSpan.TicksPerSecond;
    public override long GetTimestamp() => Interlocked.Read(ref _ticks);
    public void Advance(TimeSpan by) => Interlocked.Add(ref _ticks, by.Ticks);
}

/// <summary>A host whose routes and nameservers the test chooses.</summary>
public sealed class FakeHostNetworkView : IHostNetworkView
{
    public List<HostReservedNetwork> Networks { get; } = [];

    public FakeHostNetworkView Add(string cidr, string source)
    {
        Networks.Add(new HostReservedNetwork(IpPrefix.Parse(cidr, "test"), source));
        return this;
    }

    public IReadOnlyList<HostReservedNetwork> GetReservedNetworks(bool v6) => Networks.Where(n => n.Prefix.IsV6 == v6).ToList();
}

/// <summary>
/// A real EmbeddedStore in a fresh temporary directory, and IpamService instances over it.
/// Disposing closes the store and removes the directory.
/// </summary>
public sealed class IpamTestEnvironment : IAsyncDisposable
{
    public string Directory { get; }
    public EmbeddedStore Store { get; private set; } = null!;
    public ManualTimeProvider Time { get; } = new();
    public FakeHostNetworkView Host { get; } = new();

    private IpamTestEnvironment(string directory) => Directory = directory;

    public static async Task<IpamTestEnvironment> CreateAsync()
    {
        string directory = Path.Combine(Path.GetTempPath(), "skein-ipam-" + Guid.NewGuid().ToString("N"));
        var environment = new IpamTestEnvironment(directory);
        environment.Store = await EmbeddedStore.OpenAsync(Path.Combine(directory, "store"));
        return environment;
    }

    public IpamService NewService(string node = "node-a", Func<IpamOptions, IpamOptions>? configure = null, IClusterStore? store = null)
    {
        var options = new IpamOptions { NodeId = node };
        if (configure is not null)
            options = configure(options);
        return new IpamService(store ?? Store, options, Host, Time);
    }

    /// <summary>Closes and reopens the store from its files, as after a plugin restart.</summary>
    public async Task ReopenStoreAsync()
    {
        await Store.DisposeAsync();
        Store = await EmbeddedStore.OpenAsync(Path.Combine(Directory, "store"));
    }

    /// <summary>Every key and value under the IPAM's root, to compare before and after a call.</summary>
    public async Task<string> SnapshotAsync()
    {
        var (entries, _) = await Store.ListAsync("skein/", keysOnly: false, CancellationToken.None);
        return string.Join("\n", entries.OrderBy(e => e.Key, StringComparer.Ordinal)
            .Select(e => $"{e.Key}@{e.Version}={System.Text.Encoding.UTF8.GetString(e.Value.Span)}"));
    }

    public async Task<IReadOnlyList<string>> KeysAsync(string prefix = "skein/v1/")
    {
        var (entries, _) = await Store.ListAsync(prefix, keysOnly: true, CancellationToken.None);
        return entries.Select(e => e.Key).Order(StringComparer.Ordinal).ToList();
    }

    public async ValueTask DisposeAsync()
    {
        await Store.DisposeAsync();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }
}
