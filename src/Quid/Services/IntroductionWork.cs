using System.Buffers.Binary;
using System.Numerics;
using System.Security.Cryptography;

namespace Quid.Services;

/// <summary>
/// Work a client may attach to an introduction so that an introduction point under load passes
/// it before cheaper ones (PROTOCOL §9.14): a hashcash whose effort is the number of leading zero
/// bits of SHA-256("quid introduction work" | introduction | INT_8(epoch) | nonce (8)). The epoch
/// is the 10-minute window of the clock, so work cannot be stockpiled for longer; the introduction
/// is the sealed one (§9.12), fresh for every attempt, so work cannot be reused. Carried as the
/// introduction followed by INT_8(epoch) | nonce; an introduction carried alone has effort 0.
/// </summary>
public static class IntroductionWork
{
    /// <summary>What work adds to the introduction: the epoch and the nonce.</summary>
    public const int Size = 16;
    /// <summary>An introduction with work, as the overlay carries it.</summary>
    public const int CarriedSize = Introduction.SealedSize + Size;
    /// <summary>Past this a client asks no more of itself: 2^32 hashes are over half an hour of a core.</summary>
    public const int MaxEffort = 32;
    public static readonly TimeSpan EpochLength = TimeSpan.FromMinutes(10);

    private static readonly byte[] Label = "quid introduction work"u8.ToArray();

    /// <summary>The epoch of <paramref name="now"/>: whole 10-minute windows since 1970.</summary>
    public static long Epoch(DateTimeOffset now) => now.ToUnixTimeSeconds() / (long)EpochLength.TotalSeconds;

    /// <summary>
    /// Finds a nonce that gives <paramref name="introduction"/> at least <paramref name="effort"/>
    /// in <paramref name="epoch"/>, about 2^effort hashes, and returns the introduction with its
    /// work (<see cref="CarriedSize"/> bytes). CPU-bound: run it off the caller's thread.
    /// </summary>
    public static byte[] Solve(ReadOnlySpan<byte> introduction, int effort, long epoch, CancellationToken cancellationToken)
    {
        if (introduction.Length != Introduction.SealedSize)
            throw new ArgumentException($"An introduction is {Introduction.SealedSize} bytes.", nameof(introduction));
        ArgumentOutOfRangeException.ThrowIfNegative(effort);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(effort, MaxEffort);
        Span<byte> input = stackalloc byte[Label.Length + CarriedSize];
        Label.CopyTo(input);
        introduction.CopyTo(input[Label.Length..]);
        BinaryPrimitives.WriteInt64BigEndian(input[(Label.Length + Introduction.SealedSize)..], epoch);
        var nonce = input[^8..];
        Span<byte> digest = stackalloc byte[SHA256.HashSizeInBytes];
        // A random start, so that two solvers of one introduction do not walk the same nonces.
        ulong next = BinaryPrimitives.ReadUInt64LittleEndian(RandomNumberGenerator.GetBytes(8));
        for (long tried = 0; ; tried++)
        {
            if ((tried & 0xFFFF) == 0) cancellationToken.ThrowIfCancellationRequested();
            BinaryPrimitives.WriteUInt64BigEndian(nonce, next++);
            SHA256.HashData(input, digest);
            if (LeadingZeroBits(digest) >= effort) return input[Label.Length..].ToArray();
        }
    }

    /// <summary>
    /// Reads what an introduction point was given for a service: the sealed introduction, and the
    /// effort of its work at the point's <paramref name="epoch"/>. Work of an epoch more than one
    /// away (clocks differ by minutes, not more) counts as none, as does no work at all. False for
    /// bytes of any other length: nothing a service could open.
    /// </summary>
    public static bool TryRead(ReadOnlySpan<byte> carried, long epoch, out ReadOnlySpan<byte> introduction, out int effort)
    {
        effort = 0;
        introduction = default;
        if (carried.Length == Introduction.SealedSize)
        {
            introduction = carried;
            return true;
        }
        if (carried.Length != CarriedSize) return false;
        introduction = carried[..Introduction.SealedSize];
        long workEpoch = BinaryPrimitives.ReadInt64BigEndian(carried[Introduction.SealedSize..]);
        if (workEpoch < epoch - 1 || workEpoch > epoch + 1) return true;
        Span<byte> input = stackalloc byte[Label.Length + CarriedSize];
        Label.CopyTo(input);
        carried.CopyTo(input[Label.Length..]);
        Span<byte> digest = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(input, digest);
        effort = LeadingZeroBits(digest);
        return true;
    }

    private static int LeadingZeroBits(ReadOnlySpan<byte> digest)
    {
        int bits = 0;
        foreach (byte b in digest)
        {
            if (b != 0) return bits + BitOperations.LeadingZeroCount((uint)b) - 24;
            bits += 8;
        }
        return bits;
    }
}
