using System.Buffers.Binary;
using NSec.Cryptography;

namespace Quid.Crypto;

/// <summary>
/// One direction of a link's transport encryption: AEGIS-256 (NSec), keyed from the Noise
/// handshake's split key through HKDF, with a counter nonce. AEGIS is chosen by measurement:
/// it seals a 62 KiB frame about twice as fast as AES-256-GCM here, and a link seals every byte
/// a relay carries twice (docs/BENCHMARKS.md). A frame that fails authentication is refused;
/// the counter never repeats, so frames cannot be replayed or reordered.
/// </summary>
public sealed class LinkCipher : IDisposable
{
    public const int TagSize = 32;
    private static readonly AeadAlgorithm Aead = AeadAlgorithm.Aegis256;
    private static readonly byte[] Info = "quid link transport aegis256 v1"u8.ToArray();
    private readonly Key _key;
    private ulong _counter;

    /// <summary>From a 32-byte Noise split key.</summary>
    public LinkCipher(ReadOnlySpan<byte> splitKey)
    {
        Span<byte> key = stackalloc byte[32];
        KeyDerivationAlgorithm.HkdfSha256.DeriveBytes(splitKey, salt: default, Info, key);
        _key = Key.Import(Aead, key, KeyBlobFormat.RawSymmetricKey);
        System.Security.Cryptography.CryptographicOperations.ZeroMemory(key);
    }

    /// <summary>Seals <paramref name="plaintext"/> into <paramref name="ciphertext"/> (its length plus the tag); returns the length written.</summary>
    public int Encrypt(ReadOnlySpan<byte> plaintext, Span<byte> ciphertext)
    {
        if (_counter == ulong.MaxValue) throw new InvalidOperationException("The link has sent 2^64 frames: it must be re-established.");
        Span<byte> nonce = stackalloc byte[Aead.NonceSize];
        Nonce(nonce, _counter++);
        int length = plaintext.Length + TagSize;
        Aead.Encrypt(_key, nonce, default, plaintext, ciphertext[..length]);
        return length;
    }

    /// <summary>Opens a sealed frame; false if it was forged, damaged, replayed or reordered.</summary>
    public bool TryDecrypt(ReadOnlySpan<byte> ciphertext, Span<byte> plaintext, out int written)
    {
        written = 0;
        if (ciphertext.Length < TagSize || plaintext.Length < ciphertext.Length - TagSize) return false;
        Span<byte> nonce = stackalloc byte[Aead.NonceSize];
        Nonce(nonce, _counter);
        if (!Aead.Decrypt(_key, nonce, default, ciphertext, plaintext[..(ciphertext.Length - TagSize)])) return false;
        _counter++;
        written = ciphertext.Length - TagSize;
        return true;
    }

    private static void Nonce(Span<byte> nonce, ulong counter)
    {
        nonce.Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(nonce, counter);
    }

    public void Dispose() => _key.Dispose();
}
