using System.Buffers.Binary;
using System.Security.Cryptography;
using NSec.Cryptography;

namespace Quid.Crypto;

/// <summary>
/// One hop's layer of a circuit's onion encryption: an authenticated layer per hop, per
/// direction (AES-256-GCM, counter nonces), over a relay body laid out as
/// <c>ciphertext || tag stack</c>. The stack holds <see cref="Slots"/> tags; the outermost
/// layer's tag is always in slot 0.
///
/// Toward the exit, the client seals the layers innermost first, each pushing its tag onto the
/// stack; every hop opens its own layer, pops its tag and refills the last slot at random, so
/// every hop sees a full stack and none learns how many hops follow. Toward the client, each hop
/// seals and pushes (the pushed-out last slot held only filler), and the client opens layer
/// after layer. Any change to a cell fails the tag at the hop that reads it.
/// </summary>
public sealed class OnionLayer : IDisposable
{
    public const int TagSize = 16;
    public const int Slots = 8;
    public const int TagStackSize = TagSize * Slots;
    public const int KeyMaterialSize = 64;

    private static readonly AeadAlgorithm Aead = AeadAlgorithm.Aes256Gcm;
    private readonly Key _forward;
    private readonly Key _backward;
    private ulong _forwardCount;
    private ulong _backwardCount;

    /// <summary>From a handshake's key material: the first 32 bytes key the forward direction, the next 32 the backward.</summary>
    public OnionLayer(ReadOnlySpan<byte> keyMaterial)
    {
        if (keyMaterial.Length < KeyMaterialSize) throw new ArgumentException($"A layer needs {KeyMaterialSize} bytes of key material.", nameof(keyMaterial));
        _forward = Key.Import(Aead, keyMaterial[..32], KeyBlobFormat.RawSymmetricKey);
        _backward = Key.Import(Aead, keyMaterial[32..64], KeyBlobFormat.RawSymmetricKey);
    }

    /// <summary>The client adds this hop's layer to a cell going toward the exit.</summary>
    public void SealForward(Span<byte> body) => Seal(_forward, ref _forwardCount, body);

    /// <summary>The hop removes its layer from a cell going toward the exit; false if the cell was tampered with.</summary>
    public bool OpenForward(Span<byte> body) => Open(_forward, ref _forwardCount, body);

    /// <summary>The hop adds its layer to a cell going toward the client.</summary>
    public void SealBackward(Span<byte> body) => Seal(_backward, ref _backwardCount, body);

    /// <summary>The client removes this hop's layer from a cell coming back; false if the cell was tampered with.</summary>
    public bool OpenBackward(Span<byte> body) => Open(_backward, ref _backwardCount, body);

    private static void Seal(Key key, ref ulong counter, Span<byte> body)
    {
        int length = body.Length - TagStackSize;
        var stack = body[length..];
        stack[..(TagStackSize - TagSize)].CopyTo(stack[TagSize..]); // push: slot 0 is about to take our tag
        Span<byte> nonce = stackalloc byte[12];
        Nonce(nonce, counter++);
        // In place: the ciphertext overwrites the plaintext and the tag lands in slot 0.
        Aead.Encrypt(key, nonce, default, body[..length], body[..(length + TagSize)]);
    }

    private static bool Open(Key key, ref ulong counter, Span<byte> body)
    {
        int length = body.Length - TagStackSize;
        Span<byte> nonce = stackalloc byte[12];
        Nonce(nonce, counter++);
        if (!Aead.Decrypt(key, nonce, default, body[..(length + TagSize)], body[..length])) return false;
        var stack = body[length..];
        stack[TagSize..].CopyTo(stack); // pop
        Filler.Fill(stack[(TagStackSize - TagSize)..]);
        return true;
    }

    private static void Nonce(Span<byte> nonce, ulong counter)
    {
        nonce[..4].Clear();
        BinaryPrimitives.WriteUInt64BigEndian(nonce[4..], counter);
    }

    public void Dispose()
    {
        _forward.Dispose();
        _backward.Dispose();
    }
}
