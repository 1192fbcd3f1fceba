using Microsoft.Extensions.Logging;

namespace Quid.Node;

/// <summary>
/// Gives memory back to the system once a burst of traffic is over. The garbage collector runs
/// when the program allocates, and a relay that has just carried a thousand streams and falls
/// quiet hardly allocates: the buffers and streams of the burst would stay resident for hours.
/// So, checked every few seconds: when the process's resident memory has grown well past where it
/// was after the last such collection and allocation has slowed to a trickle, one full, compacting
/// collection that releases the free memory to the system.
/// </summary>
/// <remarks>
/// Resident memory, not the collector's own figures: those are from its last collection, which
/// for a process gone quiet may have been in the middle of the burst.
/// </remarks>
internal sealed class MemoryReturn(TimeProvider time, ILogger logger)
{
    private static readonly TimeSpan CheckInterval = TimeSpan.FromSeconds(5);
    /// <summary>Allocation below this per check is quiet: an idle node's upkeep, a trickle of traffic.</summary>
    private const long QuietBytesPerCheck = 16L << 20;
    /// <summary>Growth that is worth a full collection: a fifth over the last level, and at least 16 MiB.</summary>
    private const long MinGrowth = 16L << 20;

    private DateTimeOffset _nextCheck = time.GetUtcNow() + CheckInterval;
    private long _allocatedAtCheck = GC.GetTotalAllocatedBytes();
    private long _level = Environment.WorkingSet;

    /// <summary>Called from the node's upkeep; does nothing most of the time.</summary>
    public void Tick()
    {
        var now = time.GetUtcNow();
        if (now < _nextCheck) return;
        _nextCheck = now + CheckInterval;
        long allocated = GC.GetTotalAllocatedBytes();
        bool quiet = allocated - _allocatedAtCheck < QuietBytesPerCheck;
        _allocatedAtCheck = allocated;
        long resident = Environment.WorkingSet;
        if (!quiet || resident < _level + Math.Max(MinGrowth, _level / 5))
        {
            // Memory that came back by itself sets a lower level to come back to.
            _level = Math.Min(_level, resident);
            return;
        }
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        // The level is what is left, returned or not: a process whose growth was not the heap's is not collected again for it.
        _level = Environment.WorkingSet;
        logger.LogDebug("Returned memory after a burst: resident memory went from {Before} to {After} MiB", resident >> 20, _level >> 20);
    }
}
