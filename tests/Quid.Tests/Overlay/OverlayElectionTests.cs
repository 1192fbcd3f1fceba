using System.Net;
using Quid.Overlay;
using Quid.Wire;
using static Quid.Tests.Overlay.OverlayHarness;

namespace Quid.Tests.Overlay;

/// <summary>When a leaf makes itself an ultrapeer, and when an ultrapeer steps down.</summary>
public sealed class OverlayElectionTests : IDisposable
{
    private static readonly OverlayOptions Options = Capable(new OverlayOptions { PromotionDelay = TimeSpan.FromSeconds(30), DemotionDelay = TimeSpan.FromMinutes(10) });

    private readonly OverlayHarness _h = new();

    public void Dispose() => _h.Dispose();

    /// <summary>Ticks once a second for <paramref name="span"/>; the time from the first tick to a RoleChanged, if any.</summary>
    private TimeSpan? TickUntilRoleChange(Quid.Overlay.Overlay overlay, TimeSpan span, NodeRoles expected = NodeRoles.Ultrapeer)
    {
        for (var elapsed = TimeSpan.Zero; elapsed <= span; elapsed += TimeSpan.FromSeconds(1))
        {
            if (overlay.Tick().OfType<RoleChanged>().SingleOrDefault() is { } changed)
            {
                Assert.Equal(expected, changed.Roles);
                return elapsed;
            }
            _h.Time.Advance(TimeSpan.FromSeconds(1));
        }
        return null;
    }

    /// <summary>Too few ultrapeers, but one: the wait is PromotionDelay's, not the shorter one of a network with none.</summary>
    private void KnowOneUltrapeer(Quid.Overlay.Overlay overlay) =>
        overlay.AddCachedPeers([new CachedPeer(_h.NewIdentity().Id, _h.NextAddress(), _h.Now, 0, true)]);

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    public void ACapableStarvedLeafPromotesBetweenOneAndFourPromotionDelays(int seed)
    {
        var overlay = _h.NewOverlay(Options, seed: seed);
        _h.PublishCapable(overlay);
        KnowOneUltrapeer(overlay);
        var after = TickUntilRoleChange(overlay, Options.PromotionDelay * 5);
        Assert.NotNull(after);
        Assert.InRange(after.Value, Options.PromotionDelay, Options.PromotionDelay * 4);
        Assert.Equal(OverlayRole.Ultrapeer, overlay.Role);
        // Once is enough: no more role changes while it is needed.
        Assert.Null(TickUntilRoleChange(overlay, TimeSpan.FromMinutes(2), NodeRoles.None));
    }

    [Fact]
    public void ThePromotionWaitIsJitteredSoACrowdDoesNotPromoteAtOnce()
    {
        var waits = new HashSet<TimeSpan>();
        for (int seed = 0; seed < 8; seed++)
        {
            var overlay = _h.NewOverlay(Options, seed: seed);
            _h.PublishCapable(overlay);
            KnowOneUltrapeer(overlay);
            waits.Add(TickUntilRoleChange(overlay, Options.PromotionDelay * 5) ?? TimeSpan.MaxValue);
        }
        Assert.DoesNotContain(TimeSpan.MaxValue, waits);
        Assert.True(waits.Count >= 4, $"only {waits.Count} distinct waits");
    }

    [Fact]
    public void ALeafThatKnowsEnoughUsableUltrapeersDoesNotPromote()
    {
        var overlay = _h.NewOverlay(Options);
        _h.PublishCapable(overlay);
        overlay.AddCachedPeers([.. Enumerable.Range(0, Options.LeafUltrapeers).Select(_ => new CachedPeer(_h.NewIdentity().Id, _h.NextAddress(), _h.Now, 0, true))]);
        Assert.Null(TickUntilRoleChange(overlay, Options.PromotionDelay * 10));
    }

    [Fact]
    public void ALeafLinkedToEnoughUltrapeersDoesNotPromote()
    {
        var overlay = _h.NewOverlay(Options);
        _h.PublishCapable(overlay);
        for (int i = 0; i < Options.LeafUltrapeers; i++) _h.LinkUltrapeer(overlay);
        Assert.Null(TickUntilRoleChange(overlay, Options.PromotionDelay * 10));
    }

    [Fact]
    public void UltrapeersThatKeepFailingOrSayTheyAreFullDoNotCount()
    {
        var overlay = _h.NewOverlay(Options);
        _h.PublishCapable(overlay);
        var known = Enumerable.Range(0, Options.LeafUltrapeers).Select(_ => new CachedPeer(_h.NewIdentity().Id, _h.NextAddress(), _h.Now, 0, true)).ToArray();
        overlay.AddCachedPeers(known);
        // One never answers and one answered that it was full: the one usable ultrapeer left is too few.
        overlay.DialFailed(known[0].Id, known[0].Address);
        overlay.DialFailed(known[0].Id, known[0].Address);
        overlay.LinkUp(known[1].Id, inbound: false, known[1].Address);
        overlay.Farewell(known[1].Id, GoodbyeReason.Full);
        overlay.LinkDown(known[1].Id);
        Assert.NotNull(TickUntilRoleChange(overlay, Options.PromotionDelay * 5));
    }

