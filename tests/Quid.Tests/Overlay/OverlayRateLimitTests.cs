using Quid.Crypto;
using Quid.Overlay;
using Quid.Wire;

namespace Quid.Tests.Overlay;

/// <summary>Per-neighbour rate limits, strikes and shunning; and the pace at which we send gossip ourselves.</summary>
public sealed class OverlayRateLimitTests : IDisposable
{
    private readonly OverlayHarness _h = new();

    public void Dispose() => _h.Dispose();

    /// <summary>Admits messages of one type from <paramref name="from"/> until the first Disconnect; returns how many it took.</summary>
    private static int MessagesUntilDisconnect(Quid.Overlay.Overlay overlay, NodeId from, ControlType type, int limit = 100_000)
    {
        for (int i = 1; i <= limit; i++)
            if (overlay.Admit(from, type) == Admission.Disconnect) return i;
        return int.MaxValue;
    }

    [Theory]
    [InlineData(ControlType.Query)]
    [InlineData(ControlType.Descriptor)]
    [InlineData(ControlType.Peers)]
    [InlineData(ControlType.QueryHit)]
    [InlineData(ControlType.CreditRequest)]
    [InlineData(ControlType.AgreementProposal)]
    [InlineData(ControlType.OfferSummary)]
    public void AdmitAcceptsUpToTheBurstThenDropsThenRefills(ControlType type)
    {
        var options = new OverlayOptions();
        var rate = type switch
        {
            ControlType.Query => options.LeafQueryRate,
            ControlType.Descriptor => options.DescriptorRate,
            ControlType.Peers => options.PeersRate,
            ControlType.CreditRequest => options.CreditRate,
            ControlType.AgreementProposal => options.ProposalRate,
            ControlType.OfferSummary => options.SummaryRate,
            _ => options.HitRate,
        };
        var overlay = _h.NewOverlay(options);
        var leaf = _h.Link(overlay);

        for (int i = 0; i < rate.Burst; i++) Assert.Equal(Admission.Accept, overlay.Admit(leaf.Id, type));
        Assert.Equal(Admission.Drop, overlay.Admit(leaf.Id, type));

        _h.Time.Advance(TimeSpan.FromSeconds(2 / rate.PerSecond));
        Assert.Equal(Admission.Accept, overlay.Admit(leaf.Id, type));
        Assert.Equal(Admission.Accept, overlay.Admit(leaf.Id, type));
        Assert.Equal(Admission.Drop, overlay.Admit(leaf.Id, type));
    }

    [Fact]
    public void EachTypeHasItsOwnBucketAndOtherTypesAreNotLimitedHere()
    {
        var overlay = _h.NewOverlay();
        var leaf = _h.Link(overlay);
        while (overlay.Admit(leaf.Id, ControlType.Query) == Admission.Accept) { }
        Assert.Equal(Admission.Accept, overlay.Admit(leaf.Id, ControlType.Descriptor));
        Assert.Equal(Admission.Accept, overlay.Admit(leaf.Id, ControlType.Peers));
        for (int i = 0; i < 100; i++)
        {
            Assert.Equal(Admission.Accept, overlay.Admit(leaf.Id, ControlType.Goodbye));
            Assert.Equal(Admission.Accept, overlay.Admit(leaf.Id, ControlType.AgreementAcceptance));
        }
    }

    [Fact]
    public void AMessageFromANodeThatIsNoNeighbourIsDropped()
    {
        var overlay = _h.NewOverlay();
        Assert.Equal(Admission.Drop, overlay.Admit(_h.NewIdentity().Id, ControlType.Descriptor));
        var gone = _h.Link(overlay);
        overlay.LinkDown(gone.Id);
        Assert.Equal(Admission.Drop, overlay.Admit(gone.Id, ControlType.Descriptor));
        Assert.Empty(overlay.Receive(gone.Id, new DescriptorMessage(_h.DescriptorOf(gone.Identity))));
    }

