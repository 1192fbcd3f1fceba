using System.Security.Cryptography;
using NSec.Cryptography;

namespace Quid.Crypto;

/// <summary>
/// The end-to-end handshake between a client and a session-address service: Tor's ntor
/// (<see cref="Ntor"/>), unchanged, with the service's X25519 key B (published in its descriptor)
/// as the onion key and, in place of a node id, <see cref="IdOf"/>(B), so the handshake names
/// no node. The request travels to the service in the introduction, the reply back through the
/// rendezvous point; both then key one more onion layer, the virtual hop between them.
/// </summary>
public static class ServiceHandshake
{
    private static readonly byte[] IdLabel = "quid service handshake id"u8.ToArray();

    /// <summary>The 20 bytes ntor names the service by: SHA-256("quid service handshake id" | B), first 20 bytes.</summary>
    public static NodeId IdOf(ReadOnlySpan<byte> serviceKey)
    {
        if (serviceKey.Length != 32) throw new ArgumentException("A service handshake key is a 32-byte X25519 public key.", nameof(serviceKey));
        Span<byte> input = stackalloc byte[IdLabel.Length + 32];
        IdLabel.CopyTo(input);
        serviceKey.CopyTo(input[IdLabel.Length..]);
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(input, hash);
        return new NodeId(hash[..NodeId.Size]);
    }

    /// <summary>The client's half, toward the service whose descriptor published <paramref name="serviceKey"/>: send its <see cref="Ntor.Client.Request"/> in the introduction.</summary>
    public static Ntor.Client Start(ReadOnlySpan<byte> serviceKey) => Ntor.Start(IdOf(serviceKey), serviceKey);

    /// <summary>
    /// The service's half: checks that <paramref name="request"/> (from an introduction) names
    /// <paramref name="serviceKey"/>, and returns the reply for the client and the virtual hop's key
    /// material. Throws <see cref="CircuitHandshakeException"/> for a request meant for another key.
    /// </summary>
    public static (byte[] Reply, byte[] KeyMaterial) Respond(Key serviceKey, ReadOnlySpan<byte> request)
    {
        ArgumentNullException.ThrowIfNull(serviceKey);
        var reply = new byte[Ntor.ReplySize];
        var keys = Ntor.Respond(IdOf(serviceKey.PublicKey.Export(KeyBlobFormat.RawPublicKey)), serviceKey, request, reply, OnionLayer.KeyMaterialSize);
        return (reply, keys);
    }
}
