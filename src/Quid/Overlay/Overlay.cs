using System.Net;
using System.Runtime.InteropServices;
using Quid.Crypto;
using Quid.Wire;

namespace Quid.Overlay;

public enum OverlayRole { Leaf, Ultrapeer }

/// <summary>Whether a control message from a neighbour may be decoded at all.</summary>
public enum Admission { Accept, Drop, Disconnect }

/// <summary>
/// The Gnutella-like overlay of one node, as a state machine over messages and time. It keeps
/// the known peers and their signed descriptors, links enough of them (ultrapeers first),
/// elects itself ultrapeer when there are too few, floods offer queries among ultrapeers with a
/// TTL and duplicate suppression, routes hits back, and holds every neighbour to a message rate.
/// Everything it wants done comes back as <see cref="OverlayAction"/>s.
/// </summary>
public sealed partial class Overlay
{
    private const int MaxShunned = 1024;
    private const int MaxOwnSearches = 16;

    private readonly NodeIdentity _identity;
    private readonly TimeProvider _time;
    private readonly OverlayOptions _options;
    private readonly PeerTable _peers;
    private readonly List<KnownPeer> _usableUltrapeers = [];
    private readonly QueryRoutes _routes;
    private readonly Dictionary<NodeId, Neighbour> _neighbours = [];
    private readonly HashSet<NodeId> _neighbourIds = [];
    private readonly Dictionary<NodeId, DateTimeOffset> _shunned = [];
    private readonly Dictionary<QueryId, OwnSearch> _ownSearches = [];
    private readonly Dictionary<NodeId, Hit> _hits = [];
    /// <summary>How far behind the link to a neighbour is, as its host tells: null when the host never is.</summary>
    private readonly Func<NodeId, TimeSpan>? _linkBacklog;
    private readonly DateTimeOffset _started;
    /// <summary>How many leaves we take as an ultrapeer, worked out from our offer whenever we publish.</summary>
    private int _maxLeaves;
    private DateTimeOffset? _starvedSince;
    private DateTimeOffset? _idleSince;
    private DateTimeOffset _lastElection;
    private DateTimeOffset _lastPeerExchange;
    /// <summary>The ultrapeer we last dialed as a shortcut, and when we may draw another (<see cref="OverlayOptions.ShortcutInterval"/>).</summary>
    private NodeId? _shortcut;
    private DateTimeOffset _nextShortcut;
    /// <summary>The earliest moment some peer that is not a neighbour may be due to be forgotten: upkeep sweeps the table only then.</summary>
    private DateTimeOffset _sweepDue = DateTimeOffset.MinValue;
    /// <summary>The earliest moment a search hit may be due to be dropped: upkeep looks at them only then.</summary>
    private DateTimeOffset _hitsDue = DateTimeOffset.MaxValue;
    /// <summary>When we next look whether our offer summary changed (<see cref="OverlayOptions.SummaryInterval"/>).</summary>
    private DateTimeOffset _summaryDue = DateTimeOffset.MinValue;
    /// <summary>What we would answer to a query that ends here, as of upkeep and the offers added since: an <see cref="OfferSummary"/>'s table.</summary>
    private readonly byte[] _summary = [.. OfferSummary.Empty.Table];
    /// <summary>Where <see cref="Forward"/> sends a query: kept from one query to the next.</summary>
    private readonly List<Neighbour> _nextHops = [];
    /// <summary>Whether some neighbour may still have a descriptor or peers waiting to be sent: upkeep flushes only then.</summary>
    private bool _mayHavePending;

    private sealed class Neighbour(NodeId id, KnownPeer peer, OverlayOptions options, TimeProvider time)
    {
        public NodeId Id { get; } = id;
        /// <summary>Its entry in the peer table, which is never evicted while it is a neighbour: no lookup by id in the busy paths.</summary>
        public KnownPeer Peer { get; } = peer;
        public TokenBucket LeafQueries { get; } = Bucket(options.LeafQueryRate, time);
        public TokenBucket UltrapeerQueries { get; } = Bucket(options.UltrapeerQueryRate, time);
        public TokenBucket Descriptors { get; } = Bucket(options.DescriptorRate, time);
        public TokenBucket Peers { get; } = Bucket(options.PeersRate, time);
        public TokenBucket Hits { get; } = Bucket(options.HitRate, time);
        public TokenBucket Records { get; } = Bucket(options.RecordRate, time);
        public TokenBucket LeafLookups { get; } = Bucket(options.LeafLookupRate, time);
        public TokenBucket UltrapeerLookups { get; } = Bucket(options.UltrapeerLookupRate, time);
        public TokenBucket Credits { get; } = Bucket(options.CreditRate, time);
        public TokenBucket Proposals { get; } = Bucket(options.ProposalRate, time);
        public TokenBucket Summaries { get; } = Bucket(options.SummaryRate, time);
        /// <summary>What an ultrapeer neighbour last told us it would answer to a query ending at it: null until it does.</summary>
        public OfferSummary? Summary { get; set; }
        /// <summary>The summary of ours we last sent it.</summary>
        public OfferSummary? SummarySent { get; set; }
        public double Strikes { get; set; }
        public long StrikesUpdated { get; set; } = time.GetTimestamp();
        public bool Introduced { get; set; }

        // What we send is paced to half of what we accept, so honest gossip never earns strikes.
        public TokenBucket PeersOut { get; } = Half(options.PeersRate, time);
        public TokenBucket DescriptorsOut { get; } = Half(options.DescriptorRate, time);
        // Queries we pass on to an ultrapeer, which admits them at the ultrapeer rate: past that, forwards are dropped.
        public TokenBucket QueriesOut { get; } = Half(options.UltrapeerQueryRate, time);
        public TokenBucket RecordsOut { get; } = Half(options.RecordRate, time);
        public TokenBucket LookupsOut { get; } = Half(options.UltrapeerLookupRate, time);
        public TokenBucket SummariesOut { get; } = Half(options.SummaryRate, time);
        public Dictionary<NodeId, Descriptor> PendingPeers { get; } = [];
        public bool DescriptorPending { get; set; }

        private static TokenBucket Bucket(MessageRate rate, TimeProvider time) => new(rate.PerSecond, rate.Burst, time);
        private static TokenBucket Half(MessageRate rate, TimeProvider time) => new(rate.PerSecond / 2, Math.Max(1, rate.Burst / 2), time);
    }

    /// <summary>A search result, with the peer-table entry of its node while the table keeps it (so candidates need no lookup).</summary>
    private readonly record struct Hit(Descriptor Descriptor, DateTimeOffset Received, KnownPeer Peer);

    /// <summary>A search of ours, the nodes it found (bounded by the number of results a query may bring), and how far it has gone.</summary>
    private sealed class OwnSearch(DateTimeOffset started, QueryMessage query, Widening widening)
    {
        public DateTimeOffset Started { get; } = started;
        public QueryMessage Query { get; } = query;
        public Widening Widening { get; } = widening;
        public HashSet<NodeId> Found { get; } = [];
        /// <summary>How many of those our own neighbours are: the market knows them already, so they do not stop the search.</summary>
        public int Neighbours { get; set; }
    }

