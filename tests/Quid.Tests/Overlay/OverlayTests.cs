using Quid.Crypto;
using Quid.Overlay;
using Quid.Tests.Wire;
using Quid.Wire;

namespace Quid.Tests.Overlay;

/// <summary>
/// Descriptors from neighbours: a neighbour's own descriptor is checked and refused with a typed
/// error; forged and malformed bytes never get past the codec; bad hearsay is skipped quietly.
/// </summary>
public sealed class OverlayTests : IDisposable
{
    private readonly OverlayHarness _h = new();

    public void Dispose() => _h.Dispose();

    /// <summary>Links a neighbour without its descriptor; returns its identity.</summary>
    private NodeIdentity Linked(Quid.Overlay.Overlay overlay)
    {
        var identity = _h.NewIdentity();
        overlay.LinkUp(identity.Id, inbound: true, _h.NextAddress());
        return identity;
    }

    private static MessageRejected Rejected(IReadOnlyList<OverlayAction> actions) =>
        Assert.IsType<MessageRejected>(Assert.Single(actions, a => a is MessageRejected));

    [Fact]
    public void ANeighboursOwnDescriptorThatNamesSomeoneElseIsWrongSender()
    {
        var overlay = _h.NewOverlay();
        var n = Linked(overlay);
        var other = _h.NewIdentity();

        var rejected = Rejected(overlay.Receive(n.Id, new DescriptorMessage(_h.DescriptorOf(other))));
        Assert.Equal(n.Id, rejected.From);
        Assert.Equal(OverlayError.WrongSender, rejected.Error);
        Assert.Null(overlay.Find(other.Id));
        Assert.Null(overlay.Find(n.Id));
    }

    [Fact]
    public void AnExpiredDescriptorIsRefusedAndOneStillValidIsKept()
    {
        var overlay = _h.NewOverlay();
        var n = Linked(overlay);
        var expired = _h.DescriptorOf(n, age: TimeSpan.FromHours(1), lifetime: TimeSpan.FromHours(1));

        Assert.Equal(OverlayError.Expired, Rejected(overlay.Receive(n.Id, new DescriptorMessage(expired))).Error);
        Assert.Null(overlay.Find(n.Id));

        var lastSecond = _h.DescriptorOf(n, age: TimeSpan.FromHours(1) - TimeSpan.FromSeconds(1), lifetime: TimeSpan.FromHours(1));
        Assert.Empty(overlay.Receive(n.Id, new DescriptorMessage(lastSecond)).OfType<MessageRejected>());
        Assert.Same(lastSecond, overlay.Find(n.Id));
    }

    [Fact]
    public void ADescriptorPublishedBeyondTheClockSkewIsFromTheFuture()
    {
        var options = new OverlayOptions();
        var overlay = _h.NewOverlay(options);
        var n = Linked(overlay);

        var future = _h.DescriptorOf(n, age: -(options.MaxClockSkew + TimeSpan.FromSeconds(1)));
        Assert.Equal(OverlayError.FromTheFuture, Rejected(overlay.Receive(n.Id, new DescriptorMessage(future))).Error);
        Assert.Null(overlay.Find(n.Id));

        var skewed = _h.DescriptorOf(n, age: -options.MaxClockSkew);
        Assert.Empty(overlay.Receive(n.Id, new DescriptorMessage(skewed)).OfType<MessageRejected>());
        Assert.Same(skewed, overlay.Find(n.Id));
    }

    [Fact]
    public void ALifetimeBeyondTheMaximumIsTooLongLived()
    {
        var options = new OverlayOptions();
        var overlay = _h.NewOverlay(options);
        var n = Linked(overlay);

        var tooLong = _h.DescriptorOf(n, lifetime: options.MaxDescriptorLifetime + TimeSpan.FromSeconds(1));
        Assert.Equal(OverlayError.TooLongLived, Rejected(overlay.Receive(n.Id, new DescriptorMessage(tooLong))).Error);
        Assert.Null(overlay.Find(n.Id));

        var longest = _h.DescriptorOf(n, lifetime: options.MaxDescriptorLifetime);
        Assert.Empty(overlay.Receive(n.Id, new DescriptorMessage(longest)).OfType<MessageRejected>());
        Assert.Same(longest, overlay.Find(n.Id));
    }

