using Quid.Crypto;
using Quid.Overlay;
using Quid.Wire;
using static Quid.Tests.Overlay.OverlayHarness;

namespace Quid.Tests.Overlay;

/// <summary>
/// What keeps a loaded overlay working: queries and hits are dropped, never queued, on a link that
/// is too far behind (Gnutella's flow control).
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
}
