using System.Net;
using Microsoft.Extensions.Time.Testing;
using Quid.Crypto;
using Quid.Exchange;
using Quid.Tests.Wire;
using Quid.Wire;

namespace Quid.Tests.Exchange;

public sealed class MarketTests : IDisposable
{
    // No trial: these tests are about other rules; the trial has tests of its own.
    private static readonly MarketOptions Options = new() { ProposalTimeout = TimeSpan.FromSeconds(10), RejectionCooldown = TimeSpan.FromSeconds(60), TrialOrders = 0 };

    private readonly FakeTimeProvider _time = new(TestDescriptors.Epoch);
    private readonly List<NodeIdentity> _identities = [];

    public void Dispose()
    {
        foreach (var identity in _identities) identity.Dispose();
    }

    private static Block K(long kbps) => Block.FromKbps(kbps);

    /// <summary>Candidates as the overlay hands them to the market: each descriptor with its node id.</summary>
    private static (NodeId Id, Descriptor Descriptor)[] Offers(params Descriptor[] descriptors) => [.. descriptors.Select(d => (d.Id, d))];

    /// <summary>One node's market, its identity, and a descriptor of its current state.</summary>
    private sealed record Node(NodeIdentity Identity, Market Market, FakeTimeProvider Time)
    {
        public NodeId Id => Identity.Id;

        public Descriptor Descriptor() => TestDescriptors.Make(
            Identity, Market.Offer, Market.Request, free: Market.Capacity.FreeBlocks, published: Time.GetUtcNow());
    }

    private Node NewNode(long offer, long? request, FakeTimeProvider? time = null, int seed = 1, MarketOptions? options = null, Func<NodeId, long?>? offerOf = null)
    {
        var identity = NodeIdentity.Generate(out _);
        _identities.Add(identity);
        var clock = time ?? _time;
        var market = new Market(identity, K(offer), request is { } r ? K(r) : null, clock, (options ?? Options) with { Random = new Random(seed) }, offerOf: offerOf);
        return new Node(identity, market, clock);
    }

    /// <summary>Delivers a message over a link from <paramref name="from"/>: through the codec, with the key the link proved.</summary>
    private static IReadOnlyList<MarketAction> Deliver(Node from, Node to, ControlMessage message) =>
        to.Market.Receive(from.Id, from.Identity.SigningPublicKey, ControlCodec.Decode(ControlCodec.Encode(message)));

    private static T Sent<T>(IReadOnlyList<MarketAction> actions, Node to) where T : ControlMessage
    {
        var send = Assert.Single(actions.OfType<SendMarketMessage>());
        Assert.Equal(to.Id, send.To);
        return Assert.IsType<T>(send.Message);
    }

    private static AgreementProposal Propose(Node from, Node to, Block? proposerGrants, Block? acceptorGrants, DateTimeOffset start)
    {
        var terms = AgreementTerms.Create(from.Id, to.Id, proposerGrants, acceptorGrants, start);
        return new AgreementProposal(terms, from.Identity.Sign(terms.SignedMessage()));
    }

    /// <summary>A searches with B as the only candidate, B accepts, A learns of it; returns the agreement id.</summary>
    private static AgreementId Agree(Node a, Node b)
    {
        var proposal = Sent<AgreementProposal>(a.Market.Search(Offers(b.Descriptor()), _ => true), b);
        var replies = Deliver(a, b, proposal);
        var acceptance = Sent<AgreementAcceptance>(replies, a);
        Assert.Single(replies.OfType<AgreementFormed>());
        Assert.Single(Deliver(b, a, acceptance).OfType<AgreementFormed>());
        return proposal.Terms.Id;
    }

    [Fact]
    public void ASearchProposalAndAcceptanceGiveBothSidesOneActiveAgreement()
    {
        var a = NewNode(512, 256);
        var b = NewNode(512, 256);

        var proposal = Sent<AgreementProposal>(a.Market.Search(Offers(b.Descriptor()), _ => true), b);
        Assert.Equal(a.Id, proposal.Terms.Proposer);
        Assert.Equal(b.Id, proposal.Terms.Acceptor);
        Assert.Equal(K(256), proposal.Terms.ProposerGrants);
        Assert.Equal(K(256), proposal.Terms.AcceptorGrants);
        Assert.Equal(_time.GetUtcNow(), proposal.Terms.Start);
        Assert.True(NodeIdentity.Verify(a.Identity.SigningPublicKey, proposal.Terms.SignedMessage(), proposal.ProposerSignature));
        // The proposer reserves what it would grant, so it cannot promise the same block twice.
        Assert.Equal(256, a.Market.Capacity.GrantedKbps);
        Assert.Empty(a.Market.Active);
        Assert.False(a.Market.RequestMet);

        var replies = Deliver(a, b, proposal);
        var acceptance = Sent<AgreementAcceptance>(replies, a);
        var formedAtB = Assert.Single(replies.OfType<AgreementFormed>()).Agreement;
        Assert.Equal(proposal.Terms.Id, acceptance.Agreement);
        Assert.True(NodeIdentity.Verify(b.Identity.SigningPublicKey, proposal.Terms.SignedMessage(), acceptance.AcceptorSignature));

        var formedAtA = Assert.Single(Deliver(b, a, acceptance).OfType<AgreementFormed>()).Agreement;

        foreach (var (node, agreement, partner, weProposed) in new[] { (a, formedAtA, b, true), (b, formedAtB, a, false) })
        {
            Assert.Same(agreement, Assert.Single(node.Market.Active));
            Assert.Equal(AgreementState.Active, agreement.State);
            Assert.Equal(proposal.Terms.Id, agreement.Id);
            Assert.Equal(partner.Id, agreement.Partner);
            Assert.Equal(weProposed, agreement.WeProposed);
            Assert.Equal(K(256), agreement.WeGrant);
            Assert.Equal(K(256), agreement.TheyGrant);
            Assert.Equal(acceptance.AcceptorSignature, agreement.AcceptorSignature);
            Assert.Equal(proposal.ProposerSignature, agreement.ProposerSignature);
            // The grant comes out of the buddy allocator: 256 of 512 granted, one 256 block free.
            Assert.Equal(256, node.Market.Capacity.GrantedKbps);
            Assert.Equal([K(256)], node.Market.Capacity.FreeBlocks);
            Assert.Equal(256, node.Market.GrantedTo(partner.Id));
            Assert.Equal(256, node.Market.GrantedBy(partner.Id));
            Assert.Equal(256, node.Market.ReceivedKbps);
            Assert.True(node.Market.RequestMet);
        }
        Assert.NotNull(formedAtA.OurAllocation);
    }

    [Fact]
    public void ANodeWhoseRequestIsMetDoesNotSearchAgain()
    {
        var a = NewNode(512, 256);
        var b = NewNode(512, 256);
        var c = NewNode(1024, 16);
        Agree(a, b);
        Assert.True(a.Market.RequestMet);
        _time.Advance(TimeSpan.FromMinutes(10));
        Assert.Empty(a.Market.Search(Offers(c.Descriptor(), b.Descriptor()), _ => true));
        Assert.Equal(256, a.Market.Capacity.GrantedKbps);
    }

    [Fact]
    public void OnlyOneProposalIsOutAtATimeForOnePartnerWanted()
    {
        var a = NewNode(512, 256);
        var b = NewNode(512, 256);
        var c = NewNode(512, 256);
        Sent<AgreementProposal>(a.Market.Search(Offers(b.Descriptor()), _ => true), b);
        Assert.Empty(a.Market.Search(Offers(c.Descriptor()), _ => true));
        Assert.Equal(256, a.Market.Capacity.GrantedKbps);
    }

