namespace Quid.Tests.Integration;

/// <summary>
/// The system's clock, moved on by what a test says: dates (payments, epochs, expiries) jump
/// ahead while timers and elapsed times run as they do, so real nodes keep working across the jump.
/// </summary>
internal sealed class ShiftedTime : TimeProvider
{
    private long _offsetTicks;

    public void Advance(TimeSpan by) => Interlocked.Add(ref _offsetTicks, by.Ticks);

    public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + TimeSpan.FromTicks(Interlocked.Read(ref _offsetTicks));
}
