namespace Quid.Sim;

/// <summary>
/// Virtual time for every node of a run: it stands still while events run and jumps to the
/// next event. Timestamps are 100 ns ticks since the run's epoch, so token buckets and
/// shapers in the real code measure virtual seconds. Nothing in a run may start a real timer.
/// </summary>
public sealed class VirtualClock(DateTimeOffset epoch) : TimeProvider
{
    public static readonly DateTimeOffset DefaultEpoch = new(2030, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public DateTimeOffset Epoch { get; } = epoch;

    /// <summary>Ticks (100 ns) since <see cref="Epoch"/>.</summary>
    public long Now { get; private set; }

    public TimeSpan Elapsed => TimeSpan.FromTicks(Now);

    public override DateTimeOffset GetUtcNow() => Epoch.AddTicks(Now);

    public override long GetTimestamp() => Now;

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public override TimeZoneInfo LocalTimeZone => TimeZoneInfo.Utc;

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
        throw new NotSupportedException("A simulated node must not start real timers: the scheduler drives all time.");

    internal void AdvanceTo(long ticks)
    {
        if (ticks < Now) throw new InvalidOperationException($"Time cannot go back from {Now} to {ticks}.");
        Now = ticks;
    }
}
