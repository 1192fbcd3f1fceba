using System.Net;
using System.Runtime.InteropServices;
using Quid.Crypto;
using Quid.Exchange;
using Quid.Overlay;
using Quid.Wire;

namespace Quid.Core;

/// <summary>
/// The one copy of a node's logic: the overlay and the market put together, as a state machine
/// over events (a tick, a link up or down, a control message, a probe measured, a dial failed,
/// stop) that returns effects for its host to carry out. The seed's loop lives here: keep the
/// overlay linked, search while the request is unmet, propose to what the search found, match
/// again when the market changes, and keep our signed descriptor current. The real node hosts it
/// on one event loop over sockets, the simulator on a virtual clock and network; neither repeats
/// any of it. <typeparamref name="TLink"/> is the host's handle for a link; the core only keeps it
/// to tell the current link to a peer from an older one.
/// </summary>
/// <remarks>Not thread-safe: its host calls it from one thread (or loop) at a time.</remarks>
public sealed class NodeCore<TLink> where TLink : class
{
    // A request that has just become unmet searches at once, but a burst of such news floods at most once a second.
    private static readonly TimeSpan MinSearchGap = TimeSpan.FromSeconds(1);

    private readonly NodeIdentity _identity;
    private readonly CoreOptions _options;
    private readonly TimeProvider _time;
    private readonly Dictionary<NodeId, Neighbour> _links = [];
    private readonly HashSet<EndPoint> _dialing = [];
    /// <summary>The market asks this at every search: one delegate, not one per call.</summary>
    private readonly Func<NodeId, bool> _isLinked;
    /// <summary>The candidates of the current match, a list kept from one match to the next.</summary>
    private readonly List<(NodeId Id, Descriptor Descriptor)> _candidates = [];
    private IReadOnlyList<Block> _publishedFree = [];
    private DiskBlock? _publishedFreeDisk;
    private CpuBlock? _publishedFreeCpu;
    private NodeId[] _publishedPartners = [];
    // The partners the descriptor would name now, kept from one check to the next.
    private readonly List<NodeId> _grantors = new(4);
    private NodeRoles _publishedRoles;
    private DateTimeOffset _publishedAt;
    private DateTimeOffset _lastSearch = DateTimeOffset.MinValue;
    /// <summary>How long until the next regular search: SearchInterval after the request becomes unmet, doubling while it stays so.</summary>
    private TimeSpan _searchInterval;
    /// <summary>Whether the last match found the request unmet: if not, this one starts a new round of searches.</summary>
    private bool _short;
    private bool? _reportedMet;
    private bool _stopped;
    /// <summary>Where our descriptor says we are dialed: <see cref="CoreOptions.Address"/> until the host learns another (a port mapping).</summary>
    private IPEndPoint? _address;

    private sealed record Neighbour(TLink Link, byte[] SigningKey, bool Outbound, DateTimeOffset Since);

    public NodeCore(NodeIdentity identity, CoreOptions options, TimeProvider time, Ledger? ledger = null)
    {
        _identity = identity;
        _options = options;
        _time = time;
        _isLinked = _links.ContainsKey;
        _address = options.Address;
        var (request, wanted) = Market.SplitRequest(options.Request, options.Hops);
        PartnersWanted = options.PartnersWanted ?? wanted;
        Overlay = new Overlay.Overlay(identity, time, options.Overlay, options.LinkBacklog);
        Market = new Market(identity, options.Offer, request, time, options.Market with { PartnersWanted = PartnersWanted }, ledger,
            offerOf: id => Overlay.Find(id)?.Offer.Kbps, offerDiskMiB: options.OfferDiskMiB, diskRequest: options.DiskRequest,
            offerCpuGfuel: options.OfferCpuGfuel, cpuRequest: options.CpuRequest);
    }

