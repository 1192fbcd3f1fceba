using System.Security.Cryptography;
using Quid.Storage;

namespace Quid.Tests.Storage;

public sealed class ObjectCipherTests
{
    private static readonly byte[] Key = [.. Enumerable.Range(1, ObjectCipher.KeySize).Select(i => (byte)i)];

    private static async Task<byte[]> SealAsync(byte[] plain)
    {
        using var sealedStream = new MemoryStream();
        await ObjectCipher.EncryptAsync(new MemoryStream(plain), plain.Length, sealedStream, Key, CancellationToken.None);
        Assert.Equal(ObjectCipher.CipherLength(plain.Length), sealedStream.Length);
        return sealedStream.ToArray();
    }

    private static async Task<byte[]> OpenAsync(byte[] sealedBytes, byte[]? key = null)
    {
        using var plain = new MemoryStream();
        await ObjectCipher.DecryptAsync(new MemoryStream(sealedBytes), sealedBytes.Length, plain, key ?? Key, CancellationToken.None);
        return plain.ToArray();
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(ObjectCipher.SegmentSize)]
    [InlineData(2 * ObjectCipher.SegmentSize + 17)]
    public async Task AnObjectOpensToWhatWasSealed(int size)
    {
        var plain = RandomNumberGenerator.GetBytes(size);
        Assert.Equal(plain, await OpenAsync(await SealAsync(plain)));
    }

    [Fact]
    public async Task AChangedCutReorderedOrForeignObjectDoesNotOpen()
    {
        var plain = RandomNumberGenerator.GetBytes(2 * ObjectCipher.SegmentSize + 100);
        var sealedBytes = await SealAsync(plain);
        int segment = ObjectCipher.SegmentSize + ObjectCipher.TagSize;

        var changed = (byte[])sealedBytes.Clone();
        changed[segment + 5] ^= 1;
        await Assert.ThrowsAsync<StorageException>(() => OpenAsync(changed));
        // Cut at a segment boundary: what is left is whole segments, but its last is not marked last.
        await Assert.ThrowsAsync<StorageException>(() => OpenAsync(sealedBytes[..(2 * segment)]));
        // Two segments swapped.
        byte[] swapped = [.. sealedBytes[segment..(2 * segment)], .. sealedBytes[..segment], .. sealedBytes[(2 * segment)..]];
        await Assert.ThrowsAsync<StorageException>(() => OpenAsync(swapped));
        await Assert.ThrowsAsync<StorageException>(() => OpenAsync(sealedBytes, RandomNumberGenerator.GetBytes(ObjectCipher.KeySize)));
        await Assert.ThrowsAsync<StorageException>(() => OpenAsync(new byte[ObjectCipher.TagSize - 1]));
    }

    [Fact]
    public async Task TheHostSeesNoneOfThePlaintext()
    {
        var plain = System.Text.Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("Dear diary, today I paid for anonymity with bandwidth. ", 2000)));
        var sealedBytes = await SealAsync(plain);
        Assert.Equal(-1, sealedBytes.AsSpan().IndexOf("Dear diary"u8));
    }
}
