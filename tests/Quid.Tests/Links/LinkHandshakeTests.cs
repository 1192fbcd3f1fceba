using System.Buffers.Binary;
using Quid.Crypto;
using Quid.Crypto.Noise;
using Quid.Links;

namespace Quid.Tests.Links;

/// <summary>Two handshakes wired back to back: the bytes one writes are the bytes the other reads.</summary>
internal sealed class LinkPair : IDisposable
{
    public LinkPair(NodeIdentity initiator, NodeIdentity responder, NodeId? expected = null)
    {
        Initiator = LinkHandshake.Initiate(initiator, expected);
        Responder = LinkHandshake.Respond(responder);
    }

    public LinkHandshake Initiator { get; }
    public LinkHandshake Responder { get; }

    /// <summary>Runs all three messages, checking each is consumed whole; returns them.</summary>
    public byte[][] Run()
    {
        byte[] m1 = Initiator.Start();
        byte[] m2 = Deliver(Responder, m1);
        byte[] m3 = Deliver(Initiator, m2);
        Assert.Empty(Deliver(Responder, m3));
        return [m1, m2, m3];
    }

    public static byte[] Deliver(LinkHandshake to, byte[] message)
    {
        byte[] reply = to.Receive(message, out int consumed);
        Assert.Equal(message.Length, consumed);
        return reply;
    }

    public void Dispose()
    {
        Initiator.Dispose();
        Responder.Dispose();
    }
}

public sealed class LinkHandshakeTests : IDisposable
{
    private readonly NodeIdentity _a = NodeIdentity.Generate(out _);
    private readonly NodeIdentity _b = NodeIdentity.Generate(out _);
    private readonly NodeIdentity _c = NodeIdentity.Generate(out _);

    public void Dispose()
    {
        _a.Dispose();
        _b.Dispose();
        _c.Dispose();
    }

    [Fact]
    public void BothSidesCompleteLearnEachOthersIdAndGetWorkingCiphers()
    {
        using var pair = new LinkPair(_a, _b);
        byte[][] messages = pair.Run();
        Assert.All(messages, m => Assert.InRange(m.Length, 2, 2 + LinkHandshake.MaxMessageSize));
        Assert.Equal(messages[0].Length - 2, BinaryPrimitives.ReadUInt16BigEndian(messages[0]));

        Assert.True(pair.Initiator.IsComplete);
        Assert.True(pair.Responder.IsComplete);
        Assert.Equal(_b.Id, pair.Initiator.PeerId);
        Assert.Equal(_a.Id, pair.Responder.PeerId);
        Assert.Equal(_b.SigningPublicKey, pair.Initiator.PeerSigningKey);
        Assert.Equal(_a.SigningPublicKey, pair.Responder.PeerSigningKey);

        var (initSend, initReceive) = pair.Initiator.Split();
        var (respSend, respReceive) = pair.Responder.Split();
        using (initSend)
        using (initReceive)
        using (respSend)
        using (respReceive)
        {
            AssertCarries(initSend, respReceive, "to the responder"u8);
            AssertCarries(respSend, initReceive, "to the initiator"u8);
            AssertCarries(initSend, respReceive, "and again"u8);
            // Each direction has its own key: a frame cannot be reflected back to its sender.
            byte[] frame = new byte[64];
            int length = initSend.Encrypt("echo"u8, frame);
            Assert.False(initReceive.TryDecrypt(frame.AsSpan(0, length), new byte[64], out _));
        }
    }

    private static void AssertCarries(LinkCipher send, LinkCipher receive, ReadOnlySpan<byte> plaintext)
    {
        byte[] ciphertext = new byte[plaintext.Length + LinkCipher.TagSize];
        Assert.Equal(ciphertext.Length, send.Encrypt(plaintext, ciphertext));
        byte[] decrypted = new byte[plaintext.Length];
        Assert.True(receive.TryDecrypt(ciphertext, decrypted, out int written));
        Assert.Equal(plaintext.ToArray(), decrypted[..written]);
    }

