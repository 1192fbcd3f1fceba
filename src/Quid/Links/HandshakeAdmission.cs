using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace Quid.Links;

/// <summary>Why a link listener closed a connection without a handshake.</summary>
internal enum HandshakeRefusal
{
    None,
    /// <summary>Its source already has <see cref="LinkOptions.MaxHandshakesPerSource"/> handshakes in progress.</summary>
    SourceBusy,
    /// <summary>Its source has used up its handshake rate.</summary>
    SourceRate,
    /// <summary>Every handshake slot is taken, and its network already has its fair share of them.</summary>
    Full,
}

/// <summary>One handshake in progress; the listener abandons it when it is evicted to make room.</summary>
internal sealed class HandshakeSlot
{
    private readonly TaskCompletionSource _abandoned = new(TaskCreationOptions.RunContinuationsAsynchronously);

    internal HandshakeSlot(HandshakeAdmission.Source source, UInt128 network, long started)
    {
        Source = source;
        Network = network;
        Started = started;
    }

    internal HandshakeAdmission.Source Source { get; }
    internal UInt128 Network { get; }
    internal long Started { get; }
    internal bool Active { get; set; } = true;
    /// <summary>Completes once the slot is given to another network's handshake.</summary>
    public Task Abandoned => _abandoned.Task;
    public void Abandon() => _abandoned.TrySetResult();
}

/// <summary>The result of offering a connection to <see cref="HandshakeAdmission"/>: a slot, or why not; and a slot taken away to make room.</summary>
internal readonly record struct Admission(HandshakeSlot? Slot, HandshakeSlot? Evicted, HandshakeRefusal Refusal);

/// <summary>
/// Which accepted connections a link listener runs a handshake for, so that no one host, and no one
/// network, can keep other nodes from linking. A source (an IPv4 address, or an IPv6 /64: what one
/// host can cheaply have many of) may have a few handshakes in progress and start them at a
/// limited rate (a token bucket). When every slot is taken, a connection from a network (an IPv4
/// /24, an IPv6 /48) that holds fewer slots takes the oldest slot of the network that holds the
/// most: so a node outside the flooding networks always gets a slot unless as many networks as
/// there are slots flood at once. The table of sources is bounded: past its size, the source
/// seen least recently with nothing in progress is forgotten. Plain code over addresses and a
/// <see cref="TimeProvider"/>; one lock, because the accept loop admits while handshakes release.
/// </summary>
internal sealed class HandshakeAdmission
{
    private const int SourcePrefixV6 = 64;
    private const int NetworkPrefixV6 = 48;
    // IPv4 addresses are keyed as IPv4-mapped IPv6 (::ffff:a.b.c.d): their /32 and /24 are /128 and /120 here.
    private const int SourcePrefixV4 = 128;
    private const int NetworkPrefixV4 = 120;

    private readonly LinkOptions _options;
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private readonly Dictionary<UInt128, Source> _sources = [];
    private readonly LinkedList<Source> _recency = new();
    private readonly Dictionary<UInt128, List<HandshakeSlot>> _networks = [];
    private int _inProgress;

    public HandshakeAdmission(LinkOptions options, TimeProvider time)
    {
        if (options.MaxConcurrentHandshakes < 1 || options.MaxHandshakesPerSource < 1 || options.HandshakeRatePerSource <= 0 || options.HandshakeBurstPerSource < 1)
            throw new ArgumentOutOfRangeException(nameof(options), "Handshake limits must be positive.");
        // A source with a handshake in progress is never forgotten, so the table must have room beyond them.
        if (options.MaxTrackedSources <= options.MaxConcurrentHandshakes)
            throw new ArgumentOutOfRangeException(nameof(options), $"{nameof(LinkOptions.MaxTrackedSources)} must exceed {nameof(LinkOptions.MaxConcurrentHandshakes)}.");
        _options = options;
        _time = time;
    }

    public int TrackedSources
    {
        get
        {
            lock (_lock) return _sources.Count;
        }
    }

    public int InProgress
    {
        get
        {
            lock (_lock) return _inProgress;
        }
    }

