using System.Security.Cryptography;
using NSec.Cryptography;

namespace Quid.Crypto;

/// <summary>
/// A node's long-term identity: one 32-byte secret seed from which come the Ed25519 key that
/// signs descriptors and agreements, and the X25519 key that authenticates links.
/// The link key is certified by the signing key, so a link proves which node id it speaks for.
/// </summary>
public sealed class NodeIdentity : IDisposable
{
    public const int SeedSize = 32;
    public const int SignatureSize = 64;
    public const int PublicKeySize = 32;

    private static readonly byte[] LinkKeyInfo = "quid link key v1"u8.ToArray();
    private static readonly byte[] LinkCertificateContext = "quid link certificate v1"u8.ToArray();

    private readonly Key _signingKey;

    public NodeId Id { get; }
    public byte[] SigningPublicKey { get; }
    /// <summary>The X25519 static key for the Noise link handshake.</summary>
    public Key LinkKey { get; }
    public byte[] LinkPublicKey { get; }
    /// <summary>Ed25519 signature over the link public key: the link handshake carries it.</summary>
    public byte[] LinkCertificate { get; }

    private NodeIdentity(ReadOnlySpan<byte> seed)
    {
        _signingKey = Key.Import(SignatureAlgorithm.Ed25519, seed, KeyBlobFormat.RawPrivateKey);
        SigningPublicKey = _signingKey.PublicKey.Export(KeyBlobFormat.RawPublicKey);
        Id = NodeId.FromSigningKey(SigningPublicKey);

        Span<byte> linkSecret = stackalloc byte[32];
        KeyDerivationAlgorithm.HkdfSha256.DeriveBytes(seed, salt: default, LinkKeyInfo, linkSecret);
        LinkKey = Key.Import(KeyAgreementAlgorithm.X25519, linkSecret, KeyBlobFormat.RawPrivateKey);
        CryptographicOperations.ZeroMemory(linkSecret);
        LinkPublicKey = LinkKey.PublicKey.Export(KeyBlobFormat.RawPublicKey);
        LinkCertificate = Sign(LinkCertificateMessage(LinkPublicKey));
    }

    public static NodeIdentity FromSeed(ReadOnlySpan<byte> seed)
    {
        if (seed.Length != SeedSize) throw new ArgumentException($"An identity seed is {SeedSize} bytes.", nameof(seed));
        return new NodeIdentity(seed);
    }

    public static NodeIdentity Generate(out byte[] seed)
    {
        seed = RandomNumberGenerator.GetBytes(SeedSize);
        return new NodeIdentity(seed);
    }

    public byte[] Sign(ReadOnlySpan<byte> message) => SignatureAlgorithm.Ed25519.Sign(_signingKey, message);

    public void Sign(ReadOnlySpan<byte> message, Span<byte> signature) =>
        SignatureAlgorithm.Ed25519.Sign(_signingKey, message, signature);

    /// <summary>Checks an Ed25519 signature; false for a malformed key or signature, never an exception.</summary>
    public static bool Verify(ReadOnlySpan<byte> signingPublicKey, ReadOnlySpan<byte> message, ReadOnlySpan<byte> signature)
    {
        if (signature.Length != SignatureSize) return false;
        if (!PublicKey.TryImport(SignatureAlgorithm.Ed25519, signingPublicKey, KeyBlobFormat.RawPublicKey, out var key) || key is null)
            return false;
        return SignatureAlgorithm.Ed25519.Verify(key, message, signature);
    }

    /// <summary>True when <paramref name="certificate"/> shows the signing key vouches for the link key.</summary>
    public static bool VerifyLinkCertificate(ReadOnlySpan<byte> signingPublicKey, ReadOnlySpan<byte> linkPublicKey, ReadOnlySpan<byte> certificate) =>
        Verify(signingPublicKey, LinkCertificateMessage(linkPublicKey), certificate);

    private static byte[] LinkCertificateMessage(ReadOnlySpan<byte> linkPublicKey) => [.. LinkCertificateContext, .. linkPublicKey];

    public void Dispose()
    {
        _signingKey.Dispose();
        LinkKey.Dispose();
    }
}