    [Fact]
    public void TheExpectedPeerCompletesAndAnyOtherIsWrongPeer()
    {
        using (var right = new LinkPair(_a, _b, expected: _b.Id))
        {
            right.Run();
            Assert.Equal(_b.Id, right.Initiator.PeerId);
        }

        using var wrong = new LinkPair(_a, _b, expected: _c.Id);
        byte[] m2 = LinkPair.Deliver(wrong.Responder, wrong.Initiator.Start());
        var error = Assert.Throws<LinkException>(() => wrong.Initiator.Receive(m2, out _));
        Assert.Equal(LinkError.WrongPeer, error.Error);
        Assert.False(wrong.Initiator.IsComplete);
        Assert.Throws<InvalidOperationException>(() => wrong.Initiator.Split());
    }

    [Fact]
    public void AHandshakeWithItselfIsWrongPeer()
    {
        using var pair = new LinkPair(_a, _a);
        byte[] m2 = LinkPair.Deliver(pair.Responder, pair.Initiator.Start());
        var error = Assert.Throws<LinkException>(() => pair.Initiator.Receive(m2, out _));
        Assert.Equal(LinkError.WrongPeer, error.Error);
    }

    [Fact]
    public void StartIsMessage1OnceForTheInitiatorAndNothingForTheResponder()
    {
        using var pair = new LinkPair(_a, _b);
        Assert.Empty(pair.Responder.Start());
        byte[] m1 = pair.Initiator.Start();
        Assert.Equal(2 + 32, m1.Length);
        Assert.Empty(pair.Initiator.Start());
    }

    [Fact]
    public void SplitBeforeCompletionIsRefused()
    {
        using var pair = new LinkPair(_a, _b);
        Assert.Throws<InvalidOperationException>(() => pair.Responder.Split());
        LinkPair.Deliver(pair.Responder, pair.Initiator.Start());
        Assert.Throws<InvalidOperationException>(() => pair.Responder.Split());
    }

    [Theory]
    [InlineData(LinkHandshake.MaxMessageSize + 1)]
    [InlineData(4096)]
    [InlineData(ushort.MaxValue)]
    public void ALengthPrefixOverMaxMessageSizeIsRefusedAtOnce(int length)
    {
        using var pair = new LinkPair(_a, _b);
        byte[] prefix = new byte[2];
        BinaryPrimitives.WriteUInt16BigEndian(prefix, (ushort)length);
        // Refused from the two prefix bytes alone: nobody waits for 64 KiB that will never be read.
        Assert.Throws<LinkException>(() => pair.Responder.Receive(prefix, out _));

        pair.Initiator.Start();
        Assert.Throws<LinkException>(() => pair.Initiator.Receive(prefix, out _));
    }

    [Fact]
    public void TruncatedMessagesConsumeNothingAndTheWholeMessageStillWorks()
    {
        using var pair = new LinkPair(_a, _b);
        byte[] m1 = pair.Initiator.Start();
        AssertEveryPrefixNeedsMore(pair.Responder, m1);
        byte[] m2 = LinkPair.Deliver(pair.Responder, m1);
        AssertEveryPrefixNeedsMore(pair.Initiator, m2);
        byte[] m3 = LinkPair.Deliver(pair.Initiator, m2);
        AssertEveryPrefixNeedsMore(pair.Responder, m3);
        Assert.Empty(LinkPair.Deliver(pair.Responder, m3));
        Assert.True(pair.Responder.IsComplete);
    }

    private static void AssertEveryPrefixNeedsMore(LinkHandshake handshake, byte[] message)
    {
        for (int length = 0; length < message.Length; length++)
        {
            Assert.Empty(handshake.Receive(message.AsSpan(0, length), out int consumed));
            Assert.Equal(0, consumed);
        }
    }

    [Fact]
    public void BytesAfterTheLastMessageAreLeftForTheTransport()
    {
        using var pair = new LinkPair(_a, _b);
        byte[] m1 = pair.Initiator.Start();
        byte[] m2 = pair.Responder.Receive([.. m1, .. new byte[5]], out int consumed);
        Assert.Equal(m1.Length, consumed);
        byte[] m3 = LinkPair.Deliver(pair.Initiator, m2);
        byte[] withFrame = [.. m3, 0x08, 0x10, 0xAA];
        Assert.Empty(pair.Responder.Receive(withFrame, out consumed));
        Assert.Equal(m3.Length, consumed);
        Assert.True(pair.Responder.IsComplete);
        // A complete handshake reads nothing more.
        Assert.Empty(pair.Responder.Receive(withFrame.AsSpan(consumed), out consumed));
        Assert.Equal(0, consumed);
    }

