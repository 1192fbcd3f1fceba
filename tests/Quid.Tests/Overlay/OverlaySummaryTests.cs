using Quid.Crypto;
using Quid.Overlay;
using Quid.Tests.Wire;
using Quid.Wire;
using static Quid.Tests.Overlay.OverlayHarness;

namespace Quid.Tests.Overlay;

/// <summary>Offer summaries between ultrapeers, and the last hop of a flood that goes only where they say it finds something (PROTOCOL §5.7).</summary>
public sealed class OverlaySummaryTests : IDisposable
{
    private readonly OverlayHarness _h = new();

    public void Dispose() => _h.Dispose();

    private (NodeId To, OfferSummaryMessage Message)[] TickSummaries(Quid.Overlay.Overlay overlay)
    {
        _h.Time.Advance(new OverlayOptions().SummaryInterval);
        return Sent<OfferSummaryMessage>(overlay.Tick());
    }

    [Fact]
    public void AnUltrapeerTellsItsUltrapeersWhatItsAddressedLeavesAndItselfOfferOnlyWhenThatChanges()
    {
        var overlay = _h.NewUltrapeer();
        var ultrapeers = new[] { _h.LinkUltrapeer(overlay), _h.LinkUltrapeer(overlay) };
        var leaf = _h.Link(overlay, free: [K(128)]);
        _h.Link(overlay, offer: 1024, request: 512);
        _h.Link(overlay, request: null, free: [K(64)]);
        // Itself: 512 free, asking 256; its leaves as linked.
        var expected = OfferSummaryTests.Of((K(512), K(256)), (K(128), K(256)), (K(1024), K(512)), (K(64), null));

        var sent = TickSummaries(overlay);
        Assert.Equal(ultrapeers.Select(u => u.Id).Order(), sent.Select(s => s.To).Order());
        Assert.All(sent, s => Assert.Equal(expected, s.Message.Summary));
        Assert.Empty(TickSummaries(overlay));

        // A leaf that has just granted its block away: the summary is sent again, without it, at
        // the next upkeep.
        Assert.Empty(Sent<OfferSummaryMessage>(overlay.Receive(leaf.Id, new DescriptorMessage(_h.DescriptorOf(leaf.Identity, free: [])))));
        sent = TickSummaries(overlay);
        Assert.Equal(2, sent.Length);
        Assert.All(sent, s => Assert.Equal(OfferSummaryTests.Of((K(512), K(256)), (K(1024), K(512)), (K(64), null)), s.Message.Summary));
        Assert.NotEqual(expected, sent[0].Message.Summary);
    }

    [Fact]
    public void AnOfferThatComesIsToldAtOnceAsFastAsTheUltrapeerAcceptsSummaries()
    {
        var overlay = _h.NewUltrapeer();
        var ultrapeer = _h.LinkUltrapeer(overlay);
        var leaf = _h.Link(overlay, offer: 4096, free: []);
        var before = Assert.Single(TickSummaries(overlay)).Message.Summary;
        Assert.False(before.Matches(K(2048), K(256)));

        // The leaf's partner left: its block is free again, and a query for it would find it now.
        var sent = Sent<OfferSummaryMessage>(overlay.Receive(leaf.Id, new DescriptorMessage(_h.DescriptorOf(leaf.Identity, offer: 4096, free: [K(4096)]))));
        Assert.Equal(ultrapeer.Id, Assert.Single(sent).To);
        Assert.True(sent[0].Message.Summary.Matches(K(2048), K(256)));

        // Sent at most as fast as the other side accepts them (half its rate): the rest wait for upkeep.
        var rate = new OverlayOptions().SummaryRate;
        int told = 0;
        for (int i = 0; i < 20; i++)
            told += Sent<OfferSummaryMessage>(overlay.Receive(leaf.Id, new DescriptorMessage(_h.DescriptorOf(leaf.Identity, offer: 4096, free: [K(16 << (i % 8))])))).Length;
        Assert.InRange(told, 0, rate.Burst / 2);
    }

