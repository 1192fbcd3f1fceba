using System.Security.Cryptography;
using Quid.Crypto;
using Quid.Overlay;
using Quid.Wire;

namespace Quid.Tests.Overlay;

/// <summary>Service records among ultrapeers: publication with a way back, lookups that widen step by step, introductions that follow the way back.</summary>
public sealed class OverlayServiceTests : IDisposable
{
    private readonly OverlayHarness _h = new();
    private readonly List<KeyBlinding.KeyPair> _keys = [];

    public void Dispose()
    {
        foreach (var key in _keys) key.Dispose();
        _h.Dispose();
    }

    /// <summary>
    /// Overlays wired together: every message goes through the codec and the receiver's
    /// admission, and the pump runs until no message is left. What else the overlays asked for
    /// is kept per node.
    /// </summary>
    private sealed class Net(OverlayHarness h)
    {
        private readonly Queue<(NodeId From, NodeId To, ControlMessage Message)> _inFlight = new();
        public Dictionary<NodeId, Quid.Overlay.Overlay> Nodes { get; } = [];
        public Dictionary<NodeId, List<OverlayAction>> Events { get; } = [];
        public int Delivered { get; private set; }

        public (NodeIdentity Identity, Quid.Overlay.Overlay Overlay) Add(bool ultrapeer, OverlayOptions? options = null)
        {
            var identity = h.NewIdentity();
            // A seed of its own each, or all would draw the same flood ids and drop each other's as copies.
            int seed = Nodes.Count + 1;
            var overlay = ultrapeer ? h.NewUltrapeer(options, identity, seed) : h.NewOverlay(options, identity, seed);
            Nodes[identity.Id] = overlay;
            Events[identity.Id] = [];
            return (identity, overlay);
        }

        public void Link((NodeIdentity Identity, Quid.Overlay.Overlay Overlay) a, (NodeIdentity Identity, Quid.Overlay.Overlay Overlay) b)
        {
            Meet(a, b);
            Meet(b, a);
        }

        /// <summary><paramref name="a"/> links to <paramref name="b"/> and reads its descriptor, which says whether it is an ultrapeer.</summary>
        private void Meet((NodeIdentity Identity, Quid.Overlay.Overlay Overlay) a, (NodeIdentity Identity, Quid.Overlay.Overlay Overlay) b)
        {
            var descriptor = h.DescriptorOf(b.Identity, roles: b.Overlay.Role == OverlayRole.Ultrapeer ? NodeRoles.Ultrapeer : NodeRoles.None);
            a.Overlay.LinkUp(b.Identity.Id, inbound: false, descriptor.Address!);
            Assert.Empty(a.Overlay.Receive(b.Identity.Id, new DescriptorMessage(descriptor)).OfType<MessageRejected>());
        }

        public void Run(NodeId at, IEnumerable<OverlayAction> actions)
        {
            foreach (var action in actions)
            {
                if (action is SendOverlayMessage send) _inFlight.Enqueue((at, send.To, send.Message));
                else Events[at].Add(action);
            }
            while (_inFlight.TryDequeue(out var m))
            {
                var to = Nodes[m.To];
                var bytes = ControlCodec.Encode(m.Message);
                if (to.Admit(m.From, ControlCodec.PeekType(bytes)) != Admission.Accept) continue;
                Delivered++;
                Run(m.To, to.Receive(m.From, ControlCodec.Decode(bytes)));
            }
        }

        public T[] Of<T>(NodeId at) => [.. Events[at].OfType<T>()];
    }

    private ServiceRecord Record(DateTimeOffset? published = null, byte[]? seed = null, bool withdrawal = false)
    {
        var keys = KeyBlinding.KeyPair.FromSeed(seed ?? RandomNumberGenerator.GetBytes(32), 20_000, 1440);
        _keys.Add(keys);
        var at = published ?? _h.Now;
        return ServiceRecord.Create(keys, 20_000, 1440, at, at + TimeSpan.FromHours(1), withdrawal ? [] : "the encrypted descriptor"u8);
    }

