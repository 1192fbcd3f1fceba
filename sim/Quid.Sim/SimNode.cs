using System.Net;
using Quid.Core;
using Quid.Crypto;
using Quid.Exchange;
using Quid.Overlay;
using Quid.Wire;

namespace Quid.Sim;

/// <summary>
/// One simulated node: the real node core (<see cref="NodeCore{TLink}"/>: the overlay and the
/// market, composed once for the real node and the simulator alike) on virtual links instead of
/// sockets. Around the core is only what the simulator adds: the agent's behaviour (what the node
/// really delivers, and a colluder's preference for its accomplice) and the measurements.
/// </summary>
public sealed class SimNode
{
    private readonly Simulation _sim;
    private readonly Action _tick;
    private readonly Random _behaviour;

    internal SimNode(Simulation sim, int index, Agent agent, Host host, NodeIdentity identity, IReadOnlyList<IPEndPoint> bootstrap, int seed)
    {
        _sim = sim;
        _tick = Tick;
        Index = index;
        Agent = agent;
        Host = host;
        Identity = identity;
        _behaviour = new Random(Seeds.Derive(seed, 3));
        var options = CoreOptionsFor(sim.Options, agent, host, bootstrap, seed);
        if (agent.Pair is not null) options = options with { ChooseCandidates = Choose };
        // A host's upload is shared by all its links: each is as far behind as the host's upload queue.
        options = options with { LinkBacklog = _ => TimeSpan.FromTicks(Math.Max(0, host.UplinkFreeAt - sim.Clock.Now)) };
        Core = new NodeCore<SimLink>(identity, options, sim.Clock);
        Joined = sim.Clock.Now;
    }

    /// <summary>
    /// The core's settings for a simulated node, as a real node with the same offer, request, hops
    /// and pace would have them; the seeded sources of randomness are what keep a run repeatable.
    /// </summary>
    internal static CoreOptions CoreOptionsFor(SimOptions options, Agent agent, Host host, IReadOnlyList<IPEndPoint> bootstrap, int seed)
    {
        var core = CoreOptionsWithoutDisk(options, agent, host, bootstrap, seed);
        if (options.EconomyDays == 0) return core;
        var (offer, request) = Economy.DiskFor(agent, new Random(Seeds.Derive(seed, 4)));
        return core with { OfferDiskMiB = offer, DiskRequest = request };
    }

    private static CoreOptions CoreOptionsWithoutDisk(SimOptions options, Agent agent, Host host, IReadOnlyList<IPEndPoint> bootstrap, int seed) => new()
    {
        Offer = agent.Offer,
        Request = agent.Request,
        Hops = options.Hops,
        PartnersWanted = options.PartnersWanted,
        Address = host.Address,
        Bootstrap = [.. bootstrap.Select(b => ((EndPoint)b, (NodeId?)null))],
        SearchInterval = options.SearchInterval,
        DescriptorLifetime = options.DescriptorLifetime,
        Overlay = options.Overlay with { Random = new Random(Seeds.Derive(seed, 1)) },
        Market = options.Market with { Random = new Random(Seeds.Derive(seed, 2)) },
    };

    public int Index { get; }
    public Agent Agent { get; }
    public Host Host { get; }
    public NodeIdentity Identity { get; }
    public NodeId Id => Identity.Id;
    public NodeCore<SimLink> Core { get; }
    public Overlay.Overlay Overlay => Core.Overlay;
    public Market Market => Core.Market;
    public bool Online { get; private set; }
    public long Joined { get; }
    public long? Left { get; private set; }

    // What the metrics keep per node.
    internal NodeStats Stats { get; } = new();

    public override string ToString() => $"{Agent.Class} {Id.Brief}";

    // ---- Life ----

    internal void Start(TimeSpan firstTick)
    {
        Online = true;
        _sim.Network.Listen(this);
        Execute(Core.Start());
        _sim.Scheduler.After(firstTick, _tick);
    }

    /// <summary>A graceful stop: every agreement ends politely, then the links close.</summary>
    internal void Leave()
    {
        if (!Online) return;
        Execute(Core.Stop());
        Online = false;
        Left = _sim.Clock.Now;
        _sim.Network.StopListening(this);
        foreach (var link in Core.Links.Select(l => l.Link).ToList()) CloseLink(link);
        _sim.Metrics.NodeLeft(this);
    }

    /// <summary>The process or machine dies: nothing is said, and peers find out when their links notice.</summary>
    internal void Crash()
    {
        if (!Online) return;
        Online = false;
        Left = _sim.Clock.Now;
        var links = Core.Links.Select(l => l.Link).ToList();
        foreach (var link in links) link.SetClosed(this);
        _sim.Network.Crashed(this, links);
        _sim.Metrics.NodeLeft(this);
    }

