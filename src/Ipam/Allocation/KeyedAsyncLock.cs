using System.Collections.Concurrent;

namespace Skein.Ipam.Allocation;

/// <summary>One async mutex per key: all work on one pool is serialised in-process, so a node never CAS-conflicts with itself.</summary>
internal sealed class KeyedAsyncLock
{
    private readonly ConcurrentDictionary<string, SemaphoreSlim> _locks = new(StringComparer.Ordinal);

    public async Task<Releaser> AcquireAsync(string key, CancellationToken ct)
    {
        var semaphore = _locks.GetOrAdd(key, static _ => new SemaphoreSlim(1, 1));
        await semaphore.WaitAsync(ct).ConfigureAwait(false);
        return new Releaser(semaphore);
    }

    public readonly struct Releaser(SemaphoreSlim semaphore) : IDisposable
    {
        public void Dispose() => semaphore.Release();
    }
}
