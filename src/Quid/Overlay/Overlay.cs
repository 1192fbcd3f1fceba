using System.Net;
using Quid.Crypto;
using Quid.Wire;

namespace Quid.Overlay;

/// <summary>What the overlay asks its host to do.</summary>
public abstract record OverlayAction;
public sealed record SendOverlayMessage(NodeId To, ControlMessage Message) : OverlayAction;
public sealed record DialPeer(NodeId Id, IPEndPoint Address) : OverlayAction;

public enum OverlayError { WrongSender, Expired, FromTheFuture, TooLongLived, Stale }

/// <summary>A neighbour sent something the overlay refuses; the message is dropped, never forwarded.</summary>
public sealed class OverlayException(OverlayError error, string message) : Exception(message)
{
    public OverlayError Error { get; } = error;
}

public sealed record OverlayOptions
{
    /// <summary>How many links a node keeps up by dialing known peers.</summary>
    public int TargetLinks { get; init; } = 8;
    public int MaxKnownPeers { get; init; } = 2000;
    public TimeSpan MaxClockSkew { get; init; } = TimeSpan.FromMinutes(5);
    /// <summary>A descriptor may claim to be valid for at most this long.</summary>
    public TimeSpan MaxDescriptorLifetime { get; init; } = TimeSpan.FromHours(3);
    public TimeSpan RedialAfter { get; init; } = TimeSpan.FromSeconds(30);
    public int DialsPerTick { get; init; } = 2;
    public Random Random { get; init; } = Random.Shared;
}

/// <summary>
/// The overlay of one node, as a state machine: it knows its neighbours and their signed
/// descriptors, learns of more nodes from them (peer exchange), and asks for links to
/// known nodes until it has enough neighbours.
/// </summary>
public sealed class Overlay(NodeIdentity identity, TimeProvider time, OverlayOptions? options = null)
{
    private readonly OverlayOptions _options = options ?? new OverlayOptions();
    private readonly Dictionary<NodeId, Peer> _peers = [];
    private readonly HashSet<NodeId> _neighbours = [];
    /// <summary>Neighbours linked since their last descriptor: the others have yet to hear of them from us.</summary>
    private readonly HashSet<NodeId> _unintroduced = [];

    private sealed class Peer
    {
        public Descriptor? Descriptor;
        public DateTimeOffset LastDial;
    }

    public Descriptor? Own { get; private set; }

    public IReadOnlyCollection<NodeId> Neighbours => _neighbours;

    public int KnownPeerCount => _peers.Count;

    public Descriptor? Find(NodeId id) => _peers.TryGetValue(id, out var peer) ? peer.Descriptor : null;

    /// <summary>The current descriptors of the nodes we are linked to.</summary>
    public IEnumerable<Descriptor> NeighbourDescriptors
    {
        get
        {
            var now = time.GetUtcNow();
            foreach (var id in _neighbours)
                if (_peers.TryGetValue(id, out var peer) && peer.Descriptor is { } d && !d.IsExpired(now))
                    yield return d;
        }
    }

    /// <summary>Adopts a new own descriptor and sends it to every neighbour.</summary>
    public IReadOnlyList<OverlayAction> Publish(Descriptor own)
    {
        Own = own;
        var message = new DescriptorMessage(own);
        return [.. _neighbours.Select(n => new SendOverlayMessage(n, message))];
    }

    public IReadOnlyList<OverlayAction> LinkUp(NodeId neighbour)
    {
        _neighbours.Add(neighbour);
        _unintroduced.Add(neighbour);
        if (!_peers.ContainsKey(neighbour)) Remember(neighbour, null);
        var actions = new List<OverlayAction>();
        if (Own is not null) actions.Add(new SendOverlayMessage(neighbour, new DescriptorMessage(Own)));
        // As many as one control message holds: a larger one would make the neighbour close the link.
        var others = new List<Descriptor>();
        int size = 2;
        foreach (var d in NeighbourDescriptors.Where(d => d.Id != neighbour))
        {
            if (others.Count == PeersMessage.MaxDescriptors) break;
            if (size + 2 + d.Encoded.Length > ControlMessage.MaxSize) continue;
            others.Add(d);
            size += 2 + d.Encoded.Length;
        }
        if (others.Count > 0) actions.Add(new SendOverlayMessage(neighbour, new PeersMessage(others)));
        return actions;
    }

    public void LinkDown(NodeId neighbour)
    {
        _neighbours.Remove(neighbour);
        _unintroduced.Remove(neighbour);
    }