    private void Tick()
    {
        if (!Online) return;
        Execute(Core.Tick());
        _sim.Scheduler.After(_sim.Options.TickInterval, _tick);
    }

    /// <summary>
    /// The candidates the agent lets the market see. A colluder puts its pair first whenever the
    /// pair would have it (it knows its pair's descriptor out of band); everyone else is honest here.
    /// </summary>
    private IEnumerable<(NodeId Id, Descriptor Descriptor)> Choose(List<(NodeId Id, Descriptor Descriptor)> candidates)
    {
        if (Agent.Pair?.Node is not { Online: true } pair || pair.Overlay.Own is not { } theirs || Market.GrantedBy(pair.Id) > 0) return candidates;
        var request = Market.Request!.Value;
        bool fits = theirs.LargestFreeBlock is { } free && free >= request
            && (theirs.Request is not { } wants || (Market.Capacity.LargestFree is { } mine && wants <= mine));
        return fits ? [(pair.Id, theirs)] : candidates;
    }

    // ---- Links ----

    internal void DialFailed(IPEndPoint address, NodeId? expected)
    {
        if (!Online) return;
        _sim.Metrics.DialFailures++;
        Execute(Core.DialFailed(address, expected));
    }

    /// <summary>This end's handshake finished: the core keeps the link, refuses it, or keeps another one instead.</summary>
    internal void LinkEstablished(SimLink link, IPEndPoint dialed)
    {
        var peer = link.Other(this);
        if (!Online)
        {
            link.SetClosed(this);
            _sim.Network.Close(link, this);
            return;
        }
        bool outbound = link.Outbound(this);
        var remote = outbound ? dialed : peer.Host.Address ?? new IPEndPoint(IPAddress.None, 0);
        var decision = Core.LinkUp(link, peer.Id, outbound, remote, peer.Identity.SigningPublicKey, outbound ? dialed : null);
        switch (decision.Verdict)
        {
            case LinkVerdict.Refuse:
                _sim.Metrics.RefusedLinks++;
                link.SetOpen(this);
                Say(link, new GoodbyeMessage(decision.Reason));
                CloseLink(link);
                return;
            case LinkVerdict.Duplicate:
                link.SetClosed(this);
                _sim.Network.Close(link, this);
                return;
        }
        if (decision.Evicted is { } evicted)
        {
            Say(evicted, new GoodbyeMessage(GoodbyeReason.Full));
            CloseLink(evicted);
        }
        if (decision.Replaced is { } old)
        {
            old.SetClosed(this);
            _sim.Network.Close(old, this);
        }
        link.SetOpen(this);
        Execute(decision.Effects);
    }

    /// <summary>This end closes the link; the core forgets the peer if it was the current link.</summary>
    private void CloseLink(SimLink link)
    {
        if (link.IsClosedAt(this)) return;
        link.SetClosed(this);
        _sim.Network.Close(link, this);
        Execute(Core.LinkDown(link, link.Other(this).Id));
    }

    /// <summary>The other end closed, or its closing was finally noticed.</summary>
    internal void PeerClosed(SimLink link)
    {
        if (!Online || link.IsClosedAt(this)) return;
        link.SetClosed(this);
        Execute(Core.LinkDown(link, link.Other(this).Id));
    }

    /// <summary>As an introduction point, publishes a service's record.</summary>
    internal void PublishRecord(ServiceRecord record)
    {
        if (Online) Execute(Core.PublishRecord(record).Effects);
    }

    /// <summary>Looks a service up; <paramref name="started"/> hears the lookup's id before any of its messages leave.</summary>
    internal void Lookup(ReadOnlySpan<byte> lookupId, byte[] introduction, Action<QueryId> started)
    {
        var (lookup, effects) = Core.Lookup(lookupId, introduction);
        started(lookup);
        Execute(effects);
    }

    private void Say(SimLink link, ControlMessage message)
    {
        _sim.Metrics.Sent(message);
        _sim.Network.Send(link, this, message);
    }

    /// <summary>A control message arrives.</summary>
    internal void Deliver(SimLink link, ControlMessage message)
    {
        if (Online && message is QueryMessage && _sim.Clock.Now >= _sim.WindowStart) _sim.Network.QueryArrived(onClosedLink: link.IsClosedAt(this));
        if (!Online || !link.IsOpenAt(this)) return;
        _sim.WireCheck.Sample(message);
        Execute(Core.Receive(link, link.Other(this).Id, message));
    }

    // ---- Effects ----

