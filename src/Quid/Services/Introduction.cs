using System.Security.Cryptography;
using Quid.Crypto;
using Quid.Wire;

namespace Quid.Services;

/// <summary>Why bytes that came as an introduction could not be opened.</summary>
public enum IntroductionError
{
    /// <summary>Not an introduction this node reads: another length or another version.</summary>
    Malformed,
    /// <summary>Not sealed to this blinded key: its ephemeral key is no usable point, or it does not open (another service, another period, or changed on the way).</summary>
    NotForThisKey,
}

public sealed class IntroductionException(IntroductionError error, string message) : Exception(message)
{
    public IntroductionError Error { get; } = error;
}

/// <summary>
/// What a client tells a session-address service to meet it (PROTOCOL §9.12): the rendezvous
/// nodes it offers (1 to <see cref="MaxPoints"/>, each with the cookie its circuit waits under
/// there; the service meets it at one it reaches), and its ntor ephemeral key X for the virtual
/// hop's handshake (§9.10.3). The client seals it to the period's blinded key A', which it
/// computes from the address alone, with an ephemeral Diffie-Hellman on the Ed25519 group
/// (<see cref="KeyBlinding.AgreeEphemeral"/>); only the holder of the blinded secret a' opens it.
/// The nodes that carry it see <see cref="SealedSize"/> random-looking bytes, however many points it offers.
/// </summary>
public sealed class Introduction
{
    public const byte Version = 2;
    /// <summary>The most rendezvous points one introduction offers.</summary>
    public const int MaxPoints = 3;
    /// <summary>X, the client's X25519 ntor ephemeral public key.</summary>
    public const int ClientKeySize = 32;
    /// <summary>The whole sealed introduction: version, E, the plain contents encrypted, tag.</summary>
    public const int SealedSize = 1 + EphemeralSize + PlainSize + TagSize;

    private const int EphemeralSize = KeyBlinding.PublicKeySize;
    private const int PointSize = NodeId.Size + RendezvousCookie.Size;
    private const int ClientKeyAt = 1 + MaxPoints * PointSize;
    internal const int PlainSize = ClientKeyAt + ClientKeySize;
    private const int TagSize = 16;
    private const int CiphertextAt = 1 + EphemeralSize;
    private const int TagAt = CiphertextAt + PlainSize;
    private const int KeySize = 32;

    private static readonly byte[] KeyInfo = "quid introduction key"u8.ToArray();

    /// <exception cref="ArgumentException">No point, more than <see cref="MaxPoints"/>, a node twice, or a key of another size.</exception>
    public Introduction(IReadOnlyList<(NodeId Node, RendezvousCookie Cookie)> points, ReadOnlySpan<byte> clientKey)
    {
        ArgumentNullException.ThrowIfNull(points);
        if (points.Count is 0 or > MaxPoints) throw new ArgumentException($"An introduction offers 1 to {MaxPoints} rendezvous points, not {points.Count}.", nameof(points));
        if (points.Select(p => p.Node).Distinct().Count() != points.Count) throw new ArgumentException("An introduction offers a rendezvous node once.", nameof(points));
        if (clientKey.Length != ClientKeySize) throw new ArgumentException($"The client's handshake key is a {ClientKeySize}-byte X25519 public key.", nameof(clientKey));
        Points = [.. points];
        ClientKey = clientKey.ToArray();
    }

    /// <summary>The nodes where the client's circuits wait, each with the cookie its circuit waits under there.</summary>
    public IReadOnlyList<(NodeId Node, RendezvousCookie Cookie)> Points { get; }

    /// <summary>X: the last 32 bytes of the client's ntor request (<see cref="Ntor.Client.Request"/>).</summary>
    public byte[] ClientKey { get; }

    /// <summary>
    /// Seals <paramref name="plain"/> to the service whose blinded key for the period is
    /// <paramref name="blindedKey"/> (<see cref="ServicePeriod.BlindedKey"/>): INT_1(2) | E |
    /// AES-256-GCM ciphertext | tag, <see cref="SealedSize"/> bytes. Each seal has a fresh E, so
    /// two seals of the same contents differ. Throws <see cref="ArgumentException"/> if
    /// <paramref name="blindedKey"/> is not a point of the prime-order group.
    /// </summary>
    public static byte[] Seal(ReadOnlySpan<byte> blindedKey, Introduction plain) => Seal(blindedKey, plain, ephemeralScalar: default);

