using System.Net;
using Quid.Crypto;
using Quid.Exchange;
using Quid.Node;
using Quid.Overlay;
using Quid.Wire;

namespace Quid.Sim;

/// <summary>
/// One simulated node: the real <see cref="Overlay.Overlay"/> and <see cref="Market"/>, composed
/// as <see cref="QuidNode"/> composes them (its tick, its descriptor, its handling of links and
/// control messages), with virtual links instead of sockets. What the node delivers to partners
/// is its agent's choice; everything else is the protocol's own code.
/// </summary>
public sealed class SimNode
{
    private readonly Simulation _sim;
    private readonly Action _tick;
    private readonly HashSet<IPEndPoint> _dialing = [];
    private readonly Dictionary<NodeId, SimLink> _links = [];
    /// <summary>The market asks this at every search: one delegate, not one per call.</summary>
    private readonly Func<NodeId, bool> _isLinked;
    /// <summary>The candidates of the current match, a list kept from one match to the next.</summary>
    private readonly List<(NodeId Id, Descriptor Descriptor)> _candidates = [];
    private readonly IReadOnlyList<IPEndPoint> _bootstrap;
    private readonly Random _behaviour;
    private IReadOnlyList<Block> _publishedFree = [];
    private NodeId[] _publishedPartners = [];
    private NodeRoles _publishedRoles;
    private DateTimeOffset _publishedAt;
    private DateTimeOffset _lastSearch = DateTimeOffset.MinValue;
    private static readonly TimeSpan MinSearchGap = TimeSpan.FromSeconds(1);

    internal SimNode(Simulation sim, int index, Agent agent, Host host, NodeIdentity identity, IReadOnlyList<IPEndPoint> bootstrap, int seed)
    {
        _sim = sim;
        _tick = Tick;
        _isLinked = _links.ContainsKey;
        Index = index;
        Agent = agent;
        Host = host;
        Identity = identity;
        _bootstrap = bootstrap;
        _behaviour = new Random(Seeds.Derive(seed, 3));
        var options = sim.Options;
        Overlay = new Overlay.Overlay(identity, sim.Clock, options.Overlay with { Random = new Random(Seeds.Derive(seed, 1)) });
        // A multi-hop node asks for its request as four quarter blocks, exactly as a real node does.
        var (request, wanted) = QuidNode.SplitRequest(agent.Request, options.Hops);
        PartnersWanted = options.PartnersWanted ?? wanted;
        Market = new Market(identity, agent.Offer, request, sim.Clock,
            options.Market with { PartnersWanted = PartnersWanted, Random = new Random(Seeds.Derive(seed, 2)) });
        Joined = sim.Clock.Now;
    }

    public int Index { get; }
    public Agent Agent { get; }
    public Host Host { get; }
    public NodeIdentity Identity { get; }
    public NodeId Id => Identity.Id;
    public Overlay.Overlay Overlay { get; }
    public Market Market { get; }
    /// <summary>How many partners, each granting one request block, the node wants.</summary>
    public int PartnersWanted { get; }
    public bool Online { get; private set; }
    public long Joined { get; }
    public long? Left { get; private set; }
    public IReadOnlyDictionary<NodeId, SimLink> Links => _links;

    // What the metrics keep per node.
    internal NodeStats Stats { get; } = new();

    private DateTimeOffset Now => _sim.Clock.GetUtcNow();

    public override string ToString() => $"{Agent.Class} {Id.Brief}";

    // ---- Life ----

    internal void Start(TimeSpan firstTick)
    {
        Online = true;
        _sim.Network.Listen(this);
        Publish(force: true);
        _sim.Metrics.RequestChanged(this);
        _sim.Scheduler.After(firstTick, _tick);
    }

