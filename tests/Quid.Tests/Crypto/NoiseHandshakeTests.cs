using System.Text;
using NSec.Cryptography;
using Quid.Crypto.Noise;

namespace Quid.Tests.Crypto;

public class NoiseHandshakeTests
{
    private const string Xx = "Noise_XX_25519_ChaChaPoly_SHA256";

    // Every pattern, each under one suite, and both ciphers and hashes across them.
    private static readonly string[] ProtocolNames =
    [
        "Noise_N_25519_ChaChaPoly_SHA256",
        "Noise_K_25519_AESGCM_SHA512",
        "Noise_X_25519_ChaChaPoly_SHA512",
        "Noise_NN_25519_AESGCM_SHA256",
        "Noise_NK_25519_ChaChaPoly_SHA256",
        Xx,
        "Noise_XK_25519_AESGCM_SHA512",
        "Noise_IK_25519_ChaChaPoly_SHA512",
        "Noise_KK_25519_AESGCM_SHA256",
    ];

    public static TheoryData<string> Protocols() => new(ProtocolNames);

    [Fact]
    public void XxWithFreshKeysAuthenticatesBothSidesAndAgreesOnTheHash()
    {
        using var peers = new NoisePeers(Xx, Encoding.ASCII.GetBytes("quid/1"), Encoding.ASCII.GetBytes("quid/1"));
        Assert.Equal("one"u8.ToArray(), peers.Read(0, peers.Write(0, "one"u8)));
        Assert.Equal("two"u8.ToArray(), peers.Read(1, peers.Write(1, "two"u8)));
        Assert.False(peers.Initiator.IsComplete);
        Assert.Equal("three"u8.ToArray(), peers.Read(2, peers.Write(2, "three"u8)));

        Assert.True(peers.Initiator.IsComplete);
        Assert.True(peers.Responder.IsComplete);
        Assert.Equal(peers.ResponderStaticPublic, peers.Initiator.RemoteStaticPublicKey.ToArray());
        Assert.Equal(peers.InitiatorStaticPublic, peers.Responder.RemoteStaticPublicKey.ToArray());
        Assert.Equal(peers.Initiator.HandshakeHash.ToArray(), peers.Responder.HandshakeHash.ToArray());
        Assert.Equal(32, peers.Initiator.HandshakeHash.Length);

        (CipherState initSend, CipherState initReceive) = peers.Initiator.Split();
        (CipherState respSend, CipherState respReceive) = peers.Responder.Split();
        using (initSend)
        using (initReceive)
        using (respSend)
        using (respReceive)
        {
            AssertRoundTrip(initSend, respReceive, "to responder"u8);
            AssertRoundTrip(respSend, initReceive, "to initiator"u8);
            AssertRoundTrip(initSend, respReceive, ""u8);
        }
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public void EveryPatternCompletesAndBothDirectionsWork(string protocol)
    {
        using var peers = new NoisePeers(protocol);
        peers.RunUntil(peers.MessageCount);
        Assert.True(peers.Initiator.IsComplete && peers.Responder.IsComplete);
        Assert.Equal(peers.Initiator.HandshakeHash.ToArray(), peers.Responder.HandshakeHash.ToArray());

        (CipherState initSend, CipherState initReceive) = peers.Initiator.Split();
        (CipherState respSend, CipherState respReceive) = peers.Responder.Split();
        using (initSend)
        using (initReceive)
        using (respSend)
        using (respReceive)
        {
            AssertRoundTrip(initSend, respReceive, "hello"u8);
            if (peers.Protocol.Pattern.IsOneWay)
            {
                // Noise §7.4: after a one-way handshake the responder has nothing to send with.
                Assert.Throws<InvalidOperationException>(() => respSend.Encrypt(default, "x"u8, new byte[17]));
                Assert.False(initReceive.TryDecrypt(default, new byte[17], new byte[1], out _));
            }
            else
            {
                AssertRoundTrip(respSend, initReceive, "hello back"u8);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public void TamperingWithAnyByteOfAnyHandshakeMessageIsDetected(string protocol)
    {
        int messageCount;
        using (var probe = new NoisePeers(protocol))
        {
            messageCount = probe.MessageCount;
        }

        for (int tampered = 0; tampered < messageCount; tampered++)
        {
            for (int position = 0; ; position++)
            {
                using var peers = new NoisePeers(protocol);
                peers.RunUntil(tampered);
                byte[] message = peers.Write(tampered, "payload"u8);
                if (position == message.Length)
                {
                    break;
                }

                message[position] ^= (byte)(1 << (position % 8));

                // A message whose payload travels before any DH (the first of NN and XX) cannot be checked
                // by its reader; the change then reaches the transcript hash and breaks the next message.
                NoiseException error = Assert.Throws<NoiseException>(() =>
                {
                    peers.Read(tampered, message);
                    for (int next = tampered + 1; next < peers.MessageCount; next++)
                    {
                        peers.Read(next, peers.Write(next, "payload"u8));
                    }
                });
                Assert.Equal(NoiseError.DecryptionFailed, error.Error);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public void EveryTruncationOfEveryHandshakeMessageIsRejected(string protocol)
    {
        byte[] payload = "some payload"u8.ToArray();
        int messageCount;
        using (var probe = new NoisePeers(protocol))
        {
            messageCount = probe.MessageCount;
        }

        for (int index = 0; index < messageCount; index++)
        {
            for (int length = 0; ; length++)
            {
                using var peers = new NoisePeers(protocol);
                peers.RunUntil(index);
                byte[] message = peers.Write(index, payload);
                if (length == message.Length)
                {
                    break;
                }

                int overhead = message.Length - payload.Length;
                bool clearPayload = message.AsSpan(overhead).SequenceEqual(payload);
                if (length >= overhead && clearPayload)
                {
                    // Before any DH the payload is plaintext, so a shorter one is still a valid message.
                    Assert.Equal(payload[..(length - overhead)], peers.Read(index, message.AsSpan(0, length)));
                    continue;
                }

                NoiseException error = Assert.Throws<NoiseException>(() => peers.Read(index, message.AsSpan(0, length)));
                Assert.Equal(length < overhead ? NoiseError.Truncated : NoiseError.DecryptionFailed, error.Error);
            }
        }
    }

    [Fact]
    public void BadLengthsAreRejectedWithoutDisturbingTheHandshake()
    {
        using var peers = new NoisePeers(Xx);
        NoiseException tooLongToWrite = Assert.Throws<NoiseException>(
            () => peers.Initiator.WriteMessage(new byte[65535 - 31], new byte[70000]));
        Assert.Equal(NoiseError.TooLong, tooLongToWrite.Error);
        Assert.Equal(65535, peers.Initiator.WriteMessage(new byte[65535 - 32], new byte[70000]));

        NoiseException tooLongToRead = Assert.Throws<NoiseException>(() => peers.Responder.ReadMessage(new byte[65536], new byte[65536]));
        Assert.Equal(NoiseError.TooLong, tooLongToRead.Error);
        NoiseException truncated = Assert.Throws<NoiseException>(() => peers.Responder.ReadMessage(new byte[31], new byte[65536]));
        Assert.Equal(NoiseError.Truncated, truncated.Error);

        using var fresh = new NoisePeers(Xx);
        byte[] first = fresh.Write(0, "hi"u8);
        Assert.Throws<NoiseException>(() => fresh.Read(0, first.AsSpan(0, 20)));
        Assert.Throws<NoiseException>(() => fresh.Read(0, new byte[65536]));
        Assert.Equal("hi"u8.ToArray(), fresh.Read(0, first));
        fresh.Read(1, fresh.Write(1, []));
        fresh.Read(2, fresh.Write(2, []));
        Assert.True(fresh.Responder.IsComplete);
    }

    [Fact]
    public void RandomBytesOnlyEverRaiseNoiseException()
    {
        var random = new Random(0x5EED);
        byte[] payload = new byte[70000];
        int rejected = 0;
        for (int i = 0; i < 3000; i++)
        {
            using var peers = new NoisePeers(ProtocolNames[random.Next(ProtocolNames.Length)]);
            int index = random.Next(peers.MessageCount);
            peers.RunUntil(index);

            // Mostly short inputs around the real message sizes, sometimes past the 65535-byte limit.
            byte[] message = new byte[random.Next(8) == 0 ? random.Next(65000, 66000) : random.Next(0, 200)];
            random.NextBytes(message);
            Exception? error = Record.Exception(() => peers.Receiver(index).ReadMessage(message, payload));
            if (error is not null)
            {
                Assert.IsType<NoiseException>(error);
                rejected++;
            }
        }

        // Only a first NN or XX message, whose payload is plaintext, can be accepted.
        Assert.InRange(rejected, 2000, 3000);
    }

    [Theory]
    [InlineData("0000000000000000000000000000000000000000000000000000000000000000")]
    [InlineData("0100000000000000000000000000000000000000000000000000000000000000")]
    [InlineData("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")]
    [InlineData("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")]
    public void LowOrderEphemeralKeysAreRejected(string point)
    {
        byte[] lowOrder = Convert.FromHexString(point);

        // NK: the responder's first DH is with the received e.
        using var nk = new NoisePeers("Noise_NK_25519_ChaChaPoly_SHA256");
        byte[] first = [.. lowOrder, .. new byte[16]];
        Assert.Equal(NoiseError.InvalidPublicKey, Assert.Throws<NoiseException>(() => nk.Read(0, first)).Error);

        // NN: the initiator's ee DH in the second message.
        using var nn = new NoisePeers("Noise_NN_25519_ChaChaPoly_SHA256");
        nn.RunUntil(1);
        byte[] second = [.. lowOrder, .. new byte[16]];
        Assert.Equal(NoiseError.InvalidPublicKey, Assert.Throws<NoiseException>(() => nn.Read(1, second)).Error);
    }

    [Fact]
    public void MessagesOutOfTurnAreRefusedWithoutBreakingTheHandshake()
    {
        using var peers = new NoisePeers(Xx);
        Assert.Equal(NoiseError.OutOfTurn, Assert.Throws<NoiseException>(() => peers.Responder.WriteMessage([], new byte[100])).Error);
        Assert.Equal(NoiseError.OutOfTurn, Assert.Throws<NoiseException>(() => peers.Initiator.ReadMessage(new byte[32], new byte[100])).Error);

        peers.RunUntil(peers.MessageCount);
        Assert.Equal(NoiseError.OutOfTurn, Assert.Throws<NoiseException>(() => peers.Initiator.WriteMessage([], new byte[100])).Error);
        Assert.Equal(NoiseError.OutOfTurn, Assert.Throws<NoiseException>(() => peers.Responder.ReadMessage(new byte[64], new byte[100])).Error);
    }

    [Fact]
    public void AFailedHandshakeRefusesFurtherMessages()
    {
        using var peers = new NoisePeers(Xx);
        peers.RunUntil(1);
        byte[] second = peers.Write(1, []);
        second[^1] ^= 1;
        Assert.Throws<NoiseException>(() => peers.Read(1, second));
        Assert.Equal(NoiseError.HandshakeFailed, Assert.Throws<NoiseException>(() => peers.Write(2, [])).Error);
    }

    [Fact]
    public void DifferentProloguesMakeTheHandshakeFail()
    {
        using var peers = new NoisePeers(Xx, "quid/1"u8.ToArray(), "quid/2"u8.ToArray());
        peers.RunUntil(1);
        Assert.Equal(NoiseError.DecryptionFailed, Assert.Throws<NoiseException>(() => peers.Read(1, peers.Write(1, []))).Error);
    }

    [Fact]
    public void TooSmallBuffersCanBeRetried()
    {
        using var peers = new NoisePeers(Xx);
        Assert.Equal(NoiseError.BufferTooSmall, Assert.Throws<NoiseException>(() => peers.Initiator.WriteMessage("hi"u8, new byte[33])).Error);
        byte[] first = peers.Write(0, "hi"u8);
        Assert.Equal(NoiseError.BufferTooSmall, Assert.Throws<NoiseException>(() => peers.Responder.ReadMessage(first, new byte[1])).Error);
        Assert.Equal("hi"u8.ToArray(), peers.Read(0, first));
    }

    [Theory]
    [InlineData("Noise_XX_25519_ChaChaPoly_BLAKE2s")]
    [InlineData("Noise_XX_25519_AESGCM_BLAKE2b")]
    [InlineData("Noise_XX_448_ChaChaPoly_SHA256")]
    [InlineData("Noise_XXpsk3_25519_ChaChaPoly_SHA256")]
    [InlineData("Noise_IN_25519_ChaChaPoly_SHA256")]
    [InlineData("Noise_XX_25519_ChaChaPoly")]
    [InlineData("Noise_XX_25519_ChaChaPoly_SHA256_")]
    [InlineData("noise_XX_25519_ChaChaPoly_SHA256")]
    [InlineData("Noise_XX_25519_chachapoly_SHA256")]
    [InlineData("")]
    public void UnsupportedProtocolNamesAreRejected(string name) =>
        Assert.Equal(NoiseError.UnsupportedProtocol, Assert.Throws<NoiseException>(() => NoiseProtocol.Parse(name)).Error);

    [Fact]
    public void ParseReadsEveryPart()
    {
        NoiseProtocol protocol = NoiseProtocol.Parse("Noise_IK_25519_AESGCM_SHA512");
        Assert.Equal("Noise_IK_25519_AESGCM_SHA512", protocol.Name);
        Assert.Equal("IK", protocol.Pattern.Name);
        Assert.False(protocol.Pattern.IsOneWay);
        Assert.Equal(NoiseCipher.AesGcm, protocol.Cipher);
        Assert.Equal(NoiseHash.Sha512, protocol.Hash);
        Assert.True(NoiseProtocol.Parse("Noise_X_25519_ChaChaPoly_SHA256").Pattern.IsOneWay);
    }

    [Fact]
    public void KeysMustMatchWhatThePatternUses()
    {
        using Key key = Key.Create(KeyAgreementAlgorithm.X25519);
        byte[] remote = key.PublicKey.Export(KeyBlobFormat.RawPublicKey);
        NoiseProtocol xx = NoiseProtocol.Parse(Xx);
        NoiseProtocol nk = NoiseProtocol.Parse("Noise_NK_25519_ChaChaPoly_SHA256");
        NoiseProtocol nn = NoiseProtocol.Parse("Noise_NN_25519_ChaChaPoly_SHA256");

        Assert.Throws<ArgumentException>(() => new HandshakeState(xx, true, [], key, remote));
        Assert.Throws<ArgumentException>(() => new HandshakeState(xx, true, []));
        Assert.Throws<ArgumentException>(() => new HandshakeState(nk, true, []));
        Assert.Throws<ArgumentException>(() => new HandshakeState(nk, true, [], remoteStaticPublicKey: remote.AsSpan(0, 31)));
        Assert.Throws<ArgumentException>(() => new HandshakeState(nk, false, []));
        Assert.Throws<ArgumentException>(() => new HandshakeState(nn, true, [], key));

        using Key ed25519 = Key.Create(SignatureAlgorithm.Ed25519);
        Assert.Throws<ArgumentException>(() => new HandshakeState(xx, true, [], ed25519));
    }

    [Fact]
    public void SplitIsOnlyAvailableOnceTheHandshakeIsComplete()
    {
        using var peers = new NoisePeers(Xx);
        peers.RunUntil(2);
        Assert.Throws<InvalidOperationException>(() => peers.Initiator.Split());
        peers.Read(2, peers.Write(2, []));
        (CipherState send, CipherState receive) = peers.Initiator.Split();
        send.Dispose();
        receive.Dispose();
        Assert.Throws<InvalidOperationException>(() => peers.Initiator.Split());
    }

    private static void AssertRoundTrip(CipherState sender, CipherState receiver, ReadOnlySpan<byte> plaintext)
    {
        byte[] wire = new byte[plaintext.Length + 16];
        Assert.Equal(wire.Length, sender.Encrypt("ad"u8, plaintext, wire));
        byte[] received = new byte[plaintext.Length];
        Assert.True(receiver.TryDecrypt("ad"u8, wire, received, out int written));
        Assert.Equal(plaintext.ToArray(), received[..written]);
    }
}