    /// <summary>Ultrapeers U0 … U<paramref name="count"/>−1 in a line, the introduction point a leaf on U0.</summary>
    private (Net Net, (NodeIdentity Identity, Quid.Overlay.Overlay Overlay)[] Line, (NodeIdentity Identity, Quid.Overlay.Overlay Overlay) Introducer) Line(int count, OverlayOptions? options = null)
    {
        var net = new Net(_h);
        var line = Enumerable.Range(0, count).Select(_ => net.Add(ultrapeer: true, options)).ToArray();
        for (int i = 1; i < count; i++) net.Link(line[i - 1], line[i]);
        var introducer = net.Add(ultrapeer: false, options);
        net.Link(introducer, line[0]);
        return (net, line, introducer);
    }

    /// <summary>One lookup step later, the node's upkeep.</summary>
    private void Step(Net net, (NodeIdentity Identity, Quid.Overlay.Overlay Overlay) node)
    {
        _h.Time.Advance(new OverlayOptions().LookupStepInterval);
        net.Run(node.Identity.Id, node.Overlay.Tick());
    }

    /// <summary>introducer — A — B — U: leaves, of which only B has an ultrapeer, U.</summary>
    private (Net Net, (NodeIdentity Identity, Quid.Overlay.Overlay Overlay) U, (NodeIdentity Identity, Quid.Overlay.Overlay Overlay) B,
        (NodeIdentity Identity, Quid.Overlay.Overlay Overlay) A, (NodeIdentity Identity, Quid.Overlay.Overlay Overlay) Introducer) LeafChain()
    {
        var net = new Net(_h);
        var u = net.Add(ultrapeer: true);
        var b = Leaf(net, u);
        var a = net.Add(ultrapeer: false);
        net.Link(a, b);
        var introducer = net.Add(ultrapeer: false);
        net.Link(introducer, a);
        return (net, u, b, a, introducer);
    }

    private static (NodeIdentity Identity, Quid.Overlay.Overlay Overlay) Leaf(Net net, (NodeIdentity Identity, Quid.Overlay.Overlay Overlay) on)
    {
        var leaf = net.Add(ultrapeer: false);
        net.Link(leaf, on);
        return leaf;
    }

    [Fact]
    public void A_record_is_stored_by_the_ultrapeers_its_flood_reaches_and_no_further()
    {
        var (net, line, introducer) = Line(6);
        var record = Record();

        var (_, actions) = introducer.Overlay.PublishRecord(record);
        net.Run(introducer.Identity.Id, actions);

        // TTL 3 from the leaf: U0, U1 and U2 store it; U3 never hears of it; the leaf stores nothing.
        Assert.Equal([1, 1, 1, 0, 0, 0], line.Select(u => u.Overlay.StoredRecordCount));
        Assert.Equal(0, introducer.Overlay.StoredRecordCount);
    }

    [Fact]
    public void A_lookup_finds_the_record_and_its_introduction_goes_back_along_the_publication_to_the_introduction_point()
    {
        var (net, line, introducer) = Line(6);
        var record = Record();
        var (publish, published) = introducer.Overlay.PublishRecord(record);
        net.Run(introducer.Identity.Id, published);
        var client = Leaf(net, line[3]);
        byte[] introduction = RandomNumberGenerator.GetBytes(300);

        var (lookup, actions) = client.Overlay.Lookup(record.LookupId, introduction);
        net.Run(client.Identity.Id, actions);
        Assert.Empty(net.Of<ServiceRecordFound>(client.Identity.Id));
        Step(net, client);

        // U3 does not hold it (TTL 1); a step later it asks U2 and U4 (TTL 2 from the leaf); U2 answers.
        var found = Assert.Single(net.Of<ServiceRecordFound>(client.Identity.Id));
        Assert.Equal(lookup, found.Lookup);
        Assert.Equal(record.Encoded, found.Record.Encoded);
        var arrived = Assert.Single(net.Of<IntroductionArrived>(introducer.Identity.Id));
        Assert.Equal(publish, arrived.Publish);
        Assert.Equal(lookup, arrived.Lookup);
        Assert.Equal(introduction, arrived.Introduction);
        // Lookup: client→U3, U3→U2, U3→U4; hit U2→U3→client; introduction U2→U1→U0→introducer.
        Assert.Empty(net.Of<ServiceLookupFailed>(client.Identity.Id));
    }

