using Quid.Crypto;
using Quid.Overlay;
using Quid.Wire;
using static Quid.Tests.Overlay.OverlayHarness;

namespace Quid.Tests.Overlay;

/// <summary>Flooded offer queries: answers, TTL, duplicate suppression, routing hits back, our own searches.</summary>
public sealed class OverlayQueryTests : IDisposable
{
    private readonly OverlayHarness _h = new();

    public void Dispose() => _h.Dispose();

    /// <summary>
    /// An ultrapeer with three ultrapeer neighbours (which never match) and three leaves: one
    /// that matches a query for 256 from a node that can grant 256, one with too little free,
    /// one whose own request is too big to grant.
    /// </summary>
    private sealed record Star(Quid.Overlay.Overlay Overlay, Peer[] Ultrapeers, Peer Matching, Peer TooSmall, Peer WantsTooMuch);

    private Star NewStar(OverlayOptions? options = null)
    {
        var overlay = _h.NewUltrapeer(options);
        var ultrapeers = new[] { _h.LinkUltrapeer(overlay), _h.LinkUltrapeer(overlay), _h.LinkUltrapeer(overlay) };
        var matching = _h.Link(overlay);
        var tooSmall = _h.Link(overlay, free: [K(128)]);
        var wantsTooMuch = _h.Link(overlay, offer: 1024, request: 512);
        return new Star(overlay, ultrapeers, matching, tooSmall, wantsTooMuch);
    }

    public static TheoryData<long[], long?, long, long?, bool> MatchCases() => new()
    {
        // free blocks, their request, wanted, we can grant, matches
        { [512], 256, 256, 256, true },
        { [256], 256, 256, 256, true },
        { [128, 64], 256, 256, 256, false },
        { [], 256, 16, 256, false },
        { [512], 512, 256, 256, false },
        { [512], 256, 256, null, false },
        { [512], null, 256, null, true },
        { [512], null, 256, 16, true },
    };

    [Theory]
    [MemberData(nameof(MatchCases))]
    public void MatchesWantsAFreeBlockAtLeastTheWantedAndARequestThatFitsWhatWeCanGrant(long[] free, long? request, long wanted, long? canGrant, bool matches)
    {
        var d = _h.DescriptorOf(_h.NewIdentity(), offer: 1024, request: request, free: [.. free.Select(K)]);
        Assert.Equal(matches, Quid.Overlay.Overlay.Matches(d, K(wanted), canGrant is { } c ? K(c) : null));
    }

    [Fact]
    public void AnUltrapeerAnswersForItselfAndItsMatchingLeavesAndForwardsToItsOtherUltrapeersWithOneLessTtl()
    {
        var star = NewStar();
        var from = star.Ultrapeers[0];
        var query = Query(ttl: 4, maxResults: 8);

        var actions = star.Overlay.Receive(from.Id, query);

        var (to, hit) = Assert.Single(Sent<QueryHitMessage>(actions));
        Assert.Equal(from.Id, to);
        Assert.Equal(query.Id, hit.Query);
        Assert.Equal(new[] { _h.Self.Id, star.Matching.Id }.Order(), hit.Descriptors.Select(d => d.Id).Order());

        var forwards = Sent<QueryMessage>(actions);
        Assert.Equal(new[] { star.Ultrapeers[1].Id, star.Ultrapeers[2].Id }.Order(), forwards.Select(f => f.To).Order());
        Assert.All(forwards, f =>
        {
            Assert.Equal(query.Id, f.Message.Id);
            Assert.Equal(3, f.Message.Ttl);
            Assert.Equal(1, f.Message.Hops);
            Assert.Equal(query.Wanted, f.Message.Wanted);
            Assert.Equal(query.CanGrant, f.Message.CanGrant);
            Assert.Equal(6, f.Message.MaxResults);
        });
        Assert.Empty(actions.OfType<MessageRejected>());
    }

    [Fact]
    public void AQueryFromALeafIsAnsweredWithoutItsOwnDescriptorAndForwardedToEveryUltrapeer()
    {
        var star = NewStar();
        var actions = star.Overlay.Receive(star.Matching.Id, Query());
        var (to, hit) = Assert.Single(Sent<QueryHitMessage>(actions));
        Assert.Equal(star.Matching.Id, to);
        Assert.Equal([_h.Self.Id], hit.Descriptors.Select(d => d.Id));
        Assert.Equal(star.Ultrapeers.Select(u => u.Id).Order(), Sent<QueryMessage>(actions).Select(f => f.To).Order());
    }

