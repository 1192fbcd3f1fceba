using Quid.Overlay;
using Quid.Wire;
using static Quid.Tests.Overlay.OverlayHarness;

namespace Quid.Tests.Overlay;

/// <summary>Nothing a neighbour says makes the overlay's tables grow without bound.</summary>
public sealed class OverlayBoundsTests : IDisposable
{
    private readonly OverlayHarness _h = new();

    public void Dispose() => _h.Dispose();

    [Fact]
    public void KnownPeersNeverExceedMaxKnownPeersHoweverTheyAreHeardOf()
    {
        const int Max = 20;
        var overlay = _h.NewOverlay(new OverlayOptions { MaxKnownPeers = Max });
        var neighbours = Enumerable.Range(0, 3).Select(_ => _h.Link(overlay, NodeRoles.Ultrapeer, free: [])).ToArray();
        var random = new Random(2000);
        for (int round = 0; round < 10; round++)
        {
            _h.Time.Advance(TimeSpan.FromSeconds(1));
            var from = neighbours[random.Next(neighbours.Length)];
            var gossip = Enumerable.Range(0, random.Next(1, PeersMessage.MaxDescriptors + 1))
                .Select(_ => _h.DescriptorOf(_h.NewIdentity(), age: TimeSpan.FromSeconds(random.Next(0, 600)))).ToArray();
            overlay.Receive(from.Id, new PeersMessage(gossip));
            Assert.InRange(overlay.KnownPeerCount, 1, Max);

            var (id, _) = overlay.Search(K(256), K(256));
            overlay.Receive(from.Id, new QueryHitMessage(id, [.. Enumerable.Range(0, QueryMessage.MaxResultsLimit).Select(_ => _h.DescriptorOf(_h.NewIdentity()))]));
            Assert.InRange(overlay.KnownPeerCount, 1, Max);

            overlay.AddCachedPeers(Enumerable.Range(0, 30).Select(_ => new CachedPeer(_h.NewIdentity().Id, _h.NextAddress(), _h.Now, 0, random.Next(2) == 0)));
            Assert.InRange(overlay.KnownPeerCount, 1, Max);
            overlay.Tick();
            // Neighbours are never the ones forgotten.
            Assert.All(neighbours, n => Assert.Same(n.Descriptor, overlay.Find(n.Id)));
        }
        overlay.LinkUp(_h.NewIdentity().Id, inbound: true, _h.NextAddress());
        Assert.InRange(overlay.KnownPeerCount, 1, Max);
    }

    [Fact]
    public void WhenFullTheMostFailedThenLeastRecentlySeenPeerMakesRoom()
    {
        var overlay = _h.NewOverlay(new OverlayOptions { MaxKnownPeers = 3 });
        var old = _h.DescriptorOf(_h.NewIdentity(), age: TimeSpan.FromMinutes(10));
        var failing = _h.DescriptorOf(_h.NewIdentity());
        var fresh = _h.DescriptorOf(_h.NewIdentity());
        var n = _h.Link(overlay);
        overlay.Receive(n.Id, new PeersMessage([old, failing]));
        overlay.DialFailed(failing.Id, failing.Address!);
        overlay.Receive(n.Id, new PeersMessage([fresh]));
        Assert.Null(overlay.Find(failing.Id));
        Assert.Same(old, overlay.Find(old.Id));
        var newest = _h.DescriptorOf(_h.NewIdentity());
        overlay.Receive(n.Id, new PeersMessage([newest]));
        Assert.Null(overlay.Find(old.Id));
        Assert.Same(fresh, overlay.Find(fresh.Id));
        Assert.Same(newest, overlay.Find(newest.Id));
        Assert.Equal(3, overlay.KnownPeerCount);
    }

    [Fact]
    public void QueryRoutesNeverExceedMaxQueryRoutesAndTheOldestGoFirst()
    {
        const int Max = 10;
        var overlay = _h.NewUltrapeer(new OverlayOptions { MaxQueryRoutes = Max });
        var from = _h.LinkUltrapeer(overlay);
        var other = _h.LinkUltrapeer(overlay);
        var queries = Enumerable.Range(0, 3 * Max).Select(_ => Query()).ToArray();
        foreach (var query in queries)
        {
            overlay.Receive(from.Id, query);
            Assert.InRange(overlay.QueryRouteCount, 1, Max);
        }
        Assert.Equal(Max, overlay.QueryRouteCount);
        var hit = _h.DescriptorOf(_h.NewIdentity());
        Assert.Equal(OverlayError.UnknownQuery,
            Assert.Single(overlay.Receive(other.Id, new QueryHitMessage(queries[^(Max + 1)].Id, [hit])).OfType<MessageRejected>()).Error);
        Assert.Equal(from.Id, Assert.Single(Sent<QueryHitMessage>(overlay.Receive(other.Id, new QueryHitMessage(queries[^Max].Id, [hit])))).To);

        // Our own searches take routes too, and are bounded the same way.
        for (int i = 0; i < 2 * Max; i++) overlay.Search(K(256), K(256));
        Assert.Equal(Max, overlay.QueryRouteCount);
    }

