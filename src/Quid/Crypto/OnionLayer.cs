namespace Quid.Crypto;

/// <summary>
/// One hop's layer of a circuit's onion encryption: an authenticated layer per hop, per
/// direction (AES-256-GCM, counter nonces, see <see cref="LayerKey"/>), over a relay body laid out as
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

    private readonly LayerKey _forward;
    private readonly LayerKey _backward;
    private ulong _forwardCount;
    private ulong _backwardCount;

    /// <summary>From a handshake's key material: the first 32 bytes key the forward direction, the next 32 the backward.</summary>
    public OnionLayer(ReadOnlySpan<byte> keyMaterial)
    {
        if (keyMaterial.Length < KeyMaterialSize) throw new ArgumentException($"A layer needs {KeyMaterialSize} bytes of key material.", nameof(keyMaterial));
        _forward = new LayerKey(keyMaterial[..32]);
        _backward = new LayerKey(keyMaterial[32..64]);
    }

    /// <summary>The client adds this hop's layer to a cell going toward the exit.</summary>
    public void SealForward(Span<byte> body) => Seal(_forward, ref _forwardCount, body);

    /// <summary>The hop removes its layer from a cell going toward the exit; false if the cell was tampered with.</summary>
    public bool OpenForward(Span<byte> body) => Open(_forward, ref _forwardCount, body);

    /// <summary>The hop adds its layer to a cell going toward the client.</summary>
    public void SealBackward(Span<byte> body) => Seal(_backward, ref _backwardCount, body);

    /// <summary>The client removes this hop's layer from a cell coming back; false if the cell was tampered with.</summary>
    public bool OpenBackward(Span<byte> body) => Open(_backward, ref _backwardCount, body);

    private static void Seal(LayerKey key, ref ulong counter, Span<byte> body)
    {
        int length = body.Length - TagStackSize;
        var stack = body[length..];
        stack[..(TagStackSize - TagSize)].CopyTo(stack[TagSize..]); // push: slot 0 takes our tag
        key.Seal(body[..length], stack[..TagSize], counter++);
    }

    private static bool Open(LayerKey key, ref ulong counter, Span<byte> body)
    {
        int length = body.Length - TagStackSize;
        var stack = body[length..];
        if (!key.Open(body[..length], stack[..TagSize], counter++)) return false;
        stack[TagSize..].CopyTo(stack); // pop
        Filler.Fill(stack[(TagStackSize - TagSize)..]);
        return true;
    }

    public void Dispose()
    {
        _forward.Dispose();
        _backward.Dispose();
    }
}
