using System.Net;
using Microsoft.Extensions.Time.Testing;
using Quid.Crypto;
using Quid.Overlay;
using Quid.Tests.Wire;
using Quid.Wire;

namespace Quid.Tests.Overlay;

public sealed class OverlayTests : IDisposable
{
    private readonly FakeTimeProvider _time = new(TestDescriptors.Epoch);
    private readonly List<NodeIdentity> _identities = [];
    private readonly NodeIdentity _self;

    public OverlayTests() => _self = NewIdentity();

    public void Dispose()
    {
        foreach (var identity in _identities) identity.Dispose();
    }

    private NodeIdentity NewIdentity()
    {
        var identity = NodeIdentity.Generate(out _);
        _identities.Add(identity);
        return identity;
    }

    private Quid.Overlay.Overlay NewOverlay(OverlayOptions? options = null) =>
        new(_self, _time, (options ?? new OverlayOptions()) with { Random = new Random(8) });

    private static int _port = 20000;

    private Descriptor DescriptorOf(NodeIdentity identity, TimeSpan? age = null, TimeSpan? lifetime = null, bool address = true, IReadOnlyList<NodeId>? partners = null) =>
        TestDescriptors.Make(
            identity, Block.FromKbps(512), Block.FromKbps(256),
            published: _time.GetUtcNow() - (age ?? TimeSpan.Zero),
            lifetime: lifetime ?? TimeSpan.FromHours(1),
            address: address ? new IPEndPoint(IPAddress.Loopback, Interlocked.Increment(ref _port)) : null,
            partners: partners);

    /// <summary>Links a neighbour and has it send its descriptor; returns the descriptor.</summary>
    private Descriptor Neighbour(Quid.Overlay.Overlay overlay, NodeIdentity identity)
    {
        overlay.LinkUp(identity.Id);
        var descriptor = DescriptorOf(identity);
        overlay.Receive(identity.Id, new DescriptorMessage(descriptor));
        return descriptor;
    }

    private static OverlayError Refusal(Quid.Overlay.Overlay overlay, NodeId from, ControlMessage message) =>
        Assert.Throws<OverlayException>(() => overlay.Receive(from, message)).Error;

    [Fact]
    public void LinkUpSendsOurDescriptorAndTheOtherNeighboursDescriptors()
    {
        var overlay = NewOverlay();
        var own = DescriptorOf(_self);
        Assert.Empty(overlay.Publish(own));
        Assert.Same(own, overlay.Own);

        var n1 = NewIdentity();
        var first = overlay.LinkUp(n1.Id);
        var send = Assert.IsType<SendOverlayMessage>(Assert.Single(first));
        Assert.Equal(n1.Id, send.To);
        Assert.Same(own, Assert.IsType<DescriptorMessage>(send.Message).Descriptor);
        var d1 = DescriptorOf(n1);
        overlay.Receive(n1.Id, new DescriptorMessage(d1));

        var n2 = NewIdentity();
        var second = overlay.LinkUp(n2.Id).Cast<SendOverlayMessage>().ToArray();
        Assert.All(second, s => Assert.Equal(n2.Id, s.To));
        Assert.Same(own, Assert.Single(second.Select(s => s.Message).OfType<DescriptorMessage>()).Descriptor);
        var peers = Assert.Single(second.Select(s => s.Message).OfType<PeersMessage>());
        Assert.Same(d1, Assert.Single(peers.Descriptors));
        Assert.Equal(new[] { n1.Id, n2.Id }.Order(), overlay.Neighbours.Order());
    }

    [Fact]
    public void LinkUpWithoutAnOwnDescriptorSendsOnlyWhatItKnows()
    {
        var overlay = NewOverlay();
        Assert.Empty(overlay.LinkUp(NewIdentity().Id));
        var n2 = NewIdentity();
        var d2 = Neighbour(overlay, n2);
        var actions = overlay.LinkUp(NewIdentity().Id);
        var peers = Assert.IsType<PeersMessage>(Assert.IsType<SendOverlayMessage>(Assert.Single(actions)).Message);
        Assert.Same(d2, Assert.Single(peers.Descriptors));
    }

    [Fact]
    public void LinkUpLeavesOutExpiredDescriptors()
    {
        var overlay = NewOverlay();
        var n1 = NewIdentity();
        overlay.LinkUp(n1.Id);
        overlay.Receive(n1.Id, new DescriptorMessage(DescriptorOf(n1, lifetime: TimeSpan.FromMinutes(5))));
        _time.Advance(TimeSpan.FromMinutes(5));
        Assert.Empty(overlay.LinkUp(NewIdentity().Id));
        Assert.Empty(overlay.NeighbourDescriptors);
    }