    public NodeId Id => _identity.Id;
    public Overlay.Overlay Overlay { get; }
    public Market Market { get; }
    public Ledger Ledger => Market.Ledger;
    /// <summary>How many partners, each granting one request block, the node wants.</summary>
    public int PartnersWanted { get; }
    public int LinkCount => _links.Count;
    /// <summary>The address our descriptor gives, if any.</summary>
    public IPEndPoint? Address => _address;

    /// <summary>The current link to <paramref name="peer"/>, if any.</summary>
    public TLink? LinkTo(NodeId peer) => _links.TryGetValue(peer, out var neighbour) ? neighbour.Link : null;

    /// <summary>Every current link, once each.</summary>
    public IEnumerable<(NodeId Peer, TLink Link)> Links
    {
        get
        {
            foreach (var (peer, neighbour) in _links) yield return (peer, neighbour.Link);
        }
    }

    private DateTimeOffset Now => _time.GetUtcNow();

    // ---- Events ----

    /// <summary>The node starts: its first descriptor, and whether its request is met (a donor's always is).</summary>
    public IReadOnlyList<NodeEffect> Start()
    {
        var effects = new List<NodeEffect>();
        Publish(force: true, effects);
        ReportRequest(effects);
        return effects;
    }

    /// <summary>One round of upkeep: bootstrap, the overlay's own, the seed's search and matching, probes due, the descriptor.</summary>
    public IReadOnlyList<NodeEffect> Tick()
    {
        var effects = new List<NodeEffect>();
        if (_stopped) return effects;
        if (_links.Count == 0)
            foreach (var (address, id) in _options.Bootstrap) Dial(address, id, effects);
        Execute(Overlay.Tick(), effects);
        Execute(Market.ReassessDonations(), effects);
        var probes = Market.DueProbes();
        Match(flood: false, effects);
        // A probe runs on the link to the partner and needs its descriptor for the handshake;
        // without either it does not start, and the market hears so rather than wait for a result.
        foreach (var (partner, promised) in probes)
        {
            if (_links.ContainsKey(partner) && Overlay.Find(partner) is not null) effects.Add(new NodeEffect.StartProbe(partner, promised));
            else Market.ProbeNotStarted(partner);
        }
        Publish(force: false, effects);
        return effects;
    }

    /// <summary>
    /// A handshake finished. The overlay may refuse the peer (not a friend, shunned, no room).
    /// When both nodes dialed each other at once, both keep the link the node with the smaller
    /// id dialed, so exactly one survives; a kept link replaces an older one, whose closing then
    /// changes nothing. <paramref name="dialed"/> is the address we dialed for an outbound link.
    /// </summary>
    public LinkDecision<TLink> LinkUp(TLink link, NodeId peer, bool outbound, IPEndPoint remote, byte[] signingKey, EndPoint? dialed)
    {
        if (dialed is not null) _dialing.Remove(dialed);
        var effects = new List<NodeEffect>();
        var refusal = _stopped ? GoodbyeReason.ShuttingDown : Overlay.Refuse(peer);
        var evicted = refusal == GoodbyeReason.Full ? MakeRoom() : null;
        if (evicted is not null || (refusal == GoodbyeReason.Full && TradesBeyondLinkLimit)) refusal = null;
        if (refusal is { } reason) return new(LinkVerdict.Refuse, null, reason, effects);
        TLink? replaced = null;
        if (_links.TryGetValue(peer, out var existing))
        {
            var smaller = Id < peer ? Id : peer;
            bool newDialedBySmaller = (outbound ? Id : peer) == smaller;
            bool oldDialedBySmaller = (existing.Outbound ? Id : peer) == smaller;
            if (!newDialedBySmaller || oldDialedBySmaller) return new(LinkVerdict.Duplicate, null, default, effects);
            replaced = existing.Link;
        }
        _links[peer] = new Neighbour(link, signingKey, outbound, Now);
        if (replaced is not null) Execute(Market.LinkReplaced(peer), effects);
        Execute(Overlay.LinkUp(peer, inbound: !outbound, remote), effects);
        // The market may have been waiting for this link to propose over it.
        Match(flood: false, effects);
        return new(LinkVerdict.Keep, replaced, default, effects, evicted);
    }

