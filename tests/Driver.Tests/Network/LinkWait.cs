using Skein.Driver.Tests.TestSupport;

namespace Skein.Driver.Tests.Network;

/// <summary>
/// Veth pairs are deleted in the background after DeleteEndpoint is answered (Setup/DeferredLinkDeleter), so a
/// test that checks for their absence waits for it, within a bound far above the ~20 ms the kernel needs.
/// </summary>
internal static class LinkWait
{
    public static readonly TimeSpan Bound = TimeSpan.FromSeconds(15);

    /// <summary>Waits until none of <paramref name="names"/> exists, then asserts it (failing with the names left).</summary>
    public static async Task AssertGoneAsync(PluginTestHost host, params string[] names)
    {
        var left = await WaitAsync(() => host.LinkNames().Intersect(names, StringComparer.Ordinal).ToList());
        Assert.True(left.Count == 0, $"still present {Bound.TotalSeconds:0} s after being deleted: {string.Join(", ", left)}");
    }

    /// <summary>Waits until the namespace holds no skein-shaped link, then asserts it.</summary>
    public static async Task AssertNoSkeinLinksAsync(PluginTestHost host) =>
        Assert.Empty(await WaitAsync(() => host.SkeinLinkNames().ToList()));

    private static async Task<List<string>> WaitAsync(Func<List<string>> left)
    {
        var deadline = DateTime.UtcNow + Bound;
        while (true)
        {
            var now = left();
            if (now.Count == 0 || DateTime.UtcNow >= deadline)
                return now;
            await Task.Delay(20);
        }
    }
}
