namespace Quid.Links;

/// <summary>
/// Counts events that are worth a warning, for a warning said at most once an interval: the first
/// event of an interval gets the count since the last warning (itself included), the others null.
/// So a flood of refusals or failures costs one log line a minute, not one each.
/// </summary>
public sealed class OncePerInterval(TimeSpan interval, TimeProvider time)
{
    private readonly Lock _lock = new();
    private long? _warnedAt;
    private int _since;

    public int? Count()
    {
        lock (_lock)
        {
            _since++;
            long now = time.GetTimestamp();
            if (_warnedAt is { } warned && time.GetElapsedTime(warned, now) < interval) return null;
            _warnedAt = now;
            int count = _since;
            _since = 0;
            return count;
        }
    }
}