    private void Execute(IReadOnlyList<NodeEffect> effects)
    {
        foreach (var effect in effects)
        {
            switch (effect)
            {
                case NodeEffect.Send send when Core.LinkTo(send.To) is { } link:
                    Say(link, send.Message);
                    break;
                case NodeEffect.Dial dial:
                    _sim.Metrics.Dials++;
                    _sim.Network.Dial(this, (IPEndPoint)dial.Address, dial.Expected);
                    break;
                case NodeEffect.Disconnect disconnect when Core.LinkTo(disconnect.Peer) is { } link:
                    Say(link, new GoodbyeMessage(disconnect.Reason));
                    CloseLink(link);
                    break;
                case NodeEffect.CloseLink close when Core.LinkTo(close.Peer) is { } link:
                    CloseLink(link);
                    break;
                case NodeEffect.StartProbe probe:
                    Probe(probe.Partner, probe.PromisedKbps);
                    break;
                case NodeEffect.AgreementFormed formed:
                    _sim.Metrics.AgreementFormed(this, formed.Agreement);
                    break;
                case NodeEffect.AgreementEnded ended:
                    _sim.Metrics.AgreementEnded(this, ended.Agreement, ended.Reason);
                    // Caught: a whitewasher sheds the identity and comes back as a newcomer.
                    // (Our own verdict against a partner ends agreements for the same reason: that is not being caught.)
                    if (ended.Reason == AgreementEndReason.Underdelivered && Agent.Class == AgentClass.Whitewasher
                        && Market.Ledger.Find(ended.Agreement.Partner) is not { Verdict: Verdict.Shunned })
                        _sim.Rekey(this);
                    break;
                case NodeEffect.RequestMetChanged:
                    _sim.Metrics.RequestChanged(this);
                    break;
                case NodeEffect.MessageRejected rejected:
                    if (rejected.Error == OverlayError.RateLimited) _sim.Metrics.Dropped++;
                    else _sim.Metrics.Rejected++;
                    break;
                case NodeEffect.DescriptorPublished:
                    _sim.Metrics.Published++;
                    break;
                case NodeEffect.SearchStarted search:
                    _sim.Metrics.SearchStarted(this, search.Query);
                    break;
                case NodeEffect.ServiceRecordFound found:
                    _sim.Lookups?.Found(found.Lookup);
                    break;
                case NodeEffect.ServiceLookupFailed failed:
                    _sim.Lookups?.Failed(failed.Lookup);
                    break;
                case NodeEffect.IntroductionArrived arrived:
                    _sim.Lookups?.Introduced(arrived.Introduction);
                    break;
            }
        }
    }

    // ---- Probes and delivery ----

    /// <summary>
    /// An unannounced probe, through a linked partner whose descriptor we hold: it lasts the probe
    /// duration, and measures what the partner's agent delivers.
    /// </summary>
    private void Probe(NodeId partnerId, long promised)
    {
        if (Core.LinkTo(partnerId) is not { } link || Overlay.Find(partnerId) is null) return;
        var partner = link.Other(this);
        var duration = _sim.Options.Market.ProbeDurationFor(promised) + TimeSpan.FromTicks(2 * _sim.Network.Latency(Host, partner.Host));
        _sim.Scheduler.After(duration, () =>
        {
            if (!Online) return;
            // A partner that is gone, or no longer linked, carries no probe: it delivered nothing.
            double delivered = partner.Online && link.IsOpenAt(partner) && link.IsOpenAt(this) ? partner.Measured(Id) : 0;
            var effects = Core.ProbeMeasured(partnerId, delivered, promised);
            _sim.Metrics.Probed(this, partner, delivered, promised, effects);
            Execute(effects);
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
            AgentClass.Honest or AgentClass.Donor or AgentClass.Colluder or AgentClass.OverClaimer or AgentClass.HiddenLinkOverClaimer =>
                Math.Min(1, (double)Agent.CapacityKbps / granted),
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
        // It knows a probe when it sees one, and serves it in full over a line of the same speed that no partner knows of.
        if (Agent.Class == AgentClass.HiddenLinkOverClaimer) return Math.Min(Market.GrantedTo(prober), Agent.CapacityKbps);
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
    /// <summary>In the window, the disk credits its partners issued it (only when the run models the economy).</summary>
    public long CreditsEarnedMiBDays;
    /// <summary>The open request episode: when the node last found itself short, and when a new partner first granted it.</summary>
    public long? UnmetSince;
    public long? FirstGrant;
    /// <summary>How many nodes could have met the request when the episode began (<see cref="Simulation.Satisfiers"/>).</summary>
    public int Satisfiers;
}
