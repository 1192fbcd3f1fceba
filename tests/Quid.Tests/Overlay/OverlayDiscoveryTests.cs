using Quid.Crypto;
using Quid.Overlay;
using Quid.Wire;
using static Quid.Tests.Overlay.OverlayHarness;

namespace Quid.Tests.Overlay;

/// <summary>Finding peers to link, how fast we dial them, and when we forget them.</summary>
public sealed class OverlayDiscoveryTests : IDisposable
{
    private readonly OverlayHarness _h = new();

    public void Dispose() => _h.Dispose();

    private CachedPeer[] Cached(int count, bool ultrapeer = false, TimeSpan? age = null, int failures = 0) =>
        [.. Enumerable.Range(0, count).Select(_ => new CachedPeer(_h.NewIdentity().Id, _h.NextAddress(), _h.Now - (age ?? TimeSpan.Zero), failures, ultrapeer))];

    [Fact]
    public void CachedPeersAreDialedAtMostDialsPerTickAndNotAgainBeforeRedialAfter()
    {
        var options = new OverlayOptions { DialsPerTick = 2, MinNeighbours = 8, RedialAfter = TimeSpan.FromSeconds(30) };
        var overlay = _h.NewOverlay(options);
        var cached = Cached(5);
        overlay.AddCachedPeers(cached);

        var dials = new List<DialPeer>();
        for (int i = 0; i < 3; i++)
        {
            var tick = overlay.Tick().OfType<DialPeer>().ToArray();
            Assert.InRange(tick.Length, 1, options.DialsPerTick);
            dials.AddRange(tick);
            _h.Time.Advance(TimeSpan.FromSeconds(1));
        }
        // Each once, at the cached address, with the id pinned.
        Assert.Equal(cached.Select(c => c.Id).Order(), dials.Select(d => d.Id!.Value).Order());
        Assert.All(dials, d => Assert.Equal(cached.Single(c => c.Id == d.Id).Address, d.Address));

        for (int i = 3; i < options.RedialAfter.TotalSeconds; i++)
        {
            Assert.Empty(overlay.Tick().OfType<DialPeer>());
            _h.Time.Advance(TimeSpan.FromSeconds(1));
        }
        Assert.Equal(options.DialsPerTick, overlay.Tick().OfType<DialPeer>().Count());
    }

    [Fact]
    public void ANodeWithEnoughNeighboursDialsNoOne()
    {
        var options = new OverlayOptions { MinNeighbours = 2, LeafUltrapeers = 1 };
        var overlay = _h.NewOverlay(options);
        _h.LinkUltrapeer(overlay);
        _h.Link(overlay);
        overlay.AddCachedPeers([.. Cached(3, ultrapeer: true), .. Cached(3)]);
        Assert.Empty(overlay.Tick().OfType<DialPeer>());
    }

    [Fact]
    public void ALeafDialsKnownUltrapeersFirstUntilItHasLeafUltrapeersOfThem()
    {
        var options = new OverlayOptions { LeafUltrapeers = 3, MinNeighbours = 3, DialsPerTick = 2 };
        var overlay = _h.NewOverlay(options);
        var ultrapeers = Cached(5, ultrapeer: true);
        var leaves = Cached(10);
        overlay.AddCachedPeers([.. leaves, .. ultrapeers]);
        var ultrapeerIds = ultrapeers.Select(u => u.Id).ToHashSet();

        var first = Dialed(overlay.Tick());
        Assert.Equal(2, first.Length);
        Assert.All(first, id => Assert.Contains(id, ultrapeerIds));
        _h.Time.Advance(TimeSpan.FromSeconds(1));
        var second = Dialed(overlay.Tick());
        Assert.Equal(2, second.Length);
        Assert.All(second, id => Assert.Contains(id, ultrapeerIds));

        // Three ultrapeers answer: the leaf has what it wants, and dials no more of them.
        for (int i = 0; i < 3; i++) _h.LinkUltrapeer(overlay);
        for (int i = 0; i < 60; i++)
        {
            _h.Time.Advance(TimeSpan.FromSeconds(1));
            Assert.Empty(overlay.Tick().OfType<DialPeer>());
        }
    }