    [Fact]
    public void QueryRoutesExpireAfterTheirLifetime()
    {
        var options = new OverlayOptions();
        var overlay = _h.NewUltrapeer(options);
        var from = _h.LinkUltrapeer(overlay);
        var other = _h.LinkUltrapeer(overlay);
        var early = Query();
        var late = Query();
        overlay.Receive(from.Id, early);
        _h.Time.Advance(TimeSpan.FromSeconds(1));
        overlay.Receive(from.Id, late);
        Assert.Equal(2, overlay.QueryRouteCount);

        _h.Time.Advance(options.QueryRouteLifetime - TimeSpan.FromSeconds(1));
        overlay.Tick();
        Assert.Equal(1, overlay.QueryRouteCount);
        var hit = _h.DescriptorOf(_h.NewIdentity());
        Assert.Equal(OverlayError.UnknownQuery,
            Assert.Single(overlay.Receive(other.Id, new QueryHitMessage(early.Id, [hit])).OfType<MessageRejected>()).Error);
        Assert.Single(Sent<QueryHitMessage>(overlay.Receive(other.Id, new QueryHitMessage(late.Id, [hit]))));

        _h.Time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(OverlayError.UnknownQuery,
            Assert.Single(overlay.Receive(other.Id, new QueryHitMessage(late.Id, [hit])).OfType<MessageRejected>()).Error);
        overlay.Tick();
        Assert.Equal(0, overlay.QueryRouteCount);
    }

    [Fact]
    public void SearchResultsNeverExceedMaxSearchResults()
    {
        const int Max = 10;
        var options = new OverlayOptions { MaxSearchResults = Max };
        var overlay = _h.NewOverlay(options);
        var ultrapeer = _h.LinkUltrapeer(overlay);
        for (int i = 0; i < 4; i++)
        {
            var (id, _) = overlay.Search(K(256), K(256));
            overlay.Receive(ultrapeer.Id, new QueryHitMessage(id, [.. Enumerable.Range(0, QueryMessage.MaxResultsLimit).Select(_ => _h.DescriptorOf(_h.NewIdentity()))]));
            Assert.InRange(overlay.SearchResultCount, 1, Max);
            Assert.InRange(OverlayHarness.Candidates(overlay, K(256), K(256)).Count, 1, Max);
        }
        Assert.Equal(Max, overlay.SearchResultCount);

        // Hits age out after their lifetime.
        _h.Time.Advance(options.SearchResultLifetime);
        overlay.Tick();
        Assert.Equal(0, overlay.SearchResultCount);
        Assert.Empty(OverlayHarness.Candidates(overlay, K(256), K(256)));
    }

    [Fact]
    public void ALeafRefusesNewPeersAsFullOnceMaxLeafNeighboursAreLinked()
    {
        var overlay = _h.NewOverlay(new OverlayOptions { MaxLeafNeighbours = 4 });
        var linked = Enumerable.Range(0, 4).Select(_ => _h.Link(overlay)).ToArray();
        var newcomer = _h.NewIdentity();
        Assert.Equal(GoodbyeReason.Full, overlay.Refuse(newcomer.Id));
        Assert.All(linked, n => Assert.Null(overlay.Refuse(n.Id)));
        overlay.LinkDown(linked[0].Id);
        Assert.Null(overlay.Refuse(newcomer.Id));
    }

    [Fact]
    public void AnUltrapeerTakesUpToMaxUltrapeerNeighbours()
    {
        var overlay = _h.NewUltrapeer(new OverlayOptions { MaxLeafNeighbours = 2, MaxUltrapeerNeighbours = 5 });
        for (int i = 0; i < 5; i++)
        {
            Assert.Null(overlay.Refuse(_h.NewIdentity().Id));
            _h.Link(overlay);
        }
        Assert.Equal(GoodbyeReason.Full, overlay.Refuse(_h.NewIdentity().Id));
    }
}
