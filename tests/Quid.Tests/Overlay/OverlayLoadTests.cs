using Quid.Crypto;
using Quid.Overlay;
using Quid.Wire;
using static Quid.Tests.Overlay.OverlayHarness;

namespace Quid.Tests.Overlay;

/// <summary>
/// What keeps a loaded overlay working: queries and hits are dropped, never queued, on a link that
/// is too far behind (Gnutella's flow control), and an ultrapeer takes no more leaves than its
/// upload can serve queries for, so that a refused leaf promotes instead.
/// </summary>
public sealed class OverlayLoadTests : IDisposable
{
    private readonly OverlayHarness _h = new();
    /// <summary>How far behind each link is, as a host would say; a link not listed is not behind at all.</summary>
    private readonly Dictionary<NodeId, TimeSpan> _backlog = [];

    public void Dispose() => _h.Dispose();

    private TimeSpan Backlog(NodeId neighbour) => _backlog.GetValueOrDefault(neighbour);

    [Fact]
    public void AnUltrapeerForwardsAQueryOnlyOnLinksAtMostMaxQueryBacklogBehindAndCountsTheRestAsDropped()
    {
        var overlay = _h.NewUltrapeer(linkBacklog: Backlog);
        var idle = _h.LinkUltrapeer(overlay);
        var atTheLimit = _h.LinkUltrapeer(overlay);
        var behind = _h.LinkUltrapeer(overlay);
        var leaf = _h.Link(overlay, free: []);
        _backlog[atTheLimit.Id] = new OverlayOptions().MaxQueryBacklog;
        _backlog[behind.Id] = new OverlayOptions().MaxQueryBacklog + TimeSpan.FromMilliseconds(1);

        var forwarded = Sent<QueryMessage>(overlay.Receive(leaf.Id, Query(canGrant: 16)));

        Assert.Equal(new[] { idle.Id, atTheLimit.Id }.Order(), forwarded.Select(f => f.To).Order());
        Assert.Equal(1, overlay.QueriesDropped);
        Assert.Equal(0, overlay.HitsDropped);
    }

    [Fact]
    public void AHitForALinkThatIsBehindIsDroppedWhetherItIsOurAnswerOrOneWeRouteBack()
    {
        var overlay = _h.NewUltrapeer(linkBacklog: Backlog);
        var other = _h.LinkUltrapeer(overlay);
        var leaf = _h.Link(overlay, free: []);
        _backlog[leaf.Id] = TimeSpan.FromSeconds(5);

        // Our own offer matches: the answer would go back to the leaf, whose link is behind.
        var query = Query();
        var actions = overlay.Receive(leaf.Id, query);
        Assert.Empty(Sent<QueryHitMessage>(actions));
        Assert.Single(Sent<QueryMessage>(actions));
        Assert.Equal(1, overlay.HitsDropped);

        // The other ultrapeer's hit for the same query goes the same way: dropped too.
        var found = _h.DescriptorOf(_h.NewIdentity());
        Assert.Empty(Sent<QueryHitMessage>(overlay.Receive(other.Id, new QueryHitMessage(query.Id, [found]))));
        Assert.Equal(2, overlay.HitsDropped);

        // Once the link has caught up, hits go again.
        _backlog[leaf.Id] = TimeSpan.Zero;
        Assert.Single(Sent<QueryHitMessage>(overlay.Receive(other.Id, new QueryHitMessage(query.Id, [_h.DescriptorOf(_h.NewIdentity())]))));
        Assert.Equal(2, overlay.HitsDropped);
    }

    [Fact]
    public void OurOwnSearchSkipsAnUltrapeerWhoseLinkIsBehind()
    {
        var overlay = _h.NewOverlay(linkBacklog: Backlog);
        var ultrapeers = new[] { _h.LinkUltrapeer(overlay), _h.LinkUltrapeer(overlay), _h.LinkUltrapeer(overlay) };
        _backlog[ultrapeers[1].Id] = TimeSpan.FromSeconds(30);

        var (_, actions) = overlay.Search(K(256), K(256));

        Assert.Equal(new[] { ultrapeers[0].Id, ultrapeers[2].Id }.Order(), Sent<QueryMessage>(actions).Select(s => s.To).Order());
        Assert.Equal(1, overlay.QueriesDropped);
    }

