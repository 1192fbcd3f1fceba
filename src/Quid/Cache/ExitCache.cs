using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using Quid.Crypto;

namespace Quid.Cache;

/// <summary>What the exit cache has done since the node started: the figures of <c>/metrics</c> and the dashboard.</summary>
/// <param name="Requests">Requests the cache could have answered: GET or HEAD, without credentials or conditions.</param>
/// <param name="Hits">Of those, answered from a stored body (a revalidation the origin answered with 304 included).</param>
/// <param name="BytesServed">Body bytes sent to clients for those requests, hits and misses.</param>
/// <param name="BytesFromStore">Of those, sent from a stored body: what the origin did not have to send again.</param>
public readonly record struct CacheCounters(long Requests, long Hits, long BytesServed, long BytesFromStore, long Stored)
{
    public double HitRatio => Requests == 0 ? 0 : (double)Hits / Requests;
    public double ByteHitRatio => BytesServed == 0 ? 0 : (double)BytesFromStore / BytesServed;
}

/// <summary>
/// The optional exit cache of seed 000: plaintext HTTP leaving the network here, stored within a
/// quota, answered in a way that tells no client what others fetched. It takes over streams to
/// port 80 at the exit (<see cref="RelayAsync"/>) and hands a stream back to the plain splice as
/// soon as what it carries is not a request it could answer, so such streams stay byte-exact.
/// </summary>
/// <remarks>
/// Obliviousness: an object is stored only once a second circuit asks for it, so one client
/// cannot plant an object and watch whether it is served to itself; a hit is answered no sooner
/// than the origin answered when it was stored, with jitter; the head sent carries the time of
/// sending as Date and no Age. Circuits are known here only by a random number kept in memory,
/// never by anything stored.
/// </remarks>
public sealed class ExitCache : IDisposable
{
    /// <summary>
    /// URLs asked for by one circuit so far, at most: about 4 MiB of memory. The replay of a Zipf
    /// trace (docs/CACHE.md) loses nothing to the two-circuit rule with a tenth of this, up to a
    /// cache of a tenth of what the trace asks for; bounded, so a flood of URLs cannot grow it.
    /// </summary>
    public const int MaxAskedOnce = 65_536;

    private readonly Lock _lock = new();
    private readonly ConditionalWeakTable<object, StrongBox<long>> _tags = new();
    // Keyed by a hash of the URL, not the URL: a URL may be 32 KiB long, and a flood of them must not take gigabytes.
    private readonly Dictionary<UInt128, long> _askedOnce = [];
    private readonly Queue<UInt128> _askedOrder = new();
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private long _requests;
    private long _hits;
    private long _bytesServed;
    private long _bytesFromStore;
    private long _stored;

    public ExitCache(CacheStore store, TimeProvider time, ILogger logger)
    {
        Store = store;
        _time = time;
        _logger = logger;
    }

    public CacheStore Store { get; }

    public CacheCounters Counters => new(Interlocked.Read(ref _requests), Interlocked.Read(ref _hits), Interlocked.Read(ref _bytesServed),
        Interlocked.Read(ref _bytesFromStore), Interlocked.Read(ref _stored));

    /// <summary>
    /// Carries the HTTP exchanges of one stream from a client (<paramref name="client"/>, the
    /// circuit's end) to <paramref name="origin"/> (the destination's socket) at <paramref name="host"/>:<paramref name="port"/>,
    /// answering from the store where it may. When the stream carries anything else, it calls
    /// <paramref name="passThrough"/> with what it has read from each side and not yet sent on,
    /// and that splice carries the rest. <paramref name="circuit"/> is only compared, never kept.
    /// </summary>
    public Task RelayAsync(Stream client, Stream origin, string host, int port, object circuit, PassThrough passThrough)
    {
        long tag;
        lock (_lock) tag = _tags.GetValue(circuit, _ => new StrongBox<long>(SecureRandom.Instance.NextInt64())).Value;
        string name = host.Contains(':') ? $"[{host.ToLowerInvariant()}]" : host.ToLowerInvariant();
        return new CacheRelay(this, client, origin, port == 80 ? name : $"{name}:{port}", tag, passThrough, _time, _logger).RunAsync();
    }

    /// <summary>
    /// Whether a response for <paramref name="url"/> may be stored now: true when a circuit other
    /// than <paramref name="asker"/>'s asked for it before. The first asker is only remembered.
    /// </summary>
    internal bool AskedByAnother(string url, long asker)
    {
        var key = Key(url);
        lock (_lock)
        {
            if (_askedOnce.TryGetValue(key, out long first)) return first != asker;
            if (_askedOnce.Count >= MaxAskedOnce) _askedOnce.Remove(_askedOrder.Dequeue());
            _askedOnce.Add(key, asker);
            _askedOrder.Enqueue(key);
            return false;
        }
    }

    /// <summary>Forgets the askers of a stored URL: its next store (after it is evicted) needs two askers again.</summary>
    internal void Stored(string url)
    {
        Interlocked.Increment(ref _stored);
        lock (_lock)
        {
            // The order queue keeps the URL until its turn comes; removing it then is harmless.
            _askedOnce.Remove(Key(url));
        }
    }

    private static UInt128 Key(string url)
    {
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(Encoding.UTF8.GetBytes(url), hash);
        return BinaryPrimitives.ReadUInt128LittleEndian(hash);
    }

    internal void CountRequest() => Interlocked.Increment(ref _requests);

    internal void CountServed(long bytes, bool fromStore)
    {
        Interlocked.Add(ref _bytesServed, bytes);
        if (!fromStore) return;
        Interlocked.Add(ref _bytesFromStore, bytes);
    }

    internal void CountHit() => Interlocked.Increment(ref _hits);

    public void Dispose() => Store.Dispose();
}

/// <summary>Hands a stream back to the plain splice: the bytes read from the client not yet sent to the origin, and those read from the origin not yet sent to the client.</summary>
public delegate Task PassThrough(ReadOnlyMemory<byte> toOrigin, ReadOnlyMemory<byte> toClient);