    [Fact]
    public void PastTheStrikeLimitANeighbourIsDisconnectedAndShunnedUntilShunForPasses()
    {
        var options = new OverlayOptions();
        var overlay = _h.NewOverlay(options);
        var flooder = _h.Link(overlay);
        var bystander = _h.Link(overlay);

        // The burst passes; each later message is dropped and earns a strike; the one that reaches the limit disconnects.
        int burst = (int)options.LeafQueryRate.Burst;
        for (int i = 0; i < burst; i++) Assert.Equal(Admission.Accept, overlay.Admit(flooder.Id, ControlType.Query));
        for (int i = 1; i < options.StrikeLimit; i++) Assert.Equal(Admission.Drop, overlay.Admit(flooder.Id, ControlType.Query));
        Assert.Equal(Admission.Disconnect, overlay.Admit(flooder.Id, ControlType.Query));
        Assert.Equal(GoodbyeReason.Abuse, overlay.Refuse(flooder.Id));
        Assert.Null(overlay.Refuse(bystander.Id));
        Assert.Equal(Admission.Accept, overlay.Admit(bystander.Id, ControlType.Query));

        overlay.LinkDown(flooder.Id);
        _h.Time.Advance(options.ShunFor - TimeSpan.FromSeconds(1));
        overlay.Tick();
        Assert.Equal(GoodbyeReason.Abuse, overlay.Refuse(flooder.Id));
        Assert.DoesNotContain(flooder.Id, OverlayHarness.Dialed(overlay.Tick()));

        _h.Time.Advance(TimeSpan.FromSeconds(1));
        Assert.Null(overlay.Refuse(flooder.Id));
    }

    [Fact]
    public void AShunnedNodeIsNotDialed()
    {
        var options = new OverlayOptions { StrikeLimit = 1, RedialAfter = TimeSpan.FromSeconds(1) };
        var overlay = _h.NewOverlay(options);
        var flooder = _h.Link(overlay);
        while (overlay.Admit(flooder.Id, ControlType.Peers) != Admission.Disconnect) { }
        overlay.LinkDown(flooder.Id);
        for (int i = 0; i < options.ShunFor.TotalSeconds - 1; i += 10)
        {
            Assert.DoesNotContain(flooder.Id, OverlayHarness.Dialed(overlay.Tick()));
            _h.Time.Advance(TimeSpan.FromSeconds(10));
        }
        _h.Time.Advance(TimeSpan.FromSeconds(10));
        Assert.Contains(flooder.Id, OverlayHarness.Dialed(overlay.Tick()));
    }

    [Fact]
    public void StrikesDecaySoANeighbourSlightlyOverTheRateIsNeverDisconnected()
    {
        var overlay = _h.NewOverlay();
        var eager = _h.Link(overlay);
        var step = TimeSpan.FromTicks(TimeSpan.TicksPerSecond / 3);
        int dropped = 0;
        // Three queries a second where two are allowed, for ten minutes.
        for (int i = 0; i < 3 * 600; i++)
        {
            var admission = overlay.Admit(eager.Id, ControlType.Query);
            Assert.NotEqual(Admission.Disconnect, admission);
            if (admission == Admission.Drop) dropped++;
            _h.Time.Advance(step);
        }
        Assert.InRange(dropped, 500, 610);
        Assert.Null(overlay.Refuse(eager.Id));
    }

    [Fact]
    public void StrikesThatCameFastButLongAgoAreForgiven()
    {
        var options = new OverlayOptions();
        var overlay = _h.NewOverlay(options);
        var n = _h.Link(overlay);
        while (overlay.Admit(n.Id, ControlType.Peers) == Admission.Accept) { }
        for (int i = 2; i < options.StrikeLimit; i++) Assert.Equal(Admission.Drop, overlay.Admit(n.Id, ControlType.Peers));
        // One strike short of the limit; after a while at rest a new burst is allowed without disconnecting.
        _h.Time.Advance(TimeSpan.FromSeconds(options.StrikeLimit));
        while (overlay.Admit(n.Id, ControlType.Peers) == Admission.Accept) { }
        Assert.Null(overlay.Refuse(n.Id));
    }