    /// <summary>
    /// A leaf whose links are all taken drops one that does nothing for it, so that a node wanting to
    /// trade with it (or that it wants to trade with) is not turned away. Its links pile up as
    /// partners come and go, and a leaf full of old ones refused most would-be partners: at 1,000
    /// nodes in the simulator, four proposals in five went out on links the candidate was refusing.
    /// The link dropped is the oldest of those to a leaf with which we have no business, linked for
    /// longer than a proposal waits for its answer; an ultrapeer's leaf links are its service, and
    /// are not dropped. Returns the link dropped, already forgotten, or null if none may be.
    /// </summary>
    private TLink? MakeRoom()
    {
        if (Overlay.Role != OverlayRole.Leaf) return null;
        var settled = Now - _options.Market.ProposalTimeout;
        NodeId? victim = null;
        var oldest = DateTimeOffset.MaxValue;
        foreach (var (id, neighbour) in _links)
        {
            if (neighbour.Since > settled || neighbour.Since >= oldest || Overlay.IsUltrapeer(id) || Market.TradesWith(id)) continue;
            victim = id;
            oldest = neighbour.Since;
        }
        if (victim is not { } gone) return null;
        var link = _links[gone].Link;
        _links.Remove(gone);
        Overlay.LinkDown(gone);
        return link;
    }

    /// <summary>
    /// Whether a leaf with no link it may drop still takes a new one: while it has capacity free,
    /// up to an ultrapeer's number of links. Every link it holds is then busy with trade, and the
    /// newcomer most likely wants some of what is free; refused, it would wait out a cooldown while
    /// the capacity went unused. In the simulator at 1,000 nodes, a third to a half of the requests
    /// that only one to three nodes could meet, and that had no partner 3 s after they began, were
    /// waiting so on a leaf whose 32 links were all partners.
    /// </summary>
    private bool TradesBeyondLinkLimit =>
        Overlay.Role == OverlayRole.Leaf && Market.Capacity.LargestFree is not null && _links.Count < _options.Overlay.MaxUltrapeerNeighbours;

    /// <summary>A link closed, from either end. Only the current link to a peer counts: the overlay and the market forget the peer.</summary>
    public IReadOnlyList<NodeEffect> LinkDown(TLink link, NodeId peer)
    {
        var effects = new List<NodeEffect>();
        if (!_links.TryGetValue(peer, out var current) || current.Link != link) return effects;
        _links.Remove(peer);
        Overlay.LinkDown(peer);
        bool wasMet = Market.RequestMet;
        Execute(Market.PartnerLost(peer), effects);
        Rematch(wasMet, effects);
        return effects;
    }

    /// <summary>A control message as it came off the wire: admitted by its type before it is decoded, so a flood costs little.</summary>
    public IReadOnlyList<NodeEffect> Receive(TLink from, NodeId peer, ReadOnlySpan<byte> payload)
    {
        var effects = new List<NodeEffect>();
        if (!Admit(from, peer, ControlCodec.PeekType(payload), effects, out var neighbour)) return effects;
        ControlMessage message;
        try
        {
            message = ControlCodec.Decode(payload);
        }
        catch (WireException e)
        {
            effects.Add(new NodeEffect.CloseLink(peer, $"Malformed control message: {e.Message}"));
            return effects;
        }
        Dispatch(peer, neighbour, message, effects);
        return effects;
    }

    /// <summary>A control message already decoded (the simulator passes messages as objects): admitted by its type as on the wire.</summary>
    public IReadOnlyList<NodeEffect> Receive(TLink from, NodeId peer, ControlMessage message)
    {
        var effects = new List<NodeEffect>();
        if (Admit(from, peer, message.Type, effects, out var neighbour)) Dispatch(peer, neighbour, message, effects);
        return effects;
    }