    [Fact]
    public void A_withdrawal_replaces_the_record_where_it_reaches_and_a_lookup_then_finds_it_and_introduces_nobody()
    {
        var (net, line, introducer) = Line(6);
        byte[] seed = RandomNumberGenerator.GetBytes(32);
        var record = Record(seed: seed);
        net.Run(introducer.Identity.Id, introducer.Overlay.PublishRecord(record).Actions);
        // In the same second as the record: times are whole seconds, and the withdrawal still wins.
        var withdrawal = Record(record.Published, seed, withdrawal: true);
        Assert.True(withdrawal.IsWithdrawal && withdrawal.Replaces(record));
        Assert.False(record.Replaces(withdrawal));
        net.Run(introducer.Identity.Id, introducer.Overlay.PublishRecord(withdrawal).Actions);
        // A copy of the record that comes late takes nothing back.
        net.Run(introducer.Identity.Id, introducer.Overlay.PublishRecord(record).Actions);
        var client = Leaf(net, line[2]);

        var (lookup, actions) = client.Overlay.Lookup(record.LookupId, [1, 2, 3]);
        net.Run(client.Identity.Id, actions);

        var found = Assert.Single(net.Of<ServiceRecordFound>(client.Identity.Id));
        Assert.Equal(lookup, found.Lookup);
        Assert.Equal(withdrawal.Encoded, found.Record.Encoded);
        Assert.Empty(net.Of<IntroductionArrived>(introducer.Identity.Id));
        // The service comes back later: its new record replaces the withdrawal.
        _h.Time.Advance(TimeSpan.FromSeconds(1));
        Assert.True(Record(_h.Now, seed).Replaces(withdrawal));
    }

    [Fact]
    public void A_leaf_carries_the_floods_of_a_leaf_with_no_ultrapeer_up_to_its_own_and_the_way_back_passes_through_it()
    {
        // The introduction point and the client each reach the ultrapeers only through another leaf.
        var net = new Net(_h);
        var (u0, u1) = (net.Add(ultrapeer: true), net.Add(ultrapeer: true));
        net.Link(u0, u1);
        var (carrierA, carrierB) = (Leaf(net, u0), Leaf(net, u1));
        var introducer = net.Add(ultrapeer: false);
        net.Link(introducer, carrierA);
        var client = net.Add(ultrapeer: false);
        net.Link(client, carrierB);
        var record = Record();

        var (publish, published) = introducer.Overlay.PublishRecord(record);
        net.Run(introducer.Identity.Id, published);
        Assert.Equal([1, 1, 1, 0], new[] { carrierA, u0, u1, carrierB }.Select(n => n.Overlay.StoredRecordCount));

        var (lookup, actions) = client.Overlay.Lookup(record.LookupId, [5, 6]);
        net.Run(client.Identity.Id, actions);
        Step(net, client); // TTL 1 stops at carrier B; TTL 2 reaches U1

        Assert.Equal(lookup, Assert.Single(net.Of<ServiceRecordFound>(client.Identity.Id)).Lookup);
        var arrived = Assert.Single(net.Of<IntroductionArrived>(introducer.Identity.Id));
        Assert.Equal((publish, lookup), (arrived.Publish, arrived.Lookup));
    }

    [Fact]
    public void Leaves_with_no_ultrapeer_pass_a_flood_on_among_themselves_until_a_leaf_with_one_carries_it_up()
    {
        // introducer — A — B — U — C — D — client: A, C, D have no ultrapeer; B has U.
        var (net, u, b, a, introducer) = LeafChain();
        var c = Leaf(net, u);
        var d = net.Add(ultrapeer: false);
        net.Link(d, c);
        var client = net.Add(ultrapeer: false);
        net.Link(client, d);
        var record = Record();

        net.Run(introducer.Identity.Id, introducer.Overlay.PublishRecord(record).Actions);
        Assert.Equal([1, 1, 1], new[] { a, b, u }.Select(n => n.Overlay.StoredRecordCount));

        // TTL 1 reaches D, TTL 2 D and C; only the widest step, TTL 3, takes it up to U through C.
        var (lookup, actions) = client.Overlay.Lookup(record.LookupId, [7]);
        net.Run(client.Identity.Id, actions);
        Step(net, client);
        Assert.Empty(net.Of<ServiceRecordFound>(client.Identity.Id));
        Step(net, client);

        Assert.Equal(lookup, Assert.Single(net.Of<ServiceRecordFound>(client.Identity.Id)).Lookup);
        var arrived = Assert.Single(net.Of<IntroductionArrived>(introducer.Identity.Id));
        Assert.Equal(lookup, arrived.Lookup);
        Assert.Equal([7], arrived.Introduction);
    }