    [Fact]
    public void ALeafThatKnowsTooFewUltrapeersStillPromotes()
    {
        var overlay = _h.NewOverlay(Options);
        _h.PublishCapable(overlay);
        overlay.AddCachedPeers([.. Enumerable.Range(0, Options.LeafUltrapeers - 1).Select(_ => new CachedPeer(_h.NewIdentity().Id, _h.NextAddress(), _h.Now, 0, true))]);
        Assert.NotNull(TickUntilRoleChange(overlay, Options.PromotionDelay * 5));
    }

    [Fact]
    public void AStarvedLeafWithAnUltrapeerSharesThePaceWithTheLeavesItKnowsButOneThatNoUltrapeerTookGoesAlone()
    {
        CachedPeer[] Leaves() => [.. Enumerable.Range(0, 100).Select(_ => new CachedPeer(_h.NewIdentity().Id, _h.NextAddress(), _h.Now, 0, false))];
        var linked = _h.NewOverlay(Options, seed: 1);
        _h.PublishCapable(linked);
        linked.AddCachedPeers(Leaves());
        _h.LinkUltrapeer(linked);
        Assert.Null(TickUntilRoleChange(linked, Options.PromotionDelay * 5));

        // Found by no search: it must not wait out a hundred others.
        var unlinked = _h.NewOverlay(Options, seed: 1);
        _h.PublishCapable(unlinked);
        unlinked.AddCachedPeers(Leaves());
        KnowOneUltrapeer(unlinked);
        Assert.NotNull(TickUntilRoleChange(unlinked, Options.PromotionDelay * 5));
    }

    [Fact]
    public void AmongTheSameLeavesALargerOfferPromotesSooner()
    {
        // Ten leaves known, each offering 4096: one of 512 ranks last, one of 8192 first.
        TimeSpan Wait(long offer, int seed)
        {
            var overlay = _h.NewOverlay(Options, seed: seed);
            _h.PublishCapable(overlay, offer: offer);
            KnowOneUltrapeer(overlay);
            var neighbour = _h.Link(overlay, offer: 4096, free: [K(4096)]);
            overlay.Receive(neighbour.Id, new PeersMessage([.. Enumerable.Range(0, 9).Select(_ => _h.DescriptorOf(_h.NewIdentity(), offer: 4096, free: [K(4096)]))]));
            return TickUntilRoleChange(overlay, TimeSpan.FromMinutes(40)) ?? TimeSpan.MaxValue;
        }
        var seeds = Enumerable.Range(0, 8).ToArray();
        var small = seeds.Select(s => Wait(512, s)).ToArray();
        var large = seeds.Select(s => Wait(8192, s)).ToArray();
        Assert.DoesNotContain(TimeSpan.MaxValue, small.Concat(large));
        // The largest promotes at about twice the shared pace, the smallest at a tenth of it.
        Assert.True(small.Sum(w => w.TotalSeconds) > 4 * large.Sum(w => w.TotalSeconds),
            $"small offers waited {string.Join(", ", small)}; large {string.Join(", ", large)}");
    }

    public static TheoryData<string> Incapable() => ["no descriptor", "no address", "offer below the minimum", "not capable"];

    [Theory]
    [MemberData(nameof(Incapable))]
    public void AnIncapableNodeNeverPromotes(string why)
    {
        var options = why switch
        {
            "not capable" => Options with { UltrapeerCapable = false },
            _ => Options,
        };
        var overlay = _h.NewOverlay(options);
        var own = why switch
        {
            "no descriptor" => null,
            "no address" => _h.DescriptorOf(_h.Self, address: false, offer: 16384),
            "offer below the minimum" => _h.DescriptorOf(_h.Self, offer: options.UltrapeerMinOffer.Kbps / 2, request: 16),
            _ => _h.DescriptorOf(_h.Self, offer: 16384),
        };
        if (own is not null) overlay.Publish(own);
        Assert.Null(TickUntilRoleChange(overlay, options.PromotionDelay * 10));
        Assert.Equal(OverlayRole.Leaf, overlay.Role);
    }

    [Fact]
    public void AYoungNodePromotesOnceItHasBeenUpLongEnough()
    {
        var options = Options with { UltrapeerMinUptime = TimeSpan.FromMinutes(10) };
        var overlay = _h.NewOverlay(options);
        _h.PublishCapable(overlay);
        // Too few ultrapeers, but one: the network searches already, so a young node waits its uptime.
        KnowOneUltrapeer(overlay);
        var after = TickUntilRoleChange(overlay, options.UltrapeerMinUptime + options.PromotionDelay * 5);
        Assert.NotNull(after);
        Assert.InRange(after.Value, options.UltrapeerMinUptime + options.PromotionDelay, options.UltrapeerMinUptime + options.PromotionDelay * 4);
    }