    /// <summary>
    /// A probe of a partner that grants us bandwidth measured <paramref name="deliveredKbps"/>; its
    /// verdict may shrink our grant to it, or end the agreement. A partner that would not even
    /// carry the probe delivered nothing.
    /// </summary>
    /// <summary>An audit of what <paramref name="partner"/> stores for us passed or failed (<see cref="Market.AuditResult"/>).</summary>
    public IReadOnlyList<NodeEffect> Audited(NodeId partner, bool passed)
    {
        var effects = new List<NodeEffect>();
        bool wasMet = Market.RequestMet;
        Execute(Market.AuditResult(partner, passed), effects);
        Rematch(wasMet, effects);
        return effects;
    }

    public IReadOnlyList<NodeEffect> ProbeMeasured(NodeId partner, double deliveredKbps, long promisedKbps)
    {
        var effects = new List<NodeEffect>();
        bool wasMet = Market.RequestMet;
        Execute(Market.ProbeResult(partner, deliveredKbps, promisedKbps), effects);
        Rematch(wasMet, effects);
        return effects;
    }

    /// <summary>A dial came to nothing (nobody answered, or another key did): a candidate the market wanted that link for gives way to the next.</summary>
    public IReadOnlyList<NodeEffect> DialFailed(EndPoint address, NodeId? expected)
    {
        var effects = new List<NodeEffect>();
        _dialing.Remove(address);
        if (address is IPEndPoint ip) Overlay.DialFailed(expected, ip);
        // A dial can fail while the peer's own dial to us came up: then the link is there to propose over.
        if (expected is { } id && !_links.ContainsKey(id))
        {
            Market.LinkFailed(id);
            if (!Market.RequestMet) Match(flood: false, effects);
        }
        return effects;
    }

    /// <summary>The node stops: every agreement ends politely, and no link is taken from now on.</summary>
    public IReadOnlyList<NodeEffect> Stop()
    {
        var effects = new List<NodeEffect>();
        _stopped = true;
        foreach (var agreement in Market.Active.ToList()) Execute(Market.End(agreement.Id, AgreementEndReason.ShuttingDown), effects);
        return effects;
    }

    /// <summary>
    /// Where we can be dialed has changed (a gateway mapped a port, or the mapping was lost): a new
    /// descriptor is signed and published at once, unless the address is the one published.
    /// </summary>
    public IReadOnlyList<NodeEffect> Readvertise(IPEndPoint? address)
    {
        var effects = new List<NodeEffect>();
        if (_stopped || Equals(address, _address)) return effects;
        _address = address;
        Publish(force: true, effects);
        return effects;
    }

    /// <summary>Floods a search for offers now, whatever the pace of the seed's loop: the results come in as hits (<see cref="Overlay.Overlay.Results"/>).</summary>
    public (QueryId Query, IReadOnlyList<NodeEffect> Effects) Search(Block wanted, Block? canGrant)
    {
        var effects = new List<NodeEffect>();
        var (query, actions) = Overlay.Search(wanted, canGrant);
        effects.Add(new NodeEffect.SearchStarted(query));
        Execute(actions, effects);
        return (query, effects);
    }

    /// <summary>Publishes a service record as its introduction point (PROTOCOL §9.9); introductions for it come back as <see cref="NodeEffect.IntroductionArrived"/>.</summary>
    public (QueryId Publish, IReadOnlyList<NodeEffect> Effects) PublishRecord(ServiceRecord record)
    {
        var effects = new List<NodeEffect>();
        var (publish, actions) = Overlay.PublishRecord(record);
        Execute(actions, effects);
        return (publish, effects);
    }