    [Fact]
    public void A_lookup_widens_one_step_at_a_time_until_answered_and_one_that_nothing_answers_fails()
    {
        var (net, line, introducer) = Line(7);
        var record = Record();
        net.Run(introducer.Identity.Id, introducer.Overlay.PublishRecord(record).Actions);
        var far = Leaf(net, line[6]);
        var options = new OverlayOptions();

        // From U4's leaf, TTL 1 reaches U4 and TTL 2 U3 and U5 too: none holds it (U0–U2 do).
        var client = Leaf(net, line[4]);
        var (lookup, actions) = client.Overlay.Lookup(record.LookupId, [1, 2, 3]);
        net.Run(client.Identity.Id, actions);
        net.Run(client.Identity.Id, client.Overlay.Tick());
        Assert.Empty(net.Of<OverlayAction>(client.Identity.Id));
        Step(net, client);
        Assert.Empty(net.Of<ServiceRecordFound>(client.Identity.Id));
        // TTL 3 reaches U2: U4 and U3, which saw the lookup already, pass the wider copy on.
        Step(net, client);
        Assert.Equal(lookup, Assert.Single(net.Of<ServiceRecordFound>(client.Identity.Id)).Lookup);
        Assert.Single(net.Of<IntroductionArrived>(introducer.Identity.Id));
        // Nothing more once answered.
        int before = net.Delivered;
        Step(net, client);
        Assert.Equal(before, net.Delivered);

        // From U6's leaf even the widest step (U6, U5, U4, U3) misses: the lookup fails once, LookupTimeout after it.
        var (missed, farActions) = far.Overlay.Lookup(record.LookupId, [4]);
        net.Run(far.Identity.Id, farActions);
        Step(net, far);
        Step(net, far);
        Assert.Empty(net.Of<ServiceLookupFailed>(far.Identity.Id));
        _h.Time.Advance(options.LookupTimeout - options.LookupStepInterval);
        net.Run(far.Identity.Id, far.Overlay.Tick());
        Assert.Empty(net.Of<ServiceLookupFailed>(far.Identity.Id));
        _h.Time.Advance(options.LookupStepInterval);
        net.Run(far.Identity.Id, far.Overlay.Tick());
        net.Run(far.Identity.Id, far.Overlay.Tick());
        Assert.Equal(missed, Assert.Single(net.Of<ServiceLookupFailed>(far.Identity.Id)).Lookup);
        Assert.Empty(net.Of<ServiceRecordFound>(far.Identity.Id));
        Assert.Single(net.Of<IntroductionArrived>(introducer.Identity.Id));
    }

    [Fact]
    public void An_ultrapeer_that_holds_the_record_answers_its_own_lookup_without_a_message()
    {
        var (net, line, introducer) = Line(2);
        var record = Record();
        net.Run(introducer.Identity.Id, introducer.Overlay.PublishRecord(record).Actions);
        int before = net.Delivered;

        var (lookup, actions) = line[1].Overlay.Lookup(record.LookupId, [9]);
        net.Run(line[1].Identity.Id, actions);

        Assert.Equal(lookup, Assert.Single(net.Of<ServiceRecordFound>(line[1].Identity.Id)).Lookup);
        Assert.Single(net.Of<IntroductionArrived>(introducer.Identity.Id));
        Assert.Equal(2, net.Delivered - before); // the introduction's two hops, U1→U0→introducer
    }