    [Fact]
    public void ANodeWantingSeveralPartnersProposesToAsManyAtOnceEachHoldingItsOwnReservation()
    {
        var identity = NodeIdentity.Generate(out _);
        _identities.Add(identity);
        var a = new Node(identity, new Market(identity, K(1024), K(64), _time, Options with { PartnersWanted = 4, Random = new Random(1) }), _time);
        var others = Enumerable.Range(0, 6).Select(i => NewNode(512, 64, seed: i)).ToList();

        var proposals = a.Market.Search(Offers([.. others.Select(o => o.Descriptor())]), _ => true).OfType<SendMarketMessage>().ToList();
        Assert.Equal(4, proposals.Count);
        Assert.Equal(4, proposals.Select(p => p.To).Distinct().Count());
        Assert.Equal(4 * 64, a.Market.Capacity.GrantedKbps);
        // Its first agreement is private (its own circuits start there), the rest public (others' go on there).
        Assert.Equal([true, false, false, false], proposals.Select(p => ((AgreementProposal)p.Message).Terms.Private));
        // All four on their way: no fifth, and none to a node already asked.
        Assert.Empty(a.Market.Search(Offers([.. others.Select(o => o.Descriptor())]), _ => true));

        // One refuses: the next search replaces it with a node not yet asked, and of the same kind.
        var refused = (AgreementProposal)proposals[0].Message;
        Deliver(others.Single(o => o.Id == proposals[0].To), a, new AgreementRejection(refused.Terms.Id, AgreementRejectReason.NoCapacity));
        var replacement = Assert.Single(a.Market.Search(Offers([.. others.Select(o => o.Descriptor())]), _ => true).OfType<SendMarketMessage>());
        Assert.DoesNotContain(replacement.To, proposals.Select(p => p.To));
        Assert.True(((AgreementProposal)replacement.Message).Terms.Private);
    }

    [Fact]
    public void AnEvenTradeIsPreferredToATighterFit()
    {
        var a = NewNode(512, 64);
        var tightButUneven = NewNode(64, 16);
        var even = NewNode(1024, 64);
        var proposal = Sent<AgreementProposal>(a.Market.Search(Offers(tightButUneven.Descriptor(), even.Descriptor()), _ => true), even);
        Assert.Equal(K(64), proposal.Terms.ProposerGrants);
    }

    [Fact]
    public void WhileALinkIsAwaitedTheProposalWaitsForItAndOtherCandidatesAreNotHeldUp()
    {
        var identity = NodeIdentity.Generate(out _);
        _identities.Add(identity);
        var a = new Node(identity, new Market(identity, K(1024), K(64), _time, Options with { PartnersWanted = 2, Random = new Random(1) }), _time);
        var far = NewNode(512, 64);
        var near = NewNode(512, 64);
        var unreachable = NewNode(512, 64);
        var farDescriptor = TestDescriptors.Make(far.Identity, K(512), K(64), published: _time.GetUtcNow(), address: new IPEndPoint(IPAddress.Loopback, 7843));
        var linked = new HashSet<NodeId> { near.Id };

        // A candidate with no address cannot be linked to: it is passed over, not waited for.
        var actions = a.Market.Search(Offers(unreachable.Descriptor(), farDescriptor, near.Descriptor()), linked.Contains);
        Assert.Equal(far.Id, Assert.IsType<LinkNeeded>(actions.Single(x => x is LinkNeeded)).Candidate.Id);
        Assert.Equal(near.Id, Assert.Single(actions.OfType<SendMarketMessage>()).To);

        // The link comes up: the proposal follows.
        linked.Add(far.Id);
        Assert.Equal(far.Id, Sent<AgreementProposal>(a.Market.Search(Offers(farDescriptor, near.Descriptor()), linked.Contains), far).Terms.Acceptor);
    }

    [Fact]
    public void ALinkThatCannotBeMadeGivesWayToTheNextCandidateAtOnceAndItsCandidateWaits()
    {
        var identity = NodeIdentity.Generate(out _);
        _identities.Add(identity);
        var a = new Node(identity, new Market(identity, K(1024), K(64), _time, Options with { PartnersWanted = 1, Random = new Random(1) }), _time);
        int port = 7843;
        Descriptor Unlinked(Node n) => TestDescriptors.Make(n.Identity, K(512), K(64), published: _time.GetUtcNow(), address: new IPEndPoint(IPAddress.Loopback, port++));
        var offers = Offers(Unlinked(NewNode(512, 64)), Unlinked(NewNode(512, 64)));

        var asked = Assert.IsType<LinkNeeded>(Assert.Single(a.Market.Search(offers, _ => false))).Candidate.Id;
        // While its link is awaited, it holds the one slot.
        Assert.Empty(a.Market.Search(offers, _ => false));

        // The dial fails: the other candidate is courted in the same instant, not when the link would have timed out.
        a.Market.LinkFailed(asked);
        var next = Assert.IsType<LinkNeeded>(Assert.Single(a.Market.Search(offers, _ => false))).Candidate.Id;
        Assert.NotEqual(asked, next);

        // The first waits as one that never answered would: it is not dialed again when the second fails too.
        a.Market.LinkFailed(next);
        Assert.Empty(a.Market.Search(offers, _ => false));
        _time.Advance(Options.RejectionCooldown);
        Assert.Single(a.Market.Search(offers, _ => false).OfType<LinkNeeded>());
    }

    [Fact]
    public void ADonorNeverProposes()
    {
        var donor = NewNode(512, null);
        var b = NewNode(512, 256);
        var c = NewNode(64, null);
        Assert.True(donor.Market.RequestMet);
        for (int i = 0; i < 5; i++)
        {
            Assert.Empty(donor.Market.Search(Offers(b.Descriptor(), c.Descriptor()), _ => true));
            _time.Advance(TimeSpan.FromMinutes(1));
        }
        Assert.Equal(0, donor.Market.Capacity.GrantedKbps);
    }

    [Fact]
    public void ADonorAcceptsAndGrantsWithoutAskingAnythingBack()
    {
        var donor = NewNode(512, null);
        var a = NewNode(512, 256);
        // The donor asks nothing, so the proposer grants nothing and reserves nothing.
        var proposal = Sent<AgreementProposal>(a.Market.Search(Offers(donor.Descriptor()), _ => true), donor);
        Assert.Null(proposal.Terms.ProposerGrants);
        Assert.Equal(0, a.Market.Capacity.GrantedKbps);
        var acceptance = Sent<AgreementAcceptance>(Deliver(a, donor, proposal), a);
        Deliver(donor, a, acceptance);
        Assert.Equal(256, donor.Market.GrantedTo(a.Id));
        Assert.Equal(0, donor.Market.GrantedBy(a.Id));
        Assert.Null(Assert.Single(a.Market.Active).WeGrant);
        Assert.True(a.Market.RequestMet);
    }

    [Fact]
    public void SearchPicksTheTightestFitAndSkipsWhatCannotWork()
    {
        var a = NewNode(512, 64);
        var loose = NewNode(1024, 16);
        var tight = NewNode(128, 16);
        var small = NewNode(32, 16);                // nothing free as large as 64
        var greedy = NewNode(1024, 1024);           // asks more than a has
        var expired = NewNode(64, 16);
        var expiredDescriptor = TestDescriptors.Make(expired.Identity, K(64), K(16), published: _time.GetUtcNow().AddHours(-2));
        var self = a.Descriptor();

        var proposal = Sent<AgreementProposal>(
            a.Market.Search(Offers(loose.Descriptor(), small.Descriptor(), greedy.Descriptor(), expiredDescriptor, self, tight.Descriptor()), _ => true), tight);
        Assert.Equal(tight.Id, proposal.Terms.Acceptor);

        var b = NewNode(512, 64);
        Assert.Empty(b.Market.Search(Offers(small.Descriptor(), greedy.Descriptor(), expiredDescriptor, b.Descriptor()), _ => true));
        Assert.Equal(0, b.Market.Capacity.GrantedKbps);
    }