    [Fact]
    public void PublishSendsTheNewDescriptorToEveryNeighbour()
    {
        var overlay = NewOverlay();
        var n1 = NewIdentity();
        var n2 = NewIdentity();
        overlay.LinkUp(n1.Id);
        overlay.LinkUp(n2.Id);
        var own = DescriptorOf(_self);
        var sends = overlay.Publish(own).Cast<SendOverlayMessage>().ToArray();
        Assert.Equal(new[] { n1.Id, n2.Id }.Order(), sends.Select(s => s.To).Order());
        Assert.All(sends, s => Assert.Same(own, Assert.IsType<DescriptorMessage>(s.Message).Descriptor));
    }

    [Fact]
    public void ADescriptorFromTheWrongSenderIsRefused()
    {
        var overlay = NewOverlay();
        var n1 = NewIdentity();
        var other = NewIdentity();
        overlay.LinkUp(n1.Id);
        Assert.Equal(OverlayError.WrongSender, Refusal(overlay, n1.Id, new DescriptorMessage(DescriptorOf(other))));
        Assert.Null(overlay.Find(other.Id));
        Assert.Null(overlay.Find(n1.Id));
    }

    [Fact]
    public void AnExpiredDescriptorIsRefused()
    {
        var overlay = NewOverlay();
        var n1 = NewIdentity();
        overlay.LinkUp(n1.Id);
        var expired = DescriptorOf(n1, age: TimeSpan.FromHours(1), lifetime: TimeSpan.FromHours(1));
        Assert.Equal(OverlayError.Expired, Refusal(overlay, n1.Id, new DescriptorMessage(expired)));
        Assert.Null(overlay.Find(n1.Id));
    }

    [Fact]
    public void ADescriptorPublishedFarInTheFutureIsRefused()
    {
        var overlay = NewOverlay();
        var n1 = NewIdentity();
        overlay.LinkUp(n1.Id);
        var future = DescriptorOf(n1, age: -(new OverlayOptions().MaxClockSkew + TimeSpan.FromSeconds(1)));
        Assert.Equal(OverlayError.FromTheFuture, Refusal(overlay, n1.Id, new DescriptorMessage(future)));
        // Within the allowed skew it is fine.
        var skewed = DescriptorOf(n1, age: -(new OverlayOptions().MaxClockSkew - TimeSpan.FromSeconds(1)));
        overlay.Receive(n1.Id, new DescriptorMessage(skewed));
        Assert.Same(skewed, overlay.Find(n1.Id));
    }

    [Fact]
    public void ALifetimeAboveTheMaximumIsRefused()
    {
        var overlay = NewOverlay();
        var n1 = NewIdentity();
        overlay.LinkUp(n1.Id);
        var max = new OverlayOptions().MaxDescriptorLifetime;
        Assert.Equal(OverlayError.TooLongLived, Refusal(overlay, n1.Id, new DescriptorMessage(DescriptorOf(n1, lifetime: max + TimeSpan.FromSeconds(1)))));
        var longest = DescriptorOf(n1, lifetime: max);
        overlay.Receive(n1.Id, new DescriptorMessage(longest));
        Assert.Same(longest, overlay.Find(n1.Id));
    }

    [Fact]
    public void AnOlderDescriptorAfterANewerOneIsStale()
    {
        var overlay = NewOverlay();
        var n1 = NewIdentity();
        overlay.LinkUp(n1.Id);
        var older = DescriptorOf(n1, age: TimeSpan.FromMinutes(2));
        var newer = DescriptorOf(n1, age: TimeSpan.FromMinutes(1));
        overlay.Receive(n1.Id, new DescriptorMessage(newer));
        Assert.Equal(OverlayError.Stale, Refusal(overlay, n1.Id, new DescriptorMessage(older)));
        Assert.Same(newer, overlay.Find(n1.Id));

        var newest = DescriptorOf(n1);
        overlay.Receive(n1.Id, new DescriptorMessage(newest));
        Assert.Same(newest, overlay.Find(n1.Id));
    }

    [Fact]
    public void ANewNeighboursFirstDescriptorIsIntroducedToTheOtherNeighbours()
    {
        var overlay = NewOverlay();
        var n1 = NewIdentity();
        var n2 = NewIdentity();
        Neighbour(overlay, n1);
        Neighbour(overlay, n2);
        var n3 = NewIdentity();
        overlay.LinkUp(n3.Id);
        var d3 = DescriptorOf(n3);

        var introductions = overlay.Receive(n3.Id, new DescriptorMessage(d3)).Cast<SendOverlayMessage>().ToArray();
        Assert.Equal(new[] { n1.Id, n2.Id }.Order(), introductions.Select(i => i.To).Order());
        Assert.All(introductions, i => Assert.Same(d3, Assert.Single(Assert.IsType<PeersMessage>(i.Message).Descriptors)));

        // Its later descriptors are news to nobody: no more introductions.
        _time.Advance(TimeSpan.FromMinutes(1));
        Assert.Empty(overlay.Receive(n3.Id, new DescriptorMessage(DescriptorOf(n3))));
    }