    [Fact]
    public void An_introduction_point_that_lost_its_service_sends_the_introduction_back_and_the_lookup_goes_on_to_holders_of_a_live_one()
    {
        // A, a leaf on U0, published before its service went; B, a leaf on U5, publishes for it now.
        var (net, line, a) = Line(6);
        var b = Leaf(net, line[5]);
        var record = Record();
        var (stale, published) = a.Overlay.PublishRecord(record);
        net.Run(a.Identity.Id, published);
        var (live, republished) = b.Overlay.PublishRecord(record);
        net.Run(b.Identity.Id, republished);
        Assert.Equal([1, 1, 1, 1, 1, 1], line.Select(u => u.Overlay.StoredRecordCount));
        var client = Leaf(net, line[1]);

        // U1 answers at once and introduces along A's publication; A has nobody to hand it to.
        var (lookup, actions) = client.Overlay.Lookup(record.LookupId, [8]);
        net.Run(client.Identity.Id, actions);
        Assert.Equal(lookup, Assert.Single(net.Of<ServiceRecordFound>(client.Identity.Id)).Lookup);
        var arrived = Assert.Single(net.Of<IntroductionArrived>(a.Identity.Id));
        Assert.Equal((stale, lookup), (arrived.Publish, arrived.Lookup));
        net.Run(a.Identity.Id, a.Overlay.RefuseIntroduction(arrived.Publish, arrived.Lookup));
        // The failure went back to U1 and on to the client; U0 and U1 forgot the dead route, and with it the record.
        Assert.Equal([0, 0, 1, 1, 1, 1], line.Select(u => u.Overlay.StoredRecordCount));

        // Widening again, the lookup passes U1 to U2, whose route is just as dead; U3 then introduces it to B.
        Step(net, client);
        Step(net, client);
        var reached = Assert.Single(net.Of<IntroductionArrived>(b.Identity.Id));
        Assert.Equal((live, lookup), (reached.Publish, reached.Lookup));
        Assert.Equal([8], reached.Introduction);
        Assert.Single(net.Of<IntroductionArrived>(a.Identity.Id));
        Assert.Single(net.Of<ServiceRecordFound>(client.Identity.Id));
        Assert.Equal([0, 0, 0, 1, 1, 1], line.Select(u => u.Overlay.StoredRecordCount));
        // And once introduced, it goes no wider.
        int before = net.Delivered;
        Step(net, client);
        Assert.Equal(before, net.Delivered);
    }

    [Fact]
    public void An_introduction_point_answers_with_its_services_withdrawal_and_keeps_it_when_its_publications_close()
    {
        // A leaf carries another leaf's publication and so holds the record; then, as an
        // introduction point itself, it publishes the service's withdrawal.
        var (net, _, _, a, introducer) = LeafChain();
        byte[] seed = RandomNumberGenerator.GetBytes(32);
        var record = Record(seed: seed);
        net.Run(introducer.Identity.Id, introducer.Overlay.PublishRecord(record).Actions);
        Assert.Equal(1, a.Overlay.StoredRecordCount);
        var withdrawal = Record(record.Published, seed, withdrawal: true);
        var (fromA, actions) = a.Overlay.PublishRecord(withdrawal);
        net.Run(a.Identity.Id, actions);

        // Its own lookup, answered from what it holds, says the service stopped.
        Assert.Equal(withdrawal.Encoded, Assert.Single(a.Overlay.Lookup(record.LookupId, []).Actions.OfType<ServiceRecordFound>()).Record.Encoded);
        a.Overlay.ClosePublication(fromA);
        Assert.Equal(withdrawal.Encoded, Assert.Single(a.Overlay.Lookup(record.LookupId, []).Actions.OfType<ServiceRecordFound>()).Record.Encoded);

        // An ultrapeer that was the service's only introduction point holds record and withdrawal
        // by its own publications alone. Its service's circuit closes, and so do they: the
        // withdrawal, which needs no way back, is still what it answers with.
        var solo = net.Add(ultrapeer: true);
        var (published, _) = solo.Overlay.PublishRecord(record);
        var (withdrawn, _) = solo.Overlay.PublishRecord(withdrawal);
        solo.Overlay.ClosePublication(published);
        solo.Overlay.ClosePublication(withdrawn);
        Assert.Equal(withdrawal.Encoded, Assert.Single(solo.Overlay.Lookup(record.LookupId, []).Actions.OfType<ServiceRecordFound>()).Record.Encoded);
    }

