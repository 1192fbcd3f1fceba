using System.Net;
using Quid.Crypto;
using Quid.Wire;

namespace Quid.Overlay;

/// <summary>What a node knows of another: its latest valid descriptor, if any, and how to reach it.</summary>
internal sealed class KnownPeer(NodeId id, PeerTable table)
{
    private Descriptor? _descriptor;
    private IPEndPoint? _address;
    private bool _ultrapeer;
    private bool _isUltrapeer;

    public NodeId Id { get; } = id;

    public Descriptor? Descriptor
    {
        get => _descriptor;
        set
        {
            var before = Kind;
            _descriptor = value;
            Derive();
            table.Reindex(this, before);
        }
    }

    public IPEndPoint? Address
    {
        get => _address;
        set
        {
            var before = Kind;
            _address = value;
            table.Reindex(this, before);
        }
    }

    /// <summary>What the peer was last said to be, kept when its descriptor expires.</summary>
    public bool Ultrapeer
    {
        get => _ultrapeer;
        set
        {
            var before = Kind;
            _ultrapeer = value;
            Derive();
            table.Reindex(this, before);
        }
    }

    // What scans over every neighbour or every peer known ask first, kept here as the descriptor
    // changes: the scans then mostly read this object alone, not the descriptor behind it too.
    private void Derive()
    {
        _isUltrapeer = _descriptor?.Roles.HasFlag(NodeRoles.Ultrapeer) ?? _ultrapeer;
        PassableUntil = _descriptor is { Address: not null } d ? d.Expires : DateTimeOffset.MinValue;
    }

    /// <summary>Its current descriptor's role, or what we last heard when we hold none.</summary>
    public bool IsUltrapeer => _isUltrapeer;

    /// <summary>Until when its descriptor may be passed on to others: it has an address and has not expired.</summary>
    public DateTimeOffset PassableUntil { get; private set; } = DateTimeOffset.MinValue;

    internal PeerKind Kind => (IsUltrapeer ? PeerKind.Ultrapeer : PeerKind.None) | (_address is not null ? PeerKind.Addressed : PeerKind.None);

    /// <summary>Whether the table forgot it: a holder of this entry must look the id up again.</summary>
    internal bool Removed { get; set; }

    /// <summary>Whether we are linked to it; set by the overlay through the table, which counts the ultrapeers among them.</summary>
    internal bool IsNeighbour { get; set; }

    /// <summary>Where it sits in the table's list, for picking peers at random without a scan.</summary>
    internal int Slot { get; set; }

    public DateTimeOffset LastSeen { get; set; }
    public DateTimeOffset LastDial { get; set; }
    public int Failures { get; set; }
    /// <summary>An ultrapeer that said it had no room for us, until when.</summary>
    public DateTimeOffset FullUntil { get; set; }
    /// <summary>A peer behind our own public address that a dial failed to reach, left alone until when.</summary>
    public DateTimeOffset UnreachableUntil { get; set; }
}

[Flags]
internal enum PeerKind { None = 0, Ultrapeer = 1, Addressed = 2 }

/// <summary>
/// The known peers, bounded: when full, the peer that failed most and was heard from least
/// recently makes room. Neighbours are never evicted. It keeps the ultrapeers and the count of
/// dialable leaves at hand, because upkeep asks for them every second and a table holds thousands.
/// </summary>
internal sealed class PeerTable(int capacity)
{
    private readonly Dictionary<NodeId, KnownPeer> _peers = [];
    private readonly List<KnownPeer> _list = [];
    private readonly Dictionary<NodeId, KnownPeer> _ultrapeers = [];
    private int _addressedLeaves;
    private int _ultrapeerNeighbours;

    public int Count => _peers.Count;
    public IEnumerable<KnownPeer> All => _peers.Values;
    /// <summary>Peers whose role is ultrapeer, by their descriptor or, without one, by what we last heard.</summary>
    public IEnumerable<KnownPeer> Ultrapeers => _ultrapeers.Values;
    /// <summary>Peers with an address that are not ultrapeers: the leaves that compete with us for promotion.</summary>
    public int AddressedLeaves => _addressedLeaves;
    /// <summary>How many neighbours are ultrapeers, kept as roles and links change, because upkeep asks every second.</summary>
    public int UltrapeerNeighbours => _ultrapeerNeighbours;

    public KnownPeer? Find(NodeId id) => _peers.GetValueOrDefault(id);

    /// <summary>A peer chosen uniformly at random; null when the table is empty.</summary>
    public KnownPeer? Any(Random random) => _list.Count == 0 ? null : _list[random.Next(_list.Count)];

