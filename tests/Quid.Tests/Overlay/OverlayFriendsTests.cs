using Quid.Crypto;
using Quid.Overlay;
using Quid.Wire;
using static Quid.Tests.Overlay.OverlayHarness;

namespace Quid.Tests.Overlay;

/// <summary>Friends-only mode: links, queries, candidates and dials only among friends, and never an ultrapeer.</summary>
public sealed class OverlayFriendsTests : IDisposable
{
    private readonly OverlayHarness _h = new();
    private readonly NodeIdentity[] _friends;
    private readonly NodeIdentity[] _strangers;

    public OverlayFriendsTests()
    {
        _friends = [.. Enumerable.Range(0, 4).Select(_ => _h.NewIdentity())];
        _strangers = [.. Enumerable.Range(0, 4).Select(_ => _h.NewIdentity())];
    }

    public void Dispose() => _h.Dispose();

    private OverlayOptions FriendsOnly(OverlayOptions? options = null) =>
        (options ?? new OverlayOptions()) with { Friends = _friends.Select(f => f.Id).ToHashSet() };

    [Fact]
    public void AStrangerIsRefusedAsNotAFriendAndAFriendIsWelcome()
    {
        var overlay = _h.NewOverlay(FriendsOnly());
        Assert.True(overlay.FriendsOnly);
        Assert.All(_strangers, s => Assert.Equal(GoodbyeReason.NotAFriend, overlay.Refuse(s.Id)));
        Assert.All(_friends, f => Assert.Null(overlay.Refuse(f.Id)));
        Assert.False(_h.NewOverlay().FriendsOnly);
        Assert.Null(_h.NewOverlay().Refuse(_strangers[0].Id));
    }

    [Fact]
    public void ASearchGoesToEveryFriendWeAreLinkedToAndNoOneElse()
    {
        var overlay = _h.NewOverlay(FriendsOnly());
        // One friend calls itself an ultrapeer: in friends-only mode that does not narrow the search.
        var a = _h.Link(overlay, NodeRoles.Ultrapeer, free: [], identity: _friends[0]);
        var b = _h.Link(overlay, free: [], identity: _friends[1]);
        var (_, sent) = overlay.Search(K(256), K(256));
        Assert.Equal(new[] { a.Id, b.Id }.Order(), Sent<QueryMessage>(sent).Select(s => s.To).Order());
        Assert.All(Sent<QueryMessage>(sent), s => Assert.Contains(s.To, _friends.Select(f => f.Id)));
    }

    [Fact]
    public void AFriendsOnlyNodeAnswersAQueryButDoesNotPassItOn()
    {
        var overlay = _h.NewOverlay(FriendsOnly());
        overlay.Publish(_h.DescriptorOf(_h.Self));
        var a = _h.Link(overlay, NodeRoles.Ultrapeer, free: [], identity: _friends[0]);
        _h.Link(overlay, NodeRoles.Ultrapeer, free: [], identity: _friends[1]);
        var actions = overlay.Receive(a.Id, Query());
        Assert.Equal(a.Id, Assert.Single(Sent<QueryHitMessage>(actions)).To);
        Assert.Empty(Sent<QueryMessage>(actions));
    }

    [Fact]
    public void CandidatesAndResultsNeverNameAStrangerHoweverWeHearOfOne()
    {
        var overlay = _h.NewOverlay(FriendsOnly());
        var a = _h.Link(overlay, free: [], identity: _friends[0]);
        var b = _h.Link(overlay, identity: _friends[1]);
        var c = _h.DescriptorOf(_friends[2]);
        var strangers = _strangers.Select(s => _h.DescriptorOf(s)).ToArray();

        overlay.Receive(a.Id, new PeersMessage([strangers[0], c]));
        var (id, _) = overlay.Search(K(256), K(256));
        overlay.Receive(a.Id, new QueryHitMessage(id, [strangers[1], c, strangers[2]]));
        overlay.AddCachedPeers([new CachedPeer(_strangers[3].Id, _h.NextAddress(), _h.Now, 0, true)]);

        Assert.Equal(new[] { b.Id, c.Id }.Order(), OverlayHarness.Candidates(overlay, K(256), K(256)).Select(d => d.Id).Order());
        Assert.Equal(new[] { b.Id, c.Id }.Order(), overlay.Results(id).Select(d => d.Id).Order());
        Assert.All(_strangers, s => Assert.Null(overlay.Find(s.Id)));
        Assert.DoesNotContain(overlay.ExportPeers(), p => _strangers.Any(s => s.Id == p.Id));
    }

    [Fact]
    public void TickNeverDialsAStranger()
    {
        var options = FriendsOnly(new OverlayOptions { DialsPerTick = 8, RedialAfter = TimeSpan.FromSeconds(5) });
        var overlay = _h.NewOverlay(options);
        var a = _h.Link(overlay, identity: _friends[0]);
        overlay.Receive(a.Id, new PeersMessage([.. _strangers.Select(s => _h.DescriptorOf(s, roles: NodeRoles.Ultrapeer)), _h.DescriptorOf(_friends[1])]));
        overlay.AddCachedPeers([
            .. _strangers.Select(s => new CachedPeer(s.Id, _h.NextAddress(), _h.Now, 0, true)),
            new CachedPeer(_friends[2].Id, _h.NextAddress(), _h.Now, 0, false),
        ]);

        var dialed = new HashSet<NodeId>();
        for (int i = 0; i < 60; i++)
        {
            dialed.UnionWith(Dialed(overlay.Tick()));
            _h.Time.Advance(TimeSpan.FromSeconds(1));
        }
        Assert.Equal(new[] { _friends[1].Id, _friends[2].Id }.Order(), dialed.Order());
    }

    [Fact]
    public void AFriendsOnlyNodeNeverBecomesAnUltrapeer()
    {
        var options = Capable(FriendsOnly());
        var overlay = _h.NewOverlay(options);
        _h.PublishCapable(overlay, offer: 16384);
        _h.Link(overlay, identity: _friends[0]);
        for (int i = 0; i < 60; i++)
        {
            Assert.Empty(overlay.Tick().OfType<RoleChanged>());
            _h.Time.Advance(options.PromotionDelay / 4);
        }
        Assert.Equal(OverlayRole.Leaf, overlay.Role);
    }
}
