using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace Quid.Crypto;

/// <summary>
/// Tor's Ed25519 key blinding (rend-spec-v3 appendix A.2), byte for byte: from a service's public
/// key A and a time period, anyone who knows A derives the blinded key A' = h·A, and only the
/// holder of A's secret can sign under A'. A' changes every period and nobody without A can link
/// two of them, so the network sees a new key each period while clients who know the address
/// still find the service. The point and scalar arithmetic is libsodium's (the library NSec
/// ships), called as <see cref="LayerKey"/> calls it; signatures under A' are plain Ed25519.
/// </summary>
public static partial class KeyBlinding
{
    public const int PublicKeySize = 32;
    public const int SeedSize = 32;
    public const int FactorSize = 32;
    public const int SignatureSize = 64;
    /// <summary>The size of a shared point from <see cref="KeyPair.TryAgree"/> or <see cref="AgreeEphemeral"/>.</summary>
    public const int SharedSize = 32;

    private static readonly byte[] BlindString = "Derive temporary signing key\0"u8.ToArray();
    // The base point written out as rend-spec-v3 A.2 hashes it: "(x, y)" in decimal.
    private static readonly byte[] BasePoint =
        "(15112221349535400772501151409588531511454012693041857206046113283949847762202, 46316835694926478169428394003475163141307993866256225615783033603165251855960)"u8.ToArray();
    private static readonly byte[] NonceLabel = "key-blind"u8.ToArray();

    static KeyBlinding()
    {
        if (sodium_init() < 0) throw new CryptographicException("libsodium failed to initialise.");
    }

    /// <summary>
    /// SHA3-256, the hash of every onion-service derivation. The BCL has it only where the
    /// platform's crypto library does (OpenSSL 1.1.1 or later, Windows 11), so say so plainly.
    /// </summary>
    internal static IncrementalHash Sha3()
    {
        if (!SHA3_256.IsSupported)
            throw new PlatformNotSupportedException("Session addresses need SHA3-256, which this platform's crypto library lacks (OpenSSL 1.1.1 or later provides it).");
        return IncrementalHash.CreateHash(HashAlgorithmName.SHA3_256);
    }

    /// <summary>
    /// The blinding factor h = SHA3-256(BLIND_STRING | A | s | B | N), before clamping, with N =
    /// "key-blind" | INT_8(period) | INT_8(period length in minutes) and s the optional secret of
    /// rend-spec-v3 A.2: empty for a public service (as Tor), a private service's access key
    /// otherwise, so that without it nobody can compute the blinded key or the lookup id.
    /// </summary>
    public static void Factor(ReadOnlySpan<byte> publicKey, ulong period, ulong periodMinutes, Span<byte> factor) =>
        Factor(publicKey, default, period, periodMinutes, factor);

    /// <inheritdoc cref="Factor(ReadOnlySpan{byte}, ulong, ulong, Span{byte})"/>
    public static void Factor(ReadOnlySpan<byte> publicKey, ReadOnlySpan<byte> secret, ulong period, ulong periodMinutes, Span<byte> factor)
    {
        if (publicKey.Length != PublicKeySize) throw new ArgumentException($"An Ed25519 public key is {PublicKeySize} bytes.", nameof(publicKey));
        Span<byte> number = stackalloc byte[8];
        using var sha3 = Sha3();
        sha3.AppendData(BlindString);
        sha3.AppendData(publicKey);
        sha3.AppendData(secret);
        sha3.AppendData(BasePoint);
        sha3.AppendData(NonceLabel);
        BinaryPrimitives.WriteUInt64BigEndian(number, period);
        sha3.AppendData(number);
        BinaryPrimitives.WriteUInt64BigEndian(number, periodMinutes);
        sha3.AppendData(number);
        sha3.GetHashAndReset(factor);
    }

    /// <summary>
    /// The blinded public key A' for a period: what a client computes from the address alone (and,
    /// for a private service, its access key <paramref name="secret"/>; empty for a public one).
    /// </summary>
    public static byte[] BlindPublicKey(ReadOnlySpan<byte> publicKey, ulong period, ulong periodMinutes, ReadOnlySpan<byte> secret = default)
    {
        Span<byte> factor = stackalloc byte[FactorSize];
        Factor(publicKey, secret, period, periodMinutes, factor);
        return BlindPublicKey(publicKey, factor);
    }

