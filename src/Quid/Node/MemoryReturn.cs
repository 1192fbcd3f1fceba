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
/// for a process gone quiet may have been in the middle of the burst. One watch per process, on
/// the system clock, however many nodes it hosts (the demo, the tests): memory is the process's.
/// </remarks>
internal static class MemoryReturn
{
    private static readonly TimeSpan CheckInterval = TimeSpan.FromSeconds(5);
    /// <summary>Allocation below this per check is quiet: an idle node's upkeep, a trickle of traffic.</summary>
    private const long QuietBytesPerCheck = 16L << 20;
    /// <summary>Growth that is worth a full collection: a fifth over the last level, and at least 16 MiB.</summary>
    private const long MinGrowth = 16L << 20;

    private static readonly Lock Gate = new();
    private static long _nextCheck = (TimeProvider.System.GetUtcNow() + CheckInterval).UtcTicks;
    private static long _allocatedAtCheck = GC.GetTotalAllocatedBytes();
    private static long _level = Environment.WorkingSet;

    /// <summary>Called from every node's upkeep; does nothing most of the time.</summary>
    public static void Tick(ILogger logger)
    {
        var now = TimeProvider.System.GetUtcNow();
        if (now.UtcTicks < Volatile.Read(ref _nextCheck) || !Gate.TryEnter()) return;
        try
        {
            if (now.UtcTicks >= _nextCheck) Check(now, logger);
        }
        finally
        {
            Gate.Exit();
        }
    }

    private static void Check(DateTimeOffset now, ILogger logger)
    {
        Volatile.Write(ref _nextCheck, (now + CheckInterval).UtcTicks);
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