    /// <param name="linkBacklog">
    /// How far behind the link to a neighbour is (how long what is queued on it would take to go
    /// out): queries and hits for a link further behind than MaxQueryBacklog are dropped. The host
    /// knows it (a real link's queue over its drain rate, a simulated host's upload queue); null
    /// when no link is ever behind.
    /// </param>
    public Overlay(NodeIdentity identity, TimeProvider time, OverlayOptions? options = null, Func<NodeId, TimeSpan>? linkBacklog = null)
    {
        _identity = identity;
        _linkBacklog = linkBacklog;
        _time = time;
        _options = options ?? new OverlayOptions();
        _peers = new PeerTable(_options.MaxKnownPeers);
        _routes = new QueryRoutes(_options.MaxQueryRoutes, _options.QueryRouteLifetime);
        _started = time.GetUtcNow();
        _lastElection = _started;
    }

    public OverlayRole Role { get; private set; } = OverlayRole.Leaf;
    public Descriptor? Own { get; private set; }
    public IReadOnlyCollection<NodeId> Neighbours => _neighbourIds;
    public int KnownPeerCount => _peers.Count;
    public int QueryRouteCount => _routes.Count;
    public int SearchResultCount => _hits.Count;
    public bool FriendsOnly => _options.Friends is not null;
    /// <summary>Queries not sent because their link was more than MaxQueryBacklog behind (flow control).</summary>
    public long QueriesDropped { get; private set; }
    /// <summary>Query hits not sent because their link was more than MaxQueryBacklog behind (flow control).</summary>
    public long HitsDropped { get; private set; }

    /// <summary>
    /// How many leaves this node takes as an ultrapeer: as many as its upload can serve queries for,
    /// and never more than MaxUltrapeerNeighbours. Each query of a leaf costs the ultrapeer's upload
    /// one cell to each of its UltrapeerLinks other ultrapeers and about one for the hit back, so
    /// a leaf costs LeafQueriesPerSecond × (UltrapeerLinks + 1) × Cell.Size bytes a second, and the
    /// ultrapeer spends UltrapeerQueryShare of its offer on them: with the defaults, about 23 kbit/s
    /// a leaf, so 5 leaves at the smallest offer an ultrapeer may have (256 kbit/s), 44 at 2 Mbit/s
    /// and the 160 of MaxUltrapeerNeighbours from about 7.3 Mbit/s. Leaves beyond it are refused as
    /// full, and count as starved, so that more leaves promote while the ultrapeers are loaded.
    /// </summary>
    public int MaxLeaves => _maxLeaves;
    private DateTimeOffset Now => _time.GetUtcNow();

    public Descriptor? Find(NodeId id) => _peers.Find(id) is { } peer ? Current(peer, Now) : null;

    /// <summary>A peer's descriptor if it has not expired.</summary>
    private static Descriptor? Current(KnownPeer peer, DateTimeOffset now) => peer.Descriptor is { } d && !d.IsExpired(now) ? d : null;

    public bool IsUltrapeer(NodeId id) => _peers.Find(id)?.IsUltrapeer ?? false;

    private bool IsFriend(NodeId id) => _options.Friends is not { } friends || friends.Contains(id);

    private int MaxNeighbours => Role == OverlayRole.Ultrapeer ? _options.MaxUltrapeerNeighbours : _options.MaxLeafNeighbours;

    // ---- Peers remembered across restarts ----

    public void AddCachedPeers(IEnumerable<CachedPeer> cached)
    {
        foreach (var c in cached)
        {
            if (c.Id == _identity.Id || !IsFriend(c.Id)) continue;
            var peer = _peers.GetOrAdd(c.Id, _neighbourIds);
            peer.Address ??= c.Address;
            if (c.LastSeen > peer.LastSeen) peer.LastSeen = c.LastSeen;
            peer.Failures = c.Failures;
            if (c.Ultrapeer) peer.Ultrapeer = true;
            Due(peer);
        }
    }

    public IReadOnlyList<CachedPeer> ExportPeers() =>
        [.. _peers.All.Where(p => p.Address is not null).Select(p => new CachedPeer(p.Id, p.Address!, p.LastSeen, p.Failures, p.IsUltrapeer))];

    // ---- Our own descriptor ----

    /// <summary>Adopts a new own descriptor and sends it to every neighbour, as fast as each accepts descriptors.</summary>
    public IReadOnlyList<OverlayAction> Publish(Descriptor own)
    {
        Own = own;
        double leafBitsPerSecond = _options.LeafQueriesPerSecond * (_options.UltrapeerLinks + 1) * Cell.Size * 8;
        double servable = own.Offer.Kbps * 1000.0 * _options.UltrapeerQueryShare / leafBitsPerSecond;
        _maxLeaves = (int)Math.Min(_options.MaxUltrapeerNeighbours, servable);
        var actions = new List<OverlayAction>();
        SummaryGrows(own, actions);
        foreach (var neighbour in _neighbours.Values)
        {
            neighbour.DescriptorPending = true;
            _mayHavePending = true;
            Flush(neighbour, actions);
        }
        return actions;
    }

    /// <summary>Queues descriptors for a neighbour's next Peers message.</summary>
    private void QueuePeers(Neighbour neighbour, IEnumerable<(NodeId Id, Descriptor Descriptor)> descriptors, List<OverlayAction> actions)
    {
        foreach (var (id, d) in descriptors)
        {
            if (id == neighbour.Id) continue;
            if (neighbour.PendingPeers.Count >= PeersMessage.MaxDescriptors && !neighbour.PendingPeers.ContainsKey(id)) break;
            neighbour.PendingPeers[id] = d;
            _mayHavePending = true;
        }
        Flush(neighbour, actions);
    }

    /// <summary>Sends what is pending for a neighbour, within the pace it accepts.</summary>
    private void Flush(Neighbour neighbour, List<OverlayAction> actions)
    {
        if (neighbour.DescriptorPending && Own is not null && neighbour.DescriptorsOut.TryTake())
        {
            neighbour.DescriptorPending = false;
            actions.Add(new SendOverlayMessage(neighbour.Id, new DescriptorMessage(Own)));
        }
        if (neighbour.PendingPeers.Count > 0 && neighbour.PeersOut.TryTake())
        {
            var now = Now;
            var fresh = Fit(neighbour.PendingPeers.Values.Where(d => !d.IsExpired(now)), PeersMessage.MaxDescriptors);
            neighbour.PendingPeers.Clear();
            if (fresh.Length > 0) actions.Add(new SendOverlayMessage(neighbour.Id, new PeersMessage(fresh)));
        }
    }

