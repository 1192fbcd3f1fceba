namespace Quid.Sim;

/// <summary>
/// The discrete-event core: a priority queue of actions by virtual time. Events at the same
/// instant run in the order they were scheduled, so a run is a pure function of its seed.
/// </summary>
public sealed class Scheduler(VirtualClock clock)
{
    // The key compares itself: with the default comparer the queue's sift loops call it directly, not through an interface.
    private readonly PriorityQueue<Action, Key> _queue = new();
    private long _sequence;

    private readonly record struct Key(long Time, long Sequence) : IComparable<Key>
    {
        public int CompareTo(Key other) => Time != other.Time ? Time.CompareTo(other.Time) : Sequence.CompareTo(other.Sequence);
    }

    public VirtualClock Clock => clock;
    public long Executed { get; private set; }
    public int Pending => _queue.Count;

    public void At(long ticks, Action action) => _queue.Enqueue(action, new Key(Math.Max(ticks, clock.Now), _sequence++));

    public void After(TimeSpan delay, Action action) => At(clock.Now + delay.Ticks, action);

    /// <summary>Runs every event due up to <paramref name="end"/> and leaves the clock there.</summary>
    public void RunUntil(long end)
    {
        while (_queue.TryPeek(out _, out var key) && key.Time <= end)
        {
            var action = _queue.Dequeue();
            clock.AdvanceTo(key.Time);
            action();
            Executed++;
        }
        clock.AdvanceTo(end);
    }
}
