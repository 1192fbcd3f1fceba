using System.Net;
using Quid.Crypto;
using Quid.Wire;

namespace Quid.Overlay;

/// <summary>What a node knows of another: its latest valid descriptor, if any, and how to reach it.</summary>
internal sealed class KnownPeer(NodeId id)
{
    public NodeId Id { get; } = id;
    public Descriptor? Descriptor { get; set; }
    public IPEndPoint? Address { get; set; }
    public DateTimeOffset LastSeen { get; set; }
    public DateTimeOffset LastDial { get; set; }
    public int Failures { get; set; }
    public bool Ultrapeer { get; set; }
    /// <summary>An ultrapeer that said it had no room for us, until when.</summary>
    public DateTimeOffset FullUntil { get; set; }
}

/// <summary>
/// The known peers, bounded: when full, the peer that failed most and was heard from least
/// recently makes room. Neighbours are never evicted.
/// </summary>
internal sealed class PeerTable(int capacity)
{
    private readonly Dictionary<NodeId, KnownPeer> _peers = [];

    public int Count => _peers.Count;
    public IEnumerable<KnownPeer> All => _peers.Values;

    public KnownPeer? Find(NodeId id) => _peers.GetValueOrDefault(id);

    public KnownPeer GetOrAdd(NodeId id, IReadOnlySet<NodeId> neighbours)
    {
        if (_peers.TryGetValue(id, out var peer)) return peer;
        if (_peers.Count >= capacity) EvictOne(neighbours);
        peer = new KnownPeer(id);
        _peers[id] = peer;
        return peer;
    }

    public void Remove(NodeId id) => _peers.Remove(id);

    private void EvictOne(IReadOnlySet<NodeId> neighbours)
    {
        KnownPeer? victim = null;
        foreach (var peer in _peers.Values)
        {
            if (neighbours.Contains(peer.Id)) continue;
            if (victim is null || peer.Failures > victim.Failures || (peer.Failures == victim.Failures && peer.LastSeen < victim.LastSeen))
                victim = peer;
        }
        if (victim is not null) _peers.Remove(victim.Id);
    }
}

/// <summary>
/// Where each recent query came from, so hits can go back the same way; bounded in count and
/// age, oldest out first. A query id seen before is a copy from another path and is dropped.
/// </summary>
internal sealed class QueryRoutes(int capacity, TimeSpan lifetime)
{
    private readonly Dictionary<QueryId, (NodeId From, DateTimeOffset Expires)> _routes = [];
    private readonly Queue<QueryId> _order = new();

    public int Count => _routes.Count;

    /// <summary>Records where a query came from; false if it was already seen.</summary>
    public bool TryAdd(QueryId id, NodeId from, DateTimeOffset now)
    {
        Expire(now);
        if (_routes.ContainsKey(id)) return false;
        while (_routes.Count >= capacity && _order.TryDequeue(out var oldest)) _routes.Remove(oldest);
        _routes[id] = (from, now + lifetime);
        _order.Enqueue(id);
        return true;
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
