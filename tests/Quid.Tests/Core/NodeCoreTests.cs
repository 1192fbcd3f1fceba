using System.Net;
using Quid.Core;
using Quid.Exchange;
using Quid.Overlay;
using Quid.Wire;

namespace Quid.Tests.Core;

/// <summary>The node core as its hosts see it: events in, effects out, with the follow-on steps inside.</summary>
public sealed class NodeCoreTests : IDisposable
{
    private readonly CoreHarness _h = new();

    public void Dispose() => _h.Dispose();

    /// <summary>Two linked nodes in one agreement, granting in full from the start (no trial) unless <paramref name="market"/> says otherwise.</summary>
    private (CoreHarness.CoreNode A, CoreHarness.CoreNode B) Pair(MarketOptions? market = null)
    {
        var b = _h.Add(CoreHarness.Options(1024, 512, seed: 3) with { Market = (market ?? new MarketOptions { TrialOrders = 0 }) with { Random = new Random(4) } });
        var a = _h.Add(CoreHarness.Options(1024, 512, seed: 1) with { Bootstrap = [(b.Address, null)], Market = (market ?? new MarketOptions { TrialOrders = 0 }) with { Random = new Random(2) } });
        _h.Tick(times: 3);
        return (a, b);
    }

    [Fact]
    public void A_new_node_signs_its_first_descriptor_and_says_its_request_is_unmet_while_a_donor_says_it_is_met()
    {
        var trader = _h.Add(CoreHarness.Options(1024, 512));
        var donor = _h.Add(CoreHarness.Options(1024, null));

        var published = Assert.Single(trader.Seen<NodeEffect.DescriptorPublished>()).Descriptor;
        Assert.Equal(trader.Id, published.Id);
        Assert.Equal(trader.Address, published.Address);
        Assert.Equal([Block.FromKbps(1024)], published.FreeBlocks);
        Assert.False(Assert.Single(trader.Seen<NodeEffect.RequestMetChanged>()).Met);
        Assert.True(Assert.Single(donor.Seen<NodeEffect.RequestMetChanged>()).Met);
    }

    [Fact]
    public void A_new_address_from_a_port_mapping_is_signed_and_sent_to_neighbours_at_once_and_losing_it_publishes_no_address()
    {
        var (a, b) = Pair();
        _h.Deliver();
        var mapped = new IPEndPoint(IPAddress.Parse("198.18.0.5"), 7843);

        _h.Execute(a, a.Core.Readvertise(mapped));
        Assert.Equal(mapped, a.LastDescriptor.Address);
        Assert.Equal(mapped, a.Core.Address);
        _h.Deliver();
        Assert.Equal(mapped, b.Core.Overlay.Find(a.Id)?.Address);
        // The same address again is no news: nothing is signed.
        Assert.Empty(a.Core.Readvertise(mapped));

        _h.Execute(a, a.Core.Readvertise(null));
        Assert.Null(a.LastDescriptor.Address);
        Assert.True(a.LastDescriptor.Published >= b.Core.Overlay.Find(a.Id)!.Published);
    }

    [Fact]
    public void A_node_linked_to_nobody_dials_its_bootstrap_peers_once_until_the_dial_fails()
    {
        var nowhere = new IPEndPoint(IPAddress.Loopback, 1);
        var node = _h.Add(CoreHarness.Options(1024, 512) with { Bootstrap = [(nowhere, null), (new DnsEndPoint("quid.example.net", 7843), null)] });

        var first = node.Core.Tick();
        Assert.Equal([nowhere, new DnsEndPoint("quid.example.net", 7843)], first.OfType<NodeEffect.Dial>().Select(d => d.Address));
        // Still dialing: no second dial to the same address.
        Assert.Empty(node.Core.Tick().OfType<NodeEffect.Dial>());
        node.Core.DialFailed(nowhere, null);
        Assert.Equal([nowhere], node.Core.Tick().OfType<NodeEffect.Dial>().Select(d => d.Address));
    }