    [Fact]
    public void AnUnreachablePeerIsForgottenAfterMaxDialFailures()
    {
        var options = new OverlayOptions { MaxDialFailures = 3 };
        var overlay = _h.NewOverlay(options);
        var byId = Cached(1)[0];
        var byAddress = Cached(1)[0];
        var healthy = Cached(1)[0];
        overlay.AddCachedPeers([byId, byAddress, healthy]);
        for (int i = 0; i < options.MaxDialFailures - 1; i++)
        {
            overlay.DialFailed(byId.Id, byId.Address);
            overlay.DialFailed(null, byAddress.Address);
        }
        overlay.Tick();
        Assert.Equal(3, overlay.KnownPeerCount);

        overlay.DialFailed(byId.Id, byId.Address);
        overlay.DialFailed(null, byAddress.Address);
        Assert.Equal(3, overlay.KnownPeerCount);
        overlay.Tick();
        Assert.Equal([healthy.Id], overlay.ExportPeers().Select(p => p.Id));
    }

    [Fact]
    public void ALinkResetsTheFailuresOfAPeer()
    {
        var options = new OverlayOptions { MaxDialFailures = 2 };
        var overlay = _h.NewOverlay(options);
        var peer = _h.NewIdentity();
        var cached = new CachedPeer(peer.Id, _h.NextAddress(), _h.Now, 1, false);
        overlay.AddCachedPeers([cached]);
        overlay.LinkUp(peer.Id, inbound: false, cached.Address);
        overlay.LinkDown(peer.Id);
        overlay.DialFailed(peer.Id, cached.Address);
        overlay.Tick();
        Assert.Equal(1, Assert.Single(overlay.ExportPeers()).Failures);
    }

    [Fact]
    public void APeerNotHeardOfForMaxPeerAgeIsForgotten()
    {
        var options = new OverlayOptions();
        var overlay = _h.NewOverlay(options);
        var old = Cached(1, age: options.MaxPeerAge - TimeSpan.FromMinutes(1))[0];
        var recent = Cached(1, age: TimeSpan.FromDays(1))[0];
        overlay.AddCachedPeers([old, recent]);
        overlay.Tick();
        Assert.Equal(2, overlay.KnownPeerCount);
        _h.Time.Advance(TimeSpan.FromMinutes(2));
        overlay.Tick();
        Assert.Equal([recent.Id], overlay.ExportPeers().Select(p => p.Id));
    }

    [Fact]
    public void APeerFoundByASearchIsRememberedLikeAnyOther()
    {
        var overlay = _h.NewOverlay();
        var ultrapeer = _h.LinkUltrapeer(overlay);
        var (id, _) = overlay.Search(K(256), K(256));
        var found = _h.DescriptorOf(_h.NewIdentity(), roles: NodeRoles.Ultrapeer);
        overlay.Receive(ultrapeer.Id, new QueryHitMessage(id, [found]));
        Assert.Same(found, overlay.Find(found.Id));

        _h.Time.Advance(TimeSpan.FromSeconds(1));
        overlay.Tick();
        // Just heard of: neither forgotten at once nor exported as never seen.
        Assert.Same(found, overlay.Find(found.Id));
        var exported = Assert.Single(overlay.ExportPeers(), p => p.Id == found.Id);
        Assert.Equal(found.Published, exported.LastSeen);
        Assert.True(exported.Ultrapeer);
    }

    [Fact]
    public void AStaleHitDoesNotMoveAPeersAddressBack()
    {
        var overlay = _h.NewOverlay();
        var ultrapeer = _h.LinkUltrapeer(overlay);
        var peer = _h.NewIdentity();
        var old = _h.DescriptorOf(peer, age: TimeSpan.FromMinutes(5));
        var current = _h.DescriptorOf(peer);
        overlay.Receive(ultrapeer.Id, new PeersMessage([current]));
        var (id, _) = overlay.Search(K(256), K(256));
        overlay.Receive(ultrapeer.Id, new QueryHitMessage(id, [old]));
        Assert.Same(current, overlay.Find(peer.Id));
        Assert.Equal(current.Address, Assert.Single(overlay.ExportPeers(), p => p.Id == peer.Id).Address);
    }