    /// <summary>A graceful stop, as QuidNode.DisposeAsync: end every agreement politely, then close the links.</summary>
    internal void Leave()
    {
        if (!Online) return;
        foreach (var agreement in Market.Active.ToList()) Execute(Market.End(agreement.Id, AgreementEndReason.ShuttingDown));
        Online = false;
        Left = _sim.Clock.Now;
        _sim.Network.StopListening(this);
        foreach (var link in _links.Values.ToList()) CloseLink(link);
        _sim.Metrics.NodeLeft(this);
    }

    /// <summary>The process or machine dies: nothing is said, and peers find out when their links notice.</summary>
    internal void Crash()
    {
        if (!Online) return;
        Online = false;
        Left = _sim.Clock.Now;
        var links = _links.Values.ToList();
        foreach (var link in links) link.SetClosed(this);
        _links.Clear();
        _sim.Network.Crashed(this, links);
        _sim.Metrics.NodeLeft(this);
    }

    /// <summary>One round of upkeep, as QuidNode.Tick: bootstrap, overlay, the seed's search and matching, probes, the descriptor.</summary>
    private void Tick()
    {
        if (!Online) return;
        if (_links.Count == 0)
            foreach (var peer in _bootstrap) Dial(peer, null);
        Execute(Overlay.Tick());
        var probes = Market.DueProbes();
        Match(flood: false);
        foreach (var (partner, promised) in probes) Probe(partner, promised);
        Publish(force: false);
        _sim.Metrics.RequestChanged(this);
        _sim.Scheduler.After(_sim.Options.TickInterval, _tick);
    }

    /// <summary>As QuidNode.Match: offers we know of are matched at once; a search is flooded every SearchInterval, or at once when the request has just become unmet.</summary>
    private void Match(bool flood)
    {
        if (!Online || Market.Request is not { } request || Market.RequestMet) return;
        var canGrant = Market.Capacity.LargestFree;
        var now = Now;
        if (now - _lastSearch >= (flood ? MinSearchGap : _sim.Options.SearchInterval))
        {
            _lastSearch = now;
            var (query, actions) = Overlay.Search(request, canGrant);
            _sim.Metrics.SearchStarted(this, query);
            Execute(actions);
        }
        Overlay.CandidateOffers(request, canGrant, _candidates);
        Execute(Market.SearchOffers(Choose(_candidates), _isLinked));
    }

    /// <summary>As QuidNode.Rematch: after the market changed, match now if the request is unmet, and search afresh if it was met a moment ago.</summary>
    private void Rematch(bool wasMet)
    {
        if (!Market.RequestMet) Match(flood: wasMet);
    }

    /// <summary>
    /// The candidates the agent lets the market see. A colluder puts its pair first whenever the
    /// pair would have it (it knows its pair's descriptor out of band); everyone else is honest here.
    /// </summary>
    private IEnumerable<(NodeId Id, Descriptor Descriptor)> Choose(IReadOnlyList<(NodeId Id, Descriptor Descriptor)> candidates)
    {
        if (Agent.Pair?.Node is not { Online: true } pair || pair.Overlay.Own is not { } theirs || Market.GrantedBy(pair.Id) > 0) return candidates;
        var request = Market.Request!.Value;
        bool fits = theirs.LargestFreeBlock is { } free && free >= request
            && (theirs.Request is not { } wants || (Market.Capacity.LargestFree is { } mine && wants <= mine));
        return fits ? [(pair.Id, theirs)] : candidates;
    }

    /// <summary>The partners that grant us something, each once, in order: what the descriptor lists. Asked every tick, so a plain loop.</summary>
    private NodeId[] GrantingPartners()
    {
        var partners = new List<NodeId>(4);
        foreach (var a in Market.Active)
            if (a.TheyGrant is not null && !partners.Contains(a.Partner)) partners.Add(a.Partner);
        partners.Sort();
        return [.. partners];
    }