    /// <summary>
    /// As an introduction point, refuses an introduction that arrived for a publication whose
    /// service circuit has closed (PROTOCOL §9.9): the publication is closed and the failure goes
    /// back, so that the holder tries another route.
    /// </summary>
    public IReadOnlyList<NodeEffect> RefuseIntroduction(QueryId publish, QueryId lookup)
    {
        var effects = new List<NodeEffect>();
        Execute(Overlay.RefuseIntroduction(publish, lookup), effects);
        return effects;
    }

    /// <summary>As an introduction point, closes a publication whose service circuit has closed: introductions along it fail from now on.</summary>
    public void ClosePublication(QueryId publish) => Overlay.ClosePublication(publish);

    /// <summary>Looks a service up by its lookup id, carrying an introduction; the answer comes back as <see cref="NodeEffect.ServiceRecordFound"/> or <see cref="NodeEffect.ServiceLookupFailed"/>.</summary>
    public (QueryId Lookup, IReadOnlyList<NodeEffect> Effects) Lookup(ReadOnlySpan<byte> lookupId, byte[] introduction)
    {
        var effects = new List<NodeEffect>();
        var (lookup, actions) = Overlay.Lookup(lookupId, introduction);
        Execute(actions, effects);
        return (lookup, effects);
    }

    // ---- Messages ----

    private bool Admit(TLink from, NodeId peer, ControlType type, List<NodeEffect> effects, out Neighbour neighbour)
    {
        // A message from a link that was replaced or closed meanwhile is the peer's no longer.
        if (!_links.TryGetValue(peer, out neighbour!) || neighbour.Link != from) return false;
        switch (Overlay.Admit(peer, type))
        {
            case Admission.Drop:
                effects.Add(new NodeEffect.MessageRejected(peer, OverlayError.RateLimited, $"{type} beyond the rate this neighbour may send"));
                return false;
            case Admission.Disconnect:
                effects.Add(new NodeEffect.Disconnect(peer, GoodbyeReason.Abuse));
                return false;
            default:
                return true;
        }
    }

    private void Dispatch(NodeId peer, Neighbour neighbour, ControlMessage message, List<NodeEffect> effects)
    {
        switch (message)
        {
            case GoodbyeMessage goodbye:
                Overlay.Farewell(peer, goodbye.Reason);
                effects.Add(new NodeEffect.CloseLink(peer, null));
                break;
            case DescriptorMessage or PeersMessage or QueryMessage or QueryHitMessage or RecordPublishMessage or LookupMessage or LookupHitMessage or IntroduceMessage or IntroduceFailedMessage or OfferSummaryMessage:
                Execute(Overlay.Receive(peer, message), effects);
                break;
            case CreditRequest request:
                effects.Add(new NodeEffect.Send(peer, AnswerCreditRequest(peer, request)));
                break;
            case CreditIssue or CreditRefused:
                effects.Add(new NodeEffect.CreditsAnswered(peer, message));
                break;
            default:
                bool wasMet = Market.RequestMet;
                Execute(Market.Receive(peer, neighbour.SigningKey, message), effects);
                Rematch(wasMet, effects);
                break;
        }
    }

    /// <summary>Issues a partner the credits it asks, within what the disk and CPU we grant it have earned (PROTOCOL §10.3).</summary>
    private ControlMessage AnswerCreditRequest(NodeId peer, CreditRequest request)
    {
        long allowance = Market.CreditAllowance(peer);
        if (_options.CreditIssuer is not { } issuer || !Market.IssuesCredits) return new CreditRefused(request.Id, CreditRefusal.NotIssuer, 0);
        var answer = issuer.Issue(request.Epoch, request.Credits, allowance);
        if (answer.Evaluation is not { } evaluation) return new CreditRefused(request.Id, answer.Refusal!.Value, (ulong)allowance);
        Market.CreditsIssued(peer, Credits.Credit.Total(request.Credits.Select(c => c.Order)));
        return new CreditIssue(request.Id, evaluation);
    }

