using NSec.Cryptography;

namespace Quid.Crypto.Noise;

/// <summary>The AEAD cipher named in a Noise protocol name.</summary>
public enum NoiseCipher
{
    /// <summary><c>ChaChaPoly</c>: ChaCha20-Poly1305, little-endian nonce counter.</summary>
    ChaChaPoly,

    /// <summary><c>AESGCM</c>: AES-256-GCM, big-endian nonce counter.</summary>
    AesGcm,
}

/// <summary>The hash function named in a Noise protocol name.</summary>
public enum NoiseHash
{
    /// <summary><c>SHA256</c>.</summary>
    Sha256,

    /// <summary><c>SHA512</c>.</summary>
    Sha512,
}

/// <summary>
/// A parsed Noise protocol name such as <c>Noise_XX_25519_ChaChaPoly_SHA256</c>. The DH function is
/// always 25519; BLAKE2 hashes are unsupported because NSec offers no HMAC-BLAKE2 to build Noise's HKDF on.
/// </summary>
public sealed class NoiseProtocol
{
    private NoiseProtocol(string name, HandshakePattern pattern, NoiseCipher cipher, NoiseHash hash)
    {
        Name = name;
        Pattern = pattern;
        Cipher = cipher;
        Hash = hash;
        Aead = cipher == NoiseCipher.ChaChaPoly ? AeadAlgorithm.ChaCha20Poly1305 : AeadAlgorithm.Aes256Gcm;
        HashAlgorithm = hash == NoiseHash.Sha256 ? HashAlgorithm.Sha256 : HashAlgorithm.Sha512;
        Kdf = hash == NoiseHash.Sha256 ? KeyDerivationAlgorithm.HkdfSha256 : KeyDerivationAlgorithm.HkdfSha512;
        Hmac = hash == NoiseHash.Sha256 ? MacAlgorithm.HmacSha256 : MacAlgorithm.HmacSha512;
    }

    /// <summary>The full protocol name; it is hashed into the handshake, so both sides must use the same one.</summary>
    public string Name { get; }

    public HandshakePattern Pattern { get; }

    public NoiseCipher Cipher { get; }

    public NoiseHash Hash { get; }

    internal AeadAlgorithm Aead { get; }

    internal HashAlgorithm HashAlgorithm { get; }

    internal KeyDerivationAlgorithm2 Kdf { get; }

    /// <summary>The HMAC behind <see cref="Kdf"/>, for the one HKDF-Extract NSec's HKDF refuses: empty input in Split.</summary>
    internal MacAlgorithm Hmac { get; }

    /// <summary>Parses a protocol name, throwing <see cref="NoiseException"/> with <see cref="NoiseError.UnsupportedProtocol"/> if it is not supported.</summary>
    public static NoiseProtocol Parse(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        string[] parts = name.Split('_');
        if (parts.Length != 5 || parts[0] != "Noise" || parts[2] != "25519")
        {
            throw Unsupported(name);
        }

        HandshakePattern pattern = HandshakePattern.Find(parts[1]) ?? throw Unsupported(name);
        NoiseCipher cipher = parts[3] switch
        {
            "ChaChaPoly" => NoiseCipher.ChaChaPoly,
            "AESGCM" => NoiseCipher.AesGcm,
            _ => throw Unsupported(name),
        };
        NoiseHash hash = parts[4] switch
        {
            "SHA256" => NoiseHash.Sha256,
            "SHA512" => NoiseHash.Sha512,
            _ => throw Unsupported(name),
        };

        // libsodium's AES-GCM needs hardware AES; refuse here rather than fail mid-handshake.
        if (cipher == NoiseCipher.AesGcm && !Aes256Gcm.IsSupported)
        {
            throw Unsupported(name);
        }

        return new NoiseProtocol(name, pattern, cipher, hash);
    }

    public override string ToString() => Name;

    private static NoiseException Unsupported(string name) =>
        new(NoiseError.UnsupportedProtocol, $"Unsupported Noise protocol '{name}'.");
}