    [Fact]
    public void ExportedPeersRoundTripThroughAddCachedPeers()
    {
        var overlay = _h.NewOverlay();
        var n = _h.Link(overlay, NodeRoles.Ultrapeer);
        var heard = new[]
        {
            _h.DescriptorOf(_h.NewIdentity(), age: TimeSpan.FromMinutes(3), roles: NodeRoles.Ultrapeer),
            _h.DescriptorOf(_h.NewIdentity(), age: TimeSpan.FromMinutes(1)),
            _h.DescriptorOf(_h.NewIdentity(), address: false),
        };
        overlay.Receive(n.Id, new PeersMessage(heard));
        overlay.DialFailed(heard[1].Id, heard[1].Address!);
        overlay.AddCachedPeers(Cached(2, ultrapeer: true, age: TimeSpan.FromDays(2), failures: 1));

        var exported = overlay.ExportPeers();
        // Everyone with an address: the neighbour, two heard of, two cached; not the one without an address.
        Assert.Equal(5, exported.Count);
        Assert.DoesNotContain(exported, p => p.Id == heard[2].Id);
        Assert.Equal(1, exported.Single(p => p.Id == heard[1].Id).Failures);
        Assert.True(exported.Single(p => p.Id == heard[0].Id).Ultrapeer);
        Assert.False(exported.Single(p => p.Id == heard[1].Id).Ultrapeer);

        var restarted = _h.NewOverlay(seed: 9);
        restarted.AddCachedPeers(exported);
        Assert.Equal(exported.OrderBy(p => p.Id), restarted.ExportPeers().OrderBy(p => p.Id));
        Assert.Equal(5, restarted.KnownPeerCount);
    }

    [Fact]
    public void OurOwnIdInTheCacheIsIgnored()
    {
        var overlay = _h.NewOverlay();
        overlay.AddCachedPeers([new CachedPeer(_h.Self.Id, _h.NextAddress(), _h.Now, 0, true)]);
        Assert.Equal(0, overlay.KnownPeerCount);
        Assert.Empty(overlay.Tick().OfType<DialPeer>());
    }

    [Fact]
    public void AnUltrapeerWithTheUltrapeerLinksItWantsKeepsOneMoreToAnUltrapeerDrawnAtRandom()
    {
        var options = new OverlayOptions();
        var ultrapeer = _h.NewUltrapeer(options);
        // More ultrapeer links than it dials for, as others dialed it too: an island of them all the same.
        var linked = Enumerable.Range(0, options.UltrapeerLinks + 2).Select(_ => _h.LinkUltrapeer(ultrapeer)).ToList();
        // It hears of two more ultrapeers, beyond its island.
        var far = new[] { _h.NewIdentity(), _h.NewIdentity() };
        ultrapeer.Receive(linked[0].Id, new PeersMessage([.. far.Select(f => _h.DescriptorOf(f, roles: NodeRoles.Ultrapeer))]));

        var first = Assert.Single(Dialed(ultrapeer.Tick()));
        Assert.Contains(first, far.Select(f => f.Id));
        // Not again before the interval, even if that dial came to nothing.
        Assert.Empty(Dialed(ultrapeer.Tick()));
        _h.Time.Advance(options.ShortcutInterval);
        var second = Assert.Single(Dialed(ultrapeer.Tick()));

        // Once its shortcut is linked, it keeps that one and dials no other; when it goes, another.
        _h.Link(ultrapeer, NodeRoles.Ultrapeer, free: [], identity: far.Single(f => f.Id == second));
        _h.Time.Advance(options.ShortcutInterval);
        Assert.Empty(Dialed(ultrapeer.Tick()));
        ultrapeer.LinkDown(second);
        _h.Time.Advance(options.ShortcutInterval);
        Assert.NotEmpty(Dialed(ultrapeer.Tick()));
    }