    /// <summary>As many descriptors as one control message holds: a larger one would make the receiver close the link.</summary>
    private static Descriptor[] Fit(IEnumerable<Descriptor> descriptors, int maxCount)
    {
        var fitted = new List<Descriptor>();
        int size = 1 + QueryId.Size + 1;
        foreach (var d in descriptors)
        {
            if (fitted.Count == maxCount) break;
            if (size + 2 + d.Encoded.Length > ControlMessage.MaxSize) continue;
            fitted.Add(d);
            size += 2 + d.Encoded.Length;
        }
        return [.. fitted];
    }

    // ---- Links ----

    /// <summary>Whether a link with <paramref name="peer"/> may stay up; the reason if not.</summary>
    public GoodbyeReason? Refuse(NodeId peer)
    {
        if (!IsFriend(peer)) return GoodbyeReason.NotAFriend;
        if (_shunned.TryGetValue(peer, out var until) && until > Now) return GoodbyeReason.Abuse;
        if (_neighbourIds.Contains(peer)) return null;
        bool ultrapeer = IsUltrapeer(peer);
        if (_neighbours.Count >= MaxNeighbours && !(ultrapeer && UltrapeerNeighbours < WantedUltrapeers)) return GoodbyeReason.Full;
        // An ultrapeer's upload serves the queries of only so many leaves.
        if (Role == OverlayRole.Ultrapeer && !ultrapeer && _neighbours.Count - UltrapeerNeighbours >= _maxLeaves) return GoodbyeReason.Full;
        return null;
    }

    /// <summary>
    /// How many ultrapeer links we keep. A node full of other links still lets these in, beyond
    /// its neighbour limit: without ultrapeers a leaf is cut off from search.
    /// </summary>
    private int WantedUltrapeers => Role == OverlayRole.Leaf ? _options.LeafUltrapeers : _options.UltrapeerLinks;

    public IReadOnlyList<OverlayAction> LinkUp(NodeId neighbour, bool inbound, IPEndPoint remote)
    {
        _neighbourIds.Add(neighbour);
        var peer = _peers.GetOrAdd(neighbour, _neighbourIds);
        _peers.SetNeighbour(peer, linked: true);
        _neighbours[neighbour] = new Neighbour(neighbour, peer, _options, _time);
        peer.LastSeen = Now;
        peer.Failures = 0;
        // An inbound link comes from an ephemeral port: only a descriptor says where to dial.
        if (!inbound) peer.Address ??= remote;
        Due(peer);

        var actions = new List<OverlayAction>();
        var state = _neighbours[neighbour];
        state.DescriptorPending = true;
        _mayHavePending = true;
        QueuePeers(state, PeerSample(exclude: neighbour), actions);
        return actions;
    }

    public void LinkDown(NodeId neighbour)
    {
        _neighbours.Remove(neighbour);
        _neighbourIds.Remove(neighbour);
        // No longer a neighbour, it may be forgotten now.
        if (_peers.Find(neighbour) is { } peer)
        {
            _peers.SetNeighbour(peer, linked: false);
            Due(peer);
        }
    }

    /// <summary>The peer closed the link with a goodbye; an ultrapeer that is full is left alone for a while.</summary>
    public void Farewell(NodeId id, GoodbyeReason reason)
    {
        if (reason == GoodbyeReason.Full && _peers.Find(id) is { } peer) peer.FullUntil = Now + _options.RedialAfter * 10;
    }

    public void DialFailed(NodeId? id, IPEndPoint address)
    {
        var peer = id is { } known ? _peers.Find(known) : _peers.All.FirstOrDefault(p => address.Equals(p.Address));
        if (peer is null) return;
        peer.Failures++;
        // Another node behind our NAT, dialed at its mapped port: most NATs, miniupnpd's among them,
        // do not loop a connection from inside back in, so the next dial fails as this one did. It
        // is out of reach at once, and left alone rather than redialed until forgotten and heard of
        // anew, each time counting as reachable again (seen on the testbed).
        if (BehindOurAddress(peer)) peer.UnreachableUntil = Now + _options.RedialAfter * 10;
        Due(peer);
    }

    /// <summary>Whether a peer's address is our own public address at another port: a node behind the same NAT.</summary>
    private bool BehindOurAddress(KnownPeer peer) =>
        Own?.Address is { } own && peer.Address is { } address && address.Address.Equals(own.Address) && address.Port != own.Port;

    /// <summary>Whether dials from here cannot reach a peer: it failed two, or one behind our own address.</summary>
    private static bool OutOfReach(KnownPeer peer, DateTimeOffset now) => peer.Failures >= 2 || peer.UnreachableUntil > now;

    // ---- Messages ----

    /// <summary>
    /// Rate-limits a neighbour's overlay messages by type before they are decoded, so a flood
    /// costs little: an excess message is dropped and earns a strike; too many strikes and the
    /// neighbour is dropped and shunned.
    /// </summary>
    public Admission Admit(NodeId from, ControlType type)
    {
        if (!_neighbours.TryGetValue(from, out var neighbour)) return Admission.Drop;
        var bucket = type switch
        {
            ControlType.Query => neighbour.Peer.IsUltrapeer ? neighbour.UltrapeerQueries : neighbour.LeafQueries,
            ControlType.QueryHit or ControlType.LookupHit or ControlType.Introduce or ControlType.IntroduceFailed => neighbour.Hits,
            ControlType.RecordPublish => neighbour.Records,
            ControlType.Lookup => neighbour.Peer.IsUltrapeer ? neighbour.UltrapeerLookups : neighbour.LeafLookups,
            ControlType.Descriptor => neighbour.Descriptors,
            ControlType.Peers => neighbour.Peers,
            ControlType.CreditRequest => neighbour.Credits,
            ControlType.AgreementProposal => neighbour.Proposals,
            ControlType.OfferSummary => neighbour.Summaries,
            _ => null,
        };
        if (bucket is null || bucket.TryTake()) return Admission.Accept;
        // An ultrapeer relays for many others, so its excess is more likely load than malice.
        return Strike(neighbour, neighbour.Peer.IsUltrapeer ? 0.1 : 1) ? Admission.Disconnect : Admission.Drop;
    }

    /// <summary>Adds a strike; true when the neighbour is now over the limit and shunned.</summary>
    private bool Strike(Neighbour neighbour, double weight = 1)
    {
        long now = _time.GetTimestamp();
        neighbour.Strikes = Math.Max(0, neighbour.Strikes - _time.GetElapsedTime(neighbour.StrikesUpdated, now).TotalSeconds) + weight;
        neighbour.StrikesUpdated = now;
        if (neighbour.Strikes < _options.StrikeLimit) return false;
        Shun(neighbour.Id);
        return true;
    }

    private void Shun(NodeId id)
    {
        if (_shunned.Count >= MaxShunned)
            foreach (var expired in _shunned.Where(s => s.Value <= Now).Select(s => s.Key).ToList()) _shunned.Remove(expired);
        if (_shunned.Count < MaxShunned) _shunned[id] = Now + _options.ShunFor;
    }

