using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Quid.Storage;

/// <summary>An object did not decrypt: a host changed or cut it, or it is not the object asked for.</summary>
public sealed class StorageException(string message) : Exception(message);

/// <summary>
/// How an object is sealed before it leaves its owner (PROTOCOL §10.7): AES-256-GCM over segments
/// of 1 MiB, the nonce the segment's number, the last segment marked in its associated data, so a
/// host can neither read it, change it, reorder its segments nor cut it short unnoticed.
/// </summary>
public static class ObjectCipher
{
    public const int KeySize = 32;
    public const int SegmentSize = 1 << 20;
    public const int TagSize = 16;

    public static long Segments(long plainLength) => Math.Max(1, (plainLength + SegmentSize - 1) / SegmentSize);

    public static long CipherLength(long plainLength) => plainLength + Segments(plainLength) * TagSize;

    public static async Task EncryptAsync(Stream plain, long plainLength, Stream cipher, byte[] key, CancellationToken cancellationToken)
    {
        using var aes = new AesGcm(key, TagSize);
        var input = new byte[SegmentSize];
        var output = new byte[SegmentSize + TagSize];
        long segments = Segments(plainLength);
        for (long i = 0; i < segments; i++)
        {
            int length = (int)Math.Min(SegmentSize, plainLength - i * SegmentSize);
            await plain.ReadExactlyAsync(input.AsMemory(0, length), cancellationToken).ConfigureAwait(false);
            Seal(aes, i, i == segments - 1, input.AsSpan(0, length), output.AsSpan(0, length + TagSize));
            await cipher.WriteAsync(output.AsMemory(0, length + TagSize), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Reads exactly <paramref name="cipherLength"/> bytes and writes the plaintext; throws <see cref="StorageException"/> if any segment fails.</summary>
    public static async Task DecryptAsync(Stream cipher, long cipherLength, Stream plain, byte[] key, CancellationToken cancellationToken)
    {
        long segments = (cipherLength + SegmentSize + TagSize - 1) / (SegmentSize + TagSize);
        if (segments < 1 || cipherLength < segments * TagSize) throw new StorageException($"{cipherLength} bytes are no sealed object.");
        using var aes = new AesGcm(key, TagSize);
        var input = new byte[SegmentSize + TagSize];
        var output = new byte[SegmentSize];
        for (long i = 0; i < segments; i++)
        {
            int length = (int)Math.Min(SegmentSize + TagSize, cipherLength - i * (SegmentSize + TagSize));
            if (length < TagSize) throw new StorageException($"{cipherLength} bytes are no sealed object: its last segment is shorter than a tag.");
            try
            {
                await cipher.ReadExactlyAsync(input.AsMemory(0, length), cancellationToken).ConfigureAwait(false);
            }
            catch (EndOfStreamException)
            {
                throw new StorageException("The object ended early.");
            }
            if (!Open(aes, i, i == segments - 1, input.AsSpan(0, length), output.AsSpan(0, length - TagSize)))
                throw new StorageException($"Segment {i} of the object does not decrypt: it was changed, or it is another object.");
            await plain.WriteAsync(output.AsMemory(0, length - TagSize), cancellationToken).ConfigureAwait(false);
        }
    }

    private static void Seal(AesGcm aes, long index, bool last, ReadOnlySpan<byte> plain, Span<byte> sealedSegment)
    {
        Span<byte> nonce = stackalloc byte[12];
        BinaryPrimitives.WriteInt64BigEndian(nonce[4..], index);
        ReadOnlySpan<byte> associated = [last ? (byte)1 : (byte)0];
        aes.Encrypt(nonce, plain, sealedSegment[..plain.Length], sealedSegment[plain.Length..], associated);
    }

    private static bool Open(AesGcm aes, long index, bool last, ReadOnlySpan<byte> sealedSegment, Span<byte> plain)
    {
        Span<byte> nonce = stackalloc byte[12];
        BinaryPrimitives.WriteInt64BigEndian(nonce[4..], index);
        ReadOnlySpan<byte> associated = [last ? (byte)1 : (byte)0];
        try
        {
            aes.Decrypt(nonce, sealedSegment[..^TagSize], sealedSegment[^TagSize..], plain, associated);
            return true;
        }
        catch (AuthenticationTagMismatchException)
        {
            return false;
        }
    }
}
