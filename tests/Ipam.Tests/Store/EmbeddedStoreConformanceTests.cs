using Skein.Ipam.Store;
using Skein.Ipam.Store.Embedded;

namespace Skein.Ipam.Tests.Store;

public sealed class EmbeddedStoreConformanceTests : StoreConformanceTests
{
    private readonly TempDirectory _directory = new("embedded-conformance");

    protected override async Task<IClusterStore> OpenStoreAsync() => await EmbeddedStore.OpenAsync(_directory.Path);

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        _directory.Dispose();
    }
}
