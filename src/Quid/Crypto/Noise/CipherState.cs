using System.Buffers.Binary;
using NSec.Cryptography;

namespace Quid.Crypto.Noise;

/// <summary>
/// One direction of Noise encryption (Noise §5.1): an AEAD key and a 64-bit message counter used as
/// the nonce. <see cref="HandshakeState.Split"/> hands out transport instances; the handshake also
/// uses one internally, where it starts without a key and passes data through until the first DH.
/// Not thread-safe: each direction belongs to one sender or one receiver.
/// </summary>
public sealed class CipherState : IDisposable
{
    internal const int TagLength = 16;
    internal const int MaxMessageLength = 65535;
    private const int NonceLength = 12;

    private readonly AeadAlgorithm _aead;
    private readonly bool _bigEndianNonce;
    private Key? _key;
    private ulong _n;

    internal CipherState(NoiseProtocol protocol)
    {
        _aead = protocol.Aead;
        _bigEndianNonce = protocol.Cipher == NoiseCipher.AesGcm;
    }

    /// <summary>The counter the next message will use; it advances only on success.</summary>
    public ulong Nonce => _n;

    internal bool HasKey => _key is not null;

    /// <summary>
    /// Encrypts one transport message of at most 65535 bytes including the 16-byte tag, returning its length.
    /// Throws <see cref="NoiseException"/> when the message is too long or the nonce space is spent,
    /// and <see cref="InvalidOperationException"/> after disposal or on the unused direction of a one-way pattern.
    /// </summary>
    public int Encrypt(ReadOnlySpan<byte> ad, ReadOnlySpan<byte> plaintext, Span<byte> ciphertext)
    {
        if (_key is null)
        {
            throw new InvalidOperationException(
                "This CipherState has no key: it was disposed, or is the unused direction of a one-way pattern.");
        }

        if (plaintext.Length > MaxMessageLength - TagLength)
        {
            throw new NoiseException(NoiseError.TooLong, "A Noise message cannot exceed 65535 bytes.");
        }

        return EncryptWithAd(ad, plaintext, ciphertext);
    }

    /// <summary>
    /// Decrypts one transport message. Returns false, leaving the nonce unchanged, if it fails
    /// authentication, is malformed, or <paramref name="plaintext"/> is shorter than the ciphertext
    /// minus 16; the contents of <paramref name="plaintext"/> are then undefined. Does not allocate.
    /// </summary>
    public bool TryDecrypt(ReadOnlySpan<byte> ad, ReadOnlySpan<byte> ciphertext, Span<byte> plaintext, out int written)
    {
        if (_key is null || ciphertext.Length > MaxMessageLength)
        {
            written = 0;
            return false;
        }

        return DecryptWithAd(ad, ciphertext, plaintext, out written);
    }

    public void Dispose()
    {
        _key?.Dispose();
        _key = null;
    }

    /// <summary>Replaces the key and restarts the counter, as MixKey and Split require.</summary>
    internal void InitializeKey(ReadOnlySpan<byte> k)
    {
        _key?.Dispose();
        _key = Key.Import(_aead, k, KeyBlobFormat.RawSymmetricKey);
        _n = 0;
    }

    /// <summary>Noise's SetNonce(), for transports that deliver out of order (and for testing the nonce limit).</summary>
    internal void SetNonce(ulong n) => _n = n;

    /// <summary>Without a key this copies the plaintext, as the handshake requires before its first DH.</summary>
    internal int EncryptWithAd(ReadOnlySpan<byte> ad, ReadOnlySpan<byte> plaintext, Span<byte> ciphertext)
    {
        if (_key is null)
        {
            plaintext.CopyTo(ciphertext);
            return plaintext.Length;
        }

        // 2^64-1 is reserved (Noise §5.1) so that a wrapped counter can never reuse a nonce.
        if (_n == ulong.MaxValue)
        {
            throw new NoiseException(NoiseError.NonceExhausted, "The nonce space of this CipherState is exhausted.");
        }

        int length = plaintext.Length + TagLength;
        if (ciphertext.Length < length)
        {
            throw new ArgumentException("The ciphertext span must be 16 bytes longer than the plaintext.", nameof(ciphertext));
        }

        Span<byte> nonce = stackalloc byte[NonceLength];
        WriteNonce(nonce);
        _aead.Encrypt(_key, nonce, ad, plaintext, ciphertext[..length]);
        _n++;
        return length;
    }

    /// <summary>Without a key this copies the ciphertext, as the handshake requires before its first DH.</summary>
    internal bool DecryptWithAd(ReadOnlySpan<byte> ad, ReadOnlySpan<byte> ciphertext, Span<byte> plaintext, out int written)
    {
        written = 0;
        if (_key is null)
        {
            if (plaintext.Length < ciphertext.Length)
            {
                return false;
            }

            ciphertext.CopyTo(plaintext);
            written = ciphertext.Length;
            return true;
        }

        int length = ciphertext.Length - TagLength;
        if (_n == ulong.MaxValue || length < 0 || plaintext.Length < length)
        {
            return false;
        }

        Span<byte> nonce = stackalloc byte[NonceLength];
        WriteNonce(nonce);
        if (!_aead.Decrypt(_key, nonce, ad, ciphertext, plaintext[..length]))
        {
            return false;
        }

        _n++;
        written = length;
        return true;
    }

    // Noise §12: 32 zero bits then the counter, little-endian for ChaChaPoly and big-endian for AESGCM.
    private void WriteNonce(Span<byte> nonce)
    {
        nonce[..4].Clear();
        if (_bigEndianNonce)
        {
            BinaryPrimitives.WriteUInt64BigEndian(nonce[4..], _n);
        }
        else
        {
            BinaryPrimitives.WriteUInt64LittleEndian(nonce[4..], _n);
        }
    }
}