    /// <summary>Handles an admitted overlay message from a neighbour.</summary>
    public IReadOnlyList<OverlayAction> Receive(NodeId from, ControlMessage message)
    {
        var actions = new List<OverlayAction>();
        if (!_neighbours.TryGetValue(from, out var neighbour)) return actions;
        switch (message)
        {
            case DescriptorMessage { Descriptor: var descriptor }:
                var id = descriptor.Id;
                if (id != from)
                {
                    Reject(neighbour, OverlayError.WrongSender, $"{from.Brief} sent {id.Brief}'s descriptor as its own", actions);
                    break;
                }
                bool wasUltrapeer = IsUltrapeer(from);
                if (!TryAccept(neighbour, descriptor, id, actions)) break;
                if (!neighbour.Peer.IsUltrapeer) SummaryGrows(descriptor, actions);
                // Introduce a new neighbour, or one that just became an ultrapeer, to the others,
                // so that they can link to it directly.
                bool becameUltrapeer = !wasUltrapeer && IsUltrapeer(from);
                if ((!neighbour.Introduced || becameUltrapeer) && descriptor.Address is not null)
                {
                    neighbour.Introduced = true;
                    foreach (var other in _neighbours.Values.Where(n => n.Id != from)) QueuePeers(other, [(from, descriptor)], actions);
                }
                break;
            case PeersMessage { Descriptors: var descriptors }:
                foreach (var d in descriptors)
                {
                    // A node id is a hash of the key: work it out once per descriptor.
                    var heard = d.Id;
                    if (heard != _identity.Id && !_neighbourIds.Contains(heard)) TryAccept(neighbour, d, heard, actions, hearsay: true);
                }
                break;
            case QueryMessage query:
                OnQuery(neighbour, query, actions);
                break;
            case QueryHitMessage hit:
                OnHit(neighbour, hit, actions);
                break;
            case RecordPublishMessage publish:
                OnRecordPublish(neighbour, publish, actions);
                break;
            case LookupMessage lookup:
                OnLookup(neighbour, lookup, actions);
                break;
            case LookupHitMessage hit:
                OnLookupHit(neighbour, hit, actions);
                break;
            case IntroduceMessage introduce:
                OnIntroduce(neighbour, introduce, actions);
                break;
            case IntroduceFailedMessage failed:
                OnIntroduceFailed(neighbour, failed, actions);
                break;
            case OfferSummaryMessage { Summary: var summary }:
                neighbour.Summary = summary;
                break;
        }
        return actions;
    }

    private void Reject(Neighbour neighbour, OverlayError error, string reason, List<OverlayAction> actions)
    {
        actions.Add(new MessageRejected(neighbour.Id, error, reason));
        if (Strike(neighbour)) actions.Add(new DisconnectPeer(neighbour.Id, GoodbyeReason.Abuse));
    }

    /// <summary>
    /// Stores a descriptor that is current and no older than what we hold. Bad hearsay (peer
    /// exchange) is skipped without blame: an older copy is normal in gossip, and a third
    /// party's expired or future-dated descriptor is not the relaying neighbour's doing.
    /// </summary>
    private bool TryAccept(Neighbour from, Descriptor descriptor, NodeId id, List<OverlayAction> actions, bool hearsay = false)
    {
        var error = Check(descriptor, id);
        if (error is null && !IsFriend(id)) return false;
        if (error is { } e)
        {
            if (!hearsay) Reject(from, e, $"descriptor of {id.Brief}: {e}", actions);
            return false;
        }
        var peer = _peers.GetOrAdd(id, _neighbourIds);
        peer.Descriptor = descriptor;
        peer.Address = descriptor.Address ?? peer.Address;
        peer.Ultrapeer = descriptor.Roles.HasFlag(NodeRoles.Ultrapeer);
        if (descriptor.Published > peer.LastSeen) peer.LastSeen = descriptor.Published;
        Due(peer);
        return true;
    }

    private OverlayError? Check(Descriptor descriptor, NodeId id)
    {
        var now = Now;
        if (descriptor.IsExpired(now)) return OverlayError.Expired;
        if (descriptor.Published > now + _options.MaxClockSkew) return OverlayError.FromTheFuture;
        if (descriptor.Expires - descriptor.Published > _options.MaxDescriptorLifetime) return OverlayError.TooLongLived;
        if (_peers.Find(id)?.Descriptor is { } current && current.Published > descriptor.Published) return OverlayError.Stale;
        return null;
    }

    // ---- Search ----

    /// <summary>
    /// Starts a search for offers of at least <paramref name="wanted"/> whose request fits in
    /// <paramref name="canGrant"/>, by Gnutella's dynamic querying: our own neighbours answer at
    /// once, then the search goes to our ultrapeers (or, in a network too young to have any, to
    /// every neighbour; in friends-only mode only to friends) with a TTL of 1, and upkeep widens it
    /// (<see cref="SearchPlan"/>) while it has found fewer than it asks for. A search for common
    /// offers so costs a handful of messages, and a rare one a bounded flood, not every ultrapeer's.
    /// </summary>
    public (QueryId Id, IReadOnlyList<OverlayAction> Actions) Search(Block wanted, Block? canGrant)
    {
        var id = QueryId.New(_options.Random);
        var now = Now;
        foreach (var stale in _ownSearches.Where(s => s.Value.Started + _options.SearchResultLifetime <= now).Select(s => s.Key).ToList()) _ownSearches.Remove(stale);
        if (_ownSearches.Count >= MaxOwnSearches) _ownSearches.Remove(_ownSearches.MinBy(s => s.Value.Started).Key);
        var query = new QueryMessage(id, 1, 0, wanted, canGrant, Math.Min(_options.MaxResults, QueryMessage.MaxResultsLimit));
        // Leaves never pass a query on: a node with no ultrapeer asks its neighbours once.
        var search = new OwnSearch(now, query, Widen(SearchPlan, now, IsUltrapeer));
        _ownSearches[id] = search;
        _routes.TryAdd(id, _identity.Id, now);

        // Our own leaves and neighbours answer at once, without a message.
        foreach (var neighbour in _neighbourIds)
            if (Find(neighbour) is { } d && Matches(d, wanted, canGrant)) RememberHit(d, neighbour, id);
        search.Neighbours = search.Found.Count;

        var actions = new List<OverlayAction>();
        StepSearch(search, now, actions);
        return (id, actions);
    }

    /// <summary>
    /// How a search widens, one step per <see cref="OverlayOptions.SearchStepInterval"/>: a TTL of
    /// 1 through every ultrapeer of ours, so that each answers for itself and its leaves; then TTL 2
    /// through all of them at once. Each ultrapeer dials 6 others and takes the links others dial,
    /// so it has about 12 ultrapeer links, and a leaf's 3 ultrapeers reach about 36 ultrapeers and
    /// their leaves; but each passes the query on only to those whose offer summary matches, and
    /// to no more than the query wants (<see cref="Forward"/>), so the step costs at most 3 × 9
    /// queries and as many hits. Without summaries it cost 3 × 13 and went through one ultrapeer a
    /// second; a TTL-3 step through even one of them would cost over a hundred more.
    /// </summary>
    private static WideningStep[] SearchPlan => [new(1, Spread.All), new(2, Spread.All)];