    [Fact]
    public void AnUltrapeerNeighboursExcessWeighsLessThanALeafs()
    {
        var options = new OverlayOptions();
        var overlay = _h.NewOverlay(options);
        var leaf = _h.Link(overlay);
        var ultrapeer = _h.Link(overlay, NodeRoles.Ultrapeer);

        int leafCount = MessagesUntilDisconnect(overlay, leaf.Id, ControlType.Descriptor);
        int ultrapeerCount = MessagesUntilDisconnect(overlay, ultrapeer.Id, ControlType.Descriptor);

        int burst = (int)options.DescriptorRate.Burst;
        Assert.Equal(burst + (int)options.StrikeLimit, leafCount);
        Assert.InRange(ultrapeerCount - burst, 10 * (leafCount - burst) - 1, 10 * (leafCount - burst) + 1);
    }

    [Fact]
    public void AnUltrapeerNeighbourMayQueryFarFasterThanALeaf()
    {
        var options = new OverlayOptions();
        var overlay = _h.NewOverlay(options);
        var leaf = _h.Link(overlay);
        var ultrapeer = _h.Link(overlay, NodeRoles.Ultrapeer);
        int leafAccepted = 0, ultrapeerAccepted = 0;
        for (int i = 0; i < 2000; i++)
        {
            if (overlay.Admit(leaf.Id, ControlType.Query) == Admission.Accept) leafAccepted++;
            if (overlay.Admit(ultrapeer.Id, ControlType.Query) == Admission.Accept) ultrapeerAccepted++;
        }
        Assert.Equal(options.LeafQueryRate.Burst, leafAccepted);
        Assert.Equal(options.UltrapeerQueryRate.Burst, ultrapeerAccepted);
    }

    /// <summary>
    /// A busy minute: 50 neighbours link, each sends its descriptor and republishes it every few
    /// seconds (some flip between leaf and ultrapeer, which makes us introduce them again), they
    /// gossip new peers, and we republish our own descriptor every second. Every Descriptor and
    /// Peers message we send to a neighbour must be one that neighbour's own overlay admits.
    /// </summary>
    [Fact]
    public void WhatWeSendANeighbourNeverExceedsWhatItAccepts()
    {
        var overlay = _h.NewOverlay();
        var random = new Random(50);
        var neighbours = new List<(NodeIdentity Identity, Quid.Overlay.Overlay Overlay)>();
        var sent = new Dictionary<(NodeId, ControlType), int>();
        var step = TimeSpan.FromMilliseconds(250);
        int refused = 0;

        void Deliver(IEnumerable<OverlayAction> actions)
        {
            foreach (var send in actions.OfType<SendOverlayMessage>())
            {
                var type = send.Message switch
                {
                    DescriptorMessage => ControlType.Descriptor,
                    PeersMessage => ControlType.Peers,
                    _ => (ControlType)0,
                };
                if (type == 0) continue;
                var to = neighbours.Single(n => n.Identity.Id == send.To).Overlay;
                if (to.Admit(_h.Self.Id, type) != Admission.Accept) refused++;
                sent[(send.To, type)] = sent.GetValueOrDefault((send.To, type)) + 1;
            }
        }

        for (int tick = 0; tick < 60 * 4; tick++)
        {
            var now = _h.Now;
            // Two new neighbours a second for the first 25 seconds.
            if (tick % 2 == 0 && neighbours.Count < 50)
            {
                var identity = _h.NewIdentity();
                var theirs = _h.NewOverlay(identity: identity, seed: neighbours.Count);
                theirs.LinkUp(_h.Self.Id, inbound: true, _h.NextAddress());
                neighbours.Add((identity, theirs));
                Deliver(overlay.LinkUp(identity.Id, inbound: false, _h.NextAddress()));
                Deliver(overlay.Receive(identity.Id, new DescriptorMessage(_h.DescriptorOf(identity))));
            }
            // Every neighbour republishes every three seconds; a fifth of them change role each time.
            if (tick % 12 == 0)
            {
                for (int i = 0; i < neighbours.Count; i++)
                {
                    var roles = i % 5 == 0 && tick / 12 % 2 == 1 ? NodeRoles.Ultrapeer : NodeRoles.None;
                    Deliver(overlay.Receive(neighbours[i].Identity.Id, new DescriptorMessage(_h.DescriptorOf(neighbours[i].Identity, roles: roles))));
                }
            }
            // A neighbour at random gossips a few new peers.
            if (neighbours.Count > 0 && tick % 4 == 1)
            {
                var from = neighbours[random.Next(neighbours.Count)].Identity;
                var heard = Enumerable.Range(0, 8).Select(_ => _h.DescriptorOf(_h.NewIdentity(), roles: random.Next(3) == 0 ? NodeRoles.Ultrapeer : NodeRoles.None)).ToArray();
                Deliver(overlay.Receive(from.Id, new PeersMessage(heard)));
            }
            if (tick % 4 == 2) Deliver(overlay.Publish(_h.DescriptorOf(_h.Self)));
            if (tick % 4 == 3) Deliver(overlay.Tick());
            Assert.Equal(now, _h.Now);
            _h.Time.Advance(step);
        }

        Assert.Equal(50, neighbours.Count);
        Assert.Equal(0, refused);
        // Not vacuous: the busiest neighbours got more than a burst's worth of each type.
        var options = new OverlayOptions();
        Assert.True(sent.Where(s => s.Key.Item2 == ControlType.Descriptor).Max(s => s.Value) > options.DescriptorRate.Burst, "few descriptors sent");
        Assert.True(sent.Where(s => s.Key.Item2 == ControlType.Peers).Max(s => s.Value) > options.PeersRate.Burst, "few peers messages sent");
        Assert.All(neighbours, n => Assert.True(sent.GetValueOrDefault((n.Identity.Id, ControlType.Descriptor)) > 0));
    }