    // ---- The seed's loop ----

    /// <summary>
    /// While our request is unmet: offers we know of are matched at once; a search is flooded at
    /// once when <paramref name="flood"/> says the request has just become unmet (but never twice
    /// in a second), then after SearchInterval, and at twice the last interval while it stays
    /// unmet, up to MaxSearchInterval.
    /// </summary>
    private void Match(bool flood, List<NodeEffect> effects)
    {
        if (_stopped || Market.Request is not { } request || Market.RequestMet)
        {
            _short = false;
            return;
        }
        // Short again however it came about (a partner lost, a cut, a trial that ended below what
        // was signed): search at once, and at the short pace again.
        flood |= !_short;
        _short = true;
        var canGrant = Market.Capacity.LargestFree;
        var now = Now;
        if (now - _lastSearch >= (flood ? MinSearchGap : _searchInterval))
        {
            _searchInterval = flood || _lastSearch == DateTimeOffset.MinValue ? _options.SearchInterval
                : TimeSpan.FromTicks(Math.Min(_options.MaxSearchInterval.Ticks, 2 * _searchInterval.Ticks));
            _lastSearch = now;
            var (query, actions) = Overlay.Search(request, canGrant);
            effects.Add(new NodeEffect.SearchStarted(query));
            Execute(actions, effects);
        }
        Overlay.Candidates(request, canGrant, _candidates);
        var candidates = _options.ChooseCandidates is { } choose ? choose(_candidates) : _candidates;
        Execute(Market.Search(candidates, _isLinked), effects);
    }

    /// <summary>After the market changed: match now if the request is unmet, and search afresh if it was met a moment ago.</summary>
    private void Rematch(bool wasMet, List<NodeEffect> effects)
    {
        if (!Market.RequestMet) Match(flood: wasMet, effects);
    }

    private void Dial(EndPoint address, NodeId? expected, List<NodeEffect> effects)
    {
        if (expected is { } id && (id == Id || _links.ContainsKey(id))) return;
        if (!_dialing.Add(address)) return;
        effects.Add(new NodeEffect.Dial(address, expected));
    }

    private void Execute(IReadOnlyList<OverlayAction> actions, List<NodeEffect> effects)
    {
        foreach (var action in actions)
        {
            switch (action)
            {
                case SendOverlayMessage send:
                    effects.Add(new NodeEffect.Send(send.To, send.Message));
                    break;
                case DialPeer dial:
                    Dial(dial.Address, dial.Id, effects);
                    break;
                case DisconnectPeer disconnect when _links.ContainsKey(disconnect.Id):
                    effects.Add(new NodeEffect.Disconnect(disconnect.Id, disconnect.Reason));
                    break;
                case MessageRejected rejected:
                    effects.Add(new NodeEffect.MessageRejected(rejected.From, rejected.Error, rejected.Reason));
                    break;
                case RoleChanged changed:
                    effects.Add(new NodeEffect.RoleChanged(changed.Roles));
                    Publish(force: true, effects);
                    break;
                case OffersFound:
                    Match(flood: false, effects);
                    break;
                case ServiceRecordFound found:
                    effects.Add(new NodeEffect.ServiceRecordFound(found.Lookup, found.Record));
                    break;
                case ServiceLookupFailed failed:
                    effects.Add(new NodeEffect.ServiceLookupFailed(failed.Lookup));
                    break;
                case IntroductionArrived arrived:
                    effects.Add(new NodeEffect.IntroductionArrived(arrived.Publish, arrived.Lookup, arrived.Introduction));
                    break;
            }
        }
    }