    /// <summary>Handles an overlay message from a neighbour; refused content raises <see cref="OverlayException"/>.</summary>
    public IReadOnlyList<OverlayAction> Receive(NodeId from, ControlMessage message)
    {
        switch (message)
        {
            case DescriptorMessage { Descriptor: var descriptor }:
                if (descriptor.Id != from) throw new OverlayException(OverlayError.WrongSender, $"{from.Brief} sent a descriptor for {descriptor.Id.Brief} as its own.");
                Accept(descriptor);
                // Introduce a new neighbour to the others, so they can link to it directly; having
                // heard of it before from someone else does not mean they have.
                if (_unintroduced.Remove(from))
                {
                    var introduction = new PeersMessage([descriptor]);
                    return [.. _neighbours.Where(n => n != from).Select(n => new SendOverlayMessage(n, introduction))];
                }
                break;
            case PeersMessage { Descriptors: var descriptors }:
                foreach (var d in descriptors)
                {
                    if (d.Id == identity.Id || _neighbours.Contains(d.Id)) continue;
                    try
                    {
                        Accept(d);
                    }
                    catch (OverlayException)
                    {
                        // Hearsay older than what we hold is normal in peer exchange, and a bad third-party
                        // descriptor (expired in transit, a wrong clock) is not the relaying neighbour's
                        // doing: skip it and keep the rest of the message.
                    }
                }
                break;
        }
        return [];
    }

    private void Accept(Descriptor descriptor)
    {
        var now = time.GetUtcNow();
        if (descriptor.IsExpired(now)) throw new OverlayException(OverlayError.Expired, $"Descriptor of {descriptor.Id.Brief} expired at {descriptor.Expires:u}.");
        if (descriptor.Published > now + _options.MaxClockSkew)
            throw new OverlayException(OverlayError.FromTheFuture, $"Descriptor of {descriptor.Id.Brief} is published in the future ({descriptor.Published:u}).");
        if (descriptor.Expires - descriptor.Published > _options.MaxDescriptorLifetime)
            throw new OverlayException(OverlayError.TooLongLived, $"Descriptor of {descriptor.Id.Brief} claims validity beyond {_options.MaxDescriptorLifetime.TotalHours:0} h.");
        if (_peers.TryGetValue(descriptor.Id, out var known) && known.Descriptor is { } current && current.Published > descriptor.Published)
            throw new OverlayException(OverlayError.Stale, $"Descriptor of {descriptor.Id.Brief} is older than the one we hold.");
        Remember(descriptor.Id, descriptor);
    }

    private void Remember(NodeId id, Descriptor? descriptor)
    {
        if (_peers.TryGetValue(id, out var peer))
        {
            if (descriptor is not null) peer.Descriptor = descriptor;
            return;
        }
        if (_peers.Count >= _options.MaxKnownPeers) EvictOne();
        _peers[id] = new Peer { Descriptor = descriptor };
    }

    /// <summary>Makes room by forgetting the non-neighbour whose descriptor is oldest.</summary>
    private void EvictOne()
    {
        var victim = _peers.Where(p => !_neighbours.Contains(p.Key))
            .OrderBy(p => p.Value.Descriptor?.Published ?? DateTimeOffset.MinValue)
            .Select(p => (NodeId?)p.Key)
            .FirstOrDefault();
        if (victim is { } id) _peers.Remove(id);
    }

    /// <summary>Regular upkeep: forget expired descriptors, and ask for links while below the target.</summary>
    public IReadOnlyList<OverlayAction> Tick()
    {
        var now = time.GetUtcNow();
        foreach (var id in _peers.Where(p => !_neighbours.Contains(p.Key) && (p.Value.Descriptor is null || p.Value.Descriptor.IsExpired(now))).Select(p => p.Key).ToList())
            _peers.Remove(id);

        var actions = new List<OverlayAction>();
        int wanted = Math.Min(_options.DialsPerTick, _options.TargetLinks - _neighbours.Count);
        if (wanted <= 0) return actions;
        var candidates = _peers
            .Where(p => p.Key != identity.Id && !_neighbours.Contains(p.Key) && p.Value.Descriptor?.Address is not null && now - p.Value.LastDial >= _options.RedialAfter)
            .ToArray();
        _options.Random.Shuffle(candidates);
        foreach (var (id, peer) in candidates.Take(wanted))
        {
            peer.LastDial = now;
            actions.Add(new DialPeer(id, peer.Descriptor!.Address!));
        }
        return actions;
    }
}
