using NSec.Cryptography;
using Quid.Crypto.Noise;

namespace Quid.Tests.Crypto;

/// <summary>An initiator and a responder for one protocol, with fresh static keys wherever the pattern uses them.</summary>
internal sealed class NoisePeers : IDisposable
{
    private readonly Key? _initiatorStatic;
    private readonly Key? _responderStatic;

    public NoisePeers(string protocolName, byte[]? initiatorPrologue = null, byte[]? responderPrologue = null)
    {
        Protocol = NoiseProtocol.Parse(protocolName);
        HandshakePattern pattern = Protocol.Pattern;
        _initiatorStatic = pattern.UsesLocalStatic(initiator: true) ? Key.Create(KeyAgreementAlgorithm.X25519) : null;
        _responderStatic = pattern.UsesLocalStatic(initiator: false) ? Key.Create(KeyAgreementAlgorithm.X25519) : null;
        Initiator = new HandshakeState(
            Protocol,
            true,
            initiatorPrologue ?? [],
            _initiatorStatic,
            pattern.KnowsRemoteStatic(initiator: true) ? PublicBytes(_responderStatic) : default);
        Responder = new HandshakeState(
            Protocol,
            false,
            responderPrologue ?? [],
            _responderStatic,
            pattern.KnowsRemoteStatic(initiator: false) ? PublicBytes(_initiatorStatic) : default);
    }

    public NoiseProtocol Protocol { get; }

    public HandshakeState Initiator { get; }

    public HandshakeState Responder { get; }

    public int MessageCount => Protocol.Pattern.Messages.Length;

    public byte[] InitiatorStaticPublic => PublicBytes(_initiatorStatic);

    public byte[] ResponderStaticPublic => PublicBytes(_responderStatic);

    public HandshakeState Sender(int message) => message % 2 == 0 ? Initiator : Responder;

    public HandshakeState Receiver(int message) => message % 2 == 0 ? Responder : Initiator;

    /// <summary>Writes handshake message <paramref name="message"/> without delivering it.</summary>
    public byte[] Write(int message, ReadOnlySpan<byte> payload)
    {
        byte[] buffer = new byte[65535];
        int length = Sender(message).WriteMessage(payload, buffer);
        return buffer[..length];
    }

    /// <summary>Delivers a message to its receiver and returns the payload read.</summary>
    public byte[] Read(int message, ReadOnlySpan<byte> wire)
    {
        byte[] payload = new byte[65535];
        int length = Receiver(message).ReadMessage(wire, payload);
        return payload[..length];
    }

    /// <summary>Writes and delivers messages up to, not including, <paramref name="end"/>.</summary>
    public void RunUntil(int end)
    {
        for (int i = 0; i < end; i++)
        {
            Read(i, Write(i, [(byte)i]));
        }
    }

    public void Dispose()
    {
        Initiator.Dispose();
        Responder.Dispose();
        _initiatorStatic?.Dispose();
        _responderStatic?.Dispose();
    }

    private static byte[] PublicBytes(Key? key) =>
        key?.PublicKey.Export(KeyBlobFormat.RawPublicKey) ?? throw new InvalidOperationException("The pattern gives this side no static key.");
}