    private void Execute(IReadOnlyList<MarketAction> actions, List<NodeEffect> effects)
    {
        bool changed = false;
        foreach (var action in actions)
        {
            switch (action)
            {
                case SendMarketMessage send:
                    effects.Add(new NodeEffect.Send(send.To, send.Message));
                    break;
                case LinkNeeded needed when needed.Candidate.Address is { } address:
                    Dial(address, needed.Candidate.Id, effects);
                    break;
                case Exchange.AgreementFormed formed:
                    changed = true;
                    effects.Add(new NodeEffect.AgreementFormed(formed.Agreement));
                    break;
                case Exchange.AgreementEnded ended:
                    changed = true;
                    effects.Add(new NodeEffect.AgreementEnded(ended.Agreement, ended.Reason));
                    break;
                case GrantsChanged grants:
                    changed = true;
                    effects.Add(new NodeEffect.GrantChanged(grants.Partner, Market.GrantedTo(grants.Partner)));
                    break;
                case Exchange.VerdictReached verdict:
                    effects.Add(new NodeEffect.VerdictReached(verdict.Partner, verdict.Verdict, verdict.DeliveredKbps, verdict.PromisedKbps));
                    break;
            }
        }
        if (_stopped) return;
        if (changed) Publish(force: false, effects);
        ReportRequest(effects);
    }

    private void ReportRequest(List<NodeEffect> effects)
    {
        bool met = Market.RequestMet;
        if (_reportedMet == met) return;
        _reportedMet = met;
        effects.Add(new NodeEffect.RequestMetChanged(met));
    }

    // ---- Our descriptor ----

    /// <summary>
    /// Signs a new descriptor when its free blocks, partners or role changed, or it is half way to
    /// expiring. Asked every second by every node: what it compares is built only when it changed.
    /// </summary>
    private void Publish(bool force, List<NodeEffect> effects)
    {
        Market.PublicGrantors(_grantors);
        var roles = Overlay.Role == OverlayRole.Ultrapeer ? NodeRoles.Ultrapeer : NodeRoles.None;
        // Met, it says so: searching nodes then propose to nodes that are short first.
        if (Market.Request is not null && Market.RequestMet) roles |= NodeRoles.RequestMet;
        var now = Now;
        var freeDisk = Market.LargestFreeDisk;
        var freeCpu = Market.LargestFreeCpu;
        if (!force && roles == _publishedRoles && Market.Capacity.FreeBlocksAre(_publishedFree) && CollectionsMarshal.AsSpan(_grantors).SequenceEqual(_publishedPartners)
            && freeDisk == _publishedFreeDisk && freeCpu == _publishedFreeCpu
            && now - _publishedAt < _options.DescriptorLifetime / 2)
            return;
        // A node whose capacity is fully granted advertises nothing free: it stops being found.
        var free = Market.Capacity.FreeBlocks;
        NodeId[] partners = [.. _grantors];
        var descriptor = new Descriptor
        {
            SigningKey = _identity.SigningPublicKey,
            LinkKey = _identity.LinkPublicKey,
            Published = now,
            Expires = now + _options.DescriptorLifetime,
            Address = _address,
            Offer = Market.Offer,
            Request = Market.Request,
            Roles = roles,
            ExitPolicy = _options.ExitPolicy,
            // Cuts of grants can leave more free blocks than one per order, which a descriptor
            // cannot list; the largest come first, and a match needs only one large enough.
            FreeBlocks = free.Count <= Descriptor.MaxFreeBlocks ? free : [.. free.Take(Descriptor.MaxFreeBlocks)],
            Partners = partners.Take(Descriptor.MaxPartners).ToArray(),
            FreeDisk = freeDisk,
            DiskRequest = Market.DiskRequest,
            FreeCpu = freeCpu,
            CpuRequest = Market.CpuRequest,
        }.Sign(_identity);
        _publishedFree = free;
        _publishedFreeDisk = freeDisk;
        _publishedFreeCpu = freeCpu;
        _publishedPartners = partners;
        _publishedRoles = roles;
        _publishedAt = now;
        effects.Add(new NodeEffect.DescriptorPublished(descriptor));
        Execute(Overlay.Publish(descriptor), effects);
    }
}