    [Fact]
    public void AForgedProposalSignatureIsRejectedAsBadTerms()
    {
        var a = NewNode(512, 256);
        var b = NewNode(512, 256);
        var proposal = Propose(a, b, K(256), K(256), _time.GetUtcNow());
        byte[] forged = (byte[])proposal.ProposerSignature.Clone();
        forged[10] ^= 1;

        var rejection = Sent<AgreementRejection>(Deliver(a, b, proposal with { ProposerSignature = forged }), a);
        Assert.Equal(AgreementRejectReason.BadTerms, rejection.Reason);
        Assert.Equal(proposal.Terms.Id, rejection.Agreement);
        AssertUntouched(b);

        // Terms changed after signing are as forged as the signature.
        var altered = proposal with { Terms = proposal.Terms with { AcceptorGrants = K(16) } };
        Assert.Equal(AgreementRejectReason.BadTerms, Sent<AgreementRejection>(Deliver(a, b, altered), a).Reason);
        AssertUntouched(b);
    }

    [Fact]
    public void AProposalFromANodeOtherThanTheSenderIsRefused()
    {
        var a = NewNode(512, 256);
        var b = NewNode(512, 256);
        var c = NewNode(512, 256);
        // C relays A's genuine proposal: the link says C, the terms say A.
        var relayed = Propose(a, b, K(256), K(256), _time.GetUtcNow());
        Assert.Equal(AgreementRejectReason.BadTerms, Sent<AgreementRejection>(Deliver(c, b, relayed), c).Reason);
        // A proposal naming another acceptor is not for B either.
        var misaddressed = Propose(a, c, K(256), K(256), _time.GetUtcNow());
        Assert.Equal(AgreementRejectReason.BadTerms, Sent<AgreementRejection>(Deliver(a, b, misaddressed), a).Reason);
        AssertUntouched(b);
    }

    [Fact]
    public void AProposalAskingMoreThanIsFreeIsRejectedForNoCapacity()
    {
        var a = NewNode(1024, 512);
        var b = NewNode(256, 64);
        var proposal = Propose(a, b, K(64), K(512), _time.GetUtcNow());
        Assert.Equal(AgreementRejectReason.NoCapacity, Sent<AgreementRejection>(Deliver(a, b, proposal), a).Reason);
        AssertUntouched(b);

        // Fragmented free space counts by its largest block: 256 = 128 + 64 + 64 holds no 256.
        var c = NewNode(256, 16);
        Assert.True(c.Market.Capacity.TryAllocate(K(64), out _));
        var wantsAll = Propose(a, c, K(16), K(256), _time.GetUtcNow());
        Assert.Equal(AgreementRejectReason.NoCapacity, Sent<AgreementRejection>(Deliver(a, c, wantsAll), a).Reason);
    }

    [Fact]
    public void ANodeIsTheFirstHopOfNoMoreThanItsPublicPartnersGrantItOnward()
    {
        var hop = NewNode(4096, 256);
        AgreementProposal Asks(Node client, bool isPrivate)
        {
            var terms = AgreementTerms.Create(client.Id, hop.Id, K(256), K(256), _time.GetUtcNow(), isPrivate);
            return new AgreementProposal(terms, client.Identity.Sign(terms.SignedMessage()));
        }
        ControlMessage Answer(bool isPrivate)
        {
            var client = NewNode(1024, 256);
            return Assert.Single(Deliver(client, hop, Asks(client, isPrivate)).OfType<SendMarketMessage>()).Message;
        }

        // Its first private agreement always fits; a second needs public grants to go on over.
        Assert.IsType<AgreementAcceptance>(Answer(isPrivate: true));
        Assert.Equal(AgreementRejectReason.NoFirstHopRoom, Assert.IsType<AgreementRejection>(Answer(isPrivate: true)).Reason);
        // Public agreements are taken all the same; once what they grant us covers two private
        // grants, there is room for a second.
        Assert.IsType<AgreementAcceptance>(Answer(isPrivate: false));
        Assert.IsType<AgreementRejection>(Answer(isPrivate: true));
        Assert.IsType<AgreementAcceptance>(Answer(isPrivate: false));
        Assert.IsType<AgreementAcceptance>(Answer(isPrivate: true));
        Assert.IsType<AgreementRejection>(Answer(isPrivate: true));
    }

    [Fact]
    public void ANodeThatWillNotBeOurFirstHopIsProposedAPublicAgreementAtOnce()
    {
        var a = NewNode(1024, 256);
        var b = NewNode(4096, 256);
        var first = Sent<AgreementProposal>(a.Market.Search(Offers(b.Descriptor()), _ => true), b);
        Assert.True(first.Terms.Private);

        Deliver(b, a, new AgreementRejection(first.Terms.Id, AgreementRejectReason.NoFirstHopRoom));
        // No cooldown: the next search asks again, for a public agreement, and looks elsewhere for its first hop.
        var again = Sent<AgreementProposal>(a.Market.Search(Offers(b.Descriptor()), _ => true), b);
        Assert.False(again.Terms.Private);
    }

    [Fact]
    public void AProposalGrantingLessThanTheRequestIsRefused()
    {
        var a = NewNode(1024, 64);
        var b = NewNode(512, 256);
        var stingy = Propose(a, b, K(128), K(64), _time.GetUtcNow());
        Assert.Equal(AgreementRejectReason.BadTerms, Sent<AgreementRejection>(Deliver(a, b, stingy), a).Reason);
        var nothing = Propose(a, b, null, K(64), _time.GetUtcNow());
        Assert.Equal(AgreementRejectReason.BadTerms, Sent<AgreementRejection>(Deliver(a, b, nothing), a).Reason);
        AssertUntouched(b);

        // More than asked is fine.
        var generous = Propose(a, b, K(512), K(64), _time.GetUtcNow());
        Sent<AgreementAcceptance>(Deliver(a, b, generous), a);
    }

    [Fact]
    public void AProposalFarFromOurClockOrSeenBeforeIsRejected()
    {
        var a = NewNode(1024, 64);
        var b = NewNode(512, 64);
        var stale = Propose(a, b, K(64), K(64), _time.GetUtcNow() - TimeSpan.FromMinutes(6));
        Assert.Equal(AgreementRejectReason.BadTerms, Sent<AgreementRejection>(Deliver(a, b, stale), a).Reason);
        var future = Propose(a, b, K(64), K(64), _time.GetUtcNow() + TimeSpan.FromMinutes(6));
        Assert.Equal(AgreementRejectReason.BadTerms, Sent<AgreementRejection>(Deliver(a, b, future), a).Reason);
        AssertUntouched(b);

        var fine = Propose(a, b, K(64), K(64), _time.GetUtcNow() - TimeSpan.FromMinutes(4));
        Sent<AgreementAcceptance>(Deliver(a, b, fine), a);
        Assert.Equal(AgreementRejectReason.BadTerms, Sent<AgreementRejection>(Deliver(a, b, fine), a).Reason);
        Assert.Single(b.Market.Active);
    }

    [Fact]
    public void ASecondProposalFromAPartnerIsRejectedAsAlreadyPartners()
    {
        var a = NewNode(1024, 64);
        var b = NewNode(1024, 64);
        Agree(a, b);
        var again = Propose(a, b, K(64), K(64), _time.GetUtcNow());
        Assert.Equal(AgreementRejectReason.AlreadyPartners, Sent<AgreementRejection>(Deliver(a, b, again), a).Reason);
        Assert.Equal(64, b.Market.Capacity.GrantedKbps);
    }

