using System.Diagnostics;
using System.Globalization;
using Quid.Cache;

namespace Quid.Bench;

/// <summary>
/// Replays a synthetic, seeded web-like trace through the exit cache's eviction policy, so the
/// choice of S3-FIFO and the cost of the "admit on the second request" privacy rule rest on
/// numbers: a size-weighted LRU is the baseline, S3-FIFO the policy, and S3-FIFO behind the
/// admission rule what an exit actually runs. Popularity is Zipf over a fixed catalogue, sizes are
/// lognormal and independent of popularity; each cache is sized as a share of the bytes of the
/// distinct objects the trace asks for, and an object larger than the cache is never admitted.
/// </summary>
internal static class CacheReplay
{
    private const int Objects = 100_000;
    private const int Requests = 2_000_000;
    private const int Seed = 20_231_023;
    private const double MedianSize = 16 * 1024;
    private const double SizeSigma = 2.0;
    private const long MaxSize = 64L << 20;
    // The 'asked once' set of the admission rule: a real store keeps key hashes in memory, and
    // ten thousand of them (a tenth of the catalogue) cost well under a megabyte.
    private const int AskedOnceKeys = 10_000;
    private static readonly double[] Alphas = [0.8, 1.0];
    private static readonly double[] Shares = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3];

    public static int Run()
    {
        var total = Stopwatch.StartNew();
        var random = new Random(Seed);
        long[] sizes = new long[Objects];
        for (int i = 0; i < Objects; i++) sizes[i] = LognormalSize(random);

        Console.WriteLine("## Exit cache: trace replay");
        Console.WriteLine();
        Console.WriteLine("Command: `dotnet run -c Release --project bench/Quid.Bench -- cache-replay`");
        Console.WriteLine();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"Trace: {Objects:N0} objects, {Requests:N0} requests, Zipf popularity, lognormal sizes (median {MedianSize / 1024:0} KiB, σ = {SizeSigma}, capped at {MaxSize >> 20} MiB), seed {Seed}; 'asked once' set of {AskedOnceKeys:N0} keys."));
        Console.WriteLine();
        Console.WriteLine("| policy | α | size (% of bytes) | hit ratio | byte hit ratio |");
        Console.WriteLine("|---|---|---|---|---|");
        foreach (double alpha in Alphas)
        {
            int[] trace = ZipfTrace(alpha, new Random(Seed + (int)(alpha * 1000)));
            int[] distinct = [.. trace.Distinct()];
            long distinctBytes = distinct.Sum(key => sizes[key]);
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"α = {alpha}: {distinct.Length:N0} distinct objects, {distinctBytes / (double)(1L << 30):0.00} GiB"));
            foreach (double share in Shares)
            {
                long capacity = (long)(distinctBytes * share);
                foreach (var (name, cache, admission) in Policies(capacity))
                {
                    var (hits, byteHits) = Replay(trace, sizes, capacity, cache, admission);
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"| {name} | {alpha:0.0} | {share * 100:0.0}% | {hits:0.0000} | {byteHits:0.0000} |"));
                }
            }
        }
        Console.Error.WriteLine($"{total.Elapsed.TotalSeconds:0} s");
        return 0;
    }

    private static IEnumerable<(string Name, ICache Cache, AskedOnce? Admission)> Policies(long capacity)
    {
        yield return ("LRU", new Lru(), null);
        yield return ("S3-FIFO", new S3FifoCache(capacity), null);
        yield return ("S3-FIFO, admit on 2nd request", new S3FifoCache(capacity), new AskedOnce(AskedOnceKeys));
    }

    /// <summary>The hit ratio and the byte hit ratio of one cache over the trace.</summary>
    private static (double Hits, double ByteHits) Replay(int[] trace, long[] sizes, long capacity, ICache cache, AskedOnce? admission)
    {
        long hits = 0, hitBytes = 0, bytes = 0;
        foreach (int key in trace)
        {
            long size = sizes[key];
            bytes += size;
            if (cache.Hit(key))
            {
                hits++;
                hitBytes += size;
                continue;
            }
            if (size > capacity || (admission is not null && !admission.Admit(key))) continue;
            cache.Insert(key, size);
            while (cache.Used > capacity) cache.Evict();
        }
        return (hits / (double)trace.Length, hitBytes / (double)bytes);
    }

    private static long LognormalSize(Random random)
    {
        // Box–Muller: one standard normal from two uniforms.
        double normal = Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
        return Math.Clamp((long)Math.Round(MedianSize * Math.Exp(SizeSigma * normal)), 1, MaxSize);
    }

    /// <summary>Object ids drawn with probability proportional to 1/rank^α, by binary search in the cumulative distribution.</summary>
    private static int[] ZipfTrace(double alpha, Random random)
    {
        double[] cumulative = new double[Objects];
        double sum = 0;
        for (int rank = 0; rank < Objects; rank++) cumulative[rank] = sum += Math.Pow(rank + 1, -alpha);
        int[] trace = new int[Requests];
        for (int i = 0; i < Requests; i++)
        {
            int index = Array.BinarySearch(cumulative, random.NextDouble() * sum);
            trace[i] = Math.Min(index < 0 ? ~index : index, Objects - 1);
        }
        return trace;
    }

    /// <summary>What the replay needs of a policy: the store's calls, with eviction driven by the caller.</summary>
    private interface ICache
    {
        long Used { get; }
        bool Hit(int key);
        void Insert(int key, long size);
        void Evict();
    }

    private sealed class S3FifoCache(long capacity) : ICache
    {
        private readonly S3Fifo<int> _fifo = new(capacity);

        public long Used => _fifo.Used;
        public bool Hit(int key) => _fifo.Hit(key);
        public void Insert(int key, long size) => _fifo.Insert(key, size);
        public void Evict() => _fifo.TryEvict(out _);
    }

    /// <summary>The baseline: least recently used first, weighted by size.</summary>
    private sealed class Lru : ICache
    {
        private readonly Dictionary<int, LinkedListNode<(int Key, long Size)>> _nodes = [];
        private readonly LinkedList<(int Key, long Size)> _order = new();

        public long Used { get; private set; }

        public bool Hit(int key)
        {
            if (!_nodes.TryGetValue(key, out var node)) return false;
            _order.Remove(node);
            _order.AddFirst(node);
            return true;
        }

        public void Insert(int key, long size)
        {
            _nodes.Add(key, _order.AddFirst((key, size)));
            Used += size;
        }

        public void Evict()
        {
            var last = _order.Last!;
            _order.RemoveLast();
            _nodes.Remove(last.Value.Key);
            Used -= last.Value.Size;
        }
    }

    /// <summary>
    /// The privacy rule's memory: the first miss of a key only records it here, the second admits
    /// it (and forgets it). The oldest keys are forgotten beyond the bound.
    /// </summary>
    private sealed class AskedOnce(int bound)
    {
        private readonly Dictionary<int, LinkedListNode<int>> _nodes = [];
        private readonly LinkedList<int> _order = new();

        public bool Admit(int key)
        {
            if (_nodes.Remove(key, out var node))
            {
                _order.Remove(node);
                return true;
            }
            _nodes.Add(key, _order.AddLast(key));
            if (_order.Count > bound)
            {
                _nodes.Remove(_order.First!.Value);
                _order.RemoveFirst();
            }
            return false;
        }
    }
}
