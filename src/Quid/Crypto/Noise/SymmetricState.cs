using CryptographicOperations = System.Security.Cryptography.CryptographicOperations;
using System.Text;
using NSec.Cryptography;

namespace Quid.Crypto.Noise;

/// <summary>
/// Noise's SymmetricState (§5.2): the chaining key ck, the transcript hash h, and the handshake's
/// CipherState. Noise's HKDF(ck, ikm, n) is exactly RFC 5869 HKDF with salt = ck and empty info,
/// so NSec's Extract and Expand compute it.
/// </summary>
internal sealed class SymmetricState : IDisposable
{
    private const int CipherKeyLength = 32;

    private readonly NoiseProtocol _protocol;
    private readonly CipherState _cipher;
    private readonly byte[] _ck;
    private readonly byte[] _h;

    public SymmetricState(NoiseProtocol protocol)
    {
        _protocol = protocol;
        _cipher = new CipherState(protocol);
        _h = new byte[protocol.HashAlgorithm.HashSize];
        byte[] name = Encoding.ASCII.GetBytes(protocol.Name);
        if (name.Length <= _h.Length)
        {
            name.CopyTo(_h);
        }
        else
        {
            protocol.HashAlgorithm.Hash(name, _h);
        }

        _ck = (byte[])_h.Clone();
    }

    public ReadOnlySpan<byte> HandshakeHash => _h;

    public bool HasKey => _cipher.HasKey;

    public void MixKey(SharedSecret dh)
    {
        Span<byte> prk = stackalloc byte[_ck.Length];
        _protocol.Kdf.Extract(dh, _ck, prk);
        Span<byte> output = stackalloc byte[2 * _ck.Length];
        Expand(prk, output);
        output[.._ck.Length].CopyTo(_ck);
        _cipher.InitializeKey(output.Slice(_ck.Length, CipherKeyLength));
        CryptographicOperations.ZeroMemory(output);
    }

    public void MixHash(ReadOnlySpan<byte> data)
    {
        IncrementalHash.Initialize(_protocol.HashAlgorithm, out IncrementalHash state);
        IncrementalHash.Update(ref state, _h);
        IncrementalHash.Update(ref state, data);
        IncrementalHash.Finalize(ref state, _h);
    }

    public int EncryptAndHash(ReadOnlySpan<byte> plaintext, Span<byte> ciphertext)
    {
        int length = _cipher.EncryptWithAd(_h, plaintext, ciphertext);
        MixHash(ciphertext[..length]);
        return length;
    }

    public bool DecryptAndHash(ReadOnlySpan<byte> ciphertext, Span<byte> plaintext)
    {
        if (!_cipher.DecryptWithAd(_h, ciphertext, plaintext, out _))
        {
            return false;
        }

        MixHash(ciphertext);
        return true;
    }

    /// <summary>Derives the two transport CipherStates and erases ck, which must not outlive the handshake.</summary>
    public (CipherState First, CipherState Second) Split()
    {
        Span<byte> first = stackalloc byte[CipherKeyLength];
        Span<byte> second = stackalloc byte[CipherKeyLength];
        SplitKeys(first, second);
        var firstState = new CipherState(_protocol);
        var secondState = new CipherState(_protocol);
        firstState.InitializeKey(first);
        secondState.InitializeKey(second);
        CryptographicOperations.ZeroMemory(first);
        CryptographicOperations.ZeroMemory(second);
        return (firstState, secondState);
    }

    /// <summary>Noise's Split, giving the two 32-byte keys themselves, for a transport with its own cipher; erases ck.</summary>
    public void SplitKeys(Span<byte> first, Span<byte> second)
    {
        // HKDF-Extract(salt = ck, ikm = empty) is HMAC(ck, empty); NSec's Extract rejects empty input, so use its HMAC.
        Span<byte> prk = stackalloc byte[_ck.Length];
        using (Key ckKey = Key.Import(_protocol.Hmac, _ck, KeyBlobFormat.RawSymmetricKey))
        {
            _protocol.Hmac.Mac(ckKey, ReadOnlySpan<byte>.Empty, prk);
        }

        Span<byte> output = stackalloc byte[2 * _ck.Length];
        Expand(prk, output);
        output[..CipherKeyLength].CopyTo(first);
        output.Slice(_ck.Length, CipherKeyLength).CopyTo(second);
        CryptographicOperations.ZeroMemory(output);
        CryptographicOperations.ZeroMemory(prk);
        CryptographicOperations.ZeroMemory(_ck);
        _cipher.Dispose();
    }

    public void Dispose()
    {
        _cipher.Dispose();
        CryptographicOperations.ZeroMemory(_ck);
        CryptographicOperations.ZeroMemory(_h);
    }

    // Two HASHLEN outputs; callers keep the first 32 bytes of each key-sized output, as Noise truncates for SHA512.
    private void Expand(Span<byte> prk, Span<byte> output)
    {
        _protocol.Kdf.Expand(prk, ReadOnlySpan<byte>.Empty, output);
        CryptographicOperations.ZeroMemory(prk);
    }
}