    [Fact]
    public void AnAcceptanceIsTakenOnlyFromThePartnerAndWithItsSignature()
    {
        var a = NewNode(512, 256);
        var b = NewNode(512, 256);
        var c = NewNode(512, 256);
        var proposal = Sent<AgreementProposal>(a.Market.Search(Offers(b.Descriptor()), _ => true), b);
        var acceptance = Sent<AgreementAcceptance>(Deliver(a, b, proposal), a);

        // C signs the terms itself and claims the acceptance.
        Assert.Empty(Deliver(c, a, acceptance with { AcceptorSignature = c.Identity.Sign(proposal.Terms.SignedMessage()) }));
        // B's link, someone else's signature.
        Assert.Empty(Deliver(b, a, acceptance with { AcceptorSignature = c.Identity.Sign(proposal.Terms.SignedMessage()) }));
        Assert.Empty(a.Market.Active);

        Assert.Single(Deliver(b, a, acceptance).OfType<AgreementFormed>());
        // A duplicate changes nothing.
        Assert.Empty(Deliver(b, a, acceptance));
        Assert.Single(a.Market.Active);
    }

    [Fact]
    public void ARejectionReleasesTheReservationAndCoolsOffThatNode()
    {
        var a = NewNode(512, 256);
        var b = NewNode(512, 256);
        var proposal = Sent<AgreementProposal>(a.Market.Search(Offers(b.Descriptor()), _ => true), b);
        Assert.Empty(Deliver(b, a, new AgreementRejection(proposal.Terms.Id, AgreementRejectReason.Shunned)));
        Assert.Equal(0, a.Market.Capacity.GrantedKbps);

        Assert.Empty(a.Market.Search(Offers(b.Descriptor()), _ => true));
        _time.Advance(Options.RejectionCooldown);
        Sent<AgreementProposal>(a.Market.Search(Offers(b.Descriptor()), _ => true), b);
    }

    [Fact]
    public void ANodeThatHadNoRoomIsTriedAgainSoonerThanOneThatRefusedOutright()
    {
        var a = NewNode(512, 256);
        var b = NewNode(512, 256);
        var proposal = Sent<AgreementProposal>(a.Market.Search(Offers(b.Descriptor()), _ => true), b);
        Deliver(b, a, new AgreementRejection(proposal.Terms.Id, AgreementRejectReason.NoCapacity));
        Assert.Empty(a.Market.Search(Offers(b.Descriptor()), _ => true));
        _time.Advance(new MarketOptions().BusyCooldown);
        Assert.True(new MarketOptions().BusyCooldown < Options.RejectionCooldown);
        Sent<AgreementProposal>(a.Market.Search(Offers(b.Descriptor()), _ => true), b);
    }

    [Fact]
    public void PartnerLostEndsTheAgreementAndReleasesTheGrant()
    {
        var a = NewNode(512, 256);
        var b = NewNode(512, 256);
        var id = Agree(a, b);

        var lost = b.Market.PartnerLost(a.Id);
        var end = Assert.Single(lost.OfType<AgreementEnded>());
        Assert.Equal(AgreementEndReason.LinkLost, end.Reason);
        Assert.Equal(a.Id, Assert.Single(lost.OfType<GrantsChanged>()).Partner);
        Assert.Equal(id, end.Agreement.Id);
        Assert.Equal(AgreementState.Ended, end.Agreement.State);
        Assert.Equal(_time.GetUtcNow(), end.Agreement.Ended);
        Assert.Null(end.Agreement.OurAllocation);
        AssertUntouched(b);
        Assert.False(b.Market.RequestMet);
        // Nothing more to lose.
        Assert.Empty(b.Market.PartnerLost(a.Id));

        Assert.Single(a.Market.PartnerLost(b.Id).OfType<AgreementEnded>());
        AssertUntouched(a);
    }

    [Fact]
    public void PartnerLostDropsAnOpenProposalAndItsReservation()
    {
        var a = NewNode(512, 256);
        var b = NewNode(512, 256);
        Sent<AgreementProposal>(a.Market.Search(Offers(b.Descriptor()), _ => true), b);
        Assert.Empty(a.Market.PartnerLost(b.Id));
        Assert.Equal(0, a.Market.Capacity.GrantedKbps);
    }

    [Fact]
    public void A_replaced_link_withdraws_the_proposal_sent_on_the_old_one_ends_it_if_accepted_and_proposes_again_at_once()
    {
        var a = NewNode(512, 256);
        var b = NewNode(512, 256);
        var lost = Sent<AgreementProposal>(a.Market.Search(Offers(b.Descriptor()), _ => true), b);
        // B read it and accepted, but the Acceptance went back on the old link and was lost.
        Sent<AgreementAcceptance>(Deliver(a, b, lost), a);
        Assert.Single(b.Market.Active);

        var withdrawn = a.Market.LinkReplaced(b.Id);

        Assert.Equal(new AgreementEnd(lost.Terms.Id, AgreementEndReason.Requested), Sent<AgreementEnd>(withdrawn, b));
        Assert.Equal(0, a.Market.Capacity.GrantedKbps);
        Assert.Single(Deliver(a, b, new AgreementEnd(lost.Terms.Id, AgreementEndReason.Requested)).OfType<AgreementEnded>());
        Assert.Empty(b.Market.Active);
        // No cooldown: the same search proposes to B again, over the new link.
        var again = Sent<AgreementProposal>(a.Market.Search(Offers(b.Descriptor()), _ => true), b);
        Assert.NotEqual(lost.Terms.Id, again.Terms.Id);
        Sent<AgreementAcceptance>(Deliver(a, b, again), a);
        // Nothing else of ours was waiting on that link.
        Assert.Empty(b.Market.LinkReplaced(a.Id));
    }

    [Fact]
    public void EndTellsThePartnerAndReleasesOnBothSides()
    {
        var a = NewNode(512, 256);
        var b = NewNode(512, 256);
        var id = Agree(a, b);

        var actions = a.Market.End(id, AgreementEndReason.Underdelivered);
        var message = Sent<AgreementEnd>(actions, b);
        Assert.Equal(new AgreementEnd(id, AgreementEndReason.Underdelivered), message);
        Assert.Equal(AgreementEndReason.Underdelivered, Assert.Single(actions.OfType<AgreementEnded>()).Reason);
        AssertUntouched(a);

        // Only the partner can end it on B's side.
        var c = NewNode(512, 256);
        Assert.Empty(Deliver(c, b, message));
        Assert.Single(b.Market.Active);

        Assert.Equal(AgreementEndReason.Underdelivered, Assert.Single(Deliver(a, b, message).OfType<AgreementEnded>()).Reason);
        AssertUntouched(b);
        Assert.Empty(a.Market.End(id, AgreementEndReason.Requested));
    }

    [Fact]
    public void AnUnansweredProposalExpiresAndReleasesItsReservedBlock()
    {
        var a = NewNode(512, 256);
        var b = NewNode(512, 256);
        var c = NewNode(512, 256);
        Sent<AgreementProposal>(a.Market.Search(Offers(b.Descriptor()), _ => true), b);
        Assert.Equal(256, a.Market.Capacity.GrantedKbps);

        _time.Advance(Options.ProposalTimeout);
        Assert.Empty(a.Market.Search(Offers(), _ => true));
        Assert.Equal(256, a.Market.Capacity.GrantedKbps);

        _time.Advance(TimeSpan.FromSeconds(1));
        // The stale proposal goes, b hears that it did, and the next search may propose to someone else.
        var sends = a.Market.Search(Offers(b.Descriptor(), c.Descriptor()), _ => true).OfType<SendMarketMessage>().ToList();
        Assert.Equal(2, sends.Count);
        Assert.IsType<AgreementEnd>(Assert.Single(sends, s => s.To == b.Id).Message);
        Assert.IsType<AgreementProposal>(Assert.Single(sends, s => s.To == c.Id).Message);
        Assert.Equal(256, a.Market.Capacity.GrantedKbps);
        Assert.Equal([K(256)], a.Market.Capacity.FreeBlocks);
    }