    public KnownPeer GetOrAdd(NodeId id, IReadOnlySet<NodeId> neighbours)
    {
        if (_peers.TryGetValue(id, out var peer)) return peer;
        if (_peers.Count >= capacity) EvictOne(neighbours);
        peer = new KnownPeer(id, this) { Slot = _list.Count };
        _peers[id] = peer;
        _list.Add(peer);
        return peer;
    }

    /// <summary>A link to the peer came up or went down.</summary>
    public void SetNeighbour(KnownPeer peer, bool linked)
    {
        if (peer.IsNeighbour == linked) return;
        peer.IsNeighbour = linked;
        if (peer.IsUltrapeer) _ultrapeerNeighbours += linked ? 1 : -1;
    }

    public void Remove(NodeId id)
    {
        if (!_peers.Remove(id, out var peer)) return;
        var last = _list[^1];
        _list[peer.Slot] = last;
        last.Slot = peer.Slot;
        _list.RemoveAt(_list.Count - 1);
        Tally(peer.Kind, -1, peer);
        peer.IsNeighbour = false;
        peer.Removed = true;
    }

    /// <summary>A peer's role or address changed: keep the indexes right.</summary>
    internal void Reindex(KnownPeer peer, PeerKind before)
    {
        var after = peer.Kind;
        if (before == after || !_peers.ContainsKey(peer.Id)) return;
        Tally(before, -1, peer);
        Tally(after, +1, peer);
    }

    private void Tally(PeerKind kind, int sign, KnownPeer peer)
    {
        if (peer.IsNeighbour && kind.HasFlag(PeerKind.Ultrapeer)) _ultrapeerNeighbours += sign;
        if (kind.HasFlag(PeerKind.Ultrapeer))
        {
            if (sign > 0) _ultrapeers[peer.Id] = peer;
            else _ultrapeers.Remove(peer.Id);
        }
        else if (kind.HasFlag(PeerKind.Addressed))
        {
            _addressedLeaves += sign;
        }
    }

    private void EvictOne(IReadOnlySet<NodeId> neighbours)
    {
        KnownPeer? victim = null;
        // Over every peer at each newcomer once the table is full: the set is asked only of a peer
        // that would make room before the one found so far (it was 6% of a 10,000-node run).
        foreach (var peer in _peers.Values)
        {
            if (victim is null || peer.Failures > victim.Failures || (peer.Failures == victim.Failures && peer.LastSeen < victim.LastSeen))
                if (!neighbours.Contains(peer.Id)) victim = peer;
        }
        if (victim is not null) Remove(victim.Id);
    }
}

/// <summary>What a query's id tells about a copy of it: new, a copy from another path, or the same search sent again to reach further.</summary>
internal enum QuerySeen { New, Copy, Deeper }

/// <summary>
/// Where each recent query came from, so hits can go back the same way, and the farthest reach
/// (TTL) it was handled with; bounded in count and age, oldest out first. A query id seen before
/// is a copy from another path and is dropped, unless it comes with a larger TTL: its searcher
/// widened it (dynamic querying, PROTOCOL §4.3), and it goes on from here without being answered
/// again. The first way back is kept.
/// </summary>
internal sealed class QueryRoutes(int capacity, TimeSpan lifetime)
{
    private readonly Dictionary<QueryId, (NodeId From, DateTimeOffset Expires, byte Reach)> _routes = [];
    private readonly Queue<QueryId> _order = new();

    public int Count => _routes.Count;

    /// <summary>Records where a query came from; false if it was already seen (at any reach).</summary>
    public bool TryAdd(QueryId id, NodeId from, DateTimeOffset now) => See(id, from, byte.MaxValue, now) == QuerySeen.New;

    /// <summary>Records where a query came from and how far it may still go.</summary>
    public QuerySeen See(QueryId id, NodeId from, byte reach, DateTimeOffset now)
    {
        // Every route lives as long, so Expire leaves none that has expired.
        Expire(now);
        if (_routes.TryGetValue(id, out var route))
        {
            if (reach <= route.Reach) return QuerySeen.Copy;
            _routes[id] = route with { Reach = reach };
            return QuerySeen.Deeper;
        }
        while (_routes.Count >= capacity && _order.TryDequeue(out var oldest)) _routes.Remove(oldest);
        _routes[id] = (from, now + lifetime, reach);
        _order.Enqueue(id);
        return QuerySeen.New;
    }

    public bool TryGet(QueryId id, DateTimeOffset now, out NodeId from)
    {
        from = default;
        if (!_routes.TryGetValue(id, out var route) || route.Expires <= now) return false;
        from = route.From;
        return true;
    }

    public void Expire(DateTimeOffset now)
    {
        while (_order.TryPeek(out var oldest))
        {
            if (_routes.TryGetValue(oldest, out var route) && route.Expires > now) break;
            _order.Dequeue();
            if (route.Expires <= now) _routes.Remove(oldest);
        }
    }
}