    [Fact]
    public void A_holder_whose_first_route_fails_tries_its_next_and_the_lookup_goes_no_wider()
    {
        // One route at a time, so that the second waits for the first to fail.
        var options = new OverlayOptions { IntroductionRoutes = 1 };
        var (net, line, a) = Line(2, options);
        var b = Leaf(net, line[0]);
        var record = Record();
        net.Run(a.Identity.Id, a.Overlay.PublishRecord(record).Actions);
        net.Run(b.Identity.Id, b.Overlay.PublishRecord(record).Actions);
        var client = Leaf(net, line[1]);

        var (lookup, actions) = client.Overlay.Lookup(record.LookupId, [3]);
        net.Run(client.Identity.Id, actions);
        // The freshest route first: B's, whose service has gone.
        var first = Assert.Single(net.Of<IntroductionArrived>(b.Identity.Id));
        Assert.Empty(net.Of<IntroductionArrived>(a.Identity.Id));
        net.Run(b.Identity.Id, b.Overlay.RefuseIntroduction(first.Publish, first.Lookup));

        Assert.Equal(lookup, Assert.Single(net.Of<IntroductionArrived>(a.Identity.Id)).Lookup);
        int before = net.Delivered;
        Step(net, client);
        Assert.Equal(before, net.Delivered);
        // B closed its publication: a second introduction along it fails at B, and U1 tries A's again.
        Assert.Equal(1, line[1].Overlay.StoredRecordCount);
    }

    [Fact]
    public void An_introduction_whose_route_broke_further_on_comes_back_and_the_holders_on_the_way_forget_it()
    {
        var (net, line, introducer) = Line(3);
        var record = Record();
        net.Run(introducer.Identity.Id, introducer.Overlay.PublishRecord(record).Actions);
        var client = Leaf(net, line[2]);
        line[0].Overlay.LinkDown(introducer.Identity.Id);
        introducer.Overlay.LinkDown(line[0].Identity.Id);

        var (lookup, actions) = client.Overlay.Lookup(record.LookupId, [4]);
        net.Run(client.Identity.Id, actions);

        // U2 answered and introduced; U0 had no way on, and the failure came back through U1 and U2 to the client.
        Assert.Equal(lookup, Assert.Single(net.Of<ServiceRecordFound>(client.Identity.Id)).Lookup);
        Assert.Empty(net.Of<IntroductionArrived>(introducer.Identity.Id));
        Assert.Equal([1, 0, 0], line.Select(u => u.Overlay.StoredRecordCount));
        // U0 answers no more: its only route is gone, so a lookup there passes on.
        Assert.Empty(line[0].Overlay.Lookup(record.LookupId, []).Actions.OfType<ServiceRecordFound>());
    }

    [Fact]
    public void A_holders_own_lookup_whose_introduction_fails_widens_to_other_holders()
    {
        var (net, line, introducer) = Line(3);
        var record = Record();
        net.Run(introducer.Identity.Id, introducer.Overlay.PublishRecord(record).Actions);
        line[0].Overlay.LinkDown(introducer.Identity.Id);
        introducer.Overlay.LinkDown(line[0].Identity.Id);

        // U2 answers itself at once; its introduction fails at U0 and comes back.
        var (lookup, actions) = line[2].Overlay.Lookup(record.LookupId, [6]);
        net.Run(line[2].Identity.Id, actions);
        Assert.Equal(lookup, Assert.Single(net.Of<ServiceRecordFound>(line[2].Identity.Id)).Lookup);
        Assert.Equal(0, line[2].Overlay.StoredRecordCount);

        // So its lookup goes on, as one that nothing answered would.
        int before = net.Delivered;
        Step(net, line[2]);
        Assert.True(net.Delivered > before, "the lookup should widen once its only holder failed");
    }

    [Fact]
    public void A_record_filed_under_another_lookup_id_or_not_signed_by_its_key_is_refused_and_goes_no_further()
    {
        var (_, line, _) = Line(3);
        var good = Record();
        var from = _h.NewIdentity();
        _h.Link(line[0].Overlay, NodeRoles.Ultrapeer, identity: from);

        // The signature's last byte flipped: structure intact, signature not.
        var forged = (byte[])good.Encoded.Clone();
        forged[^1] ^= 1;
        // Another key's record with this one's lookup id: the id no longer follows from the key.
        var other = (byte[])Record().Encoded.Clone();
        good.LookupId.CopyTo(other.AsSpan(1));
        foreach (var bad in new[] { forged, other })
        {
            var actions = line[0].Overlay.Receive(from.Id, new RecordPublishMessage(QueryId.New(), 3, ServiceRecord.Decode(bad)));
            Assert.Equal(OverlayError.BadRecord, Assert.Single(actions.OfType<MessageRejected>()).Error);
            Assert.Empty(actions.OfType<SendOverlayMessage>());
        }
        Assert.Equal(0, line[0].Overlay.StoredRecordCount);

        // An expired one too.
        var old = Record(published: _h.Now - TimeSpan.FromHours(2));
        var expired = line[0].Overlay.Receive(from.Id, new RecordPublishMessage(QueryId.New(), 3, old));
        Assert.Equal(OverlayError.BadRecord, Assert.Single(expired.OfType<MessageRejected>()).Error);
        Assert.Equal(0, line[0].Overlay.StoredRecordCount);
    }