    [Fact]
    public void An_acceptance_that_is_lost_leaves_no_agreement_on_either_side()
    {
        var a = NewNode(512, 256);
        var b = NewNode(512, 256);
        var proposal = Sent<AgreementProposal>(a.Market.Search(Offers(b.Descriptor()), _ => true), b);
        // b accepts; its Acceptance never reaches a (the link it went on closed).
        Sent<AgreementAcceptance>(Deliver(a, b, proposal), a);
        Assert.Single(b.Market.Active);

        _time.Advance(Options.ProposalTimeout + TimeSpan.FromSeconds(1));
        var end = Assert.IsType<AgreementEnd>(Assert.Single(a.Market.Search(Offers(), _ => true).OfType<SendMarketMessage>()).Message);
        var ended = Assert.Single(Deliver(a, b, end).OfType<AgreementEnded>());

        Assert.Equal(AgreementEndReason.Requested, ended.Reason);
        Assert.Empty(b.Market.Active);
        Assert.Equal(0, b.Market.Capacity.GrantedKbps);
    }

    [Fact]
    public void AnAcceptanceArrivingAfterTheProposalExpiredIsAnsweredSoTheAcceptorReleasesItsGrant()
    {
        var a = NewNode(512, 256);
        var bClock = new FakeTimeProvider(TestDescriptors.Epoch);
        var b = NewNode(512, 256, bClock);
        var proposal = Sent<AgreementProposal>(a.Market.Search(Offers(b.Descriptor()), _ => true), b);

        // The proposal is slow to arrive; A gives up on it meanwhile, and says so, which B, not
        // having seen the proposal yet, cannot act on.
        _time.Advance(Options.ProposalTimeout + TimeSpan.FromSeconds(1));
        var early = Sent<AgreementEnd>(a.Market.Search(Offers(), _ => true), b);
        Assert.Equal(0, a.Market.Capacity.GrantedKbps);
        Assert.Empty(Deliver(a, b, early));

        var acceptance = Sent<AgreementAcceptance>(Deliver(a, b, proposal), a);
        Assert.Single(b.Market.Active);
        Assert.Equal(256, b.Market.Capacity.GrantedKbps);

        // A holds no such agreement: unless it says so, B grants 256 kbps to a node that owes it nothing.
        var reply = Sent<AgreementEnd>(Deliver(b, a, acceptance), b);
        Assert.Equal(proposal.Terms.Id, reply.Agreement);
        Assert.Empty(a.Market.Active);
        Deliver(a, b, reply);
        Assert.Empty(b.Market.Active);
        Assert.Equal(0, b.Market.Capacity.GrantedKbps);
    }

    [Fact]
    public void CrossingProposalsLeaveOneAgreementNotTwo()
    {
        var a = NewNode(512, 256);
        var b = NewNode(512, 256);
        Cross(a, b);

        // Each asked for 256 and offers 512: one agreement meets both requests and leaves 256 free on each side.
        Assert.Single(a.Market.Active);
        Assert.Single(b.Market.Active);
        Assert.Equal(256, a.Market.GrantedTo(b.Id));
        Assert.Equal(256, b.Market.GrantedTo(a.Id));
        Assert.Equal(256, a.Market.Capacity.FreeKbps);
        Assert.Equal(256, b.Market.Capacity.FreeKbps);
    }

    [Fact]
    public void CrossingProposalsStillMakeOneAgreementWhenTheLosersOwnReservedAllItHas()
    {
        // The winner (the smaller id) asks the loser for all the loser offers, which the loser's own
        // crossing proposal had reserved: weighed against that reservation, the winner's proposal
        // was refused for capacity, the winner refused the loser's, and both waited out a cooldown.
        var winner = NewNode(2048, 1024);
        var loser = NewNode(1024, 512);
        while (loser.Id < winner.Id) loser = NewNode(1024, 512);
        Cross(winner, loser);

        Assert.Single(winner.Market.Active);
        Assert.Single(loser.Market.Active);
        Assert.Equal(512, winner.Market.GrantedTo(loser.Id));
        Assert.Equal(1024, loser.Market.GrantedTo(winner.Id));
        Assert.True(winner.Market.RequestMet && loser.Market.RequestMet);
    }

    /// <summary>
    /// Proposals that cross: each node saw the other's descriptor and proposed before hearing from
    /// the other; then each gets the other's proposal, and then the answers.
    /// </summary>
    private static void Cross(Node a, Node b)
    {
        var (descriptorA, descriptorB) = (a.Descriptor(), b.Descriptor());
        var fromA = Sent<AgreementProposal>(a.Market.Search(Offers(descriptorB), _ => true), b);
        var fromB = Sent<AgreementProposal>(b.Market.Search(Offers(descriptorA), _ => true), a);
        var answerToA = Deliver(a, b, fromA);
        var answerToB = Deliver(b, a, fromB);
        foreach (var send in answerToA.OfType<SendMarketMessage>()) Deliver(b, a, send.Message);
        foreach (var send in answerToB.OfType<SendMarketMessage>()) Deliver(a, b, send.Message);
    }

    private static void AssertUntouched(Node node)
    {
        Assert.Empty(node.Market.Active);
        Assert.Equal(0, node.Market.Capacity.GrantedKbps);
        Assert.Equal([node.Market.Offer], node.Market.Capacity.FreeBlocks);
    }

    // ---- Probes, verdicts and the newcomer share ----

    [Fact]
    public void A_probe_of_a_small_grant_measures_long_enough_that_one_cell_is_a_small_part_of_it()
    {
        var options = new MarketOptions();
        // 16 cells of 2048 bytes at 64 kbps take 4.1 s; at 128 kbps, 2.05 s.
        Assert.Equal(4.096, options.ProbeDurationFor(64).TotalSeconds, precision: 3);
        Assert.Equal(2.048, options.ProbeDurationFor(128).TotalSeconds, precision: 3);
        // Larger grants are measured for the probe's duration, never less.
        Assert.Equal(options.ProbeDuration, options.ProbeDurationFor(256));
        Assert.Equal(options.ProbeDuration, options.ProbeDurationFor(0));
    }

    [Fact]
    public void With_probes_off_no_partner_is_ever_probed()
    {
        var a = NewNode(512, 256, options: Options with { ProbePartners = false });
        var b = NewNode(512, 256);
        Agree(a, b);
        _time.Advance(TimeSpan.FromHours(1));
        Assert.Empty(a.Market.DueProbes());
        Assert.Single(b.Market.DueProbes()); // the other side still probes
    }

    [Fact]
    public void A_new_partner_is_probed_within_seconds_and_then_at_a_random_moment_within_the_interval()
    {
        var a = NewNode(512, 256);
        var b = NewNode(512, 256);
        Agree(a, b);
        var defaults = new MarketOptions();
        Assert.Empty(a.Market.DueProbes());
        _time.Advance(defaults.FirstProbeMin - TimeSpan.FromSeconds(1));
        Assert.Empty(a.Market.DueProbes());
        _time.Advance(defaults.FirstProbeMax - defaults.FirstProbeMin + TimeSpan.FromSeconds(2));
        var (partner, promised) = Assert.Single(a.Market.DueProbes());
        Assert.Equal(b.Id, partner);
        Assert.Equal(256, promised);
        Assert.Empty(a.Market.ProbeResult(b.Id, 256, 256).OfType<SendMarketMessage>());

        Assert.Empty(a.Market.DueProbes()); // rescheduled, not due again at once
        _time.Advance(defaults.ProbeIntervalMin - TimeSpan.FromSeconds(1));
        Assert.Empty(a.Market.DueProbes());
        _time.Advance(defaults.ProbeIntervalMax - defaults.ProbeIntervalMin + TimeSpan.FromSeconds(2));
        Assert.Equal(b.Id, Assert.Single(a.Market.DueProbes()).Partner);
    }

