using System.Security.Cryptography;
using NSec.Cryptography;

namespace Quid.Crypto;

/// <summary>A circuit handshake failed: the hop is not who the client meant, or its answer does not prove it.</summary>
public sealed class CircuitHandshakeException(string message) : Exception(message);

/// <summary>
/// Tor's ntor handshake (tor-spec §5.1.4, "ntor-curve25519-sha256-1"), byte for byte: the client
/// names the hop by its 20-byte id and its X25519 onion key B and sends an ephemeral X; the hop
/// answers with an ephemeral Y and AUTH, which only the holder of B's private key can compute.
/// Both sides derive fresh key material, so each hop of a circuit has its own forward-secret keys.
/// </summary>
public static class Ntor
{
    public const int RequestSize = NodeId.Size + 32 + 32;
    public const int ReplySize = 32 + 32;
    private const string ProtocolId = "ntor-curve25519-sha256-1";
    private static readonly byte[] Protocol = System.Text.Encoding.ASCII.GetBytes(ProtocolId);
    private static readonly byte[] TagMac = System.Text.Encoding.ASCII.GetBytes(ProtocolId + ":mac");
    private static readonly byte[] TagKey = System.Text.Encoding.ASCII.GetBytes(ProtocolId + ":key_extract");
    private static readonly byte[] TagVerify = System.Text.Encoding.ASCII.GetBytes(ProtocolId + ":verify");
    private static readonly byte[] TagExpand = System.Text.Encoding.ASCII.GetBytes(ProtocolId + ":key_expand");
    private static readonly byte[] Server = "Server"u8.ToArray();
    private static KeyCreationParameters Exportable => new() { ExportPolicy = KeyExportPolicies.AllowPlaintextExport };

    /// <summary>The client's half: what it sent and its ephemeral key, kept until the reply comes.</summary>
    public sealed class Client : IDisposable
    {
        private readonly Key _x;
        private readonly byte[] _request;

        internal Client(NodeId hop, ReadOnlySpan<byte> onionKey, Key ephemeral)
        {
            _x = ephemeral;
            _request = new byte[RequestSize];
            hop.WriteTo(_request);
            onionKey.CopyTo(_request.AsSpan(NodeId.Size));
            _x.PublicKey.Export(KeyBlobFormat.RawPublicKey).CopyTo(_request, NodeId.Size + 32);
        }

        /// <summary>The CREATE or EXTEND payload: ID, B, X.</summary>
        public ReadOnlySpan<byte> Request => _request;

        /// <summary>Checks the hop's reply and returns <paramref name="length"/> bytes of key material.</summary>
        public byte[] Finish(ReadOnlySpan<byte> reply, int length)
        {
            if (reply.Length < ReplySize) throw new CircuitHandshakeException("The hop's reply is truncated.");
            var y = reply[..32];
            var b = _request.AsSpan(NodeId.Size, 32);
            Span<byte> secret = stackalloc byte[SecretLength];
            Agree(_x, y, secret);
            Agree(_x, b, secret[32..]);
            FillTranscript(secret, _request.AsSpan(0, NodeId.Size), b, _request.AsSpan(NodeId.Size + 32, 32), y);
            try
            {
                var auth = Auth(secret, _request.AsSpan(0, NodeId.Size), b, _request.AsSpan(NodeId.Size + 32, 32), y);
                if (!CryptographicOperations.FixedTimeEquals(auth, reply.Slice(32, 32)))
                    throw new CircuitHandshakeException("The hop's reply does not prove it holds the onion key.");
                return Expand(secret, length);
            }
            finally
            {
                CryptographicOperations.ZeroMemory(secret);
            }
        }

        public void Dispose() => _x.Dispose();
    }

    /// <summary>Starts a handshake with the hop <paramref name="hop"/> whose onion key (from its descriptor) is <paramref name="onionKey"/>.</summary>
    public static Client Start(NodeId hop, ReadOnlySpan<byte> onionKey) =>
        new(hop, onionKey, Key.Create(KeyAgreementAlgorithm.X25519, Exportable));

    /// <summary>For test vectors only: a given ephemeral key.</summary>
    internal static Client Start(NodeId hop, ReadOnlySpan<byte> onionKey, ReadOnlySpan<byte> ephemeralPrivate) =>
        new(hop, onionKey, Key.Import(KeyAgreementAlgorithm.X25519, ephemeralPrivate, KeyBlobFormat.RawPrivateKey, Exportable));

