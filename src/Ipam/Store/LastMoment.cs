namespace Skein.Ipam.Store;

/// <summary>When something last happened: set by one thread, read by any; null until it first happens.</summary>
internal sealed class LastMoment
{
    private long _ticks = long.MinValue;

    public DateTimeOffset? Value
    {
        get
        {
            long ticks = Interlocked.Read(ref _ticks);
            return ticks == long.MinValue ? null : new DateTimeOffset(ticks, TimeSpan.Zero);
        }
    }

    public void Set(DateTimeOffset now) => Interlocked.Exchange(ref _ticks, now.UtcTicks);
}
