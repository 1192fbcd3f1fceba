namespace Quid.Overlay;

/// <summary>
/// A rate and a burst: tokens accrue at <see cref="RatePerSecond"/> up to <see cref="Burst"/>,
/// and each use takes some. Time comes from the <see cref="TimeProvider"/>, so tests and the
/// simulator can drive it. Not thread-safe: its owner serialises access.
/// </summary>
public sealed class TokenBucket
{
    private readonly TimeProvider _time;
    private double _tokens;
    private long _updated;

    public TokenBucket(double ratePerSecond, double burst, TimeProvider time)
    {
        if (ratePerSecond <= 0 || burst < 1) throw new ArgumentOutOfRangeException(nameof(ratePerSecond), "A bucket needs a positive rate and a burst of at least one.");
        RatePerSecond = ratePerSecond;
        Burst = burst;
        _time = time;
        _tokens = burst;
        _updated = time.GetTimestamp();
    }

    public double RatePerSecond { get; }
    public double Burst { get; }

    /// <summary>Takes <paramref name="amount"/> tokens if they are there.</summary>
    public bool TryTake(double amount = 1)
    {
        Refill();
        if (_tokens < amount) return false;
        _tokens -= amount;
        return true;
    }

    private void Refill()
    {
        long now = _time.GetTimestamp();
        _tokens = Math.Min(Burst, _tokens + _time.GetElapsedTime(_updated, now).TotalSeconds * RatePerSecond);
        _updated = now;
    }
}