    [Fact]
    public void ATtlAboveOursIsCutToOursWhenForwarded()
    {
        var star = NewStar(new OverlayOptions { QueryTtl = 3 });
        var forwards = Sent<QueryMessage>(star.Overlay.Receive(star.Ultrapeers[0].Id, Query(ttl: QueryMessage.MaxTtl)));
        Assert.Equal(2, forwards.Length);
        Assert.All(forwards, f => Assert.Equal(3, f.Message.Ttl));
    }

    [Fact]
    public void ADuplicateQueryIdIsDroppedWhetherReplayedOrCopiedByAnotherPath()
    {
        var star = NewStar();
        var query = Query();
        Assert.NotEmpty(star.Overlay.Receive(star.Ultrapeers[0].Id, query));

        _h.Time.Advance(TimeSpan.FromSeconds(5));
        Assert.Empty(star.Overlay.Receive(star.Ultrapeers[0].Id, query));
        Assert.Empty(star.Overlay.Receive(star.Ultrapeers[1].Id, query with { Ttl = 2, Hops = 2 }));
        Assert.Empty(star.Overlay.Receive(star.Matching.Id, query));

        // A different id with the same question is a new query.
        Assert.NotEmpty(Sent<QueryHitMessage>(star.Overlay.Receive(star.Ultrapeers[1].Id, query with { Id = QueryId.New() })));
    }

    [Fact]
    public void AWiderCopyOfAQueryIsPassedOnButNotAnsweredAgainAndANarrowerOneIsDropped()
    {
        var star = NewStar();
        var query = Query(ttl: 1);
        var first = star.Overlay.Receive(star.Ultrapeers[0].Id, query);
        Assert.NotEmpty(Sent<QueryHitMessage>(first));
        Assert.Empty(Sent<QueryMessage>(first));

        // Its searcher widened it: on to the other ultrapeers with one less TTL, and no second answer.
        var wider = star.Overlay.Receive(star.Ultrapeers[0].Id, query with { Ttl = 3 });
        Assert.Empty(Sent<QueryHitMessage>(wider));
        Assert.Equal(new[] { star.Ultrapeers[1].Id, star.Ultrapeers[2].Id }.Order(), Sent<QueryMessage>(wider).Select(s => s.To).Order());
        Assert.All(Sent<QueryMessage>(wider), s => Assert.Equal(2, s.Message.Ttl));

        // As wide or narrower than what went on already, from anyone: a copy.
        Assert.Empty(star.Overlay.Receive(star.Ultrapeers[1].Id, query with { Ttl = 3 }));
        Assert.Empty(star.Overlay.Receive(star.Ultrapeers[0].Id, query with { Ttl = 2 }));
        // A hit for it still goes back the first way it came.
        var hit = star.Overlay.Receive(star.Ultrapeers[1].Id, new QueryHitMessage(query.Id, [_h.DescriptorOf(_h.NewIdentity())]));
        Assert.Equal(star.Ultrapeers[0].Id, Assert.Single(Sent<QueryHitMessage>(hit)).To);
    }

