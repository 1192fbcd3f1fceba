using System.Security.Cryptography;
using NSec.Cryptography;

namespace Quid.Crypto;

/// <summary>
/// The end-to-end handshake between a client and a session-address service: Tor's ntor
/// (<see cref="Ntor"/>), unchanged, with the service's X25519 key B (published in its descriptor)
/// as the onion key and, in place of a node id, <see cref="IdOf"/>(B), so the handshake names
/// no node. Only the client's ephemeral X travels to the service, in the introduction (the
/// service knows its own id and key); the reply comes back through the rendezvous point; both
/// then key one more onion layer, the virtual hop between them.
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

    /// <summary>
    /// The client's ephemeral X25519 key, made before it knows the service's key B: its public
    /// half X travels in the introduction, which the client sends with its lookup, and B comes
    /// back in the lookup's answer. Dispose it if <see cref="Start"/> never takes it.
    /// </summary>
    public static Key NewEphemeral() => Key.Create(KeyAgreementAlgorithm.X25519, new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport });

    /// <summary>
    /// The client's half, toward the service whose descriptor published <paramref name="serviceKey"/>,
    /// with the <paramref name="ephemeral"/> key whose public half the introduction carried; the
    /// returned handshake owns it.
    /// </summary>
    public static Ntor.Client Start(ReadOnlySpan<byte> serviceKey, Key ephemeral) => new(IdOf(serviceKey), serviceKey, ephemeral);

    /// <summary>
    /// The service's half: the ntor request the client's introduction stands for (our id and key,
    /// its <paramref name="clientEphemeral"/> X), answered with <paramref name="serviceKey"/>.
    /// Returns the reply for the client and the virtual hop's key material.
    /// </summary>
    public static (byte[] Reply, byte[] KeyMaterial) Respond(Key serviceKey, ReadOnlySpan<byte> clientEphemeral)
    {
        ArgumentNullException.ThrowIfNull(serviceKey);
        if (clientEphemeral.Length != 32) throw new CircuitHandshakeException("The client's handshake key is not 32 bytes.");
        var b = serviceKey.PublicKey.Export(KeyBlobFormat.RawPublicKey);
        var id = IdOf(b);
        Span<byte> request = stackalloc byte[Ntor.RequestSize];
        id.WriteTo(request);
        b.CopyTo(request[NodeId.Size..]);
        clientEphemeral.CopyTo(request[(NodeId.Size + 32)..]);
        var reply = new byte[Ntor.ReplySize];
        var keys = Ntor.Respond(id, serviceKey, request, reply, OnionLayer.KeyMaterialSize);
        return (reply, keys);
    }
}