    [Fact]
    public void AYoungNodeWhoseOnlyUltrapeerNeverAnswersPromotesWithoutWaitingForItsUptime()
    {
        // The network's one ultrapeer died, or sits behind the same NAT without loopback: it is
        // known, but it fails every dial, and nothing reaches anyone until another appears.
        var options = Options with { UltrapeerMinUptime = TimeSpan.FromHours(1) };
        var overlay = _h.NewOverlay(options);
        _h.PublishCapable(overlay);
        overlay.AddCachedPeers([new CachedPeer(_h.NewIdentity().Id, _h.NextAddress(), _h.Now, 3, true)]);
        Assert.NotNull(TickUntilRoleChange(overlay, options.PromotionDelay + options.FirstPromotionDelay * 5));
    }

    [Fact]
    public void AYoungNodeWhoseOnlyUltrapeerIsBehindItsOwnNatPromotesAfterOneFailedDial()
    {
        // Behind one NAT, a node's mapped address is unreachable from its neighbours there (no NAT
        // loopback): one failed dial says so. It was redialed every 30 s instead, counted usable
        // until its second failure, and forgotten after its fifth only to be heard of anew and
        // counted usable again, each time putting the starved leaf's wait back to the start.
        var options = Options with { UltrapeerMinUptime = TimeSpan.FromHours(1) };
        var overlay = _h.NewOverlay(options);
        var own = _h.PublishCapable(overlay);
        var sibling = new CachedPeer(_h.NewIdentity().Id, new IPEndPoint(own.Address!.Address, own.Address.Port + 1), _h.Now, 0, true);
        overlay.AddCachedPeers([sibling]);
        var dial = Assert.Single(overlay.Tick().OfType<DialPeer>());
        Assert.Equal(sibling.Id, dial.Id);
        overlay.DialFailed(dial.Id, dial.Address);
        for (var t = TimeSpan.Zero; t < options.RedialAfter * 4; t += TimeSpan.FromSeconds(1))
        {
            _h.Time.Advance(TimeSpan.FromSeconds(1));
            var actions = overlay.Tick();
            Assert.DoesNotContain(actions.OfType<DialPeer>(), d => d.Id == sibling.Id);
            if (actions.OfType<RoleChanged>().Any())
            {
                Assert.InRange(t, options.PromotionDelay - TimeSpan.FromSeconds(1), options.PromotionDelay + options.FirstPromotionDelay * 10);
                return;
            }
        }
        Assert.Fail("it never promoted");
    }

    [Fact]
    public void APeerAtAnotherAddressIsStillTriedAgainAfterOneFailedDial()
    {
        var options = Options with { UltrapeerMinUptime = TimeSpan.FromHours(1) };
        var overlay = _h.NewOverlay(options);
        _h.PublishCapable(overlay);
        var elsewhere = new CachedPeer(_h.NewIdentity().Id, new IPEndPoint(IPAddress.Parse("198.18.0.7"), 7843), _h.Now, 0, true);
        overlay.AddCachedPeers([elsewhere]);
        var dial = Assert.Single(overlay.Tick().OfType<DialPeer>());
        overlay.DialFailed(dial.Id, dial.Address);
        // A dead or restarting node: it is dialed again, and a young leaf does not promote meanwhile.
        var redialed = false;
        for (var t = TimeSpan.Zero; t <= options.RedialAfter + TimeSpan.FromSeconds(1); t += TimeSpan.FromSeconds(1))
        {
            _h.Time.Advance(TimeSpan.FromSeconds(1));
            var actions = overlay.Tick();
            redialed |= actions.OfType<DialPeer>().Any(d => d.Id == elsewhere.Id);
            Assert.Empty(actions.OfType<RoleChanged>());
        }
        Assert.True(redialed);
    }

    [Fact]
    public void AYoungNodeEveryUltrapeerTurnedAwayAsFullPromotesWithoutWaitingForItsUptime()
    {
        // On the testbed a small node became the network's first ultrapeer, took the leaves its
        // upload allows and refused the rest: those searched nobody for ten minutes.
        var options = Options with { UltrapeerMinUptime = TimeSpan.FromHours(1) };
        var overlay = _h.NewOverlay(options);
        _h.PublishCapable(overlay);
        var full = new CachedPeer(_h.NewIdentity().Id, _h.NextAddress(), _h.Now, 0, true);
        overlay.AddCachedPeers([full]);
        Assert.Null(TickUntilRoleChange(overlay, options.PromotionDelay * 5));

        overlay.LinkUp(full.Id, inbound: false, full.Address);
        overlay.Farewell(full.Id, GoodbyeReason.Full);
        overlay.LinkDown(full.Id);
        // At the usual pace, not the seconds of a network with none: the full one's leaves search already.
        var after = TickUntilRoleChange(overlay, options.PromotionDelay * 6);
        Assert.NotNull(after);
        Assert.True(after.Value >= options.PromotionDelay, $"promoted after {after.Value}");
    }