    [Fact]
    public void AnOlderDescriptorAfterANewerOneIsAStaleReplayAndTheNewerOneIsKept()
    {
        var overlay = _h.NewOverlay();
        var n = Linked(overlay);
        var older = _h.DescriptorOf(n, age: TimeSpan.FromMinutes(2));
        var newer = _h.DescriptorOf(n, age: TimeSpan.FromMinutes(1));
        Assert.Empty(overlay.Receive(n.Id, new DescriptorMessage(older)));
        Assert.Empty(overlay.Receive(n.Id, new DescriptorMessage(newer)).OfType<MessageRejected>());

        Assert.Equal(OverlayError.Stale, Rejected(overlay.Receive(n.Id, new DescriptorMessage(older))).Error);
        Assert.Same(newer, overlay.Find(n.Id));

        var newest = _h.DescriptorOf(n);
        Assert.Empty(overlay.Receive(n.Id, new DescriptorMessage(newest)).OfType<MessageRejected>());
        Assert.Same(newest, overlay.Find(n.Id));
    }

    [Fact]
    public void EveryRefusedDescriptorIsAStrikeAndEnoughOfThemDisconnect()
    {
        var overlay = _h.NewOverlay(new OverlayOptions { StrikeLimit = 4 });
        var n = Linked(overlay);
        var other = _h.NewIdentity();
        ControlMessage[] bad =
        [
            new DescriptorMessage(_h.DescriptorOf(other)),
            new DescriptorMessage(_h.DescriptorOf(n, age: TimeSpan.FromHours(2))),
            new DescriptorMessage(_h.DescriptorOf(n, age: -TimeSpan.FromHours(1))),
        ];
        foreach (var message in bad)
        {
            var actions = overlay.Receive(n.Id, message);
            Assert.Single(actions.OfType<MessageRejected>());
            Assert.Empty(actions.OfType<DisconnectPeer>());
        }
        var last = overlay.Receive(n.Id, new DescriptorMessage(_h.DescriptorOf(n, lifetime: TimeSpan.FromDays(1))));
        Assert.Equal(OverlayError.TooLongLived, Assert.Single(last.OfType<MessageRejected>()).Error);
        Assert.Equal(new DisconnectPeer(n.Id, GoodbyeReason.Abuse), Assert.Single(last.OfType<DisconnectPeer>()));
        Assert.Equal(GoodbyeReason.Abuse, overlay.Refuse(n.Id));
    }

    [Fact]
    public void AForgedDescriptorIsRefusedByTheCodecBeforeTheOverlaySeesIt()
    {
        var n = _h.NewIdentity();
        var mallory = _h.NewIdentity();
        var genuine = _h.DescriptorOf(n);
        byte[] message = ControlCodec.Encode(new DescriptorMessage(genuine));
        Assert.Equal(genuine.Encoded, Assert.IsType<DescriptorMessage>(ControlCodec.Decode(message)).Descriptor.Encoded);

        // A changed signature byte, a changed body byte (the last byte of the port), and n's body signed by someone else.
        byte[] badSignature = [.. message];
        badSignature[^1] ^= 1;
        byte[] badBody = [.. message];
        int portAt = 1 + 1 + 32 + 32 + 8 + 8 + 1 + 4 + 1;
        badBody[portAt] ^= 1;
        byte[] resigned = [(byte)ControlType.Descriptor, .. TestDescriptors.Resign(mallory, TestDescriptors.Body(genuine))];
        foreach (var forged in new[] { badSignature, badBody, resigned })
            Assert.Equal(WireError.BadSignature, Assert.Throws<WireException>(() => ControlCodec.Decode(forged)).Error);

        // One forged descriptor spoils a whole Peers message: it cannot be decoded at all.
        byte[] peers = ControlCodec.Encode(new PeersMessage([_h.DescriptorOf(_h.NewIdentity()), genuine]));
        peers[^1] ^= 1;
        Assert.Equal(WireError.BadSignature, Assert.Throws<WireException>(() => ControlCodec.Decode(peers)).Error);
    }

    public static TheoryData<string, WireError> Malformed() => new()
    {
        { "descriptor cut short", WireError.Truncated },
        { "descriptor shorter than a signature", WireError.Truncated },
        { "descriptor of another version", WireError.BadVersion },
        { "peers message cut in a length", WireError.Truncated },
        { "peers message with 33 descriptors", WireError.Oversized },
        { "query cut short", WireError.Truncated },
        { "hit with 17 descriptors", WireError.Oversized },
        { "unknown type", WireError.UnknownMessageType },
    };

