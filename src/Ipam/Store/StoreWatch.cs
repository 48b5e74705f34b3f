using System.Runtime.CompilerServices;

namespace Skein.Ipam.Store;

/// <summary>What the HTTP backends' prefix watches share.</summary>
internal static class StoreWatch
{
    /// <summary>
    /// Runs a watch loop that ends quietly when the store is disposed, so that a caller's cancellation
    /// still surfaces as usual.
    /// </summary>
    internal static async IAsyncEnumerable<WatchUpdate> SurfaceCancellation(
        Func<CancellationToken, IAsyncEnumerable<WatchUpdate>> watch, [EnumeratorCancellation] CancellationToken ct)
    {
        await foreach (var update in watch(ct).ConfigureAwait(false))
            yield return update;
        // The loop ends quietly when the store is disposed; a caller's cancellation surfaces as usual.
        ct.ThrowIfCancellationRequested();
    }
}