    /// <summary>
    /// A widening flood out through our flood targets, in random order, so that "each in turn"
    /// spreads over them. Its wider steps go only to neighbours that pass it on, and
    /// to at most UltrapeerLinks of them: a leaf with no ultrapeer has up to MaxLeafNeighbours.
    /// </summary>
    private Widening Widen(WideningStep[] plan, DateTimeOffset now, Func<NodeId, bool> passesOn)
    {
        var through = FloodTargets().ToArray();
        _options.Random.Shuffle(through);
        return new Widening(plan, through, [.. through.Where(passesOn).Take(_options.UltrapeerLinks)], now);
    }

    /// <summary>Takes the steps of a search that are due while it still wants more.</summary>
    private void StepSearch(OwnSearch search, DateTimeOffset now, List<OverlayAction> actions)
    {
        while (search.Found.Count - search.Neighbours < search.Query.MaxResults && search.Widening.Next(now, _neighbourIds, _options.SearchStepInterval) is { } step)
            foreach (var (to, ttl) in step)
            {
                var query = search.Query with { Ttl = ttl };
                if (!_neighbours.TryGetValue(to, out var n) || Finds(n, query)) SendQuery(to, query, actions);
            }
    }

    /// <summary>Upkeep of our searches: widens those that found too little.</summary>
    private void TickSearches(DateTimeOffset now, List<OverlayAction> actions)
    {
        foreach (var search in _ownSearches.Values)
            if (search.Started + _options.SearchResultLifetime > now) StepSearch(search, now, actions);
    }

    /// <summary>Whether the link to a neighbour is too far behind for a query or a hit: those are dropped, never queued.</summary>
    private bool Behind(NodeId neighbour) => _linkBacklog is { } backlog && backlog(neighbour) > _options.MaxQueryBacklog;

    private void SendQuery(NodeId to, QueryMessage query, List<OverlayAction> actions)
    {
        if (Behind(to)) QueriesDropped++;
        else actions.Add(new SendOverlayMessage(to, query));
    }

    private void SendHit(NodeId to, QueryHitMessage hit, List<OverlayAction> actions)
    {
        if (Behind(to)) HitsDropped++;
        else actions.Add(new SendOverlayMessage(to, hit));
    }

    /// <summary>
    /// Offers that match, from neighbours and recent search hits: the market's candidates, with
    /// their node ids, which the overlay already knows, so the market need not hash every key
    /// again. They go into <paramref name="candidates"/>, a list the caller keeps from one search
    /// to the next (it is cleared first).
    /// </summary>
    /// <remarks>
    /// Neighbours first, then hits, each once; a node is judged by the newest descriptor we hold
    /// of it. Every node with an unmet request asks this every second, so it is plain loops.
    /// </remarks>
    public void Candidates(Block wanted, Block? canGrant, List<(NodeId Id, Descriptor Descriptor)> candidates)
    {
        candidates.Clear();
        var now = Now;
        bool Fits(NodeId id, Descriptor d) => id != _identity.Id && IsFriend(id) && Matches(d, wanted, canGrant);
        foreach (var n in _neighbours.Values)
            if (Current(n.Peer, now) is { } d && Fits(n.Id, d)) candidates.Add((n.Id, d));
        foreach (var (id, hit) in _hits)
        {
            if (hit.Received + _options.SearchResultLifetime <= now || hit.Descriptor.IsExpired(now)) continue;
            var peer = hit.Peer.Removed ? _peers.Find(id) : hit.Peer;
            var current = peer is null ? null : Current(peer, now);
            if (current is not null && peer!.IsNeighbour) continue; // judged above, as a neighbour
            var d = current ?? hit.Descriptor;
            if (Fits(id, d)) candidates.Add((id, d));
        }
    }

    /// <summary>The offers a given search of ours has found so far.</summary>
    public IReadOnlyList<Descriptor> Results(QueryId query) =>
        _ownSearches.TryGetValue(query, out var search)
            ? [.. search.Found.Select(id => _hits.TryGetValue(id, out var hit) ? hit.Descriptor : null).OfType<Descriptor>().Where(d => !d.IsExpired(Now))]
            : [];

    public static bool Matches(Descriptor d, Block wanted, Block? canGrant) =>
        d.LargestFreeBlock is { } free && free >= wanted && (d.Request is not { } theirs || (canGrant is { } can && theirs <= can));

    private void OnQuery(Neighbour from, QueryMessage query, List<OverlayAction> actions)
    {
        var now = Now;
        var seen = _routes.See(query.Id, from.Id, query.Ttl, now);
        if (seen == QuerySeen.Copy) return; // a copy that came another way
        bool ultrapeer = Role == OverlayRole.Ultrapeer;
        if (seen == QuerySeen.Deeper)
        {
            // Its searcher widened it: we answered already, so it only goes further.
            if (ultrapeer && !FriendsOnly && query.Ttl > 1) Forward(from, query, actions);
            return;
        }

        // An ultrapeer answers for itself and its leaves, whose descriptors it keeps current. The
        // leaves named are drawn at random among those that match, so that the searches of many
        // nodes spread over them instead of all proposing to the same few. Only offers the
        // searcher can dial are named: a node behind a NAT trades with those linked to it, and
        // they know its offer already.
        var answers = new List<Descriptor>(query.MaxResults);
        if (Own is { Address: not null } own && Matches(own, query.Wanted, query.CanGrant)) answers.Add(own);
        if (ultrapeer) SampleLeaves(from, query, now, answers);
        var reply = Fit(answers, query.MaxResults);
        if (reply.Length > 0) SendHit(from.Id, new QueryHitMessage(query.Id, reply), actions);

        // Enough answers here, or the TTL is spent, or we are a leaf: the query stops.
        if (!ultrapeer || FriendsOnly || reply.Length >= query.MaxResults || query.Ttl <= 1) return;
        Forward(from, query with { MaxResults = (byte)(query.MaxResults - reply.Length) }, actions);
    }

