namespace Skein.Ipam.Tests.Store.FakeConsul;

/// <summary>
/// Real time plus an offset that tests push forward (decisions #20: session TTL tests must not wait
/// 20–40 s). Short real intervals, such as a 1 ms lock-delay, still pass on their own.
/// </summary>
public sealed class ManualClock : TimeProvider
{
    private long _offsetTicks;

    public override DateTimeOffset GetUtcNow() => System.GetUtcNow() + TimeSpan.FromTicks(Interlocked.Read(ref _offsetTicks));

    public void Advance(TimeSpan by) => Interlocked.Add(ref _offsetTicks, by.Ticks);
}