    [Fact]
    public void A_flood_of_records_holds_no_more_than_the_limit_and_the_newest_stay()
    {
        var options = new OverlayOptions { MaxRecords = 16, RecordRate = new MessageRate(1000, 1000) };
        var ultrapeer = _h.NewUltrapeer(options);
        var from = _h.LinkUltrapeer(ultrapeer);
        ServiceRecord? last = null;
        for (int i = 0; i < 100; i++)
        {
            last = Record();
            _h.Time.Advance(TimeSpan.FromSeconds(1));
            Assert.Empty(ultrapeer.Receive(from.Id, new RecordPublishMessage(QueryId.New(), 1, last)).OfType<MessageRejected>());
        }
        Assert.Equal(16, ultrapeer.StoredRecordCount);
        Assert.Single(ultrapeer.Lookup(last!.LookupId, []).Actions.OfType<ServiceRecordFound>());
    }

    [Fact]
    public void A_record_whose_introduction_point_stops_republishing_is_forgotten_and_a_republished_one_is_kept()
    {
        var (net, line, introducer) = Line(2);
        var options = new OverlayOptions();
        var kept = Record();
        var dropped = Record();
        net.Run(introducer.Identity.Id, introducer.Overlay.PublishRecord(kept).Actions);
        net.Run(introducer.Identity.Id, introducer.Overlay.PublishRecord(dropped).Actions);
        Assert.Equal(2, line[0].Overlay.StoredRecordCount);

        _h.Time.Advance(options.RecordRouteLifetime / 2);
        net.Run(introducer.Identity.Id, introducer.Overlay.PublishRecord(kept).Actions);
        _h.Time.Advance(options.RecordRouteLifetime / 2);
        net.Run(line[0].Identity.Id, line[0].Overlay.Tick());

        Assert.Equal(1, line[0].Overlay.StoredRecordCount);
        Assert.Single(line[0].Overlay.Lookup(kept.LookupId, []).Actions.OfType<ServiceRecordFound>());
    }

    [Fact]
    public void Hits_introductions_and_failures_nobody_asked_for_are_refused_or_answered_without_forwarding()
    {
        var ultrapeer = _h.NewUltrapeer();
        var from = _h.LinkUltrapeer(ultrapeer);
        var record = Record();

        var hit = ultrapeer.Receive(from.Id, new LookupHitMessage(QueryId.New(), record));
        Assert.Equal(OverlayError.UnknownQuery, Assert.Single(hit.OfType<MessageRejected>()).Error);
        // An introduction along a publication we never stored goes back as failed, to its sender only.
        var introduce = new IntroduceMessage(QueryId.New(), QueryId.New(), [1]);
        var failed = Assert.IsType<SendOverlayMessage>(Assert.Single(ultrapeer.Receive(from.Id, introduce)));
        Assert.Equal(from.Id, failed.To);
        Assert.Equal(new IntroduceFailedMessage(introduce.Publish, introduce.Lookup), failed.Message);
        // A failure of an introduction we never carried, for a lookup we never saw, goes nowhere.
        Assert.Empty(ultrapeer.Receive(from.Id, new IntroduceFailedMessage(QueryId.New(), QueryId.New())));
    }

    [Fact]
    public void A_lookup_for_a_record_of_another_id_is_not_answered_by_it()
    {
        var (net, line, introducer) = Line(2);
        net.Run(introducer.Identity.Id, introducer.Overlay.PublishRecord(Record()).Actions);
        var client = Leaf(net, line[1]);

        var (_, actions) = client.Overlay.Lookup(RandomNumberGenerator.GetBytes(ServiceRecord.LookupIdSize), []);
        net.Run(client.Identity.Id, actions);

        Assert.Empty(net.Of<ServiceRecordFound>(client.Identity.Id));
        Assert.Empty(net.Of<IntroductionArrived>(introducer.Identity.Id));
    }
}