    [Fact]
    public void A_partner_that_promises_more_is_probed_again_within_seconds_not_minutes()
    {
        var a = NewNode(512, 256);
        var b = NewNode(512, 256);
        var id = Agree(a, b);
        var defaults = new MarketOptions();
        // B is probed, passes, and is not due again for a minute at least.
        _time.Advance(defaults.FirstProbeMax + TimeSpan.FromSeconds(1));
        Assert.Single(a.Market.DueProbes());
        a.Market.ProbeResult(b.Id, 256, 256);
        // B cuts what it grants us: nothing new to check.
        Deliver(b, a, new GrantChanged(id, K(64)));
        _time.Advance(defaults.FirstProbeMax + TimeSpan.FromSeconds(1));
        Assert.Empty(a.Market.DueProbes());

        // B grants more again: the new promise is checked within the first-probe window, as a new
        // partner's is. An under-deliverer that passed at a small grant is found out at the larger.
        Deliver(b, a, new GrantChanged(id, K(256)));
        _time.Advance(defaults.FirstProbeMin - TimeSpan.FromSeconds(1));
        Assert.Empty(a.Market.DueProbes());
        _time.Advance(defaults.FirstProbeMax - defaults.FirstProbeMin + TimeSpan.FromSeconds(2));
        var (partner, promised) = Assert.Single(a.Market.DueProbes());
        Assert.Equal((b.Id, 256L), (partner, promised));
    }

    /// <summary>A and B agree, and A's first probe of B, which promised 256 kbps, is under way.</summary>
    private (Node A, Node B, AgreementId Id) FirstProbeUnderWay()
    {
        var a = NewNode(512, 256);
        var b = NewNode(512, 256);
        var id = Agree(a, b);
        PastFirstProbeWindow();
        Assert.Equal((b.Id, 256L), Assert.Single(a.Market.DueProbes()));
        return (a, b, id);
    }

    /// <summary>Moves the clock past the window a new promise is first probed in.</summary>
    private void PastFirstProbeWindow() => _time.Advance(new MarketOptions().FirstProbeMax + TimeSpan.FromSeconds(1));

    [Fact]
    public void A_partner_is_not_probed_again_while_its_probe_is_under_way_and_the_probe_due_meanwhile_starts_after()
    {
        var (a, b, id) = FirstProbeUnderWay();
        // While the probe runs, B grants more and the new promise falls due: it waits for the result.
        Deliver(b, a, new GrantChanged(id, K(128)));
        Deliver(b, a, new GrantChanged(id, K(256)));
        PastFirstProbeWindow();
        Assert.Empty(a.Market.DueProbes());

        a.Market.ProbeResult(b.Id, 256, 256);
        Assert.Equal((b.Id, 256L), Assert.Single(a.Market.DueProbes()));
    }

    [Fact]
    public void A_promise_that_grew_while_a_probe_ran_on_trial_is_probed_at_once_after_it_not_ten_seconds_later()
    {
        var (a, b, id) = FirstProbeUnderWay();
        // While the probe runs, B cuts its grant and raises it part of the way back: the raised promise falls due.
        Deliver(b, a, new GrantChanged(id, K(64)));
        Deliver(b, a, new GrantChanged(id, K(128)));
        PastFirstProbeWindow();
        Assert.Empty(a.Market.DueProbes());

        // It passes while its grant is below what it signed, on trial, which puts the next probe
        // 10 s out; the raised promise was due already and stays so.
        a.Market.ProbeResult(b.Id, 128, 256);
        Assert.Equal((b.Id, 128L), Assert.Single(a.Market.DueProbes()));
    }

    [Fact]
    public void A_probe_that_could_not_start_does_not_hold_back_the_next()
    {
        var (a, b, id) = FirstProbeUnderWay();
        // No link to run it on, or no descriptor yet: the host says so.
        a.Market.ProbeNotStarted(b.Id);
        // B grants more: the new promise is probed within seconds, not a minute after the probe that never ran.
        Deliver(b, a, new GrantChanged(id, K(128)));
        Deliver(b, a, new GrantChanged(id, K(256)));
        PastFirstProbeWindow();
        Assert.Equal(b.Id, Assert.Single(a.Market.DueProbes()).Partner);
    }

    [Fact]
    public void A_probe_whose_result_never_came_is_taken_as_lost_and_the_partner_is_probed_again()
    {
        var (a, b, _) = FirstProbeUnderWay();
        // Its host had no link to run it on, or stopped: no result comes.
        _time.Advance(new MarketOptions().ProbeIntervalMax + TimeSpan.FromSeconds(1));
        Assert.Equal(b.Id, Assert.Single(a.Market.DueProbes()).Partner);
    }

    [Fact]
    public void A_partner_that_never_delivers_is_dropped_at_the_probe_that_confirms_it()
    {
        var a = NewNode(512, 256);
        var b = NewNode(512, 256);
        Agree(a, b);
        var start = _time.GetUtcNow();
        var ended = false;
        while (!ended && _time.GetUtcNow() - start < TimeSpan.FromMinutes(5))
        {
            _time.Advance(TimeSpan.FromSeconds(1));
            foreach (var (partner, promised) in a.Market.DueProbes())
            {
                var actions = a.Market.ProbeResult(partner, 0, promised);
                // No cut to the smallest block on the way: it would still be more than it delivers.
                Assert.DoesNotContain(actions.OfType<VerdictReached>(), v => v.Verdict == Verdict.Underdelivering);
                ended |= actions.OfType<AgreementEnded>().Any(e => e.Reason == AgreementEndReason.Underdelivered);
            }
        }
        Assert.True(ended);
        var options = new MarketOptions();
        Assert.True(_time.GetUtcNow() - start <= options.FirstProbeMax + options.RecheckAfter + TimeSpan.FromSeconds(1),
            $"dropped after {_time.GetUtcNow() - start}");
        Assert.Equal(Verdict.Shunned, a.Market.Ledger.Account(b.Id).Verdict);
        Assert.Equal(1, a.Market.Ledger.Account(b.Id).Failures);
    }

    [Theory]
    [InlineData(12.7, true)]  // short even of the smallest block: no cut can match it
    [InlineData(12.8, false)] // the smallest block holds it: cut to 16 kbps, and probed again
    public void A_confirmed_shortfall_below_the_smallest_block_ends_the_agreement_at_once(double deliveredKbps, bool ends)
    {
        var a = NewNode(512, 256);
        var b = NewNode(512, 256);
        Agree(a, b);
        Assert.Empty(a.Market.ProbeResult(b.Id, deliveredKbps, 256));
        var actions = a.Market.ProbeResult(b.Id, deliveredKbps, 256);
        Assert.Equal(ends, actions.OfType<AgreementEnded>().Any());
        Assert.Equal(ends ? Verdict.Shunned : Verdict.Underdelivering, a.Market.Ledger.Account(b.Id).Verdict);
        Assert.Equal(ends ? 0 : 16, a.Market.GrantedTo(b.Id));
    }

    [Fact]
    public void A_confirmed_shortfall_cuts_our_grant_to_what_the_partner_delivers_and_tells_it()
    {
        var a = NewNode(512, 256);
        var b = NewNode(512, 256);
        var id = Agree(a, b);

        Assert.Empty(a.Market.ProbeResult(b.Id, deliveredKbps: 64, promisedKbps: 256)); // a suspicion, not yet a verdict
        var actions = a.Market.ProbeResult(b.Id, deliveredKbps: 64, promisedKbps: 256);
        var change = Sent<GrantChanged>(actions, b);
        Assert.Equal(new GrantChanged(id, K(64)), change);
        Assert.Equal(b.Id, Assert.Single(actions.OfType<GrantsChanged>()).Partner);
        Assert.Equal(Verdict.Underdelivering, Assert.Single(actions.OfType<VerdictReached>()).Verdict);
        Assert.Equal(64, a.Market.GrantedTo(b.Id));
        // What was cut goes back to the free blocks, searchable again.
        Assert.Equal([K(256), K(128), K(64)], a.Market.Capacity.FreeBlocks);
        var account = a.Market.Ledger.Account(b.Id);
        Assert.Equal(Verdict.Underdelivering, account.Verdict);
        Assert.Equal(1, account.Failures);
        Assert.Equal(64, account.DeliveredKbps);

        // B hears of it: its request is no longer met, so it searches again.
        Assert.True(b.Market.RequestMet);
        Deliver(a, b, change);
        Assert.Equal(64, b.Market.GrantedBy(a.Id));
        Assert.False(b.Market.RequestMet);
    }

