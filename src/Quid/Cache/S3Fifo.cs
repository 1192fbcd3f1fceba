using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;

namespace Quid.Cache;

/// <summary>
/// The exit cache's eviction policy: S3-FIFO (Yang et al., "FIFO queues are all you need for cache
/// eviction", SOSP 2023), weighted by size. Most objects fetched through an exit are asked for once,
/// so a new object waits in a small FIFO holding a tenth of the capacity and leaves it quickly
/// unless it is hit twice there; the main FIFO keeps the rest, giving an object hit since it last
/// came round another pass (a 2-bit count, 0..3); and a ghost FIFO of keys only sends an object
/// that comes back soon after leaving the small queue straight to main. Hits only bump a counter
/// and nothing moves except at eviction, so every operation is O(1) amortised. The thresholds are
/// those of the authors' reference implementation (libCacheSim's S3FIFO): two hits to move from
/// small to main, and a ghost remembering as many bytes as main holds.
/// </summary>
/// <remarks>
/// The store decides when to evict (its quota counts filesystem blocks and its own index), so this
/// class only names the next victim: <see cref="Insert"/> never evicts, and the store calls
/// <see cref="TryEvict"/> while it needs room. Not thread-safe: the store holds its lock.
/// </remarks>
public sealed class S3Fifo<TKey> where TKey : notnull
{
    private const int MaxFrequency = 3;
    private const int HitsToMoveToMain = 2;

    // Resident objects and ghosts alike: a ghost is an entry in _ghost, so leaving the small queue
    // and coming back to main reuses one node and one dictionary slot.
    private readonly Dictionary<TKey, Entry> _entries = [];
    private readonly Fifo _small = new();
    private readonly Fifo _main = new();
    private readonly Fifo _ghost = new();
    private long _capacity;
    private int _peakCount;

    public S3Fifo(long capacity) => Capacity = capacity;

    /// <summary>In bytes. A setting the owner may change at run time: the split and the ghost follow at once.</summary>
    public long Capacity
    {
        get => _capacity;
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            _capacity = value;
            TrimGhost();
        }
    }

    /// <summary>Bytes of all resident objects.</summary>
    public long Used => _small.Bytes + _main.Bytes;

    /// <summary>Resident objects.</summary>
    public int Count => _small.Count + _main.Count;

    /// <summary>The small queue's target: a tenth of the capacity. Main may use the rest.</summary>
    private long SmallTarget => _capacity / 10;

    private long MainTarget => _capacity - SmallTarget;

    public bool Contains(TKey key) => _entries.TryGetValue(key, out var entry) && entry.Queue != _ghost;

    /// <summary>
    /// A new resident object of <paramref name="size"/> bytes: into main if its key is still a
    /// ghost (it came back soon after leaving), else into the small queue. Never evicts.
    /// </summary>
    public void Insert(TKey key, long size)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(size);
        ref var slot = ref CollectionsMarshal.GetValueRefOrAddDefault(_entries, key, out bool known);
        if (known)
        {
            var ghost = slot!;
            if (ghost.Queue != _ghost) throw new ArgumentException($"{key} is resident already.", nameof(key));
            _ghost.Remove(ghost);
            ghost.Size = size;
            ghost.Frequency = 0;
            _main.Push(ghost);
        }
        else
        {
            slot = new Entry(key) { Size = size };
            _small.Push(slot);
        }
        _peakCount = Math.Max(_peakCount, Count);
    }

    /// <summary>An access to a resident object: its count goes up by one, to at most 3. False when the key is not resident.</summary>
    public bool Hit(TKey key)
    {
        if (!_entries.TryGetValue(key, out var entry) || entry.Queue == _ghost) return false;
        if (entry.Frequency < MaxFrequency) entry.Frequency++;
        return true;
    }

    /// <summary>
    /// Forgets <paramref name="key"/> for a reason other than eviction (purged, stale, corrupt): it
    /// does not become a ghost, and a ghost of it is forgotten too, so a later insert starts afresh
    /// in the small queue. True when it was resident.
    /// </summary>
    public bool Remove(TKey key)
    {
        if (!_entries.Remove(key, out var entry)) return false;
        bool resident = entry.Queue != _ghost;
        entry.Queue!.Remove(entry);
        TrimGhost();
        return resident;
    }

    /// <summary>
    /// Names the next victim and removes it from the resident set; false when nothing is resident.
    /// The small queue gives one up while main is within its nine tenths (an object hit twice
    /// there moves to main instead, its count cleared, and becomes no victim); otherwise main's
    /// oldest object leaves unless it was hit since it last came round, in which case it goes
    /// round again with its count one lower. A move that takes main past its share makes main give
    /// the victim, as in the paper's algorithm (libCacheSim keeps taking from the small queue).
    /// </summary>
    public bool TryEvict([MaybeNullWhen(false)] out TKey key)
    {
        while (Count > 0)
        {
            if (_small.Oldest is { } small && _main.Bytes <= MainTarget)
            {
                _small.Remove(small);
                if (small.Frequency >= HitsToMoveToMain)
                {
                    small.Frequency = 0;
                    _main.Push(small);
                    continue;
                }
                _ghost.Push(small);
                TrimGhost();
                key = small.Key;
                return true;
            }
            var main = _main.Oldest!;
            _main.Remove(main);
            if (main.Frequency > 0)
            {
                main.Frequency--;
                _main.Push(main);
                continue;
            }
            _entries.Remove(main.Key);
            TrimGhost();
            key = main.Key;
            return true;
        }
        key = default;
        return false;
    }

    /// <summary>
    /// The ghost remembers the newest keys worth as many bytes as main may hold, as the reference
    /// does, and never more keys than were ever resident at once: empty objects weigh nothing, and
    /// must not make it grow without bound.
    /// </summary>
    private void TrimGhost()
    {
        while (_ghost.Oldest is { } oldest && (_ghost.Bytes > MainTarget || _ghost.Count > _peakCount))
        {
            _ghost.Remove(oldest);
            _entries.Remove(oldest.Key);
        }
    }

    /// <summary>One object, resident or a ghost: a node of the queue it is in.</summary>
    private sealed class Entry(TKey key)
    {
        public TKey Key { get; } = key;
        public long Size { get; set; }
        public int Frequency { get; set; }
        public Fifo? Queue { get; set; }
        public Entry? Older { get; set; }
        public Entry? Newer { get; set; }
    }

    /// <summary>A FIFO threaded through its entries, so moving one between queues allocates nothing.</summary>
    private sealed class Fifo
    {
        private Entry? _newest;

        public Entry? Oldest { get; private set; }
        public long Bytes { get; private set; }
        public int Count { get; private set; }

        public void Push(Entry entry)
        {
            entry.Queue = this;
            entry.Older = _newest;
            entry.Newer = null;
            if (_newest is null) Oldest = entry;
            else _newest.Newer = entry;
            _newest = entry;
            Bytes += entry.Size;
            Count++;
        }

        public void Remove(Entry entry)
        {
            if (entry.Older is null) Oldest = entry.Newer;
            else entry.Older.Newer = entry.Newer;
            if (entry.Newer is null) _newest = entry.Older;
            else entry.Newer.Older = entry.Older;
            entry.Older = entry.Newer = null;
            entry.Queue = null;
            Bytes -= entry.Size;
            Count--;
        }
    }
}