    /// <summary>
    /// The hop's half: checks that the request names this hop and its onion key, writes the reply
    /// (Y, AUTH) and returns <paramref name="length"/> bytes of key material.
    /// </summary>
    public static byte[] Respond(NodeId self, Key onionKey, ReadOnlySpan<byte> request, Span<byte> reply, int length)
    {
        using var y = Key.Create(KeyAgreementAlgorithm.X25519, Exportable);
        return Respond(self, onionKey, request, reply, length, y);
    }

    internal static byte[] Respond(NodeId self, Key onionKey, ReadOnlySpan<byte> request, Span<byte> reply, int length, Key ephemeral)
    {
        if (request.Length < RequestSize) throw new CircuitHandshakeException("The handshake request is truncated.");
        var id = request[..NodeId.Size];
        var b = request.Slice(NodeId.Size, 32);
        var x = request.Slice(NodeId.Size + 32, 32);
        Span<byte> ownId = stackalloc byte[NodeId.Size];
        self.WriteTo(ownId);
        if (!id.SequenceEqual(ownId) || !b.SequenceEqual(onionKey.PublicKey.Export(KeyBlobFormat.RawPublicKey)))
            throw new CircuitHandshakeException("The handshake is meant for another node or another onion key.");
        var yPublic = ephemeral.PublicKey.Export(KeyBlobFormat.RawPublicKey);
        Span<byte> secret = stackalloc byte[SecretLength];
        Agree(ephemeral, x, secret);
        Agree(onionKey, x, secret[32..]);
        FillTranscript(secret, id, b, x, yPublic);
        try
        {
            yPublic.CopyTo(reply);
            Auth(secret, id, b, x, yPublic).CopyTo(reply[32..]);
            return Expand(secret, length);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(secret);
        }
    }

    private static int SecretLength => 32 + 32 + NodeId.Size + 32 + 32 + 32 + ProtocolId.Length;

    /// <summary>secret_input = EXP(·,·) | EXP(·,·) | ID | B | X | Y | PROTOID; the two DH results are already in place.</summary>
    private static void FillTranscript(Span<byte> secret, ReadOnlySpan<byte> id, ReadOnlySpan<byte> b, ReadOnlySpan<byte> x, ReadOnlySpan<byte> y)
    {
        int at = 64;
        id.CopyTo(secret[at..]);
        at += NodeId.Size;
        b.CopyTo(secret[at..]);
        at += 32;
        x.CopyTo(secret[at..]);
        at += 32;
        y.CopyTo(secret[at..]);
        at += 32;
        Protocol.CopyTo(secret[at..]);
    }

    /// <summary>AUTH = H(verify | ID | B | Y | X | PROTOID | "Server", t_mac), where verify = H(secret_input, t_verify).</summary>
    private static byte[] Auth(ReadOnlySpan<byte> secret, ReadOnlySpan<byte> id, ReadOnlySpan<byte> b, ReadOnlySpan<byte> x, ReadOnlySpan<byte> y)
    {
        var verify = HMACSHA256.HashData(TagVerify, secret);
        byte[] authInput = [.. verify, .. id, .. b, .. y, .. x, .. Protocol, .. Server];
        return HMACSHA256.HashData(TagMac, authInput);
    }

    /// <summary>
    /// The keys: HKDF-SHA256 with secret_input as input keying material, t_key as salt and
    /// m_expand as info; that is KEY_SEED = H(secret_input, t_key) expanded as tor-spec §5.2.2 says.
    /// </summary>
    private static byte[] Expand(ReadOnlySpan<byte> secretInput, int length) =>
        KeyDerivationAlgorithm.HkdfSha256.DeriveBytes(secretInput, TagKey, TagExpand, length);

    private static void Agree(Key own, ReadOnlySpan<byte> theirPublic, Span<byte> destination)
    {
        if (!PublicKey.TryImport(KeyAgreementAlgorithm.X25519, theirPublic, KeyBlobFormat.RawPublicKey, out var key) || key is null)
            throw new CircuitHandshakeException("Not an X25519 public key.");
        using var shared = KeyAgreementAlgorithm.X25519.Agree(own, key, new SharedSecretCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport })
            ?? throw new CircuitHandshakeException("A degenerate X25519 key: no shared secret.");
        if (!shared.TryExport(SharedSecretBlobFormat.RawSharedSecret, destination, out int written) || written != 32)
            throw new CircuitHandshakeException("Could not read the shared secret.");
    }
}