    [Fact]
    public void AMessageOutOfTurnIsRefused()
    {
        using var pair = new LinkPair(_a, _b);
        // The initiator has not sent message 1, so it cannot be reading one.
        Assert.Throws<LinkException>(() => pair.Initiator.Receive([0, 32, .. new byte[32]], out _));
    }

    [Fact]
    public void AMessageTooShortForItsKeysIsRefused()
    {
        using var pair = new LinkPair(_a, _b);
        Assert.Equal(LinkError.HandshakeFailed, Assert.Throws<LinkException>(() => pair.Responder.Receive([0, 31, .. new byte[31]], out _)).Error);
    }

    [Fact]
    public void AMessage1WithAPayloadIsRefused()
    {
        using var raw = new RawInitiator(_a);
        using var responder = LinkHandshake.Respond(_b);
        var error = Assert.Throws<LinkException>(() => responder.Receive(raw.Message1([1, 2, 3]), out _));
        Assert.Equal(LinkError.HandshakeFailed, error.Error);
    }

    [Fact]
    public void ARawNoiseInitiatorWithAProperHelloIsAccepted()
    {
        // Checks the raw initiator below speaks the protocol, so the refusals that use it mean something.
        using var raw = new RawInitiator(_a);
        using var responder = LinkHandshake.Respond(_b);
        raw.ReadMessage2(LinkPair.Deliver(responder, raw.Message1([])));
        LinkPair.Deliver(responder, raw.Message3(Hello(_a.SigningPublicKey, _a.LinkCertificate)));
        Assert.True(responder.IsComplete);
        Assert.Equal(_a.Id, responder.PeerId);
    }

    public static TheoryData<string> BadHellos() => new("other's certificate", "other's signing key", "version 2", "short", "long", "empty");

    [Theory]
    [MemberData(nameof(BadHellos))]
    public void AMalformedOrUncertifiedHelloFailsAndLeavesTheHandshakeIncomplete(string kind)
    {
        using var raw = new RawInitiator(_a);
        using var responder = LinkHandshake.Respond(_b);
        raw.ReadMessage2(LinkPair.Deliver(responder, raw.Message1([])));
        byte[] hello = kind switch
        {
            "other's certificate" => Hello(_a.SigningPublicKey, _c.LinkCertificate),
            "other's signing key" => Hello(_c.SigningPublicKey, _a.LinkCertificate),
            "version 2" => [2, .. Hello(_a.SigningPublicKey, _a.LinkCertificate).AsSpan(1)],
            "short" => Hello(_a.SigningPublicKey, _a.LinkCertificate)[..^1],
            "long" => [.. Hello(_a.SigningPublicKey, _a.LinkCertificate), 0],
            _ => [],
        };
        var error = Assert.Throws<LinkException>(() => responder.Receive(raw.Message3(hello), out _));
        Assert.Equal(LinkError.HandshakeFailed, error.Error);
        Assert.False(responder.IsComplete);
        Assert.Throws<InvalidOperationException>(() => responder.Split());
    }

    [Fact]
    public void AnInitiatorClaimingTheRespondersOwnIdIsWrongPeerAndNotComplete()
    {
        // The raw initiator holds the responder's keys and ignores the responder's hello.
        using var raw = new RawInitiator(_b);
        using var responder = LinkHandshake.Respond(_b);
        raw.ReadMessage2(LinkPair.Deliver(responder, raw.Message1([])));
        var error = Assert.Throws<LinkException>(() => responder.Receive(raw.Message3(Hello(_b.SigningPublicKey, _b.LinkCertificate)), out _));
        Assert.Equal(LinkError.WrongPeer, error.Error);
        Assert.False(responder.IsComplete);
    }

    [Fact]
    public void ALowOrderEphemeralKeyIsRefused()
    {
        using var pair = new LinkPair(_a, _b);
        byte[] m2 = LinkPair.Deliver(pair.Responder, pair.Initiator.Start());
        m2.AsSpan(2, 32).Clear();
        Assert.Equal(LinkError.HandshakeFailed, Assert.Throws<LinkException>(() => pair.Initiator.Receive(m2, out _)).Error);
    }