    /// <summary>A' = clamp(h)·A. Throws <see cref="ArgumentException"/> if A is not a point of the prime-order group.</summary>
    internal static byte[] BlindPublicKey(ReadOnlySpan<byte> publicKey, ReadOnlySpan<byte> factor)
    {
        if (publicKey.Length != PublicKeySize) throw new ArgumentException($"An Ed25519 public key is {PublicKeySize} bytes.", nameof(publicKey));
        Span<byte> h = stackalloc byte[FactorSize];
        Clamp(factor, h);
        var blinded = new byte[PublicKeySize];
        if (crypto_scalarmult_ed25519_noclamp(blinded, h, publicKey) != 0)
            throw new ArgumentException("Not an Ed25519 public key of the prime-order group.", nameof(publicKey));
        return blinded;
    }

    /// <summary>
    /// True for the encoding of a point of the curve's prime-order group, other than the small-order
    /// points: the only public keys a seed can produce, and the only ones blinding keeps unlinkable.
    /// </summary>
    public static bool IsValidPublicKey(ReadOnlySpan<byte> publicKey) =>
        publicKey.Length == PublicKeySize && crypto_core_ed25519_is_valid_point(publicKey) == 1;

    /// <summary>
    /// The sender's half of a Diffie-Hellman agreement with the holder of a blinded key: picks a
    /// random scalar e in [1, ℓ), writes E = e·B to <paramref name="ephemeralKey"/> and e·A' to
    /// <paramref name="shared"/>, and forgets e. The holder of a' gets the same point from E with
    /// <see cref="KeyPair.TryAgree"/>, since a'·e·B = e·A'. Throws <see cref="ArgumentException"/> if
    /// <paramref name="blindedKey"/> is not a point of the prime-order group (no blinding makes one).
    /// </summary>
    public static void AgreeEphemeral(ReadOnlySpan<byte> blindedKey, Span<byte> ephemeralKey, Span<byte> shared)
    {
        Span<byte> e = stackalloc byte[32];
        try
        {
            crypto_core_ed25519_scalar_random(e);
            AgreeEphemeral(blindedKey, e, ephemeralKey, shared);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(e);
        }
    }

    /// <summary><see cref="AgreeEphemeral(ReadOnlySpan{byte}, Span{byte}, Span{byte})"/> with the scalar given (0 &lt; e &lt; ℓ, little-endian): for test vectors.</summary>
    internal static void AgreeEphemeral(ReadOnlySpan<byte> blindedKey, ReadOnlySpan<byte> ephemeralScalar, Span<byte> ephemeralKey, Span<byte> shared)
    {
        if (blindedKey.Length != PublicKeySize) throw new ArgumentException($"A blinded key is {PublicKeySize} bytes.", nameof(blindedKey));
        if (ephemeralScalar.Length != 32) throw new ArgumentException("A scalar is 32 bytes.", nameof(ephemeralScalar));
        if (ephemeralKey.Length < PublicKeySize) throw new ArgumentException($"An ephemeral key is {PublicKeySize} bytes.", nameof(ephemeralKey));
        if (shared.Length < SharedSize) throw new ArgumentException($"A shared point is {SharedSize} bytes.", nameof(shared));
        if (crypto_scalarmult_ed25519_base_noclamp(ephemeralKey, ephemeralScalar) != 0)
            throw new CryptographicException("The ephemeral scalar is zero.");
        if (crypto_scalarmult_ed25519_noclamp(shared, ephemeralScalar, blindedKey) != 0)
            throw new ArgumentException("Not a blinded key of the prime-order group.", nameof(blindedKey));
    }

    /// <summary>RFC 8032 §5.1.5 clamping, which rend-spec-v3 applies to h as to a secret scalar.</summary>
    private static void Clamp(ReadOnlySpan<byte> scalar, Span<byte> clamped)
    {
        scalar[..32].CopyTo(clamped);
        clamped[0] &= 248;
        clamped[31] &= 63;
        clamped[31] |= 64;
    }

    /// <summary>Reduces a 32-byte little-endian integer modulo the group order ℓ.</summary>
    private static void Reduce32(ReadOnlySpan<byte> scalar, Span<byte> reduced)
    {
        Span<byte> wide = stackalloc byte[64];
        scalar.CopyTo(wide);
        crypto_core_ed25519_scalar_reduce(reduced, wide);
        CryptographicOperations.ZeroMemory(wide);
    }