    [Fact]
    public void A_single_short_probe_is_only_a_suspicion_checked_again_soon()
    {
        var a = NewNode(512, 256);
        var b = NewNode(512, 256);
        Agree(a, b);
        Assert.Empty(a.Market.ProbeResult(b.Id, deliveredKbps: 64, promisedKbps: 256));
        var account = a.Market.Ledger.Account(b.Id);
        Assert.Equal(Verdict.Good, account.Verdict);
        Assert.Equal(0, account.Failures);
        Assert.True(account.Suspected);
        Assert.Equal(256, a.Market.GrantedTo(b.Id));
        // The recheck comes after RecheckAfter, well before the next regular probe.
        _time.Advance(new MarketOptions().RecheckAfter + TimeSpan.FromSeconds(1));
        Assert.Equal(b.Id, Assert.Single(a.Market.DueProbes()).Partner);
        // A good recheck clears it without a trace.
        Assert.Single(a.Market.ProbeResult(b.Id, deliveredKbps: 256, promisedKbps: 256).OfType<VerdictReached>());
        Assert.False(account.Suspected);
        Assert.Equal(Verdict.Good, account.Verdict);
    }

    [Fact]
    public void A_partner_that_falls_short_is_granted_no_more_than_it_delivers()
    {
        var a = NewNode(512, 256);
        var b = NewNode(512, 256);
        Agree(a, b);
        // Delivering 200 of 256 is under the threshold: 256 would be more than it returns, so 128.
        a.Market.ProbeResult(b.Id, deliveredKbps: 200, promisedKbps: 256);
        var actions = a.Market.ProbeResult(b.Id, deliveredKbps: 200, promisedKbps: 256);
        Assert.Equal(Verdict.Underdelivering, Assert.Single(actions.OfType<VerdictReached>()).Verdict);
        Assert.Equal(128, a.Market.GrantedTo(b.Id));
    }

    [Fact]
    public void Persistent_underdelivery_ends_the_agreement_and_shuns_the_partner_for_a_while()
    {
        var a = NewNode(512, 256);
        var b = NewNode(512, 256);
        var id = Agree(a, b);
        a.Market.ProbeResult(b.Id, 64, 256);
        a.Market.ProbeResult(b.Id, 64, 256);
        a.Market.ProbeResult(b.Id, 64, 256);
        var actions = a.Market.ProbeResult(b.Id, 64, 256);

        Assert.Equal(new AgreementEnd(id, AgreementEndReason.Underdelivered), Sent<AgreementEnd>(actions, b));
        Assert.Equal(AgreementEndReason.Underdelivered, Assert.Single(actions.OfType<AgreementEnded>()).Reason);
        Assert.Empty(a.Market.Active);
        AssertUntouched(a);
        var account = a.Market.Ledger.Account(b.Id);
        Assert.Equal(Verdict.Shunned, account.Verdict);
        Assert.Equal(_time.GetUtcNow() + new MarketOptions().ShunFor, account.ShunnedUntil);

        // B may not come back at once, and A does not propose to it.
        var refused = Deliver(b, a, Propose(b, a, K(256), K(256), _time.GetUtcNow()));
        Assert.Equal(AgreementRejectReason.Shunned, Sent<AgreementRejection>(refused, b).Reason);
        // Refused before its signature is checked: a forged one is refused the same way, for the shunning.
        var forging = Propose(b, a, K(256), K(256), _time.GetUtcNow());
        byte[] forged = (byte[])forging.ProposerSignature.Clone();
        forged[0] ^= 1;
        Assert.Equal(AgreementRejectReason.Shunned, Sent<AgreementRejection>(Deliver(b, a, forging with { ProposerSignature = forged }), b).Reason);
        Assert.Empty(a.Market.Search(Offers(b.Descriptor()), _ => true));

        _time.Advance(new MarketOptions().ShunFor + TimeSpan.FromSeconds(1));
        var accepted = Deliver(b, a, Propose(b, a, K(256), K(256), _time.GetUtcNow()));
        Assert.Single(accepted.OfType<AgreementFormed>());
    }

    [Fact]
    public void A_partner_that_recovers_regains_its_grant_one_order_at_a_time()
    {
        var a = NewNode(512, 256);
        var b = NewNode(512, 256);
        var id = Agree(a, b);
        a.Market.ProbeResult(b.Id, 70, 256);
        a.Market.ProbeResult(b.Id, 70, 256);
        Assert.Equal(64, a.Market.GrantedTo(b.Id));

        // It may have cut what it grants us in answer to our cut; it grows back all the same.
        Deliver(b, a, new GrantChanged(id, K(64)));
        var actions = a.Market.ProbeResult(b.Id, 64, 64);
        Assert.Equal(new GrantChanged(id, K(128)), Sent<GrantChanged>(actions, b));
        Assert.Equal(Verdict.Good, a.Market.Ledger.Account(b.Id).Verdict);
        Assert.Equal(0, a.Market.Ledger.Account(b.Id).Failures);
        Deliver(b, a, new GrantChanged(id, K(256)));
        a.Market.ProbeResult(b.Id, 256, 256);
        Assert.Equal(256, a.Market.GrantedTo(b.Id));
        // Never beyond what was agreed.
        Assert.Empty(a.Market.ProbeResult(b.Id, 256, 256).OfType<SendMarketMessage>());
        Assert.Equal(256, a.Market.GrantedTo(b.Id));
    }

    [Fact]
    public void A_grant_change_beyond_what_was_signed_is_ignored()
    {
        var a = NewNode(1024, 256);
        var b = NewNode(1024, 256);
        var id = Agree(a, b);
        Deliver(a, b, new GrantChanged(id, K(512)));
        Assert.Equal(256, b.Market.GrantedBy(a.Id));
        Deliver(a, b, new GrantChanged(id, K(64)));
        Assert.Equal(64, b.Market.GrantedBy(a.Id));
    }

    [Fact]
    public void A_partner_we_already_know_cannot_take_the_share_kept_for_newcomers()
    {
        var a = NewNode(512, null);
        var b = NewNode(512, 256);
        var id = Agree(b, a);
        Deliver(b, a, new AgreementEnd(id, AgreementEndReason.Requested));
        AssertUntouched(a);

        // B has a history with A: it may not take the whole offer, the last eighth stays open.
        var refused = Deliver(b, a, Propose(b, a, null, K(512), _time.GetUtcNow()));
        Assert.Equal(AgreementRejectReason.NoCapacity, Sent<AgreementRejection>(refused, b).Reason);
        // A newcomer may.
        var c = NewNode(512, 512);
        Assert.Single(Deliver(c, a, Propose(c, a, null, K(512), _time.GetUtcNow())).OfType<AgreementFormed>());
    }

    // ---- Grants that follow what the partner returns (issue 17) ----

    private static readonly MarketOptions WithTrial = Options with { TrialOrders = 2 };

    /// <summary>Tells each side the other's grant changes, as the link would.</summary>
    private static void Relay(Node from, Node to, IReadOnlyList<MarketAction> actions)
    {
        foreach (var send in actions.OfType<SendMarketMessage>().Where(s => s.To == to.Id && s.Message is GrantChanged)) Deliver(from, to, send.Message);
    }