    /// <summary>Passes a query on to our other ultrapeers, one hop further and one TTL less.</summary>
    private void Forward(Neighbour from, QueryMessage query, List<OverlayAction> actions)
    {
        var forward = query with { Ttl = (byte)Math.Min(query.Ttl - 1, _options.QueryTtl), Hops = (byte)Math.Min(255, query.Hops + 1) };
        _nextHops.Clear();
        foreach (var n in _neighbours.Values)
            if (n.Id != from.Id && n.Peer.IsUltrapeer && Finds(n, forward)) _nextHops.Add(n);
        // A last hop whose summary matches answers at least one offer: more of them than the
        // query still wants would only add messages, so it goes to that many, drawn at random
        // so that searches spread over them.
        int count = _nextHops.Count;
        if (forward.Ttl == 1 && count > forward.MaxResults)
        {
            count = forward.MaxResults;
            for (int i = 0; i < count; i++)
            {
                int j = _options.Random.Next(i, _nextHops.Count);
                (_nextHops[i], _nextHops[j]) = (_nextHops[j], _nextHops[i]);
            }
        }
        // A flood is best effort: an ultrapeer busier than the next one admits, or than its link
        // drains, drops forwards rather than earn strikes or queue them.
        for (int i = 0; i < count; i++)
        {
            var n = _nextHops[i];
            if (Behind(n.Id)) QueriesDropped++;
            else if (n.QueriesOut.TryTake()) actions.Add(new SendOverlayMessage(n.Id, forward));
        }
    }

    /// <summary>
    /// Whether a query may find something at a neighbour: a query that ends there (TTL 1) goes only
    /// to an ultrapeer whose offer summary matches, or that has sent none yet (Gnutella's last-hop
    /// query routing). A query that goes on from there is sent whatever the summary says.
    /// </summary>
    private static bool Finds(Neighbour to, QueryMessage query) =>
        query.Ttl > 1 || to.Summary is not { } summary || summary.Matches(query.Wanted, query.CanGrant);

    /// <summary>
    /// Adds to <paramref name="answers"/>, up to the query's limit, leaves of ours (not the asker)
    /// whose current descriptor matches, each equally likely (reservoir sampling). An ultrapeer
    /// answers this for every query that passes, over up to all its neighbours: a plain loop over
    /// them, without lookups by id.
    /// </summary>
    private void SampleLeaves(Neighbour from, QueryMessage query, DateTimeOffset now, List<Descriptor> answers)
    {
        int first = answers.Count, count = query.MaxResults - first;
        if (count <= 0) return;
        int seen = 0;
        foreach (var n in _neighbours.Values)
        {
            if (n.Id == from.Id || n.Peer.IsUltrapeer || Current(n.Peer, now) is not { Address: not null } d || !Matches(d, query.Wanted, query.CanGrant)) continue;
            seen++;
            if (seen <= count) answers.Add(d);
            else if (_options.Random.Next(seen) is var slot && slot < count) answers[first + slot] = d;
        }
    }

    private void OnHit(Neighbour from, QueryHitMessage hit, List<OverlayAction> actions)
    {
        var now = Now;
        if (!_routes.TryGet(hit.Query, now, out var back) || back == from.Id)
        {
            Reject(from, OverlayError.UnknownQuery, $"hit for query {hit.Query} that we never sent that way", actions);
            return;
        }
        // A third party's expired or mis-dated descriptor is not the relaying neighbour's doing,
        // as in gossip: drop it quietly, never forward it.
        var valid = hit.Descriptors.Select(d => (Id: d.Id, Descriptor: d)).Where(d => Check(d.Descriptor, d.Id) is null or OverlayError.Stale).ToArray();
        if (valid.Length == 0) return;
        if (back == _identity.Id)
        {
            int remembered = 0;
            foreach (var (id, d) in valid)
            {
                if (id == _identity.Id || !IsFriend(id)) continue;
                RememberHit(d, id, hit.Query);
                remembered++;
            }
            if (remembered > 0) actions.Add(new OffersFound(hit.Query));
            return;
        }
        // Not ours: pass the valid ones back the way the query came; never forward what we refused.
        SendHit(back, new QueryHitMessage(hit.Query, Fit(valid.Select(d => d.Descriptor), QueryMessage.MaxResultsLimit)), actions);
    }

    private void RememberHit(Descriptor descriptor, NodeId id, QueryId query)
    {
        if (!_hits.ContainsKey(id) && _hits.Count >= _options.MaxSearchResults)
            _hits.Remove(_hits.MinBy(h => h.Value.Received).Key);
        var peer = _peers.GetOrAdd(id, _neighbourIds);
        var hit = new Hit(descriptor, Now, peer);
        _hits[id] = hit;
        if (HitDue(hit) < _hitsDue) _hitsDue = HitDue(hit);
        if (_ownSearches.TryGetValue(query, out var search) && search.Found.Count < QueryMessage.MaxResultsLimit * MaxOwnSearches) search.Found.Add(id);
        // News of a peer like any other: a stale copy (hits may carry one) changes nothing.
        if (peer.Descriptor is not null && peer.Descriptor.Published > descriptor.Published) return;
        peer.Descriptor = descriptor;
        peer.Address = descriptor.Address ?? peer.Address;
        peer.Ultrapeer = descriptor.Roles.HasFlag(NodeRoles.Ultrapeer);
        if (descriptor.Published > peer.LastSeen) peer.LastSeen = descriptor.Published;
        Due(peer);
    }

    // ---- Upkeep ----

    /// <summary>Regular upkeep: age out peers and hits, elect or resign as ultrapeer, link enough peers, exchange peers.</summary>
    public IReadOnlyList<OverlayAction> Tick()
    {
        var now = Now;
        var actions = new List<OverlayAction>();
        _routes.Expire(now);
        TickSearches(now, actions);
        TickServices(now, actions);
        if (now >= _hitsDue) DropStaleHits(now);
        if (now >= _sweepDue) Sweep(now);
        foreach (var (id, until) in _shunned)
            if (until <= now) _shunned.Remove(id);

        ElectRole(now, actions);
        Dial(now, actions);
        if (now >= _summaryDue) TellSummary(now, actions);

        if (now - _lastPeerExchange >= _options.PeerExchangeInterval && _neighbours.Count > 0)
        {
            _lastPeerExchange = now;
            var neighbours = _neighbours.Values.ToArray();
            _options.Random.Shuffle(neighbours);
            foreach (var n in neighbours.Take(2)) QueuePeers(n, PeerSample(exclude: n.Id), actions);
        }
        if (_mayHavePending)
        {
            _mayHavePending = false;
            foreach (var neighbour in _neighbours.Values)
            {
                Flush(neighbour, actions);
                if (neighbour.DescriptorPending || neighbour.PendingPeers.Count > 0) _mayHavePending = true;
            }
        }
        return actions;
    }

    /// <summary>
    /// As an ultrapeer, works out anew what we would answer to a query that ends here: ourselves
    /// and our leaves, as <see cref="OnQuery"/> names them; and tells each ultrapeer neighbour
    /// that has not heard it. An offer that went is so told within a second or so; one that came
    /// is told at once (<see cref="SummaryGrows"/>). A leaf's summary would route nothing, so it
    /// sends none.
    /// </summary>
    private void TellSummary(DateTimeOffset now, List<OverlayAction> actions)
    {
        _summaryDue = now + _options.SummaryInterval;
        if (Role != OverlayRole.Ultrapeer || FriendsOnly) return;
        OfferSummary.Clear(_summary);
        if (Own is { Address: not null, LargestFreeBlock: { } ownFree } own) OfferSummary.Include(_summary, ownFree, own.Request);
        foreach (var n in _neighbours.Values)
            if (!n.Peer.IsUltrapeer && Current(n.Peer, now) is { Address: not null, LargestFreeBlock: { } free } d) OfferSummary.Include(_summary, free, d.Request);
        SendSummary(actions);
    }