    /// <summary>
    /// An ultrapeer with 150 leaves that each query at the rate it admits from a leaf, for half
    /// a minute: every query it passes on to another ultrapeer must be one that ultrapeer admits,
    /// or honest ultrapeers under load strike and shun each other.
    /// </summary>
    [Fact]
    public void ForwardedQueriesNeverExceedWhatTheNextUltrapeerAccepts()
    {
        var options = new OverlayOptions();
        var overlay = _h.NewUltrapeer(options);
        var own = _h.DescriptorOf(_h.Self, roles: NodeRoles.Ultrapeer);
        overlay.Publish(own);

        var nextIdentity = _h.NewIdentity();
        var next = _h.NewOverlay(identity: nextIdentity, seed: 3);
        next.LinkUp(_h.Self.Id, inbound: true, _h.NextAddress());
        next.Receive(_h.Self.Id, new DescriptorMessage(own));
        Assert.True(next.IsUltrapeer(_h.Self.Id));
        _h.Link(overlay, NodeRoles.Ultrapeer, free: [], identity: nextIdentity);

        var leaves = Enumerable.Range(0, 150).Select(_ => _h.Link(overlay, free: [])).ToArray();
        int forwarded = 0, refused = 0;
        for (int second = 0; second < 30; second++)
        {
            foreach (var leaf in leaves)
            {
                for (int q = 0; q < options.LeafQueryRate.PerSecond; q++)
                {
                    Assert.Equal(Admission.Accept, overlay.Admit(leaf.Id, ControlType.Query));
                    foreach (var (to, _) in OverlayHarness.Sent<QueryMessage>(overlay.Receive(leaf.Id, OverlayHarness.Query(wanted: 16384))))
                    {
                        Assert.Equal(nextIdentity.Id, to);
                        forwarded++;
                        if (next.Admit(_h.Self.Id, ControlType.Query) != Admission.Accept) refused++;
                    }
                }
            }
            _h.Time.Advance(TimeSpan.FromSeconds(1));
        }
        Assert.True(forwarded > options.UltrapeerQueryRate.Burst, $"only {forwarded} forwarded");
        Assert.Equal(0, refused);
        Assert.Null(next.Refuse(_h.Self.Id));
    }
}