    [Fact]
    public void AnUltrapeerLinkedToTwiceTheUltrapeersItWantsKeepsNoShortcut()
    {
        var options = new OverlayOptions();
        var ultrapeer = _h.NewUltrapeer(options);
        var linked = Enumerable.Range(0, 2 * options.UltrapeerLinks).Select(_ => _h.LinkUltrapeer(ultrapeer)).ToList();
        var far = _h.NewIdentity();
        ultrapeer.Receive(linked[0].Id, new PeersMessage([_h.DescriptorOf(far, roles: NodeRoles.Ultrapeer)]));

        Assert.Empty(Dialed(ultrapeer.Tick()));
        // One of them goes: now it is one short of that, and draws a shortcut among those it knows and is not linked to.
        ultrapeer.LinkDown(linked[^1].Id);
        Assert.Contains(Assert.Single(Dialed(ultrapeer.Tick())), new[] { far.Id, linked[^1].Id });
    }

    [Fact]
    public void AnUltrapeerThatSaidItWasFullIsLeftAloneForAWhile()
    {
        var options = new OverlayOptions { RedialAfter = TimeSpan.FromSeconds(30) };
        var overlay = _h.NewOverlay(options);
        var full = _h.LinkUltrapeer(overlay);
        var other = _h.LinkUltrapeer(overlay);
        overlay.Farewell(full.Id, GoodbyeReason.Full);
        overlay.LinkDown(full.Id);
        // A goodbye for another reason does not hold a peer back beyond the usual redial wait.
        overlay.Farewell(other.Id, GoodbyeReason.ShuttingDown);
        overlay.LinkDown(other.Id);

        var dialed = new List<(NodeId Id, TimeSpan At)>();
        for (int s = 0; s <= 20 * options.RedialAfter.TotalSeconds; s += 5)
        {
            foreach (var id in Dialed(overlay.Tick())) dialed.Add((id, TimeSpan.FromSeconds(s)));
            _h.Time.Advance(TimeSpan.FromSeconds(5));
        }
        Assert.Equal(TimeSpan.Zero, dialed.First(d => d.Id == other.Id).At);
        var firstFull = dialed.First(d => d.Id == full.Id).At;
        Assert.InRange(firstFull, 5 * options.RedialAfter, 10 * options.RedialAfter);
    }

    [Fact]
    public void AnInboundNeighbourIsNotRedialedAtItsEphemeralPortButAnOutboundOneIs()
    {
        var overlay = _h.NewOverlay();
        var inbound = _h.NewIdentity();
        var outbound = _h.NewIdentity();
        overlay.LinkUp(inbound.Id, inbound: true, _h.NextAddress());
        var dialedAt = _h.NextAddress();
        overlay.LinkUp(outbound.Id, inbound: false, dialedAt);
        overlay.LinkDown(inbound.Id);
        overlay.LinkDown(outbound.Id);
        var dials = overlay.Tick().OfType<DialPeer>().ToArray();
        Assert.Equal(new DialPeer(outbound.Id, dialedAt), Assert.Single(dials));

        // Once it tells us where it listens, the inbound one can be dialed too.
        overlay.LinkUp(inbound.Id, inbound: true, _h.NextAddress());
        var descriptor = _h.DescriptorOf(inbound);
        overlay.Receive(inbound.Id, new DescriptorMessage(descriptor));
        overlay.LinkDown(inbound.Id);
        Assert.Contains(new DialPeer(inbound.Id, descriptor.Address!), overlay.Tick().OfType<DialPeer>());
    }

    [Fact]
    public void ANodeAtItsNeighbourLimitNeverAsksToDialAPeerItWouldThenRefuse()
    {
        // A leaf full of leaf neighbours still lacks ultrapeers; whatever it dials, the link must survive Refuse.
        var options = new OverlayOptions { MaxLeafNeighbours = 4 };
        var overlay = _h.NewOverlay(options);
        for (int i = 0; i < options.MaxLeafNeighbours; i++) _h.Link(overlay);
        overlay.AddCachedPeers([.. Cached(3, ultrapeer: true), .. Cached(3)]);
        for (int i = 0; i < 3; i++)
        {
            foreach (var id in Dialed(overlay.Tick()))
                Assert.Null(overlay.Refuse(id));
            _h.Time.Advance(options.RedialAfter);
        }
    }
}