    [Theory]
    [MemberData(nameof(Malformed))]
    public void MalformedBytesAreRefusedByTheCodecWithATypedError(string what, WireError expected)
    {
        var d = _h.DescriptorOf(_h.NewIdentity());
        byte[] descriptor = ControlCodec.Encode(new DescriptorMessage(d));
        byte[] peers = ControlCodec.Encode(new PeersMessage([d]));
        byte[] query = ControlCodec.Encode(OverlayHarness.Query());
        byte[] bytes = what switch
        {
            "descriptor cut short" => descriptor[..^1],
            "descriptor shorter than a signature" => descriptor[..40],
            "descriptor of another version" => [(byte)ControlType.Descriptor, .. TestDescriptors.Resign(_h.Self, [2, .. TestDescriptors.Body(_h.DescriptorOf(_h.Self))[1..]])],
            "peers message cut in a length" => peers[..3],
            "peers message with 33 descriptors" => [(byte)ControlType.Peers, 33],
            "query cut short" => query[..^1],
            "hit with 17 descriptors" => [(byte)ControlType.QueryHit, .. new byte[QueryId.Size], 17],
            "unknown type" => [99, 0],
            _ => throw new ArgumentOutOfRangeException(nameof(what)),
        };
        Assert.Equal(expected, Assert.Throws<WireException>(() => ControlCodec.Decode(bytes)).Error);
    }

    [Fact]
    public void BadHearsayIsSkippedWithoutBlameAndTheGoodDescriptorsInTheSameMessageAreKept()
    {
        // A strike limit of one: any blame at all would disconnect the relaying neighbour.
        var overlay = _h.NewOverlay(new OverlayOptions { StrikeLimit = 1 });
        var n = _h.Link(overlay);
        var known = _h.NewIdentity();
        var knownNewer = _h.DescriptorOf(known, age: TimeSpan.FromMinutes(1));
        Assert.Empty(overlay.Receive(n.Id, new PeersMessage([knownNewer])));

        var before = _h.DescriptorOf(_h.NewIdentity());
        var expired = _h.DescriptorOf(_h.NewIdentity(), age: TimeSpan.FromHours(1), lifetime: TimeSpan.FromHours(1));
        var future = _h.DescriptorOf(_h.NewIdentity(), age: -TimeSpan.FromHours(1));
        var tooLong = _h.DescriptorOf(_h.NewIdentity(), lifetime: TimeSpan.FromDays(1));
        var stale = _h.DescriptorOf(known, age: TimeSpan.FromMinutes(2));
        var after = _h.DescriptorOf(_h.NewIdentity());

        var actions = overlay.Receive(n.Id, new PeersMessage([before, expired, future, tooLong, stale, after]));

        Assert.Empty(actions.OfType<MessageRejected>());
        Assert.Empty(actions.OfType<DisconnectPeer>());
        Assert.Null(overlay.Refuse(n.Id));
        Assert.Same(before, overlay.Find(before.Id));
        Assert.Same(after, overlay.Find(after.Id));
        Assert.Same(knownNewer, overlay.Find(known.Id));
        Assert.Null(overlay.Find(expired.Id));
        Assert.Null(overlay.Find(future.Id));
        Assert.Null(overlay.Find(tooLong.Id));
        // n, known, before and after.
        Assert.Equal(4, overlay.KnownPeerCount);
    }

    [Fact]
    public void HearsayAboutOurselvesOrANeighbourIsIgnored()
    {
        var overlay = _h.NewOverlay();
        var n1 = _h.Link(overlay);
        var n2 = _h.Link(overlay);
        _h.Time.Advance(TimeSpan.FromMinutes(1));
        // Newer, validly signed, but second-hand: a neighbour speaks for itself only.
        var n2Newer = _h.DescriptorOf(n2.Identity);
        var me = _h.DescriptorOf(_h.Self);
        Assert.Empty(overlay.Receive(n1.Id, new PeersMessage([n2Newer, me])));
        Assert.Same(n2.Descriptor, overlay.Find(n2.Id));
        Assert.Null(overlay.Find(_h.Self.Id));
    }
}