    [Fact]
    public void ANeighbourWeHadOnlyHeardOfIsStillIntroducedWhenItLinks()
    {
        var overlay = NewOverlay();
        var n1 = NewIdentity();
        var n2 = NewIdentity();
        Neighbour(overlay, n1);
        Neighbour(overlay, n2);
        // n1 tells us of x; later x links to us directly. n2 may never have heard of x.
        var x = NewIdentity();
        overlay.Receive(n1.Id, new PeersMessage([DescriptorOf(x, age: TimeSpan.FromMinutes(1))]));
        overlay.LinkUp(x.Id);
        var introductions = overlay.Receive(x.Id, new DescriptorMessage(DescriptorOf(x))).Cast<SendOverlayMessage>().ToArray();
        Assert.Contains(n2.Id, introductions.Select(i => i.To));
        Assert.DoesNotContain(x.Id, introductions.Select(i => i.To));
    }

    [Fact]
    public void PeerExchangeLearnsOthersButNotOurselvesOrNeighboursAndToleratesStaleHearsay()
    {
        var overlay = NewOverlay();
        var n1 = NewIdentity();
        var n2 = NewIdentity();
        Neighbour(overlay, n1);
        var d2 = Neighbour(overlay, n2);
        var p = NewIdentity();
        var newer = DescriptorOf(p);
        overlay.Receive(n2.Id, new PeersMessage([newer]));

        var ownFake = DescriptorOf(_self);
        var oldN2 = DescriptorOf(n2, age: TimeSpan.FromMinutes(1));
        var older = DescriptorOf(p, age: TimeSpan.FromMinutes(1));
        var q = NewIdentity();
        var dq = DescriptorOf(q);
        Assert.Empty(overlay.Receive(n1.Id, new PeersMessage([ownFake, oldN2, older, dq])));

        Assert.Null(overlay.Find(_self.Id));
        Assert.Same(d2, overlay.Find(n2.Id));
        Assert.Same(newer, overlay.Find(p.Id));
        Assert.Same(dq, overlay.Find(q.Id));
        Assert.Equal(4, overlay.KnownPeerCount);
    }

    [Fact]
    public void ARefusedDescriptorInAPeersMessageDoesNotSpoilTheOthers()
    {
        var overlay = NewOverlay();
        var n1 = NewIdentity();
        Neighbour(overlay, n1);
        // Hearsay can expire in transit or come from a node with a bad clock; the neighbour only relays it.
        var expired = DescriptorOf(NewIdentity(), age: TimeSpan.FromHours(1), lifetime: TimeSpan.FromHours(1));
        var future = DescriptorOf(NewIdentity(), age: -TimeSpan.FromHours(1));
        var before = DescriptorOf(NewIdentity());
        var after = DescriptorOf(NewIdentity());

        try
        {
            overlay.Receive(n1.Id, new PeersMessage([before, expired, future, after]));
        }
        catch (OverlayException)
        {
            // Whether the host hears of the refusal is a choice; losing the good descriptors is not.
        }
        Assert.Same(before, overlay.Find(before.Id));
        Assert.Same(after, overlay.Find(after.Id));
        Assert.Null(overlay.Find(expired.Id));
        Assert.Null(overlay.Find(future.Id));
    }

    [Fact]
    public void TickDialsKnownNonNeighboursWithAnAddressAtMostDialsPerTickAndNotAgainTooSoon()
    {
        var options = new OverlayOptions { DialsPerTick = 2, TargetLinks = 8, RedialAfter = TimeSpan.FromSeconds(30) };
        var overlay = NewOverlay(options);
        var n1 = NewIdentity();
        var d1 = Neighbour(overlay, n1);
        var reachable = Enumerable.Range(0, 3).Select(_ => DescriptorOf(NewIdentity())).ToArray();
        var hidden = DescriptorOf(NewIdentity(), address: false);
        overlay.Receive(n1.Id, new PeersMessage([.. reachable, hidden]));

        var dialed = new List<DialPeer>();
        var first = overlay.Tick().Cast<DialPeer>().ToArray();
        Assert.Equal(2, first.Length);
        dialed.AddRange(first);
        var second = overlay.Tick().Cast<DialPeer>().ToArray();
        Assert.Single(second);
        dialed.AddRange(second);
        Assert.Empty(overlay.Tick());

        // Each reachable peer once, at the address it advertised; never the neighbour or the hidden node.
        Assert.Equal(reachable.Select(d => d.Id).Order(), dialed.Select(d => d.Id).Order());
        foreach (var dial in dialed) Assert.Equal(reachable.Single(d => d.Id == dial.Id).Address, dial.Address);
        Assert.DoesNotContain(d1.Id, dialed.Select(d => d.Id));

        _time.Advance(options.RedialAfter - TimeSpan.FromSeconds(1));
        Assert.Empty(overlay.Tick());
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(2, overlay.Tick().Count);
    }