    /// <summary>Decides about a connection from <paramref name="address"/>; an evicted slot must be abandoned by the caller.</summary>
    public Admission TryAdmit(IPAddress address)
    {
        var (sourceKey, networkKey) = Keys(address);
        long now = _time.GetTimestamp();
        lock (_lock)
        {
            var source = Touch(sourceKey, now);
            if (source.InProgress >= _options.MaxHandshakesPerSource) return new Admission(null, null, HandshakeRefusal.SourceBusy);
            if (source.Tokens < 1) return new Admission(null, null, HandshakeRefusal.SourceRate);
            HandshakeSlot? evicted = null;
            if (_inProgress >= _options.MaxConcurrentHandshakes)
            {
                evicted = FairShareVictim(networkKey);
                if (evicted is null) return new Admission(null, null, HandshakeRefusal.Full);
                Remove(evicted);
            }
            source.Tokens -= 1;
            var slot = new HandshakeSlot(source, networkKey, now);
            source.InProgress++;
            _inProgress++;
            if (!_networks.TryGetValue(networkKey, out var slots)) _networks[networkKey] = slots = [];
            slots.Add(slot);
            return new Admission(slot, evicted, HandshakeRefusal.None);
        }
    }

    /// <summary>Frees a slot when its handshake ends, however it ends; an evicted slot is already free.</summary>
    public void Release(HandshakeSlot slot)
    {
        lock (_lock)
        {
            if (slot.Active) Remove(slot);
        }
    }

    /// <summary>
    /// The oldest slot of the network with the most, if that network has more than one slot beyond
    /// what <paramref name="network"/> would have with this connection: moving a slot between two
    /// networks only when it narrows the gap means equal shares are stable, not churned.
    /// </summary>
    private HandshakeSlot? FairShareVictim(UInt128 network)
    {
        List<HandshakeSlot>? heaviest = null;
        foreach (var slots in _networks.Values)
            if (heaviest is null || slots.Count > heaviest.Count) heaviest = slots;
        int own = _networks.TryGetValue(network, out var ownSlots) ? ownSlots.Count : 0;
        return heaviest is not null && heaviest.Count > own + 1 ? heaviest[0] : null;
    }

    private void Remove(HandshakeSlot slot)
    {
        slot.Active = false;
        slot.Source.InProgress--;
        _inProgress--;
        var slots = _networks[slot.Network];
        slots.Remove(slot);
        if (slots.Count == 0) _networks.Remove(slot.Network);
    }

    /// <summary>The source's entry, made most recent and refilled; a new one forgets the least recent idle source if the table is full.</summary>
    private Source Touch(UInt128 key, long now)
    {
        if (_sources.TryGetValue(key, out var source))
        {
            _recency.Remove(source.Recency);
            double refill = _time.GetElapsedTime(source.Updated, now).TotalSeconds * _options.HandshakeRatePerSource;
            source.Tokens = Math.Min(_options.HandshakeBurstPerSource, source.Tokens + refill);
            source.Updated = now;
        }
        else
        {
            if (_sources.Count >= _options.MaxTrackedSources) ForgetLeastRecentIdle();
            source = new Source(key, _options.HandshakeBurstPerSource, now);
            _sources[key] = source;
        }
        _recency.AddLast(source.Recency);
        return source;
    }

    private void ForgetLeastRecentIdle()
    {
        // At most MaxConcurrentHandshakes sources are busy, and the table is larger, so an idle one is near the front.
        for (var node = _recency.First; node is not null; node = node.Next)
        {
            if (node.Value.InProgress > 0) continue;
            _recency.Remove(node);
            _sources.Remove(node.Value.Key);
            return;
        }
    }

    /// <summary>The source and network an address counts against, as IPv6 prefixes; IPv4 (also IPv4-mapped IPv6) by /32 and /24.</summary>
    internal static (UInt128 Source, UInt128 Network) Keys(IPAddress address)
    {
        bool v4 = address.AddressFamily == AddressFamily.InterNetwork || address.IsIPv4MappedToIPv6;
        Span<byte> bytes = stackalloc byte[16];
        if (!address.MapToIPv6().TryWriteBytes(bytes, out _)) throw new ArgumentException("Not an IP address.", nameof(address));
        var value = BinaryPrimitives.ReadUInt128BigEndian(bytes);
        return v4
            ? (Prefix(value, SourcePrefixV4), Prefix(value, NetworkPrefixV4))
            : (Prefix(value, SourcePrefixV6), Prefix(value, NetworkPrefixV6));
    }

    private static UInt128 Prefix(UInt128 value, int bits) => bits == 128 ? value : value & ~(UInt128.MaxValue >> bits);

    /// <summary>What is remembered of one source: its handshakes in progress and its token bucket.</summary>
    internal sealed class Source
    {
        public Source(UInt128 key, double tokens, long updated)
        {
            Key = key;
            Tokens = tokens;
            Updated = updated;
            Recency = new LinkedListNode<Source>(this);
        }

        public UInt128 Key { get; }
        public LinkedListNode<Source> Recency { get; }
        public int InProgress { get; set; }
        public double Tokens { get; set; }
        public long Updated { get; set; }
    }
}