    [Fact]
    public void Two_nodes_link_and_agree_privately_so_neither_names_the_other_in_its_descriptor()
    {
        var (a, b) = Pair();

        Assert.Equal(b.Id, Assert.Single(a.Core.Links).Peer);
        var agreement = Assert.Single(a.Seen<NodeEffect.AgreementFormed>()).Agreement;
        Assert.Equal(b.Id, agreement.Partner);
        Assert.Equal(Block.FromKbps(512), agreement.TheyGrant);
        Assert.Equal(Block.FromKbps(512), agreement.WeGrant);
        Assert.Contains(new NodeEffect.GrantChanged(b.Id, 512), a.Effects);
        Assert.Contains(new NodeEffect.GrantChanged(a.Id, 512), b.Effects);
        Assert.True(a.Seen<NodeEffect.RequestMetChanged>().Last().Met);
        Assert.True(b.Seen<NodeEffect.RequestMetChanged>().Last().Met);
        // A node's first agreement is private: each will start its circuits on the other, and the
        // descriptors after it name no partner, only the half left free.
        Assert.True(agreement.Private);
        Assert.Empty(a.LastDescriptor.Partners);
        Assert.Empty(b.LastDescriptor.Partners);
        Assert.Equal([Block.FromKbps(512)], a.LastDescriptor.FreeBlocks);
    }

    [Fact]
    public void A_node_whose_request_is_met_stops_searching()
    {
        var (a, _) = Pair();
        int searches = a.Seen<NodeEffect.SearchStarted>().Count();

        _h.Tick(times: 20);

        Assert.Equal(searches, a.Seen<NodeEffect.SearchStarted>().Count());
    }

    [Fact]
    public void A_node_that_stays_short_searches_at_doubling_intervals_up_to_the_maximum()
    {
        // Two nodes that cannot trade (each wants more than the other offers) stay short.
        var b = _h.Add(CoreHarness.Options(256, 1024, seed: 3));
        var a = _h.Add(CoreHarness.Options(256, 1024, seed: 1) with { Bootstrap = [(b.Address, null)], MaxSearchInterval = TimeSpan.FromSeconds(8) });
        var searchedAt = new List<int>();
        for (int second = 1; second <= 60; second++)
        {
            int before = a.Seen<NodeEffect.SearchStarted>().Count();
            _h.Tick();
            if (a.Seen<NodeEffect.SearchStarted>().Count() > before) searchedAt.Add(second);
        }

        // SearchInterval is 1 s here: gaps of 1, 2, 4, then 8 s, never more.
        var gaps = searchedAt.Zip(searchedAt.Skip(1), (x, y) => y - x).ToList();
        Assert.Equal([1, 2, 4, 8], gaps.Take(4));
        Assert.All(gaps.Skip(3), g => Assert.Equal(8, g));
    }