    /// <summary>Signs a new descriptor when its free blocks, partners or role changed, or it is half way to expiring.</summary>
    private void Publish(bool force)
    {
        var free = Market.Capacity.FreeBlocks;
        var partners = GrantingPartners();
        var roles = Overlay.Role == OverlayRole.Ultrapeer ? NodeRoles.Ultrapeer : NodeRoles.None;
        var now = Now;
        if (!force && roles == _publishedRoles && free.SequenceEqual(_publishedFree) && partners.AsSpan().SequenceEqual(_publishedPartners)
            && now - _publishedAt < _sim.Options.DescriptorLifetime / 2)
            return;
        var descriptor = new Descriptor
        {
            SigningKey = Identity.SigningPublicKey,
            LinkKey = Identity.LinkPublicKey,
            Published = now,
            Expires = now + _sim.Options.DescriptorLifetime,
            Address = Host.Address,
            Offer = Market.Offer,
            Request = Market.Request,
            FreeBlocks = free,
            Roles = roles,
            ExitPolicy = ExitPolicy.Default,
            Partners = partners.Take(Descriptor.MaxPartners).ToArray(),
        }.Sign(Identity);
        _publishedFree = free;
        _publishedPartners = partners;
        _publishedRoles = roles;
        _publishedAt = now;
        _sim.Metrics.Published++;
        Execute(Overlay.Publish(descriptor));
    }

    // ---- Links ----

    private void Dial(IPEndPoint address, NodeId? expected)
    {
        if (expected is { } id && (id == Id || _links.ContainsKey(id))) return;
        if (!_dialing.Add(address)) return;
        _sim.Metrics.Dials++;
        _sim.Network.Dial(this, address, expected);
    }

    internal void DialFailed(IPEndPoint address, NodeId? expected)
    {
        _dialing.Remove(address);
        if (!Online) return;
        _sim.Metrics.DialFailures++;
        Overlay.DialFailed(expected, address);
    }

    /// <summary>
    /// This end's handshake finished, as QuidNode.OnLinkEstablished: the overlay may refuse the
    /// peer; of two links between the same nodes, the one the smaller id dialed stays.
    /// </summary>
    internal void LinkEstablished(SimLink link, IPEndPoint dialed)
    {
        var peer = link.Other(this);
        if (link.Outbound(this)) _dialing.Remove(dialed);
        if (!Online)
        {
            link.SetClosed(this);
            _sim.Network.Close(link, this);
            return;
        }
        if (Overlay.Refuse(peer.Id) is { } reason)
        {
            _sim.Metrics.RefusedLinks++;
            link.SetOpen(this);
            Say(link, new GoodbyeMessage(reason));
            CloseLink(link);
            return;
        }
        if (_links.TryGetValue(peer.Id, out var existing))
        {
            var smaller = Id < peer.Id ? Id : peer.Id;
            bool newDialedBySmaller = (link.Outbound(this) ? Id : peer.Id) == smaller;
            bool oldDialedBySmaller = (existing.Outbound(this) ? Id : peer.Id) == smaller;
            if (!newDialedBySmaller || oldDialedBySmaller)
            {
                link.SetClosed(this);
                _sim.Network.Close(link, this);
                return;
            }
            // The old link closes; its closing finds the new one in its place and changes nothing.
            existing.SetClosed(this);
            _sim.Network.Close(existing, this);
        }
        _links[peer.Id] = link;
        link.SetOpen(this);
        var remote = link.Outbound(this) ? dialed : peer.Host.Address ?? new IPEndPoint(IPAddress.None, 0);
        Execute(Overlay.LinkUp(peer.Id, inbound: !link.Outbound(this), remote));
        Match(flood: false);
    }

    /// <summary>This end closes the link; the overlay and the market forget the peer if it was the current link.</summary>
    private void CloseLink(SimLink link)
    {
        if (link.IsClosedAt(this)) return;
        link.SetClosed(this);
        _sim.Network.Close(link, this);
        Closed(link);
    }

    /// <summary>The other end closed, or its closing was finally noticed.</summary>
    internal void PeerClosed(SimLink link)
    {
        if (!Online || link.IsClosedAt(this)) return;
        link.SetClosed(this);
        Closed(link);
    }