    /// <summary><see cref="Seal(ReadOnlySpan{byte}, Introduction)"/> with the ephemeral scalar e given, for test vectors; empty for a random one.</summary>
    internal static byte[] Seal(ReadOnlySpan<byte> blindedKey, Introduction plain, ReadOnlySpan<byte> ephemeralScalar)
    {
        ArgumentNullException.ThrowIfNull(plain);
        Span<byte> contents = stackalloc byte[PlainSize];
        try
        {
            contents.Clear();
            contents[0] = (byte)plain.Points.Count;
            for (int i = 0; i < plain.Points.Count; i++)
            {
                var point = contents.Slice(1 + i * PointSize, PointSize);
                plain.Points[i].Node.WriteTo(point);
                plain.Points[i].Cookie.WriteTo(point[NodeId.Size..]);
            }
            plain.ClientKey.CopyTo(contents[ClientKeyAt..]);
            return SealContents(blindedKey, contents, ephemeralScalar);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(contents);
        }
    }

    /// <summary>Seals plain contents of <see cref="PlainSize"/> bytes as they are: for tests of contents no client writes.</summary>
    internal static byte[] SealContents(ReadOnlySpan<byte> blindedKey, ReadOnlySpan<byte> contents, ReadOnlySpan<byte> ephemeralScalar)
    {
        if (blindedKey.Length != KeyBlinding.PublicKeySize) throw new ArgumentException($"A blinded key is {KeyBlinding.PublicKeySize} bytes.", nameof(blindedKey));
        if (contents.Length != PlainSize) throw new ArgumentException($"An introduction's contents are {PlainSize} bytes.", nameof(contents));
        var sealedIntroduction = new byte[SealedSize];
        sealedIntroduction[0] = Version;
        var ephemeral = sealedIntroduction.AsSpan(1, EphemeralSize);
        Span<byte> shared = stackalloc byte[KeyBlinding.SharedSize];
        Span<byte> key = stackalloc byte[KeySize];
        try
        {
            if (ephemeralScalar.IsEmpty) KeyBlinding.AgreeEphemeral(blindedKey, ephemeral, shared);
            else KeyBlinding.AgreeEphemeral(blindedKey, ephemeralScalar, ephemeral, shared);
            DeriveKey(shared, blindedKey, ephemeral, key);
            Span<byte> associated = stackalloc byte[CiphertextAt + KeyBlinding.PublicKeySize];
            AssociatedData(sealedIntroduction, blindedKey, associated);
            using var aes = new AesGcm(key, TagSize);
            aes.Encrypt(stackalloc byte[12], contents, sealedIntroduction.AsSpan(CiphertextAt, PlainSize), sealedIntroduction.AsSpan(TagAt, TagSize), associated);
            return sealedIntroduction;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(shared);
            CryptographicOperations.ZeroMemory(key);
        }
    }

