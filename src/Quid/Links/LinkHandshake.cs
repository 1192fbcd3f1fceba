using System.Buffers.Binary;
using Quid.Crypto;
using Quid.Crypto.Noise;

namespace Quid.Links;

/// <summary>
/// The link handshake as a step function over bytes: Noise_XX_25519_AESGCM_SHA256 with prologue
/// "quid link v1", each message framed by a u16 big-endian length. The responder's message 2 and
/// the initiator's message 3 carry a hello: u8 version, the Ed25519 signing key, and that key's
/// signature over the Noise static key. So each side learns the other's node id, bound to the
/// key that Noise proved possession of; ephemeral keys give forward secrecy.
/// </summary>
public sealed class LinkHandshake : IDisposable
{
    public const string ProtocolName = "Noise_XX_25519_AESGCM_SHA256";
    public const int MaxMessageSize = 1024;
    private const byte HelloVersion = 1;
    private const int HelloSize = 1 + NodeIdentity.PublicKeySize + NodeIdentity.SignatureSize;
    private static readonly byte[] Prologue = "quid link v1"u8.ToArray();
    private static readonly NoiseProtocol Protocol = NoiseProtocol.Parse(ProtocolName);

    private readonly NodeIdentity _identity;
    private readonly NodeId? _expectedPeer;
    private readonly bool _initiator;
    private readonly HandshakeState _noise;
    private int _messagesDone;

    private LinkHandshake(NodeIdentity identity, bool initiator, NodeId? expectedPeer)
    {
        _identity = identity;
        _initiator = initiator;
        _expectedPeer = expectedPeer;
        _noise = new HandshakeState(Protocol, initiator, Prologue, identity.LinkKey);
    }

    public static LinkHandshake Initiate(NodeIdentity identity, NodeId? expectedPeer = null) => new(identity, true, expectedPeer);
    public static LinkHandshake Respond(NodeIdentity identity) => new(identity, false, null);

    public bool IsComplete => _messagesDone == 3;
    public NodeId PeerId { get; private set; }
    public byte[] PeerSigningKey { get; private set; } = [];

    /// <summary>The first bytes to send: message 1 for the initiator, nothing for the responder.</summary>
    public byte[] Start() => _initiator && _messagesDone == 0 ? Write([]) : [];

    /// <summary>
    /// Consumes at most one handshake message from <paramref name="input"/> and returns what to
    /// send in reply (possibly nothing). Bytes after the handshake are left unconsumed: they
    /// are the first transport frames.
    /// </summary>
    public byte[] Receive(ReadOnlySpan<byte> input, out int consumed)
    {
        consumed = 0;
        if (IsComplete || input.Length < 2) return [];
        bool ourTurnToRead = _initiator ? _messagesDone == 1 : _messagesDone is 0 or 2;
        if (!ourTurnToRead) throw new LinkException(LinkError.HandshakeFailed, "Peer sent a handshake message out of turn.");
        int length = BinaryPrimitives.ReadUInt16BigEndian(input);
        if (length > MaxMessageSize) throw new LinkException(LinkError.HandshakeFailed, $"Handshake message of {length} bytes exceeds {MaxMessageSize}.");
        if (input.Length < 2 + length) return [];
        consumed = 2 + length;

        Span<byte> payload = stackalloc byte[MaxMessageSize];
        int payloadLength;
        try
        {
            payloadLength = _noise.ReadMessage(input.Slice(2, length), payload);
        }
        catch (NoiseException e)
        {
            throw new LinkException(LinkError.HandshakeFailed, $"Noise handshake failed: {e.Message}", e);
        }
        // Count the message only once its hello is accepted: a refused handshake never reports complete.
        if (_messagesDone >= 1) CheckHello(payload[..payloadLength]);
        else if (payloadLength != 0) throw new LinkException(LinkError.HandshakeFailed, "Message 1 must have an empty payload.");
        _messagesDone++;

        // Message 1 is answered by message 2, message 2 by message 3; message 3 completes.
        return IsComplete ? [] : Write(Hello());
    }

    private byte[] Hello()
    {
        var hello = new byte[HelloSize];
        hello[0] = HelloVersion;
        _identity.SigningPublicKey.CopyTo(hello, 1);
        _identity.LinkCertificate.CopyTo(hello, 1 + NodeIdentity.PublicKeySize);
        return hello;
    }

    private void CheckHello(ReadOnlySpan<byte> hello)
    {
        if (hello.Length != HelloSize || hello[0] != HelloVersion)
            throw new LinkException(LinkError.HandshakeFailed, "Peer's hello is malformed or of an unknown version.");
        var signingKey = hello.Slice(1, NodeIdentity.PublicKeySize);
        var certificate = hello.Slice(1 + NodeIdentity.PublicKeySize, NodeIdentity.SignatureSize);
        if (!NodeIdentity.VerifyLinkCertificate(signingKey, _noise.RemoteStaticPublicKey, certificate))
            throw new LinkException(LinkError.HandshakeFailed, "Peer's link key is not certified by its signing key.");
        PeerSigningKey = signingKey.ToArray();
        PeerId = NodeId.FromSigningKey(signingKey);
        if (PeerId == _identity.Id) throw new LinkException(LinkError.WrongPeer, "Peer has our own node id: a link to ourselves.");
        if (_expectedPeer is { } expected && expected != PeerId)
            throw new LinkException(LinkError.WrongPeer, $"Expected node {expected.Brief}, the peer is {PeerId.Brief}.");
    }

    private byte[] Write(ReadOnlySpan<byte> payload)
    {
        Span<byte> message = stackalloc byte[MaxMessageSize];
        int length;
        try
        {
            length = _noise.WriteMessage(payload, message);
        }
        catch (NoiseException e)
        {
            // The responder's first Diffie-Hellman happens here: a low-order ephemeral key in
            // message 1 fails now, not when message 1 was read.
            throw new LinkException(LinkError.HandshakeFailed, $"Noise handshake failed: {e.Message}", e);
        }
        _messagesDone++;
        var framed = new byte[2 + length];
        BinaryPrimitives.WriteUInt16BigEndian(framed, (ushort)length);
        message[..length].CopyTo(framed.AsSpan(2));
        return framed;
    }

    /// <summary>The transport ciphers, oriented for this side: AEGIS-256 keyed from Noise's split. Only once, after completion.</summary>
    public (LinkCipher Send, LinkCipher Receive) Split()
    {
        if (!IsComplete) throw new InvalidOperationException("The handshake is not complete.");
        Span<byte> send = stackalloc byte[32];
        Span<byte> receive = stackalloc byte[32];
        _noise.SplitKeys(send, receive);
        try
        {
            return (new LinkCipher(send), new LinkCipher(receive));
        }
        finally
        {
            System.Security.Cryptography.CryptographicOperations.ZeroMemory(send);
            System.Security.Cryptography.CryptographicOperations.ZeroMemory(receive);
        }
    }

    public void Dispose() => _noise.Dispose();
}
