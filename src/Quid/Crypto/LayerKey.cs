using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace Quid.Crypto;

/// <summary>
/// An AES-256-GCM key with its key schedule computed once, for the onion layer's one cell at a
/// time. It calls libsodium, the library NSec ships, through its precomputation API
/// (beforenm/afternm): NSec's own AES-GCM expands the key on every call, which cost a fifth of
/// the layer's time on a 1915-byte message (docs/BENCHMARKS.md). In place, tag detached.
/// </summary>
internal sealed unsafe partial class LayerKey : IDisposable
{
    public const int TagSize = 16;
    private const int StateSize = 512;
    // A safe handle: a circuit may be closed (and its keys disposed) on one thread while a cell is
    // being sealed on another; the runtime keeps the state alive until that call returns.
    private readonly State _state = new();

    private sealed class State : SafeHandle
    {
        public State() : base(IntPtr.Zero, ownsHandle: true) => SetHandle((IntPtr)NativeMemory.AlignedAlloc(StateSize, 16));

        public override bool IsInvalid => handle == IntPtr.Zero;

        protected override bool ReleaseHandle()
        {
            NativeMemory.Clear((void*)handle, StateSize);
            NativeMemory.AlignedFree((void*)handle);
            return true;
        }
    }

    static LayerKey()
    {
        if (sodium_init() < 0) throw new CryptographicException("libsodium failed to initialise.");
    }

    public LayerKey(ReadOnlySpan<byte> key)
    {
        if (crypto_aead_aes256gcm_is_available() == 0)
            throw new PlatformNotSupportedException("Onion layers need AES-GCM in hardware (AES-NI and PCLMUL), which this CPU lacks.");
        fixed (byte* k = key)
            if (crypto_aead_aes256gcm_beforenm(_state, k) != 0) throw new CryptographicException("AES-GCM key setup failed.");
    }

    /// <summary>
    /// Encrypts <paramref name="data"/> in place under the nonce for <paramref name="counter"/> and
    /// writes the tag. After <see cref="Dispose"/>, throws <see cref="ObjectDisposedException"/>.
    /// </summary>
    public void Seal(Span<byte> data, Span<byte> tag, ulong counter)
    {
        byte* nonce = stackalloc byte[12];
        Nonce(nonce, counter);
        fixed (byte* d = data, t = tag)
            if (crypto_aead_aes256gcm_encrypt_detached_afternm(d, t, null, d, (ulong)data.Length, null, 0, null, nonce, _state) != 0)
                throw new CryptographicException("AES-GCM encryption failed.");
    }

    /// <summary>Checks the tag and decrypts <paramref name="data"/> in place; false if it was tampered with, and then the data is garbage.</summary>
    public bool Open(Span<byte> data, ReadOnlySpan<byte> tag, ulong counter)
    {
        byte* nonce = stackalloc byte[12];
        Nonce(nonce, counter);
        fixed (byte* d = data, t = tag)
            return crypto_aead_aes256gcm_decrypt_detached_afternm(d, null, d, (ulong)data.Length, t, null, 0, nonce, _state) == 0;
    }

    private static void Nonce(byte* nonce, ulong counter)
    {
        *(uint*)nonce = 0;
        BinaryPrimitives.WriteUInt64BigEndian(new Span<byte>(nonce + 4, 8), counter);
    }

    public void Dispose() => _state.Dispose();

    [LibraryImport("libsodium")]
    private static partial int sodium_init();

    [LibraryImport("libsodium")]
    private static partial int crypto_aead_aes256gcm_is_available();

    [LibraryImport("libsodium")]
    private static partial int crypto_aead_aes256gcm_beforenm(State state, byte* key);

    [LibraryImport("libsodium")]
    private static partial int crypto_aead_aes256gcm_encrypt_detached_afternm(byte* c, byte* mac, ulong* macLength, byte* m, ulong mLength,
        byte* ad, ulong adLength, byte* nsec, byte* nonce, State state);

    [LibraryImport("libsodium")]
    private static partial int crypto_aead_aes256gcm_decrypt_detached_afternm(byte* m, byte* nsec, byte* c, ulong cLength, byte* mac,
        byte* ad, ulong adLength, byte* nonce, State state);
}