    [Fact]
    public void AYoungNodeInANetworkWithNoUltrapeerPromotesWithoutWaitingForItsUptime()
    {
        // A network that has just started: without this, no search reaches anyone for the whole uptime.
        var options = Options with { UltrapeerMinUptime = TimeSpan.FromHours(1), PromotionDelay = TimeSpan.FromMinutes(1), FirstPromotionDelay = TimeSpan.FromSeconds(5) };
        var overlay = _h.NewOverlay(options);
        _h.PublishCapable(overlay);
        // After the starved PromotionDelay, within seconds, not the further minute or more a leaf
        // that knows some ultrapeers may wait.
        var after = TickUntilRoleChange(overlay, options.PromotionDelay + options.FirstPromotionDelay * 5);
        Assert.NotNull(after);
        Assert.InRange(after.Value, options.PromotionDelay, options.PromotionDelay + options.FirstPromotionDelay * 5);
        Assert.Equal(OverlayRole.Ultrapeer, overlay.Role);
        // Nor does it step down at once for being young: it serves until it is idle.
        _h.Time.Advance(TimeSpan.FromSeconds(1));
        Assert.Empty(overlay.Tick().OfType<RoleChanged>());
    }

    [Fact]
    public void AnUltrapeerWithNoLeavesAndEnoughOtherUltrapeersDemotesAfterDemotionDelay()
    {
        var overlay = _h.NewUltrapeer(Options);
        for (int i = 0; i < Options.LeafUltrapeers; i++) _h.LinkUltrapeer(overlay);

        Assert.Empty(overlay.Tick().OfType<RoleChanged>());
        _h.Time.Advance(Options.DemotionDelay - TimeSpan.FromSeconds(1));
        Assert.Empty(overlay.Tick().OfType<RoleChanged>());
        Assert.Equal(OverlayRole.Ultrapeer, overlay.Role);
        _h.Time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(NodeRoles.None, Assert.Single(overlay.Tick().OfType<RoleChanged>()).Roles);
        Assert.Equal(OverlayRole.Leaf, overlay.Role);
    }

    [Fact]
    public void AnUltrapeerWithALeafOrTooFewOtherUltrapeersStays()
    {
        var withLeaf = _h.NewUltrapeer(Options);
        for (int i = 0; i < Options.LeafUltrapeers; i++) _h.LinkUltrapeer(withLeaf);
        _h.Link(withLeaf);
        var alone = _h.NewUltrapeer(Options, identity: _h.NewIdentity());
        for (int i = 0; i < Options.LeafUltrapeers - 1; i++) _h.LinkUltrapeer(alone);

        for (int i = 0; i < 3 * Options.DemotionDelay.TotalSeconds; i += 10)
        {
            Assert.Empty(withLeaf.Tick().OfType<RoleChanged>());
            Assert.Empty(alone.Tick().OfType<RoleChanged>());
            _h.Time.Advance(TimeSpan.FromSeconds(10));
        }
        Assert.Equal(OverlayRole.Ultrapeer, withLeaf.Role);
        Assert.Equal(OverlayRole.Ultrapeer, alone.Role);
    }

    [Fact]
    public void ALeafArrivingRestartsTheDemotionClock()
    {
        var overlay = _h.NewUltrapeer(Options);
        for (int i = 0; i < Options.LeafUltrapeers; i++) _h.LinkUltrapeer(overlay);
        overlay.Tick();
        _h.Time.Advance(Options.DemotionDelay / 2);
        var leaf = _h.Link(overlay);
        overlay.Tick();
        overlay.LinkDown(leaf.Id);
        overlay.Tick();
        _h.Time.Advance(Options.DemotionDelay - TimeSpan.FromSeconds(1));
        Assert.Empty(overlay.Tick().OfType<RoleChanged>());
        _h.Time.Advance(TimeSpan.FromSeconds(1));
        Assert.Single(overlay.Tick().OfType<RoleChanged>());
    }

    [Fact]
    public void AnUltrapeerThatBecomesIncapableStepsDownAtOnce()
    {
        var overlay = _h.NewUltrapeer(Options);
        _h.Link(overlay);
        overlay.Publish(_h.DescriptorOf(_h.Self, address: false));
        Assert.Equal(NodeRoles.None, Assert.Single(overlay.Tick().OfType<RoleChanged>()).Roles);
    }
}