    [Fact]
    public void TickDialsNobodyOnceTheTargetIsReached()
    {
        var overlay = NewOverlay(new OverlayOptions { TargetLinks = 2, DialsPerTick = 5 });
        var n1 = NewIdentity();
        Neighbour(overlay, n1);
        overlay.Receive(n1.Id, new PeersMessage([.. Enumerable.Range(0, 5).Select(_ => DescriptorOf(NewIdentity()))]));
        Assert.Single(overlay.Tick());
        _time.Advance(TimeSpan.FromMinutes(1));
        Neighbour(overlay, NewIdentity());
        Assert.Empty(overlay.Tick());
    }

    [Fact]
    public void TickForgetsExpiredPeersAndAFormerNeighbourCanBeDialed()
    {
        var overlay = NewOverlay();
        var n1 = NewIdentity();
        var d1 = Neighbour(overlay, n1);
        var shortLived = DescriptorOf(NewIdentity(), lifetime: TimeSpan.FromMinutes(1));
        overlay.Receive(n1.Id, new PeersMessage([shortLived]));
        Assert.Equal(2, overlay.KnownPeerCount);

        overlay.LinkDown(n1.Id);
        Assert.Empty(overlay.Neighbours);
        _time.Advance(TimeSpan.FromMinutes(1));
        var dials = overlay.Tick();
        Assert.Null(overlay.Find(shortLived.Id));
        Assert.Equal(1, overlay.KnownPeerCount);
        Assert.Equal(d1.Id, Assert.IsType<DialPeer>(Assert.Single(dials)).Id);
    }

    [Fact]
    public void TheKnownPeerTableNeverExceedsMaxKnownPeers()
    {
        const int Max = 20;
        var overlay = NewOverlay(new OverlayOptions { MaxKnownPeers = Max });
        var neighbours = Enumerable.Range(0, 3).Select(_ => NewIdentity()).ToArray();
        foreach (var n in neighbours) Neighbour(overlay, n);
        var random = new Random(2000);
        for (int round = 0; round < 12; round++)
        {
            _time.Advance(TimeSpan.FromSeconds(1));
            var batch = Enumerable.Range(0, random.Next(1, PeersMessage.MaxDescriptors + 1))
                .Select(_ => DescriptorOf(NewIdentity(), age: TimeSpan.FromSeconds(random.Next(0, 600)))).ToArray();
            overlay.Receive(neighbours[random.Next(neighbours.Length)].Id, new PeersMessage(batch));
            Assert.InRange(overlay.KnownPeerCount, 1, Max);
            // Neighbours are never the ones forgotten.
            Assert.All(neighbours, n => Assert.NotNull(overlay.Find(n.Id)));
        }
        overlay.LinkUp(NewIdentity().Id);
        Assert.InRange(overlay.KnownPeerCount, 1, Max);
    }

    [Fact]
    public void ThePeersMessageSentOnLinkUpFitsInOneControlMessage()
    {
        var overlay = NewOverlay();
        // Neighbours with many partners: each descriptor is over 5 KiB, so 32 of them are far over 64 KiB.
        var partners = Enumerable.Range(0, Descriptor.MaxPartners).Select(i => NodeId.FromSigningKey([(byte)i, 1])).ToArray();
        for (int i = 0; i < PeersMessage.MaxDescriptors; i++)
        {
            var n = NewIdentity();
            overlay.LinkUp(n.Id);
            overlay.Receive(n.Id, new DescriptorMessage(DescriptorOf(n, partners: partners)));
        }

        var actions = overlay.LinkUp(NewIdentity().Id);
        var peers = Assert.Single(actions.Cast<SendOverlayMessage>().Select(s => s.Message).OfType<PeersMessage>());
        Assert.NotEmpty(peers.Descriptors);
        // A larger message would make the new neighbour close the link at once.
        byte[] encoded = ControlCodec.Encode(peers);
        Assert.InRange(encoded.Length, 1, ControlMessage.MaxSize);
    }
}