    public static TheoryData<long, int> Offers() => new()
    {
        // offer (kbps), leaves its upload serves queries for with the default options
        { 256, 5 },
        { 512, 11 },
        { 2048, 44 },
    };

    [Theory]
    [MemberData(nameof(Offers))]
    public void AnUltrapeerTakesAsManyLeavesAsItsOfferServesQueriesForButStillLetsUltrapeersIn(long offer, int leaves)
    {
        var overlay = _h.NewUltrapeer();
        _h.PublishCapable(overlay, offer: offer);
        Assert.Equal(leaves, overlay.MaxLeaves);
        for (int i = 0; i < leaves; i++)
        {
            var leaf = _h.NewIdentity();
            Assert.Null(overlay.Refuse(leaf.Id));
            _h.Link(overlay, identity: leaf);
        }

        Assert.Equal(GoodbyeReason.Full, overlay.Refuse(_h.NewIdentity().Id));
        // Another ultrapeer is not a leaf to serve: the flood among ultrapeers needs it.
        var ultrapeer = _h.NewIdentity();
        overlay.AddCachedPeers([new CachedPeer(ultrapeer.Id, _h.NextAddress(), _h.Now, 0, Ultrapeer: true)]);
        Assert.Null(overlay.Refuse(ultrapeer.Id));
    }

    [Fact]
    public void ALargeOfferIsStillHeldToMaxUltrapeerNeighbours()
    {
        var overlay = _h.NewUltrapeer();
        _h.PublishCapable(overlay, offer: 16384);
        Assert.Equal(new OverlayOptions().MaxUltrapeerNeighbours, overlay.MaxLeaves);
    }

    [Fact]
    public void ALeafEveryUltrapeerRefusesForHavingAllTheLeavesItCanServePromotes()
    {
        var options = Capable(new OverlayOptions { PromotionDelay = TimeSpan.FromSeconds(30) });
        // Three ultrapeers with the smallest offer an ultrapeer may have, each serving all the leaves it can.
        var ultrapeers = Enumerable.Range(0, options.LeafUltrapeers).Select(i =>
        {
            var identity = _h.NewIdentity();
            var overlay = _h.NewUltrapeer(options, identity, seed: 20 + i);
            _h.PublishCapable(overlay, identity, offer: options.UltrapeerMinOffer.Kbps);
            for (int leaf = 0; leaf < 5; leaf++) _h.Link(overlay);
            return (Identity: identity, Overlay: overlay, Address: _h.NextAddress());
        }).ToArray();

        var leafIdentity = _h.NewIdentity();
        var leaf = _h.NewOverlay(options, leafIdentity, seed: 3);
        _h.PublishCapable(leaf, leafIdentity, offer: 1024);
        leaf.AddCachedPeers([.. ultrapeers.Select(u => new CachedPeer(u.Identity.Id, u.Address, _h.Now, 0, Ultrapeer: true))]);

        // The leaf dials each ultrapeer as it comes up; each refuses it as full, as a host would
        // carry it out: the link comes up, the goodbye arrives, the link goes down.
        bool promoted = false;
        for (int second = 0; second < 10 * options.PromotionDelay.TotalSeconds && !promoted; second++)
        {
            var actions = leaf.Tick();
            promoted = actions.OfType<RoleChanged>().Any(r => r.Roles == NodeRoles.Ultrapeer);
            foreach (var dial in actions.OfType<DialPeer>())
            {
                var ultrapeer = ultrapeers.Single(u => u.Identity.Id == dial.Id);
                Assert.Equal(GoodbyeReason.Full, ultrapeer.Overlay.Refuse(leafIdentity.Id));
                leaf.LinkUp(ultrapeer.Identity.Id, inbound: false, dial.Address);
                leaf.Farewell(ultrapeer.Identity.Id, GoodbyeReason.Full);
                leaf.LinkDown(ultrapeer.Identity.Id);
            }
            _h.Time.Advance(TimeSpan.FromSeconds(1));
        }
        Assert.True(promoted, "the refused leaf never promoted");
        Assert.Equal(OverlayRole.Ultrapeer, leaf.Role);
    }
}
