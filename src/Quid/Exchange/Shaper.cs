namespace Quid.Exchange;

/// <summary>
/// Shapes the traffic we carry for partners, like a Linux HTB class per partner (a share) under one
/// parent: each partner is guaranteed the rate we granted it; what the guarantees leave unused
/// of our whole offer may be lent to whoever has traffic waiting, and is reclaimed as soon as a
/// guaranteed class needs it. Excess waits, it is never dropped: <see cref="Share.Reserve"/> says how
/// long. One shaper per direction. Thread-safe; time comes from the <see cref="TimeProvider"/>.
/// </summary>
public sealed class Shaper
{
    /// <summary>Tokens kept at most, in seconds of rate: enough to smooth a burst of cells, short enough to be fair.</summary>
    private const double BurstSeconds = 0.1;
    private const double MinBurstBytes = 8 * 2048;

    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private readonly Bucket _parent;

    public Shaper(double ceilingBytesPerSecond, TimeProvider time)
    {
        _time = time;
        _parent = new Bucket(ceilingBytesPerSecond, time.GetTimestamp());
    }

    private sealed class Bucket(double rate, long now)
    {
        public double Rate = rate;
        public double Tokens = Math.Max(MinBurstBytes, rate * BurstSeconds);
        public long Updated = now;

        public double Burst => Math.Max(MinBurstBytes, Rate * BurstSeconds);

        public void Refill(TimeProvider time, long now)
        {
            Tokens = Math.Min(Burst, Tokens + time.GetElapsedTime(Updated, now).TotalSeconds * Rate);
            Updated = now;
        }
    }

    /// <summary>A partner's share: its guaranteed rate, changed when the grant changes.</summary>
    public sealed class Share
    {
        private readonly Shaper _shaper;
        private readonly Bucket _bucket;

        internal Share(Shaper shaper, double bytesPerSecond)
        {
            _shaper = shaper;
            _bucket = new Bucket(bytesPerSecond, shaper._time.GetTimestamp());
        }

        public double GuaranteedBytesPerSecond
        {
            get { lock (_shaper._lock) return _bucket.Rate; }
            set { lock (_shaper._lock) _bucket.Rate = value; }
        }

        /// <summary>
        /// Takes <paramref name="bytes"/> and returns how long to wait before sending them: zero
        /// within the guarantee or when idle capacity can be lent, otherwise the time the
        /// guarantee needs to cover the excess.
        /// </summary>
        public TimeSpan Reserve(int bytes)
        {
            lock (_shaper._lock)
            {
                long now = _shaper._time.GetTimestamp();
                _bucket.Refill(_shaper._time, now);
                var parent = _shaper._parent;
                parent.Refill(_shaper._time, now);
                // Deficit buckets: a send goes when the balance is positive and may leave it
                // negative; the debt delays what follows. So a large chunk needs no large burst,
                // and the long-run rate is exact.
                if (_bucket.Tokens > 0)
                {
                    // Within the guarantee. It counts against the parent too, debt and all, so
                    // that what the guarantees use is never lent out.
                    _bucket.Tokens -= bytes;
                    parent.Tokens -= bytes;
                    return TimeSpan.Zero;
                }
                if (parent.Tokens > 0)
                {
                    // Borrowed: capacity no guarantee is using right now.
                    parent.Tokens -= bytes;
                    return TimeSpan.Zero;
                }
                // Neither, now: wait for whichever comes first, the guarantee repaying its debt or
                // the parent having spare capacity to lend, and take the bytes from that one.
                double ownWait = _bucket.Rate > 0 ? -_bucket.Tokens / _bucket.Rate : double.MaxValue;
                double lendWait = -parent.Tokens / parent.Rate;
                parent.Tokens -= bytes;
                if (lendWait < ownWait) return TimeSpan.FromSeconds(lendWait);
                _bucket.Tokens -= bytes;
                return TimeSpan.FromSeconds(ownWait);
            }
        }
    }

    public Share NewShare(double guaranteedBytesPerSecond) => new(this, guaranteedBytesPerSecond);
}