    /// <summary>The proposer's proposal accepted, and each side's first grant on trial told to the other.</summary>
    private static void AgreeOnTrial(Node proposer, Node acceptor)
    {
        var proposal = Sent<AgreementProposal>(proposer.Market.Search(Offers(acceptor.Descriptor()), _ => true), acceptor);
        foreach (var m in Deliver(proposer, acceptor, proposal).OfType<SendMarketMessage>()) Relay(proposer, acceptor, Deliver(acceptor, proposer, m.Message));
    }

    [Fact]
    public void A_new_partner_is_granted_a_trial_and_both_grow_to_what_they_signed_as_each_finds_the_other_delivering()
    {
        var a = NewNode(1024, 1024, options: WithTrial);
        var b = NewNode(1024, 1024, options: WithTrial);
        var proposal = Sent<AgreementProposal>(a.Market.Search(Offers(b.Descriptor()), _ => true), b);
        var replies = Deliver(a, b, proposal);
        // B accepts, then tells A it grants a quarter for now; A, accepted, does the same.
        var sent = replies.OfType<SendMarketMessage>().Select(m => m.Message).ToList();
        Assert.IsType<AgreementAcceptance>(sent[0]);
        Assert.Equal(K(256), Assert.IsType<GrantChanged>(sent[1]).Grant);
        var accepted = Deliver(b, a, sent[0]);
        Deliver(b, a, sent[1]);
        Relay(a, b, accepted);
        Assert.Equal(256, a.Market.GrantedTo(b.Id));
        Assert.Equal(256, a.Market.GrantedBy(b.Id));
        // On trial, both count as met: the grants are on their way up.
        Assert.True(a.Market.RequestMet);
        Assert.True(b.Market.RequestMet);

        // Each good probe lets each grant one order more than the other returns, up to what it signed.
        for (int round = 0; round < 3; round++)
        {
            Relay(a, b, a.Market.ProbeResult(b.Id, a.Market.GrantedBy(b.Id), a.Market.GrantedBy(b.Id)));
            Relay(b, a, b.Market.ProbeResult(a.Id, b.Market.GrantedBy(a.Id), b.Market.GrantedBy(a.Id)));
        }
        Assert.Equal(1024, a.Market.GrantedTo(b.Id));
        Assert.Equal(1024, b.Market.GrantedTo(a.Id));
    }

    [Fact]
    public void A_partner_that_fell_short_at_its_last_probe_must_pass_twice_before_its_grant_grows()
    {
        var a = NewNode(1024, 1024, options: WithTrial);
        var b = NewNode(1024, 1024, options: WithTrial);
        AgreeOnTrial(a, b);
        Assert.Equal(256, a.Market.GrantedTo(b.Id)); // a trial, on its way to what A signed

        // Short, then good: the good one clears the suspicion, but A's grant stays where it was.
        Assert.Empty(a.Market.ProbeResult(b.Id, deliveredKbps: 64, promisedKbps: 256));
        Relay(a, b, a.Market.ProbeResult(b.Id, deliveredKbps: 256, promisedKbps: 256));
        Assert.Equal(256, a.Market.GrantedTo(b.Id));
        Assert.False(a.Market.Ledger.Account(b.Id).Suspected);
        // Good again: now it grows with B's grant, as on any trial.
        Relay(a, b, a.Market.ProbeResult(b.Id, deliveredKbps: 256, promisedKbps: 256));
        Assert.Equal(512, a.Market.GrantedTo(b.Id));
    }

    [Fact]
    public void A_partner_that_asks_more_than_it_grants_is_held_to_what_it_returns()
    {
        // The over-claimer's trade: it asks 1024 of each partner and grants the partner's 64.
        var claimer = NewNode(4096, 1024, options: WithTrial);
        var honest = NewNode(1024, 64, options: WithTrial);
        AgreeOnTrial(claimer, honest);
        Assert.Equal(256, honest.Market.GrantedTo(claimer.Id)); // a quarter of what it signed

        // The claimer delivers all it grants, and keeps within its trial growth: 16, then 32, then 64.
        for (int round = 0; round < 4; round++)
        {
            Relay(honest, claimer, honest.Market.ProbeResult(claimer.Id, honest.Market.GrantedBy(claimer.Id), honest.Market.GrantedBy(claimer.Id)));
            Relay(claimer, honest, claimer.Market.ProbeResult(honest.Id, claimer.Market.GrantedBy(honest.Id), claimer.Market.GrantedBy(honest.Id)));
        }
        Assert.Equal(64, honest.Market.GrantedBy(claimer.Id));
        Assert.Equal(64, honest.Market.GrantedTo(claimer.Id));
        // After the trial it is short of what it asked for: it must find more partners, and give them as much.
        _time.Advance(WithTrial.TrialPeriod);
        Assert.False(claimer.Market.RequestMet);
    }

    [Fact]
    public void A_node_met_meanwhile_ends_an_acceptance_that_comes_after_and_searchers_prefer_nodes_that_are_short()
    {
        var a = NewNode(1024, 256);
        var b = NewNode(1024, 256);
        var c = NewNode(1024, 256);
        // A wants one partner and proposes to B; meanwhile C proposes to A, and A accepts.
        var toB = Sent<AgreementProposal>(a.Market.Search(Offers(b.Descriptor()), _ => true), b);
        var fromC = Sent<AgreementProposal>(c.Market.Search(Offers(a.Descriptor()), _ => true), a);
        Assert.IsType<AgreementAcceptance>(Deliver(c, a, fromC).OfType<SendMarketMessage>().First().Message);
        Assert.True(a.Market.RequestMet);
        // B's acceptance comes after A is met: A ends it at once and holds only C's grant.
        var acceptB = Sent<AgreementAcceptance>(Deliver(a, b, toB), a);
        var late = Deliver(b, a, acceptB);
        Assert.Equal(AgreementEndReason.Requested, Sent<AgreementEnd>(late, b).Reason);
        Assert.Equal(256, a.Market.ReceivedKbps);

        // A node that is met says so, and a searching node proposes to one that is short first.
        var d = NewNode(1024, 256);
        var met = TestDescriptors.Make(b.Identity, K(1024), K(256), free: [K(1024)], published: _time.GetUtcNow()) with { Roles = NodeRoles.RequestMet };
        var proposal = Sent<AgreementProposal>(d.Market.Search(Offers(met.Sign(b.Identity), c.Descriptor()), _ => true), c);
        Assert.Equal(c.Id, proposal.Terms.Acceptor);
    }

    [Fact]
    public void A_donor_grants_no_more_than_the_requester_offers_the_network()
    {
        var requester = NewNode(1024, 1024);
        long? offered = null;
        var donor = NewNode(4096, null, offerOf: id => id == requester.Id ? offered : null);
        // Its descriptor has not reached the donor yet: the smallest block, until it does.
        var proposal = Propose(requester, donor, null, K(1024), _time.GetUtcNow());
        Deliver(requester, donor, proposal);
        Assert.Equal(16, donor.Market.GrantedTo(requester.Id));
        offered = 300;
        var raised = donor.Market.ReassessDonations();
        Assert.Equal(new GrantChanged(proposal.Terms.Id, K(256)), Sent<GrantChanged>(raised, requester));
        Assert.Equal(256, donor.Market.GrantedTo(requester.Id));
        // Never beyond what was signed.
        offered = 5000;
        donor.Market.ReassessDonations();
        Assert.Equal(1024, donor.Market.GrantedTo(requester.Id));
        Assert.Empty(donor.Market.ReassessDonations());

        // A free-rider that offers 16 kbps gets 16 kbps, from the start.
        var rider = NewNode(16, 1024);
        var donor2 = NewNode(4096, null, offerOf: id => id == rider.Id ? 16 : null);
        Deliver(rider, donor2, Propose(rider, donor2, null, K(1024), _time.GetUtcNow()));
        Assert.Equal(16, donor2.Market.GrantedTo(rider.Id));
    }
}
