namespace Quid.Sim;

/// <summary>
/// The discrete-event core: a priority queue of actions by virtual time. Events at the same
/// instant run in the order they were scheduled, so a run is a pure function of its seed.
/// </summary>
public sealed class Scheduler(VirtualClock clock)
{
    private readonly PriorityQueue<Action, Key> _queue = new(new KeyComparer());
    private long _sequence;

    private readonly record struct Key(long Time, long Sequence);

    private sealed class KeyComparer : IComparer<Key>
    {
        public int Compare(Key x, Key y) => x.Time != y.Time ? x.Time.CompareTo(y.Time) : x.Sequence.CompareTo(y.Sequence);
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