    /// <summary>
    /// A blinded key pair for one period: the blinded public key A', and the blinded secret
    /// scalar a' = h·a mod ℓ with its nonce prefix' = SHA-512("Derive temporary signing key hash
    /// input" | prefix)[:32], as Tor keeps them. Signatures are RFC 8032 Ed25519 made from (a',
    /// prefix'), so any Ed25519 verifier checks them under A'. The secret is wiped on
    /// <see cref="Dispose"/>; do not dispose while another thread signs.
    /// </summary>
    public sealed class KeyPair : IDisposable
    {
        private static readonly byte[] PrefixLabel = "Derive temporary signing key hash input"u8.ToArray();

        // a' then prefix'; pinned so the collector never leaves a copy behind.
        private readonly byte[] _secret = GC.AllocateArray<byte>(64, pinned: true);
        private bool _disposed;

        /// <summary>A', the key the network sees for this period.</summary>
        public byte[] PublicKey { get; }

        /// <summary>
        /// Blinds the key of an RFC 8032 secret key <paramref name="expanded"/> = a | prefix
        /// (SHA-512 of the seed, first half clamped) with the blinding factor <paramref name="factor"/>.
        /// </summary>
        internal KeyPair(ReadOnlySpan<byte> expanded, ReadOnlySpan<byte> factor)
        {
            Span<byte> a = stackalloc byte[32];
            Span<byte> h = stackalloc byte[32];
            Span<byte> publicKey = stackalloc byte[PublicKeySize];
            Span<byte> prefixHash = stackalloc byte[64];
            try
            {
                if (crypto_scalarmult_ed25519_base_noclamp(publicKey, expanded[..32]) != 0)
                    throw new CryptographicException("The secret scalar is zero.");
                PublicKey = BlindPublicKey(publicKey, factor);

                Reduce32(expanded[..32], a);
                Clamp(factor, h);
                Reduce32(h, h);
                crypto_core_ed25519_scalar_mul(_secret.AsSpan(0, 32), h, a);

                using var sha512 = IncrementalHash.CreateHash(HashAlgorithmName.SHA512);
                sha512.AppendData(PrefixLabel);
                sha512.AppendData(expanded[32..64]);
                sha512.GetHashAndReset(prefixHash);
                prefixHash[..32].CopyTo(_secret.AsSpan(32));
            }
            finally
            {
                CryptographicOperations.ZeroMemory(a);
                CryptographicOperations.ZeroMemory(prefixHash);
            }
        }

        /// <summary>The blinded key pair of the Ed25519 key with this 32-byte seed, for one period (and a private service's access key <paramref name="secret"/>).</summary>
        public static KeyPair FromSeed(ReadOnlySpan<byte> seed, ulong period, ulong periodMinutes, ReadOnlySpan<byte> secret = default)
        {
            if (seed.Length != SeedSize) throw new ArgumentException($"An Ed25519 seed is {SeedSize} bytes.", nameof(seed));
            Span<byte> expanded = stackalloc byte[64];
            Span<byte> publicKey = stackalloc byte[PublicKeySize];
            Span<byte> factor = stackalloc byte[FactorSize];
            try
            {
                Expand(seed, expanded);
                if (crypto_scalarmult_ed25519_base_noclamp(publicKey, expanded[..32]) != 0)
                    throw new CryptographicException("The secret scalar is zero.");
                Factor(publicKey, secret, period, periodMinutes, factor);
                return new KeyPair(expanded, factor);
            }
            finally
            {
                CryptographicOperations.ZeroMemory(expanded);
            }
        }

        /// <summary>RFC 8032 §5.1.5: SHA-512 of the seed; the first half, clamped, is the scalar a, the second the nonce prefix.</summary>
        internal static void Expand(ReadOnlySpan<byte> seed, Span<byte> expanded)
        {
            SHA512.HashData(seed, expanded);
            Clamp(expanded, expanded);
        }

        /// <summary>For test vectors only: a' | prefix', as Tor stores a blinded secret key.</summary>
        internal void ExportSecret(Span<byte> destination)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _secret.CopyTo(destination);
        }