    private void Closed(SimLink link)
    {
        var peer = link.Other(this);
        if (!_links.TryGetValue(peer.Id, out var current) || current != link) return;
        _links.Remove(peer.Id);
        Overlay.LinkDown(peer.Id);
        bool wasMet = Market.RequestMet;
        Execute(Market.PartnerLost(peer.Id));
        Rematch(wasMet);
    }

    private void Say(SimLink link, ControlMessage message)
    {
        _sim.Metrics.Sent(message);
        _sim.Network.Send(link, this, message);
    }

    private void Send(NodeId to, ControlMessage message)
    {
        if (_links.TryGetValue(to, out var link)) Say(link, message);
    }

    private void Disconnect(SimLink link, GoodbyeReason reason)
    {
        Say(link, new GoodbyeMessage(reason));
        CloseLink(link);
    }

    // ---- Messages ----

    /// <summary>A control message arrives, as QuidNode.OnCell and OnControl: admitted by type before decoding, then routed.</summary>
    internal void Deliver(SimLink link, ControlMessage message)
    {
        if (!Online || !link.IsOpenAt(this)) return;
        var from = link.Other(this);
        _sim.WireCheck.Sample(message);
        var admission = Overlay.Admit(from.Id, TypeOf(message));
        if (admission == Admission.Drop)
        {
            _sim.Metrics.Dropped++;
            return;
        }
        if (admission == Admission.Disconnect)
        {
            Disconnect(link, GoodbyeReason.Abuse);
            return;
        }
        switch (message)
        {
            case GoodbyeMessage goodbye:
                Overlay.Farewell(from.Id, goodbye.Reason);
                CloseLink(link);
                break;
            case DescriptorMessage or PeersMessage or QueryMessage or QueryHitMessage:
                Execute(Overlay.Receive(from.Id, message));
                break;
            default:
                bool wasMet = Market.RequestMet;
                Execute(Market.Receive(from.Id, from.Identity.SigningPublicKey, message));
                Rematch(wasMet);
                break;
        }
    }

    internal static ControlType TypeOf(ControlMessage message) => message switch
    {
        DescriptorMessage => ControlType.Descriptor,
        PeersMessage => ControlType.Peers,
        QueryMessage => ControlType.Query,
        QueryHitMessage => ControlType.QueryHit,
        GoodbyeMessage => ControlType.Goodbye,
        AgreementProposal => ControlType.AgreementProposal,
        AgreementAcceptance => ControlType.AgreementAcceptance,
        AgreementRejection => ControlType.AgreementRejection,
        AgreementEnd => ControlType.AgreementEnd,
        GrantChanged => ControlType.GrantChanged,
        _ => throw new ArgumentException($"No control type for {message.GetType().Name}.", nameof(message)),
    };

    private void Execute(IReadOnlyList<OverlayAction> actions)
    {
        foreach (var action in actions)
        {
            switch (action)
            {
                case SendOverlayMessage send:
                    Send(send.To, send.Message);
                    break;
                case DialPeer dial:
                    Dial(dial.Address, dial.Id);
                    break;
                case DisconnectPeer disconnect when _links.TryGetValue(disconnect.Id, out var link):
                    Disconnect(link, disconnect.Reason);
                    break;
                case MessageRejected:
                    _sim.Metrics.Rejected++;
                    break;
                case RoleChanged:
                    Publish(force: true);
                    break;
                case OffersFound:
                    Match(flood: false);
                    break;
            }
        }
    }

