using System.Runtime.InteropServices;
using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using NSec.Cryptography;

namespace Quid.Bench;

/// <summary>
/// Choosing the onion layer's cipher by measurement, on a 1915-byte relay message: AES-256-GCM
/// through NSec (which expands the key on every call), libsodium's AES-256-GCM with the key
/// schedule precomputed once (its beforenm/afternm API, the same library NSec ships), and
/// AEGIS-256 through NSec (faster, but its 32-byte tags would double the tag stack).
/// </summary>
[MemoryDiagnoser]
[System.Diagnostics.CodeAnalysis.SuppressMessage("Reliability", "CA1001", Justification = "BenchmarkDotNet needs an unsealed class; GlobalCleanup disposes.")]
public unsafe class LayerCipherBenchmarks
{
    private const int Message = 1915;
    private readonly byte[] _plain = RandomNumberGenerator.GetBytes(Message);
    private readonly byte[] _sealed = new byte[Message + 32];
    private readonly byte[] _nonce12 = new byte[12];
    private readonly byte[] _nonce32 = new byte[32];
    private readonly byte[] _tag = new byte[16];
    private Key _gcm = null!;
    private Key _aegis = null!;
    private void* _state;

    [DllImport("libsodium", CallingConvention = CallingConvention.Cdecl)]
    private static extern int crypto_aead_aes256gcm_beforenm(void* state, byte* key);

    [DllImport("libsodium", CallingConvention = CallingConvention.Cdecl)]
    private static extern int crypto_aead_aes256gcm_encrypt_detached_afternm(byte* c, byte* mac, ulong* maclen, byte* m, ulong mlen, byte* ad, ulong adlen, byte* nsec, byte* npub, void* state);

    [DllImport("libsodium", CallingConvention = CallingConvention.Cdecl)]
    private static extern int crypto_aead_aes256gcm_decrypt_detached_afternm(byte* m, byte* nsec, byte* c, ulong clen, byte* mac, byte* ad, ulong adlen, byte* npub, void* state);

    [GlobalSetup]
    public void Setup()
    {
        var key = RandomNumberGenerator.GetBytes(32);
        _gcm = Key.Import(AeadAlgorithm.Aes256Gcm, key, KeyBlobFormat.RawSymmetricKey);
        _aegis = Key.Import(AeadAlgorithm.Aegis256, key, KeyBlobFormat.RawSymmetricKey);
        _state = NativeMemory.AlignedAlloc(512, 16);
        fixed (byte* k = key)
            if (crypto_aead_aes256gcm_beforenm(_state, k) != 0) throw new InvalidOperationException("No AES-GCM here.");
    }

    [Benchmark(Baseline = true)]
    public bool NSecAesGcm()
    {
        AeadAlgorithm.Aes256Gcm.Encrypt(_gcm, _nonce12, default, _plain, _sealed.AsSpan(0, Message + 16));
        return AeadAlgorithm.Aes256Gcm.Decrypt(_gcm, _nonce12, default, _sealed.AsSpan(0, Message + 16), _plain);
    }

    [Benchmark]
    public bool LibsodiumAesGcmPrecomputed()
    {
        fixed (byte* p = _plain, c = _sealed, t = _tag, n = _nonce12)
        {
            return crypto_aead_aes256gcm_encrypt_detached_afternm(c, t, null, p, Message, null, 0, null, n, _state) == 0
                && crypto_aead_aes256gcm_decrypt_detached_afternm(p, null, c, Message, t, null, 0, n, _state) == 0;
        }
    }

    [Benchmark]
    public bool NSecAegis256()
    {
        AeadAlgorithm.Aegis256.Encrypt(_aegis, _nonce32, default, _plain, _sealed.AsSpan(0, Message + 32));
        return AeadAlgorithm.Aegis256.Decrypt(_aegis, _nonce32, default, _sealed.AsSpan(0, Message + 32), _plain);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _gcm.Dispose();
        _aegis.Dispose();
        NativeMemory.AlignedFree(_state);
    }
}