        public byte[] Sign(ReadOnlySpan<byte> message)
        {
            var signature = new byte[SignatureSize];
            Sign(message, signature);
            return signature;
        }

        /// <summary>
        /// RFC 8032 §5.1.6 with (a', prefix', A'): r = SHA-512(prefix' | M) mod ℓ, R = r·B,
        /// k = SHA-512(R | A' | M) mod ℓ, S = r + k·a' mod ℓ; the signature is R | S.
        /// </summary>
        public void Sign(ReadOnlySpan<byte> message, Span<byte> signature)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (signature.Length < SignatureSize) throw new ArgumentException($"A signature is {SignatureSize} bytes.", nameof(signature));
            Span<byte> hash = stackalloc byte[64];
            Span<byte> r = stackalloc byte[32];
            Span<byte> k = stackalloc byte[32];
            Span<byte> ka = stackalloc byte[32];
            try
            {
                using var sha512 = IncrementalHash.CreateHash(HashAlgorithmName.SHA512);
                sha512.AppendData(_secret.AsSpan(32));
                sha512.AppendData(message);
                sha512.GetHashAndReset(hash);
                crypto_core_ed25519_scalar_reduce(r, hash);
                if (crypto_scalarmult_ed25519_base_noclamp(signature[..32], r) != 0)
                    throw new CryptographicException("The signing nonce reduced to zero.");

                sha512.AppendData(signature[..32]);
                sha512.AppendData(PublicKey);
                sha512.AppendData(message);
                sha512.GetHashAndReset(hash);
                crypto_core_ed25519_scalar_reduce(k, hash);
                crypto_core_ed25519_scalar_mul(ka, k, _secret.AsSpan(0, 32));
                crypto_core_ed25519_scalar_add(signature.Slice(32, 32), r, ka);
            }
            finally
            {
                CryptographicOperations.ZeroMemory(hash);
                CryptographicOperations.ZeroMemory(r);
                CryptographicOperations.ZeroMemory(ka);
            }
        }

        /// <summary>
        /// The receiver's half of <see cref="AgreeEphemeral"/>: writes a'·P to <paramref name="shared"/>.
        /// False, with <paramref name="shared"/> zeroed, if <paramref name="point"/> is not the
        /// canonical encoding of a point of the prime-order group other than the identity (libsodium
        /// checks it: small-order, mixed-order and off-curve encodings all fail), so whoever sent P
        /// cannot steer the result into a small subgroup.
        /// </summary>
        public bool TryAgree(ReadOnlySpan<byte> point, Span<byte> shared)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (shared.Length < SharedSize) throw new ArgumentException($"A shared point is {SharedSize} bytes.", nameof(shared));
            if (point.Length == PublicKeySize && crypto_scalarmult_ed25519_noclamp(shared, _secret.AsSpan(0, 32), point) == 0)
                return true;
            CryptographicOperations.ZeroMemory(shared[..SharedSize]);
            return false;
        }

        public void Dispose()
        {
            _disposed = true;
            CryptographicOperations.ZeroMemory(_secret);
        }
    }

    [LibraryImport("libsodium")]
    private static partial int sodium_init();

    [LibraryImport("libsodium")]
    private static partial int crypto_core_ed25519_is_valid_point(ReadOnlySpan<byte> p);

    [LibraryImport("libsodium")]
    private static partial int crypto_scalarmult_ed25519_noclamp(Span<byte> q, ReadOnlySpan<byte> n, ReadOnlySpan<byte> p);

    [LibraryImport("libsodium")]
    private static partial int crypto_scalarmult_ed25519_base_noclamp(Span<byte> q, ReadOnlySpan<byte> n);

    [LibraryImport("libsodium")]
    private static partial void crypto_core_ed25519_scalar_random(Span<byte> r);

    [LibraryImport("libsodium")]
    private static partial void crypto_core_ed25519_scalar_reduce(Span<byte> r, ReadOnlySpan<byte> s);

    [LibraryImport("libsodium")]
    private static partial void crypto_core_ed25519_scalar_mul(Span<byte> z, ReadOnlySpan<byte> x, ReadOnlySpan<byte> y);

    [LibraryImport("libsodium")]
    private static partial void crypto_core_ed25519_scalar_add(Span<byte> z, ReadOnlySpan<byte> x, ReadOnlySpan<byte> y);
}