    /// <summary>
    /// An offer we would now name, ours or a leaf's: if our summary did not cover it, it does now,
    /// and our ultrapeers hear so at once, as fast as each accepts summaries. A searcher's query
    /// that a stale summary kept away would miss exactly the blocks freed a moment ago, which
    /// nodes whose partners just left are searching for. Until the next upkeep works it out anew,
    /// the summary may still name an offer that has gone: a query sent for nothing, as without
    /// summaries.
    /// </summary>
    private void SummaryGrows(Descriptor d, List<OverlayAction> actions)
    {
        if (Role == OverlayRole.Ultrapeer && !FriendsOnly && d is { Address: not null, LargestFreeBlock: { } free } && OfferSummary.Include(_summary, free, d.Request))
            SendSummary(actions);
    }

    private void SendSummary(List<OverlayAction> actions)
    {
        OfferSummary? summary = null;
        foreach (var n in _neighbours.Values)
        {
            if (!n.Peer.IsUltrapeer || n.SummarySent?.Is(_summary) == true || !n.SummariesOut.TryTake()) continue;
            summary ??= OfferSummary.From(_summary);
            n.SummarySent = summary;
            actions.Add(new SendOverlayMessage(n.Id, new OfferSummaryMessage(summary)));
        }
    }

    /// <summary>Drops the search hits that are too old or whose descriptor expired, and notes when the next one will be.</summary>
    private void DropStaleHits(DateTimeOffset now)
    {
        _hitsDue = DateTimeOffset.MaxValue;
        // Removing while enumerating is allowed for a Dictionary.
        foreach (var (id, hit) in _hits)
        {
            if (hit.Received + _options.SearchResultLifetime <= now || hit.Descriptor.IsExpired(now)) _hits.Remove(id);
            else if (HitDue(hit) < _hitsDue) _hitsDue = HitDue(hit);
        }
    }

    private DateTimeOffset HitDue(Hit hit) => Min(hit.Received + _options.SearchResultLifetime, hit.Descriptor.Expires);

    private static DateTimeOffset Min(DateTimeOffset a, DateTimeOffset b) => a < b ? a : b;

    /// <summary>Forgets peers that failed too often, expired with nowhere to dial, or were not heard of for too long; neighbours stay.</summary>
    private void Sweep(DateTimeOffset now)
    {
        _sweepDue = DateTimeOffset.MaxValue;
        foreach (var peer in _peers.All.Where(p => !_neighbourIds.Contains(p.Id)).ToList())
        {
            if (peer.Descriptor?.IsExpired(now) == true) peer.Descriptor = null;
            if (peer.Failures >= _options.MaxDialFailures || (peer.Address is null && peer.Descriptor is null) || now - peer.LastSeen > _options.MaxPeerAge)
                _peers.Remove(peer.Id);
            else
                Due(peer);
        }
    }

    /// <summary>Notes when a peer that changed could next be forgotten, so that upkeep sweeps no sooner.</summary>
    private void Due(KnownPeer peer)
    {
        var due = peer.Failures >= _options.MaxDialFailures || (peer.Address is null && peer.Descriptor is null)
            ? DateTimeOffset.MinValue
            : peer.LastSeen > DateTimeOffset.MaxValue - _options.MaxPeerAge ? DateTimeOffset.MaxValue : peer.LastSeen + _options.MaxPeerAge;
        if (peer.Descriptor is { } d && d.Expires < due) due = d.Expires;
        if (due < _sweepDue) _sweepDue = due;
    }

    private int UltrapeerNeighbours => _peers.UltrapeerNeighbours;

    private bool Dialable(KnownPeer p, DateTimeOffset now) =>
        p.Id != _identity.Id && p.Address is not null && !p.IsNeighbour && IsFriend(p.Id)
        && now - p.LastDial >= _options.RedialAfter && p.FullUntil <= now && p.UnreachableUntil <= now && !(_shunned.TryGetValue(p.Id, out var until) && until > now);

    /// <summary>Ultrapeers we are linked to or could link to (neither failing to answer nor full), counted up to <paramref name="enough"/>.</summary>
    private int UsableUltrapeers(DateTimeOffset now, int enough)
    {
        int count = 0;
        foreach (var p in _peers.Ultrapeers)
            if (p.Id != _identity.Id && (p.IsNeighbour || (p.Address is not null && !OutOfReach(p, now) && p.FullUntil <= now)) && ++count >= enough)
                break;
        return count;
    }

    /// <summary>
    /// A capable leaf that has known too few usable ultrapeers for at least PromotionDelay
    /// becomes one at a random moment: a Poisson process whose rate is shared out among the
    /// leaves it knows, so that across the network about one leaf promotes per PromotionDelay
    /// and news of each new ultrapeer spreads before the next. An ultrapeer that serves no
    /// leaf while enough others exist becomes a leaf again after DemotionDelay.
    /// </summary>
    private void ElectRole(DateTimeOffset now, List<OverlayAction> actions)
    {
        var elapsed = now - _lastElection;
        _lastElection = now;
        bool capable = _options.UltrapeerCapable && !FriendsOnly && Own?.Address is not null && Own.Offer >= _options.UltrapeerMinOffer;
        if (Role == OverlayRole.Leaf)
        {
            // Most leaves are not capable, or not starved: the cheap tests first. A young node waits
            // out the uptime that keeps short-lived ultrapeers away, unless no ultrapeer it has heard
            // of will take it: none linked to it, and every other one failing to answer or full. In
            // a network that has just started, or whose only ultrapeer died, cannot be reached from
            // here (behind the same NAT), or is a small node that took the leaves its upload allows
            // and turned the rest away, searches would otherwise reach nobody for the whole of that
            // time (each seen on the testbed). A newcomer to a working network hears of ultrapeers
            // from its first neighbours, and waits like any young node while one has room.
            if (!capable || UltrapeerNeighbours >= _options.LeafUltrapeers
                || UsableUltrapeers(now, _options.LeafUltrapeers) >= _options.LeafUltrapeers)
            {
                _starvedSince = null;
                return;
            }
            bool noneExists = !_peers.Ultrapeers.Any(p => p.Id != _identity.Id && (p.IsNeighbour || !OutOfReach(p, now)));
            if (now - _started < _options.UltrapeerMinUptime && !noneExists && UsableUltrapeers(now, 1) > 0)
            {
                _starvedSince = null;
                return;
            }
            _starvedSince ??= now;
            if (now - _starvedSince < _options.PromotionDelay) return;
            // With none for that long no search reaches anyone until one appears: one should, within
            // seconds rather than another PromotionDelay. Where full ones exist, searches still reach
            // their leaves, so the pace is the usual one.
            var pace = noneExists ? _options.FirstPromotionDelay : _options.PromotionDelay;
            // Any leaf we know of may be as short of ultrapeers as we are, and one promotion serves
            // many: the pace is shared among them. But a leaf no ultrapeer has taken is found by no
            // search, and spare capacity piles up in such leaves (at 1,000 nodes in the simulator,
            // most of the offers that searches failed to find sat in them): it promotes at the pace
            // of a node alone.
            int competitors = UltrapeerNeighbours == 0 ? 1 : 1 + _peers.AddressedLeaves;
            double chance = 1 - Math.Exp(-elapsed * PromotionWeight() / (pace * competitors));
            if (_options.Random.NextDouble() >= chance) return;
            Role = OverlayRole.Ultrapeer;
            _idleSince = null;
            actions.Add(new RoleChanged(NodeRoles.Ultrapeer));
            return;
        }
        bool idle = UltrapeerNeighbours == _neighbours.Count && UltrapeerNeighbours >= _options.LeafUltrapeers;
        if (capable && !idle)
        {
            _idleSince = null;
            return;
        }
        _idleSince ??= now;
        if (capable && now - _idleSince < _options.DemotionDelay) return;
        Role = OverlayRole.Leaf;
        _starvedSince = null;
        actions.Add(new RoleChanged(NodeRoles.None));
    }