    [Fact]
    public void A_search_is_not_sent_on_a_link_the_host_says_is_more_than_a_second_behind_and_goes_out_again_once_it_caught_up()
    {
        // Two nodes that cannot trade (each wants more than the other offers) keep searching.
        var backlog = TimeSpan.FromSeconds(3);
        var b = _h.Add(CoreHarness.Options(256, 1024, seed: 3));
        var a = _h.Add(CoreHarness.Options(256, 1024, seed: 1) with { Bootstrap = [(b.Address, null)], LinkBacklog = _ => backlog });
        _h.Tick(times: 5);
        Assert.Single(a.Core.Links);
        Assert.NotEmpty(a.Seen<NodeEffect.SearchStarted>());
        Assert.Empty(a.Sent<QueryMessage>());
        // Every search since the link came up went nowhere (the first, before it, had nobody to go to),
        // at each of its widening steps (TTL 1, 2 and 3 through the one neighbour).
        Assert.InRange(a.Core.Overlay.QueriesDropped, 1, 3 * a.Seen<NodeEffect.SearchStarted>().Count());

        backlog = TimeSpan.FromMilliseconds(900);
        _h.Tick(times: 5);
        Assert.NotEmpty(a.Sent<QueryMessage>());
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Of_two_links_dialed_at_once_both_ends_keep_the_one_the_smaller_id_dialed(bool smallerDialsFirst)
    {
        var x = _h.Add(CoreHarness.Options(1024, null));
        var y = _h.Add(CoreHarness.Options(1024, null));
        var (smaller, larger) = x.Id < y.Id ? (x, y) : (y, x);

        var first = smallerDialsFirst ? _h.Connect(smaller, larger) : _h.Connect(larger, smaller);
        var second = smallerDialsFirst ? _h.Connect(larger, smaller) : _h.Connect(smaller, larger);

        var survivor = smallerDialsFirst ? first : second;
        Assert.Same(survivor, smaller.Core.LinkTo(larger.Id));
        Assert.Same(survivor, larger.Core.LinkTo(smaller.Id));
        Assert.False(survivor.Closed);
        Assert.True((smallerDialsFirst ? second : first).Closed);
    }

    [Fact]
    public void The_closing_of_a_link_that_was_replaced_changes_nothing()
    {
        var x = _h.Add(CoreHarness.Options(1024, null));
        var y = _h.Add(CoreHarness.Options(1024, null));
        var (smaller, larger) = x.Id < y.Id ? (x, y) : (y, x);
        var old = new CoreHarness.TestLink(larger, smaller);
        larger.Core.LinkUp(old, smaller.Id, outbound: true, smaller.Address, smaller.Identity.SigningPublicKey, smaller.Address);
        var kept = _h.Connect(smaller, larger);

        Assert.Same(kept, larger.Core.LinkTo(smaller.Id));
        Assert.Empty(larger.Core.LinkDown(old, smaller.Id));
        Assert.Same(kept, larger.Core.LinkTo(smaller.Id));
    }

    [Fact]
    public void A_leaf_flooding_queries_has_the_excess_dropped_then_is_disconnected()
    {
        var (a, b) = Pair();
        var link = b.Core.LinkTo(a.Id)!;
        var effects = new List<NodeEffect>();
        for (int i = 0; i < 200 && !effects.OfType<NodeEffect.Disconnect>().Any(); i++)
            effects.AddRange(b.Core.Receive(link, a.Id, ControlCodec.Encode(new QueryMessage(QueryId.New(), 4, 0, Block.FromKbps(16), null, 8))));

        Assert.Contains(effects, e => e is NodeEffect.MessageRejected { Error: OverlayError.RateLimited });
        Assert.Equal(new NodeEffect.Disconnect(a.Id, GoodbyeReason.Abuse), effects.OfType<NodeEffect.Disconnect>().Single());
    }

    [Theory]
    [InlineData(new byte[] { 0xEE, 1, 2, 3 })]
    [InlineData(new byte[] { (byte)ControlType.AgreementEnd, 1 })]
    [InlineData(new byte[0])]
    public void A_malformed_message_closes_the_link_without_a_goodbye_and_says_why(byte[] payload)
    {
        var (a, b) = Pair();

        var effects = b.Core.Receive(b.Core.LinkTo(a.Id)!, a.Id, payload);

        var close = Assert.Single(effects.OfType<NodeEffect.CloseLink>());
        Assert.Equal(a.Id, close.Peer);
        Assert.StartsWith("Malformed control message", close.Problem, StringComparison.Ordinal);
        Assert.DoesNotContain(effects, e => e is NodeEffect.Send);
    }

    [Fact]
    public void A_goodbye_closes_the_link_quietly()
    {
        var (a, b) = Pair();

        var effects = b.Core.Receive(b.Core.LinkTo(a.Id)!, a.Id, new GoodbyeMessage(GoodbyeReason.ShuttingDown));

        Assert.Equal([new NodeEffect.CloseLink(a.Id, null)], effects);
    }

    [Fact]
    public void A_message_from_a_link_that_is_not_the_current_one_is_ignored()
    {
        var (a, b) = Pair();
        var stale = new CoreHarness.TestLink(a, b);

        Assert.Empty(b.Core.Receive(stale, a.Id, new GoodbyeMessage(GoodbyeReason.Abuse)));
        Assert.NotNull(b.Core.LinkTo(a.Id));
    }

    [Fact]
    public void A_partner_that_underdelivers_is_probed_cut_to_what_it_delivers_then_dropped()
    {
        var (a, b) = Pair(new MarketOptions { FirstProbeMin = TimeSpan.FromSeconds(5), FirstProbeMax = TimeSpan.FromSeconds(5), RecheckAfter = TimeSpan.FromSeconds(1), TrialOrders = 0 });
        _h.Tick(times: 6);
        var probe = Assert.Single(a.Seen<NodeEffect.StartProbe>());
        Assert.Equal(new NodeEffect.StartProbe(b.Id, 512), probe);

        // A first shortfall is only a suspicion; confirmed, the grant to the liar falls to what it delivers and it is told.
        Assert.Empty(a.Core.ProbeMeasured(b.Id, 100, 512).OfType<NodeEffect.VerdictReached>());
        var cut = a.Core.ProbeMeasured(b.Id, 100, 512);
        Assert.Equal(Verdict.Underdelivering, Assert.Single(cut.OfType<NodeEffect.VerdictReached>()).Verdict);
        Assert.Contains(new NodeEffect.GrantChanged(b.Id, 64), cut);
        Assert.Equal(Block.FromKbps(64), Assert.Single(cut.OfType<NodeEffect.Send>().Select(s => s.Message).OfType<GrantChanged>()).Grant);

        a.Core.ProbeMeasured(b.Id, 100, 512);
        var dropped = a.Core.ProbeMeasured(b.Id, 100, 512);
        Assert.Equal(Verdict.Shunned, dropped.OfType<NodeEffect.VerdictReached>().Last().Verdict);
        Assert.Equal(AgreementEndReason.Underdelivered, Assert.Single(dropped.OfType<NodeEffect.AgreementEnded>()).Reason);
        Assert.Contains(new NodeEffect.GrantChanged(b.Id, 0), dropped);
        Assert.Contains(dropped, e => e is NodeEffect.Send { Message: AgreementEnd });
        // Short again, it searches at once, and the next descriptor lists no partner.
        Assert.Contains(dropped, e => e is NodeEffect.SearchStarted);
        Assert.Empty(dropped.OfType<NodeEffect.DescriptorPublished>().Last().Descriptor.Partners);
    }

    [Fact]
    public void Losing_the_link_to_a_partner_ends_the_agreement_frees_the_grant_and_searches_again_at_once()
    {
        var (a, b) = Pair();
        var link = a.Core.LinkTo(b.Id)!;
        link.Closed = true;

        var effects = a.Core.LinkDown(link, b.Id);

        Assert.Equal(AgreementEndReason.LinkLost, Assert.Single(effects.OfType<NodeEffect.AgreementEnded>()).Reason);
        Assert.Contains(new NodeEffect.GrantChanged(b.Id, 0), effects);
        Assert.Contains(new NodeEffect.RequestMetChanged(false), effects);
        Assert.Contains(effects, e => e is NodeEffect.SearchStarted);
        Assert.Equal([Block.FromKbps(1024)], effects.OfType<NodeEffect.DescriptorPublished>().Last().Descriptor.FreeBlocks);
        Assert.Null(a.Core.LinkTo(b.Id));
    }

    [Fact]
    public void A_stopping_node_ends_every_agreement_politely_publishes_nothing_more_and_refuses_new_links()
    {
        var (a, b) = Pair();
        var c = _h.Add(CoreHarness.Options(1024, null));

        var effects = a.Core.Stop();

        Assert.Equal(AgreementEndReason.ShuttingDown, Assert.Single(effects.OfType<NodeEffect.AgreementEnded>()).Reason);
        Assert.Equal(b.Id, Assert.Single(effects.OfType<NodeEffect.Send>(), s => s.Message is AgreementEnd).To);
        Assert.DoesNotContain(effects, e => e is NodeEffect.DescriptorPublished or NodeEffect.SearchStarted or NodeEffect.RequestMetChanged);
        var late = a.Core.LinkUp(new CoreHarness.TestLink(c, a), c.Id, outbound: false, c.Address, c.Identity.SigningPublicKey, null);
        Assert.Equal((LinkVerdict.Refuse, GoodbyeReason.ShuttingDown), (late.Verdict, late.Reason));
        Assert.Empty(a.Core.Tick());
    }

    [Fact]
    public void A_node_that_becomes_an_ultrapeer_says_so_and_signs_a_descriptor_that_says_so()
    {
        var node = _h.Add(CoreHarness.Options(1024, null) with
        {
            Overlay = new OverlayOptions { UltrapeerMinUptime = TimeSpan.Zero, PromotionDelay = TimeSpan.FromSeconds(1), Random = new Random(5) },
        });

        _h.Tick(times: 120);

        int changed = node.Effects.FindIndex(e => e is NodeEffect.RoleChanged { Roles: NodeRoles.Ultrapeer });
        Assert.True(changed >= 0, "the lone capable node never promoted itself");
        var next = node.Effects.Skip(changed).OfType<NodeEffect.DescriptorPublished>().First().Descriptor;
        Assert.True(next.Roles.HasFlag(NodeRoles.Ultrapeer));
    }

    [Fact]
    public void A_friends_only_node_refuses_a_stranger_and_says_why()
    {
        var friend = _h.Add(CoreHarness.Options(1024, null));
        var loner = _h.Add(CoreHarness.Options(1024, 512) with { Overlay = new OverlayOptions { Friends = new HashSet<Quid.Crypto.NodeId> { friend.Id }, Random = new Random(6) } });
        var stranger = _h.Add(CoreHarness.Options(1024, null));

        var decision = loner.Core.LinkUp(new CoreHarness.TestLink(stranger, loner), stranger.Id, outbound: false, stranger.Address, stranger.Identity.SigningPublicKey, null);
        _h.Connect(friend, loner);

        Assert.Equal((LinkVerdict.Refuse, GoodbyeReason.NotAFriend), (decision.Verdict, decision.Reason));
        Assert.Null(loner.Core.LinkTo(stranger.Id));
        Assert.NotNull(loner.Core.LinkTo(friend.Id));
    }

    [Fact]
    public void A_full_leaf_drops_its_oldest_link_that_trades_nothing_to_let_a_new_one_in_but_never_a_partner_or_a_link_just_made()
    {
        // Room for three links, and no wish for more, so that the leaf dials nobody itself; its
        // whole offer goes to the one partner, so that it has no capacity to take a link beyond them.
        var leaf = _h.Add(CoreHarness.Options(512, null) with { Overlay = new OverlayOptions { MaxLeafNeighbours = 3, MinNeighbours = 1, Random = new Random(7) } });
        CoreHarness.CoreNode Node(long? request) => _h.Add(CoreHarness.Options(1024, request) with { Overlay = new OverlayOptions { MinNeighbours = 1, Random = new Random(8) } });
        var (idle, partner, quiet) = (Node(null), Node(512), Node(null));
        foreach (var node in new[] { idle, partner, quiet })
        {
            _h.Connect(node, leaf);
            _h.Deliver();
            _h.Time.Advance(TimeSpan.FromSeconds(1));
        }
        Assert.Contains(leaf.Core.Market.Active, a => a.Partner == partner.Id);
        // Older than a proposal waits for its answer: no longer on their way to an agreement.
        _h.Time.Advance(TimeSpan.FromSeconds(10));

        var first = Node(512);
        _h.Connect(first, leaf);
        Assert.Equal(LinkVerdict.Keep, leaf.Verdicts[^1]);
        Assert.Null(leaf.Core.LinkTo(idle.Id));
        Assert.Null(idle.Core.LinkTo(leaf.Id));
        Assert.NotNull(leaf.Core.LinkTo(partner.Id));
        Assert.NotNull(leaf.Core.LinkTo(quiet.Id));

        var second = Node(null);
        _h.Connect(second, leaf);
        Assert.Null(leaf.Core.LinkTo(quiet.Id));
        Assert.NotNull(leaf.Core.LinkTo(partner.Id));

        // What is left is a partner and two links made just now: no room, and nothing free to trade.
        Assert.Null(leaf.Core.Market.Capacity.LargestFree);
        var third = Node(null);
        _h.Connect(third, leaf);
        Assert.Equal(LinkVerdict.Refuse, leaf.Verdicts[^1]);
        Assert.Equal(3, leaf.Core.LinkCount);
        Assert.Null(leaf.Core.LinkTo(third.Id));
    }

    [Fact]
    public void A_full_leaf_whose_links_all_trade_takes_one_more_while_it_has_capacity_free()
    {
        var leaf = _h.Add(CoreHarness.Options(1024, null) with { Overlay = new OverlayOptions { MaxLeafNeighbours = 2, MinNeighbours = 1, Random = new Random(7) } });
        CoreHarness.CoreNode Node() => _h.Add(CoreHarness.Options(1024, 256) with { Overlay = new OverlayOptions { MinNeighbours = 1, Random = new Random(8) } });
        foreach (var partner in new[] { Node(), Node() })
        {
            _h.Connect(partner, leaf);
            _h.Tick(times: 3);
        }
        Assert.Equal(2, leaf.Core.Market.Active.Count());
        _h.Time.Advance(TimeSpan.FromSeconds(11));

        // Both links are partners, so none may be dropped, but 512 kbps are free: the third comes in and trades.
        var third = Node();
        _h.Connect(third, leaf);
        _h.Tick(times: 3);

        Assert.Equal(LinkVerdict.Keep, leaf.Verdicts[^1]);
        Assert.Equal(3, leaf.Core.LinkCount);
        Assert.Contains(leaf.Core.Market.Active, a => a.Partner == third.Id);
    }

    [Fact]
    public void An_offer_cut_into_more_free_blocks_than_a_descriptor_lists_still_publishes_the_largest_of_them()
    {
        // 32 partners that offer 16 kbps each ask 32 of a 1024 kbps offer. The hub asks for
        // nothing, so each is granted no more than it offers: 16. Each grant is cut from a block
        // of 32, and the offer is left as 32 free blocks of 16 that are nobody's buddies, more
        // than a descriptor may list.
        var hub = _h.Add(CoreHarness.Options(1024, null) with
        {
            Overlay = new OverlayOptions { MaxLeafNeighbours = 64, Random = new Random(9) },
        });
        var partners = Enumerable.Range(0, 32).Select(i => _h.Add(CoreHarness.Options(16, 32, seed: 100 + 2 * i) with { Bootstrap = [(hub.Address, null)] })).ToList();
        for (int i = 0; i < 60 && hub.Core.Market.Active.Count() < 32; i++) _h.Tick();
        Assert.Equal(32, hub.Core.Market.Active.Count());
        Assert.All(partners, p => Assert.Equal(16, hub.Core.Market.GrantedTo(p.Id)));

        Assert.Equal(32, hub.Core.Market.Capacity.FreeBlocks.Count);
        var advertised = hub.LastDescriptor;
        Assert.Equal(Descriptor.MaxFreeBlocks, advertised.FreeBlocks.Count);
        Assert.All(advertised.FreeBlocks, b => Assert.Equal(Block.FromKbps(16), b));
    }
}