    [Fact]
    public void ALeafSendsNoSummary()
    {
        var overlay = _h.NewOverlay();
        _h.PublishCapable(overlay);
        _h.LinkUltrapeer(overlay);
        Assert.Equal(OverlayRole.Leaf, overlay.Role);
        Assert.Empty(TickSummaries(overlay));
    }

    [Fact]
    public void AQueryEndingAtTheNextHopGoesOnlyToUltrapeersWhoseSummaryMatchesOrWhoSentNone()
    {
        var overlay = _h.NewUltrapeer();
        var from = _h.LinkUltrapeer(overlay);
        var matches = _h.LinkUltrapeer(overlay);
        var tooSmall = _h.LinkUltrapeer(overlay);
        var unknown = _h.LinkUltrapeer(overlay);
        overlay.Receive(matches.Id, new OfferSummaryMessage(OfferSummaryTests.Of((K(512), null))));
        overlay.Receive(tooSmall.Id, new OfferSummaryMessage(OfferSummaryTests.Of((K(128), null), (K(1024), K(1024)))));

        var lastHop = Sent<QueryMessage>(overlay.Receive(from.Id, Query(ttl: 2, wanted: 256, canGrant: 256)));
        Assert.Equal(new[] { matches.Id, unknown.Id }.Order(), lastHop.Select(f => f.To).Order());
        Assert.All(lastHop, f => Assert.Equal(1, f.Message.Ttl));

        // A query that goes on from the next hop is sent whatever the summary says.
        var further = Sent<QueryMessage>(overlay.Receive(from.Id, Query(ttl: 3, wanted: 256, canGrant: 256)));
        Assert.Equal(new[] { matches.Id, tooSmall.Id, unknown.Id }.Order(), further.Select(f => f.To).Order());
    }

    [Fact]
    public void ALastHopGoesToNoMoreMatchingUltrapeersThanTheQueryStillWantsDrawnAtRandom()
    {
        var overlay = _h.NewUltrapeer();
        var from = _h.LinkUltrapeer(overlay);
        var others = Enumerable.Range(0, 12).Select(_ => _h.LinkUltrapeer(overlay)).ToArray();
        foreach (var u in others) overlay.Receive(u.Id, new OfferSummaryMessage(OfferSummaryTests.Of((K(1024), null))));

        // We have nothing of 1024 ourselves, so the query still wants all 8.
        var seen = new HashSet<NodeId>();
        for (int i = 0; i < 5; i++)
        {
            var lastHop = Sent<QueryMessage>(overlay.Receive(from.Id, Query(ttl: 2, wanted: 1024, maxResults: 8)));
            Assert.Equal(8, lastHop.Select(f => f.To).Distinct().Count());
            Assert.All(lastHop, f => Assert.Contains(f.To, others.Select(u => u.Id)));
            seen.UnionWith(lastHop.Select(f => f.To));
        }
        Assert.True(seen.Count > 8, "the last hops are drawn anew for each query");

        // A query that goes on from the next hop goes to every ultrapeer.
        Assert.Equal(12, Sent<QueryMessage>(overlay.Receive(from.Id, Query(ttl: 3, wanted: 1024, maxResults: 8))).Length);
    }

    [Fact]
    public void AnUltrapeersOwnSearchAsksFirstOnlyUltrapeersWhoseSummaryMatches()
    {
        var overlay = _h.NewUltrapeer();
        var matches = _h.LinkUltrapeer(overlay);
        var nothing = _h.LinkUltrapeer(overlay);
        overlay.Receive(matches.Id, new OfferSummaryMessage(OfferSummaryTests.Of((K(256), K(16)))));
        overlay.Receive(nothing.Id, new OfferSummaryMessage(OfferSummary.Empty));

        var (_, actions) = overlay.Search(K(256), K(256));
        Assert.Equal([matches.Id], Sent<QueryMessage>(actions).Select(s => s.To));
    }
}