    /// <summary>
    /// How fast this leaf promotes against the others as starved as it: in proportion to its rank
    /// by offer among the leaves it knows, from a tenth of the shared pace for the smallest to
    /// twice it for the largest, so that ultrapeers are the nodes whose upload serves the most
    /// leaves, as Gnutella elects those with the most bandwidth. On the testbed a node of
    /// 1 Mbit/s became the first ultrapeer, took the 22 leaves its upload allows and turned the
    /// others away, and those, young, could not promote in its place for ten minutes.
    /// </summary>
    private double PromotionWeight()
    {
        long own = Own!.Offer.Kbps;
        int known = 1, below = 0, level = 1; // ourselves among them
        foreach (var peer in _peers.All)
        {
            if (peer.IsUltrapeer || peer.Descriptor is not { } d || peer.Id == _identity.Id) continue;
            known++;
            if (d.Offer.Kbps < own) below++;
            else if (d.Offer.Kbps == own) level++;
        }
        return Math.Max(0.1, 2.0 * (below + level / 2.0) / known);
    }

    /// <summary>
    /// Dials random peers toward the links we want: ultrapeers first, then anyone while we have
    /// too few links. Only the peers that can help are looked at, so a full table costs nothing
    /// while we have what we want. An ultrapeer with the ultrapeer links it wants, but fewer than
    /// twice as many, keeps one more, to an ultrapeer drawn at random, so that it never stays in an
    /// island; when that link goes, it draws another after <see cref="OverlayOptions.ShortcutInterval"/>.
    /// </summary>
    private void Dial(DateTimeOffset now, List<OverlayAction> actions)
    {
        int budget = _options.DialsPerTick;
        void DialOne(KnownPeer peer)
        {
            peer.LastDial = now;
            actions.Add(new DialPeer(peer.Id, peer.Address!));
            budget--;
        }

        int wantUltrapeers = Math.Min(budget, Math.Max(0, WantedUltrapeers - UltrapeerNeighbours));
        // An ultrapeer linked to twice the ultrapeers it wants is in no island, and one more link
        // of its would add to every flood through it.
        bool wantShortcut = Role == OverlayRole.Ultrapeer && wantUltrapeers == 0 && UltrapeerNeighbours < 2 * WantedUltrapeers
            && !(_shortcut is { } shortcut && _neighbourIds.Contains(shortcut));
        if (wantShortcut && now >= _nextShortcut)
        {
            _nextShortcut = now + _options.ShortcutInterval;
            var ultrapeers = _peers.Ultrapeers.Where(p => Dialable(p, now)).ToArray();
            if (ultrapeers.Length > 0)
            {
                var peer = ultrapeers[_options.Random.Next(ultrapeers.Length)];
                _shortcut = peer.Id;
                DialOne(peer);
            }
        }
        if (wantUltrapeers > 0)
        {
            var ultrapeers = _peers.Ultrapeers.Where(p => Dialable(p, now)).ToArray();
            _options.Random.Shuffle(ultrapeers);
            foreach (var peer in ultrapeers.Take(wantUltrapeers)) DialOne(peer);
        }
        int wantAny = Math.Min(budget, Math.Max(0, _options.MinNeighbours - _neighbourIds.Count - (_options.DialsPerTick - budget)));
        if (wantAny == 0) return;
        var dialable = _peers.All.Where(p => Dialable(p, now)).ToArray();
        _options.Random.Shuffle(dialable);
        foreach (var peer in dialable.Take(wantAny)) DialOne(peer);
    }

    /// <summary>
    /// Descriptors worth passing on, all current and with an address: ultrapeers first, in random
    /// order, then leaves drawn at random. Leaves are drawn from the table by random picks rather
    /// than by shuffling it all, since this runs at every new link and a table holds thousands.
    /// </summary>
    private (NodeId Id, Descriptor Descriptor)[] PeerSample(NodeId exclude)
    {
        var now = Now;
        int size = Math.Min(_options.PeerExchangeSize, PeersMessage.MaxDescriptors);
        bool Usable(KnownPeer p) => p.Id != exclude && p.PassableUntil > now;
        // At every new link, over every ultrapeer known (hundreds at 10,000 nodes): a plain loop
        // into a list kept for it, shuffled in place.
        var ultrapeers = _usableUltrapeers;
        ultrapeers.Clear();
        foreach (var p in _peers.Ultrapeers)
            if (Usable(p)) ultrapeers.Add(p);
        _options.Random.Shuffle(CollectionsMarshal.AsSpan(ultrapeers));
        var sample = new List<(NodeId, Descriptor)>(size);
        for (int i = 0; i < ultrapeers.Count && sample.Count < size; i++) sample.Add((ultrapeers[i].Id, ultrapeers[i].Descriptor!));
        if (sample.Count == size) return [.. sample];
        var taken = new HashSet<NodeId>();
        for (int attempt = 0; attempt < 4 * size && sample.Count < size; attempt++)
            if (_peers.Any(_options.Random) is { IsUltrapeer: false } leaf && Usable(leaf) && taken.Add(leaf.Id)) sample.Add((leaf.Id, leaf.Descriptor!));
        if (sample.Count < size)
        {
            // Few usable leaves among many peers: random picks miss them, so look at them all.
            var rest = _peers.All.Where(p => !p.IsUltrapeer && Usable(p) && !taken.Contains(p.Id)).ToArray();
            _options.Random.Shuffle(rest);
            sample.AddRange(rest.Take(size - sample.Count).Select(p => (p.Id, p.Descriptor!)));
        }
        return [.. sample];
    }
}