    [Fact]
    public void ALowOrderEphemeralKeyInMessage1IsRefusedWhenTheResponderAnswers()
    {
        // The fuzzer's finding: the responder's first DH runs while writing message 2.
        using var pair = new LinkPair(_a, _b);
        byte[] m1 = [0x00, 0x20, .. new byte[32]];
        Assert.Equal(LinkError.HandshakeFailed, Assert.Throws<LinkException>(() => pair.Responder.Receive(m1, out _)).Error);
        Assert.False(pair.Responder.IsComplete);
    }

    [Fact]
    public void EveryFlippedBitOfEveryMessageEndsInALinkException()
    {
        for (int message = 0; message < 3; message++)
        {
            int length;
            using (var probe = new LinkPair(_a, _b))
                length = probe.Run()[message].Length;
            for (int bit = 0; bit < length * 8; bit++)
            {
                using var pair = new LinkPair(_a, _b);
                bool inPrefix = bit < 16;
                var outcome = RunWithFlip(pair, message, bit);
                if (inPrefix)
                    // A changed length either asks for bytes that never come or cuts the message short.
                    Assert.True(outcome is null or LinkException, $"message {message}, bit {bit}: {outcome}");
                else
                    Assert.IsType<LinkException>(outcome);
            }
        }
    }

    /// <summary>Runs the handshake with one bit of one message flipped; returns what it ended in (null: stuck waiting).</summary>
    private static Exception? RunWithFlip(LinkPair pair, int flipped, int bit)
    {
        try
        {
            byte[] message = pair.Initiator.Start();
            for (int i = 0; i < 3; i++)
            {
                if (i == flipped) message[bit / 8] ^= (byte)(1 << (bit % 8));
                var to = i % 2 == 0 ? pair.Responder : pair.Initiator;
                message = to.Receive(message, out int consumed);
                if (consumed == 0) return null;
            }
            return new InvalidOperationException("The handshake completed despite the flipped bit.");
        }
        catch (Exception e)
        {
            return e;
        }
    }

    [Fact]
    public void RandomBytesGiveOnlyLinkExceptions()
    {
        var random = new Random(1024);
        for (int i = 0; i < 3000; i++)
        {
            using var pair = new LinkPair(_a, _b);
            byte[] valid1 = pair.Initiator.Start();
            // Either side, at either of its reading steps.
            LinkHandshake target = pair.Responder;
            int step = random.Next(3);
            if (step == 1) target = pair.Initiator;
            if (step == 2)
            {
                byte[] m2 = LinkPair.Deliver(pair.Responder, valid1);
                LinkPair.Deliver(pair.Initiator, m2);
            }
            byte[] noise = new byte[random.Next(0, 200)];
            random.NextBytes(noise);
            if (noise.Length >= 2 && random.Next(2) == 0)
                BinaryPrimitives.WriteUInt16BigEndian(noise, (ushort)random.Next(0, noise.Length - 1));
            try
            {
                int offset = 0;
                while (offset < noise.Length)
                {
                    target.Receive(noise.AsSpan(offset), out int consumed);
                    if (consumed == 0) break;
                    offset += consumed;
                }
                Assert.False(target.IsComplete && step != 0, "Random bytes completed a handshake.");
            }
            catch (LinkException)
            {
            }
        }
    }

    private static byte[] Hello(byte[] signingKey, byte[] certificate) => [1, .. signingKey, .. certificate];
}

/// <summary>A link initiator built straight on Noise, so tests can send hellos a real node never would.</summary>
internal sealed class RawInitiator : IDisposable
{
    private readonly HandshakeState _noise;

    public RawInitiator(NodeIdentity identity) =>
        _noise = new HandshakeState(NoiseProtocol.Parse(LinkHandshake.ProtocolName), true, "quid link v1"u8, identity.LinkKey);

    public byte[] Message1(ReadOnlySpan<byte> payload) => Write(payload);

    public void ReadMessage2(byte[] framed) => _noise.ReadMessage(framed.AsSpan(2), new byte[LinkHandshake.MaxMessageSize]);

    public byte[] Message3(ReadOnlySpan<byte> hello) => Write(hello);

    private byte[] Write(ReadOnlySpan<byte> payload)
    {
        byte[] message = new byte[LinkHandshake.MaxMessageSize];
        int length = _noise.WriteMessage(payload, message);
        byte[] framed = new byte[2 + length];
        BinaryPrimitives.WriteUInt16BigEndian(framed, (ushort)length);
        message.AsSpan(0, length).CopyTo(framed.AsSpan(2));
        return framed;
    }

    public void Dispose() => _noise.Dispose();
}