    [Fact]
    public void OurSearchWidensASecondLaterThroughAllItsUltrapeersAtOnceAndStopsOnceItFoundEnough()
    {
        var overlay = _h.NewOverlay();
        overlay.Publish(_h.DescriptorOf(_h.Self));
        var ultrapeers = new[] { _h.LinkUltrapeer(overlay), _h.LinkUltrapeer(overlay), _h.LinkUltrapeer(overlay) };
        var interval = new OverlayOptions().SearchStepInterval;
        var (id, sent) = overlay.Search(K(256), K(256));
        Assert.Equal(ultrapeers.Select(u => u.Id).Order(), Sent<QueryMessage>(sent).Select(s => s.To).Order());

        // Nothing found: TTL 2 through every ultrapeer at once, a step later, and no further.
        Assert.Empty(Sent<QueryMessage>(overlay.Tick())); // not due yet
        _h.Time.Advance(interval);
        var second = Sent<QueryMessage>(overlay.Tick());
        Assert.Equal(ultrapeers.Select(u => u.Id).Order(), second.Select(s => s.To).Order());
        Assert.All(second, s => Assert.Equal((id, (byte)2), (s.Message.Id, s.Message.Ttl)));
        for (int i = 0; i < 5; i++)
        {
            _h.Time.Advance(interval);
            Assert.Empty(Sent<QueryMessage>(overlay.Tick()));
        }
        Assert.All(Sent<QueryMessage>(sent), s => Assert.Equal(id, s.Message.Id));

        // A search that found as many as it asks for after its first step goes no further.
        var (found, _) = overlay.Search(K(256), K(256));
        var offers = Enumerable.Range(0, new OverlayOptions().MaxResults).Select(_ => _h.DescriptorOf(_h.NewIdentity())).ToArray();
        overlay.Receive(ultrapeers[0].Id, new QueryHitMessage(found, offers));
        _h.Time.Advance(interval);
        Assert.Empty(Sent<QueryMessage>(overlay.Tick()));
    }

    [Fact]
    public void OurOwnQueryComingBackByAnotherPathIsDropped()
    {
        var star = NewStar();
        var (id, sent) = star.Overlay.Search(K(256), K(256));
        var (_, query) = Sent<QueryMessage>(sent)[0];
        Assert.Empty(star.Overlay.Receive(star.Ultrapeers[2].Id, query with { Ttl = 1, Hops = 2 }));
        Assert.Equal(id, query.Id);
    }

