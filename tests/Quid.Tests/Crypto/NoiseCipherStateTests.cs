using Quid.Crypto.Noise;

namespace Quid.Tests.Crypto;

public sealed class NoiseCipherStateTests : IDisposable
{
    // Initiator-to-responder direction of an NN session; the other direction is only kept to be disposed.
    private readonly CipherState _send;
    private readonly CipherState _receive;
    private readonly CipherState _reverseSend;
    private readonly CipherState _reverseReceive;

    public NoiseCipherStateTests()
    {
        using var peers = new NoisePeers("Noise_NN_25519_ChaChaPoly_SHA256");
        peers.RunUntil(peers.MessageCount);
        (_send, _reverseReceive) = peers.Initiator.Split();
        (_reverseSend, _receive) = peers.Responder.Split();
    }

    public void Dispose()
    {
        _send.Dispose();
        _receive.Dispose();
        _reverseSend.Dispose();
        _reverseReceive.Dispose();
    }

    [Theory]
    [InlineData("Noise_NN_25519_ChaChaPoly_SHA256")]
    [InlineData("Noise_NN_25519_AESGCM_SHA512")]
    public void EveryFlippedBitFailsWithoutAdvancingTheNonce(string protocol)
    {
        using var peers = new NoisePeers(protocol);
        peers.RunUntil(peers.MessageCount);
        (CipherState send, CipherState unusedReceive) = peers.Initiator.Split();
        (CipherState unusedSend, CipherState receive) = peers.Responder.Split();
        using (send)
        using (unusedReceive)
        using (unusedSend)
        using (receive)
        {
            byte[] wire = new byte[21];
            send.Encrypt("ad"u8, "hello"u8, wire);
            byte[] plaintext = new byte[5];
            for (int bit = 0; bit < wire.Length * 8; bit++)
            {
                wire[bit / 8] ^= (byte)(1 << (bit % 8));
                Assert.False(receive.TryDecrypt("ad"u8, wire, plaintext, out int written));
                Assert.Equal(0, written);
                wire[bit / 8] ^= (byte)(1 << (bit % 8));
            }

            Assert.False(receive.TryDecrypt("da"u8, wire, plaintext, out _));
            Assert.Equal(0UL, receive.Nonce);
            Assert.True(receive.TryDecrypt("ad"u8, wire, plaintext, out int length));
            Assert.Equal("hello"u8.ToArray(), plaintext[..length]);
            Assert.Equal(1UL, receive.Nonce);
        }
    }

    [Fact]
    public void ReplayedMessagesFail()
    {
        byte[] wire = new byte[20];
        _send.Encrypt(default, "ping"u8, wire);
        Assert.True(_receive.TryDecrypt(default, wire, new byte[4], out _));
        Assert.False(_receive.TryDecrypt(default, wire, new byte[4], out _));
    }

    [Fact]
    public void MalformedInputReturnsFalseRatherThanThrowing()
    {
        byte[] wire = new byte[20];
        _send.Encrypt(default, "ping"u8, wire);

        Assert.False(_receive.TryDecrypt(default, [], [], out _));
        Assert.False(_receive.TryDecrypt(default, new byte[15], new byte[100], out _));
        Assert.False(_receive.TryDecrypt(default, new byte[65536], new byte[65536], out _));
        Assert.False(_receive.TryDecrypt(default, wire, new byte[3], out _));
        Assert.True(_receive.TryDecrypt(default, wire, new byte[4], out _));
    }

    [Fact]
    public void EncryptAndDecryptWorkInPlace()
    {
        byte[] buffer = new byte[16 + 5];
        "hello"u8.CopyTo(buffer);
        Assert.Equal(21, _send.Encrypt(default, buffer.AsSpan(0, 5), buffer));
        Assert.True(_receive.TryDecrypt(default, buffer, buffer, out int written));
        Assert.Equal("hello"u8.ToArray(), buffer[..written]);
    }

    [Fact]
    public void EncryptEnforcesMessageAndBufferLimits()
    {
        Assert.Equal(NoiseError.TooLong, Assert.Throws<NoiseException>(() => _send.Encrypt(default, new byte[65520], new byte[70000])).Error);
        Assert.Equal(65535, _send.Encrypt(default, new byte[65519], new byte[65535]));
        Assert.Throws<ArgumentException>(() => _send.Encrypt(default, new byte[10], new byte[25]));
    }

    [Fact]
    public void TheReservedLastNonceIsNeverUsed()
    {
        _send.SetNonce(ulong.MaxValue - 1);
        _receive.SetNonce(ulong.MaxValue - 1);
        byte[] wire = new byte[16];
        _send.Encrypt(default, [], wire);
        Assert.Equal(ulong.MaxValue, _send.Nonce);
        Assert.Equal(NoiseError.NonceExhausted, Assert.Throws<NoiseException>(() => _send.Encrypt(default, [], new byte[16])).Error);

        Assert.True(_receive.TryDecrypt(default, wire, [], out _));
        Assert.Equal(ulong.MaxValue, _receive.Nonce);
        Assert.False(_receive.TryDecrypt(default, wire, [], out _));
    }

    [Fact]
    public void TryDecryptDoesNotAllocate()
    {
        const int count = 200;
        byte[][] wires = new byte[count][];
        for (int i = 0; i < count; i++)
        {
            wires[i] = new byte[16 + 64];
            _send.Encrypt(default, new byte[64], wires[i]);
        }

        byte[] plaintext = new byte[64];
        byte[] forged = new byte[80];
        Assert.True(_receive.TryDecrypt(default, wires[0], plaintext, out _));
        Assert.False(_receive.TryDecrypt(default, forged, plaintext, out _));

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 1; i < count; i++)
        {
            _receive.TryDecrypt(default, wires[i], plaintext, out _);
            _receive.TryDecrypt(default, forged, plaintext, out _);
        }

        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal((ulong)count, _receive.Nonce);
        Assert.Equal(0, allocated);
    }
}