    private void Execute(IReadOnlyList<MarketAction> actions)
    {
        bool changed = false;
        foreach (var action in actions)
        {
            switch (action)
            {
                case SendMarketMessage send:
                    Send(send.To, send.Message);
                    break;
                case LinkNeeded needed when needed.Candidate.Address is { } address:
                    Dial(address, needed.Candidate.Id);
                    break;
                case AgreementFormed formed:
                    changed = true;
                    _sim.Metrics.AgreementFormed(this, formed.Agreement);
                    break;
                case AgreementEnded ended:
                    changed = true;
                    _sim.Metrics.AgreementEnded(this, ended.Agreement, ended.Reason);
                    // Caught: a whitewasher sheds the identity and comes back as a newcomer.
                    // (Our own verdict against a partner ends agreements for the same reason: that is not being caught.)
                    if (ended.Reason == AgreementEndReason.Underdelivered && Agent.Class == AgentClass.Whitewasher
                        && Market.Ledger.Find(ended.Agreement.Partner) is not { Verdict: Verdict.Shunned })
                        _sim.Rekey(this);
                    break;
                case GrantsChanged:
                    changed = true;
                    break;
            }
        }
        if (changed) Publish(force: false);
        _sim.Metrics.RequestChanged(this);
    }

    // ---- Probes and delivery ----

    /// <summary>
    /// An unannounced probe, as QuidNode.ProbeAsync: only through a linked partner whose descriptor
    /// we hold; it lasts the probe duration, and measures what the partner's agent delivers.
    /// </summary>
    private void Probe(NodeId partnerId, long promised)
    {
        if (!_links.TryGetValue(partnerId, out var link) || Overlay.Find(partnerId) is null) return;
        var partner = link.Other(this);
        var duration = _sim.Options.Market.ProbeDuration + TimeSpan.FromTicks(2 * _sim.Network.Latency(Host, partner.Host));
        _sim.Scheduler.After(duration, () =>
        {
            if (!Online) return;
            // A partner that is gone, or no longer linked, carries no probe: it delivered nothing.
            double delivered = partner.Online && link.IsOpenAt(partner) && link.IsOpenAt(this) ? partner.Measured(Id) : 0;
            bool wasMet = Market.RequestMet;
            var actions = Market.ProbeResult(partnerId, delivered, promised);
            _sim.Metrics.Probed(this, partner, delivered, promised, actions);
            Execute(actions);
            Rematch(wasMet);
        });
    }

    /// <summary>What this node really delivers to a partner now, in kbps: the agent's choice within the grant.</summary>
    internal double Delivers(NodeId partner)
    {
        long grant = Market.GrantedTo(partner);
        return grant == 0 ? 0 : grant * DeliveredShare();
    }

    /// <summary>
    /// The share of every grant the agent serves when all partners use their grants at once: a
    /// node whose grants exceed its real upload (an over-claimer, a Sybil ring in total) shares
    /// what it has; an under-deliverer serves its fraction; a free-rider nothing.
    /// </summary>
    internal double DeliveredShare()
    {
        long granted = Math.Max(1, Market.Capacity.GrantedKbps);
        return Agent.Class switch
        {
            AgentClass.Honest or AgentClass.Donor or AgentClass.Colluder or AgentClass.OverClaimer => Math.Min(1, (double)Agent.CapacityKbps / granted),
            AgentClass.UnderDeliverer => Agent.DeliveryFactor,
            AgentClass.Sybil => Math.Min(1, (double)Agent.Ring!.CapacityKbps / Math.Max(1, Agent.Ring.GrantedKbps(_sim.Clock.Now))),
            _ => 0,
        };
    }

    /// <summary>
    /// What a probe of this node measures: what it delivers, and for a node that serves, now and then
    /// a transient shortfall (its uplink busy with its owner's traffic) that a recheck should forgive.
    /// </summary>
    private double Measured(NodeId prober)
    {
        double delivered = Delivers(prober);
        if (Agent.Serves && _behaviour.NextDouble() < _sim.Options.HiccupChance) delivered *= 0.3 + 0.5 * _behaviour.NextDouble();
        return delivered;
    }
}

/// <summary>What the metrics keep per node.</summary>
internal sealed class NodeStats
{
    public double GivenKbit;
    public double ReceivedKbit;
    public double WindowSeconds;
    public double WantedKbit;
    /// <summary>The open request episode: when the node last found itself short, and when a new partner first granted it.</summary>
    public long? UnmetSince;
    public long? FirstGrant;
    public bool Satisfiable;
    public int AgreementsAtStart;
}