    [Fact]
    public void AQueryWithTtlOneIsAnsweredButNotForwarded()
    {
        var star = NewStar();
        var actions = star.Overlay.Receive(star.Ultrapeers[0].Id, Query(ttl: 1));
        Assert.Equal(2, Assert.Single(Sent<QueryHitMessage>(actions)).Message.Descriptors.Count);
        Assert.Empty(Sent<QueryMessage>(actions));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void AQueryThatGotAllItsResultsHereIsNotForwarded(byte maxResults)
    {
        var star = NewStar();
        var actions = star.Overlay.Receive(star.Ultrapeers[0].Id, Query(maxResults: maxResults));
        Assert.Equal(maxResults, Assert.Single(Sent<QueryHitMessage>(actions)).Message.Descriptors.Count);
        Assert.Empty(Sent<QueryMessage>(actions));
    }

    [Fact]
    public void ALeafAnswersForItselfButNeverForwardsNorAnswersForItsNeighbours()
    {
        var overlay = _h.NewOverlay();
        var own = _h.DescriptorOf(_h.Self);
        overlay.Publish(own);
        var ultrapeers = new[] { _h.LinkUltrapeer(overlay), _h.LinkUltrapeer(overlay) };
        var otherLeaf = _h.Link(overlay);
        Assert.Equal(OverlayRole.Leaf, overlay.Role);

        var actions = overlay.Receive(ultrapeers[0].Id, Query(ttl: 4));
        var (to, hit) = Assert.Single(Sent<QueryHitMessage>(actions));
        Assert.Equal(ultrapeers[0].Id, to);
        Assert.Same(own, Assert.Single(hit.Descriptors));
        Assert.Empty(Sent<QueryMessage>(actions));
        Assert.DoesNotContain(otherLeaf.Id, hit.Descriptors.Select(d => d.Id));

        // Not matching: no hit at all, and still nothing forwarded.
        Assert.Empty(overlay.Receive(ultrapeers[1].Id, Query(wanted: 1024)));
    }

    [Fact]
    public void AnOfferThatCannotBeDialedIsNamedInNoHitNeitherByItsUltrapeerNorByItself()
    {
        // Behind a NAT a node trades only with those linked to it, and they know its offer already.
        var star = NewStar();
        var natted = _h.NewIdentity();
        var descriptor = _h.DescriptorOf(natted, address: false);
        star.Overlay.LinkUp(natted.Id, inbound: true, _h.NextAddress());
        Assert.Empty(star.Overlay.Receive(natted.Id, new DescriptorMessage(descriptor)).OfType<MessageRejected>());
        Assert.Same(descriptor, star.Overlay.Find(natted.Id));

        var (_, hit) = Assert.Single(Sent<QueryHitMessage>(star.Overlay.Receive(star.Ultrapeers[0].Id, Query())));
        Assert.Contains(star.Matching.Id, hit.Descriptors.Select(d => d.Id));
        Assert.DoesNotContain(natted.Id, hit.Descriptors.Select(d => d.Id));

        var leaf = _h.NewOverlay();
        leaf.Publish(_h.DescriptorOf(_h.Self, address: false));
        var ultrapeer = _h.LinkUltrapeer(leaf);
        Assert.Empty(Sent<QueryHitMessage>(leaf.Receive(ultrapeer.Id, Query())));
    }

    [Fact]
    public void AHitForAQueryNeverRoutedThroughUsIsUnknownQuery()
    {
        var star = NewStar();
        var from = star.Ultrapeers[0];
        var actions = star.Overlay.Receive(from.Id, new QueryHitMessage(QueryId.New(), [_h.DescriptorOf(_h.NewIdentity())]));
        var rejected = Assert.Single(actions.OfType<MessageRejected>());
        Assert.Equal(OverlayError.UnknownQuery, rejected.Error);
        Assert.Equal(from.Id, rejected.From);
        Assert.Empty(actions.OfType<SendOverlayMessage>());
    }

    [Fact]
    public void AHitFromTheNeighbourTheQueryCameFromIsUnknownQuery()
    {
        var star = NewStar();
        var query = Query();
        star.Overlay.Receive(star.Ultrapeers[0].Id, query);
        var actions = star.Overlay.Receive(star.Ultrapeers[0].Id, new QueryHitMessage(query.Id, [_h.DescriptorOf(_h.NewIdentity())]));
        Assert.Equal(OverlayError.UnknownQuery, Assert.Single(actions.OfType<MessageRejected>()).Error);
        Assert.Empty(actions.OfType<SendOverlayMessage>());
    }

    [Fact]
    public void AHitGoesBackToTheNeighbourTheQueryCameFromWithoutItsInvalidDescriptors()
    {
        var star = NewStar();
        var query = Query();
        star.Overlay.Receive(star.Matching.Id, query);
        var good = _h.DescriptorOf(_h.NewIdentity());
        var expired = _h.DescriptorOf(_h.NewIdentity(), age: TimeSpan.FromHours(2));
        var future = _h.DescriptorOf(_h.NewIdentity(), age: -TimeSpan.FromHours(1));

        var actions = star.Overlay.Receive(star.Ultrapeers[1].Id, new QueryHitMessage(query.Id, [expired, good, future]));

        var (to, hit) = Assert.Single(Sent<QueryHitMessage>(actions));
        Assert.Equal(star.Matching.Id, to);
        Assert.Equal(query.Id, hit.Query);
        Assert.Same(good, Assert.Single(hit.Descriptors));
        // A third party's bad descriptor is dropped without blaming the neighbour that relayed it, as in gossip.
        Assert.Empty(actions.OfType<MessageRejected>());

        // Only invalid ones: nothing goes back at all.
        var none = star.Overlay.Receive(star.Ultrapeers[2].Id, new QueryHitMessage(query.Id, [expired]));
        Assert.Empty(none.OfType<SendOverlayMessage>());
    }

    [Fact]
    public void HitsForOurSearchAreItsResultsAndCandidatesAndDoNotPolluteAnotherSearch()
    {
        var overlay = _h.NewOverlay();
        overlay.Publish(_h.DescriptorOf(_h.Self));
        var ultrapeers = new[] { _h.LinkUltrapeer(overlay), _h.LinkUltrapeer(overlay) };
        _h.Link(overlay, free: [K(16)]); // a leaf neighbour that matches nothing below

        var (first, sentFirst) = overlay.Search(K(256), K(256));
        // A leaf with ultrapeers asks them only.
        Assert.Equal(ultrapeers.Select(u => u.Id).Order(), Sent<QueryMessage>(sentFirst).Select(s => s.To).Order());
        var query = Sent<QueryMessage>(sentFirst)[0].Message;
        Assert.Equal(first, query.Id);
        // Dynamic querying: the first step asks the ultrapeers themselves, TTL 1.
        Assert.Equal(1, query.Ttl);
        Assert.Equal(new OverlayOptions().MaxResults, query.MaxResults);
        Assert.Empty(overlay.Results(first));

        var a = _h.DescriptorOf(_h.NewIdentity());
        var b = _h.DescriptorOf(_h.NewIdentity(), offer: 1024, free: [K(1024)]);
        var fromAnother = _h.DescriptorOf(_h.NewIdentity());
        // Each batch of hits for our own search tells the node to match at once.
        Assert.Equal([new OffersFound(first)], overlay.Receive(ultrapeers[0].Id, new QueryHitMessage(first, [a])));
        Assert.Equal([new OffersFound(first)], overlay.Receive(ultrapeers[1].Id, new QueryHitMessage(first, [b])));

        var (second, _) = overlay.Search(K(256), K(256));
        Assert.Equal([new OffersFound(second)], overlay.Receive(ultrapeers[0].Id, new QueryHitMessage(second, [fromAnother])));

        Assert.Equal(new[] { a.Id, b.Id }.Order(), overlay.Results(first).Select(d => d.Id).Order());
        Assert.Equal([fromAnother.Id], overlay.Results(second).Select(d => d.Id));
        Assert.Empty(overlay.Results(QueryId.New()));

        Assert.Equal(new[] { a.Id, b.Id, fromAnother.Id }.Order(), OverlayHarness.Candidates(overlay, K(256), K(256)).Select(d => d.Id).Order());
        Assert.Equal([b.Id], OverlayHarness.Candidates(overlay, K(1024), K(256)).Select(d => d.Id));
        Assert.Equal(3, overlay.SearchResultCount);
    }

    [Fact]
    public void MatchingNeighboursAreResultsAtOnceAndOurselvesNever()
    {
        var overlay = _h.NewOverlay();
        overlay.Publish(_h.DescriptorOf(_h.Self));
        var ultrapeer = _h.Link(overlay, NodeRoles.Ultrapeer);
        var (id, _) = overlay.Search(K(256), K(256));
        Assert.Equal([ultrapeer.Id], overlay.Results(id).Select(d => d.Id));
        // A hit naming us is not a result: we cannot trade with ourselves.
        overlay.Receive(ultrapeer.Id, new QueryHitMessage(id, [_h.DescriptorOf(_h.Self)]));
        Assert.DoesNotContain(_h.Self.Id, overlay.Results(id).Select(d => d.Id));
        Assert.DoesNotContain(_h.Self.Id, OverlayHarness.Candidates(overlay, K(256), K(256)).Select(d => d.Id));
    }

    [Fact]
    public void ANodeWithoutUltrapeersAsksEveryNeighbourOnceAsLeavesPassNothingOn()
    {
        var overlay = _h.NewOverlay();
        var leaves = new[] { _h.Link(overlay, free: []), _h.Link(overlay, free: []) };
        var (_, sent) = overlay.Search(K(256), K(256));
        Assert.Equal(leaves.Select(l => l.Id).Order(), Sent<QueryMessage>(sent).Select(s => s.To).Order());
        Assert.All(Sent<QueryMessage>(sent), s => Assert.Equal(1, s.Message.Ttl));
        for (int i = 0; i < 5; i++)
        {
            _h.Time.Advance(new OverlayOptions().SearchStepInterval);
            Assert.Empty(Sent<QueryMessage>(overlay.Tick()));
        }
    }

    public static TheoryData<byte, byte> BadQueryFields() => new()
    {
        { 0, 8 },
        { QueryMessage.MaxTtl + 1, 8 },
        { 255, 8 },
        { 4, 0 },
        { 4, QueryMessage.MaxResultsLimit + 1 },
        { 4, 255 },
    };

    [Theory]
    [MemberData(nameof(BadQueryFields))]
    public void AQueryWithABadTtlOrResultCountIsRefusedByTheCodec(byte ttl, byte maxResults)
    {
        byte[] bytes = ControlCodec.Encode(Query(ttl: ttl, maxResults: maxResults));
        Assert.Equal(WireError.BadField, Assert.Throws<WireException>(() => ControlCodec.Decode(bytes)).Error);
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(QueryMessage.MaxTtl, QueryMessage.MaxResultsLimit)]
    public void AQueryAtTheLimitsDecodes(byte ttl, byte maxResults)
    {
        var query = Query(ttl: ttl, maxResults: maxResults);
        Assert.Equal(query, ControlCodec.Decode(ControlCodec.Encode(query)));
    }
}