    /// <summary>
    /// Opens an introduction with the period's blinded key pair. Throws
    /// <see cref="IntroductionException"/>: <see cref="IntroductionError.Malformed"/> for bytes of
    /// another length or version, <see cref="IntroductionError.NotForThisKey"/> for an ephemeral
    /// key that is not a point of the prime-order group, or contents that do not open under this
    /// key (sealed to another service or period, or changed). Whatever opens is accepted: the
    /// caller checks that it has not seen its <see cref="ReplayKey"/> before.
    /// </summary>
    public static Introduction Open(KeyBlinding.KeyPair keys, ReadOnlySpan<byte> sealedIntroduction)
    {
        ArgumentNullException.ThrowIfNull(keys);
        CheckShape(sealedIntroduction);
        var ephemeral = sealedIntroduction.Slice(1, EphemeralSize);
        Span<byte> shared = stackalloc byte[KeyBlinding.SharedSize];
        Span<byte> key = stackalloc byte[KeySize];
        Span<byte> contents = stackalloc byte[PlainSize];
        try
        {
            if (!keys.TryAgree(ephemeral, shared))
                throw new IntroductionException(IntroductionError.NotForThisKey, "The introduction's ephemeral key is not a point of the prime-order group.");
            DeriveKey(shared, keys.PublicKey, ephemeral, key);
            Span<byte> associated = stackalloc byte[CiphertextAt + KeyBlinding.PublicKeySize];
            AssociatedData(sealedIntroduction, keys.PublicKey, associated);
            using var aes = new AesGcm(key, TagSize);
            try
            {
                aes.Decrypt(stackalloc byte[12], sealedIntroduction.Slice(CiphertextAt, PlainSize), sealedIntroduction.Slice(TagAt, TagSize), contents, associated);
            }
            catch (AuthenticationTagMismatchException)
            {
                throw new IntroductionException(IntroductionError.NotForThisKey, "The introduction does not open with this blinded key.");
            }
            int count = contents[0];
            // Inside the seal, so only the client could have written these: a client that breaks the format is refused like one that sent garbage.
            if (count is 0 or > MaxPoints || contents[(1 + count * PointSize)..ClientKeyAt].ContainsAnyExcept((byte)0))
                throw new IntroductionException(IntroductionError.Malformed, $"The introduction offers {count} rendezvous points, or has bytes past them.");
            var points = new (NodeId, RendezvousCookie)[count];
            for (int i = 0; i < count; i++)
            {
                var point = contents.Slice(1 + i * PointSize, PointSize);
                points[i] = (new NodeId(point[..NodeId.Size]), new RendezvousCookie(point[NodeId.Size..]));
            }
            if (points.Select(p => p.Item1).Distinct().Count() != count)
                throw new IntroductionException(IntroductionError.Malformed, "The introduction offers a rendezvous node twice.");
            return new Introduction(points, contents[ClientKeyAt..]);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(shared);
            CryptographicOperations.ZeroMemory(key);
            CryptographicOperations.ZeroMemory(contents);
        }
    }

    /// <summary>
    /// E, the introduction's ephemeral key: the same bytes for a replay of it, and fresh for every
    /// introduction a client seals (only one encoding of a point opens, so a replay cannot wear
    /// another). A service remembers the E of each introduction it opened, for as long as it
    /// accepts introductions under that blinded key, and ignores one whose E it has seen; remember
    /// it only after <see cref="Open"/> succeeded, so that nobody can fill the cache with noise.
    /// Throws <see cref="IntroductionException"/> (<see cref="IntroductionError.Malformed"/>) as
    /// <see cref="Open"/> does.
    /// </summary>
    public static ReadOnlySpan<byte> ReplayKey(ReadOnlySpan<byte> sealedIntroduction)
    {
        CheckShape(sealedIntroduction);
        return sealedIntroduction.Slice(1, EphemeralSize);
    }

    /// <summary>Whether bytes have an introduction's size and version: those without it <see cref="Open"/> and <see cref="ReplayKey"/> refuse as malformed.</summary>
    public static bool HasShape(ReadOnlySpan<byte> sealedIntroduction) => sealedIntroduction.Length == SealedSize && sealedIntroduction[0] == Version;

    private static void CheckShape(ReadOnlySpan<byte> sealedIntroduction)
    {
        if (sealedIntroduction.Length != SealedSize)
            throw new IntroductionException(IntroductionError.Malformed, $"An introduction is {SealedSize} bytes, not {sealedIntroduction.Length}.");
        if (sealedIntroduction[0] != Version)
            throw new IntroductionException(IntroductionError.Malformed, $"Introduction version {sealedIntroduction[0]}, expected {Version}.");
    }

    /// <summary>k = HKDF-SHA256(IKM = e·A' = a'·E, salt = A', info = "quid introduction key" | E), 32 bytes.</summary>
    private static void DeriveKey(ReadOnlySpan<byte> shared, ReadOnlySpan<byte> blindedKey, ReadOnlySpan<byte> ephemeral, Span<byte> key)
    {
        Span<byte> info = stackalloc byte[KeyInfo.Length + EphemeralSize];
        KeyInfo.CopyTo(info);
        ephemeral.CopyTo(info[KeyInfo.Length..]);
        HKDF.DeriveKey(HashAlgorithmName.SHA256, shared, key, blindedKey, info);
    }

    /// <summary>INT_1(2) | E | A': what the tag covers besides the ciphertext, so the introduction is bound to its key and version.</summary>
    private static void AssociatedData(ReadOnlySpan<byte> sealedIntroduction, ReadOnlySpan<byte> blindedKey, Span<byte> associated)
    {
        sealedIntroduction[..CiphertextAt].CopyTo(associated);
        blindedKey.CopyTo(associated[CiphertextAt..]);
    }
}
