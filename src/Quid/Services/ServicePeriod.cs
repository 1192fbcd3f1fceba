using System.Buffers.Binary;
using Quid.Crypto;
using Quid.Wire;

namespace Quid.Services;

/// <summary>
/// The clock a service's blinded key and lookup id rotate by, as Tor's time periods do
/// (rend-spec-v3 §2.2.1): period = (minutes since the Unix epoch − offset) / length. Tor shifts
/// every service by the same 12 hours; here each service has its own offset, derived from its
/// key (or, for a moving service, from its secret), so that services do not all rotate at once
/// and a rotation reveals nothing but the service's own schedule. Periods follow the clock,
/// never restarts: a service that restarts keeps its lookup id until its period ends.
/// </summary>
public sealed class ServicePeriod
{
    public const int LookupIdSize = 32;
    private static readonly byte[] OffsetLabel = "quid period offset"u8.ToArray();

    public static TimeSpan DefaultLength { get; } = TimeSpan.FromHours(24);

    /// <summary>A schedule of periods of <paramref name="periodLength"/> (whole minutes), starting <paramref name="offset"/> after each multiple of it.</summary>
    public ServicePeriod(TimeSpan periodLength, TimeSpan offset)
    {
        LengthMinutes = WholeMinutes(periodLength);
        if (offset < TimeSpan.Zero || offset >= periodLength || offset.Ticks % TimeSpan.TicksPerMinute != 0)
            throw new ArgumentOutOfRangeException(nameof(offset), offset, "The offset is a whole number of minutes shorter than the period.");
        PeriodLength = periodLength;
        Offset = offset;
    }

    public TimeSpan PeriodLength { get; }
    public TimeSpan Offset { get; }

    /// <summary>The period length in minutes, as INT_8(period length) enters the blinding and the lookup id.</summary>
    public ulong LengthMinutes { get; }

    private static ulong WholeMinutes(TimeSpan periodLength)
    {
        if (periodLength < TimeSpan.FromMinutes(1) || periodLength.Ticks % TimeSpan.TicksPerMinute != 0)
            throw new ArgumentOutOfRangeException(nameof(periodLength), periodLength, "A period is a whole number of minutes, at least one.");
        return (ulong)(periodLength.Ticks / TimeSpan.TicksPerMinute);
    }

    /// <summary>
    /// The schedule of the service with this public key: offset = the first 8 bytes of
    /// SHA3-256("quid period offset" | PUBKEY), big-endian, modulo the length in minutes.
    /// </summary>
    public static ServicePeriod ForKey(ReadOnlySpan<byte> publicKey, TimeSpan? periodLength = null) =>
        FromMaterial(publicKey, periodLength ?? DefaultLength);

    public static ServicePeriod ForAddress(SessionAddress address, TimeSpan? periodLength = null)
    {
        ArgumentNullException.ThrowIfNull(address);
        return ForKey(address.PublicKey, periodLength);
    }

    /// <summary>The schedule of a moving service, whose key changes each period: the same hash over its secret instead of a key.</summary>
    public static ServicePeriod ForSecret(ServiceSecret secret, TimeSpan? periodLength = null)
    {
        ArgumentNullException.ThrowIfNull(secret);
        return FromMaterial(secret.Bytes, periodLength ?? DefaultLength);
    }

    private static ServicePeriod FromMaterial(ReadOnlySpan<byte> material, TimeSpan periodLength)
    {
        if (material.Length != 32) throw new ArgumentException("A period offset is derived from 32 bytes.", nameof(material));
        Span<byte> hash = stackalloc byte[32];
        using (var sha3 = KeyBlinding.Sha3())
        {
            sha3.AppendData(OffsetLabel);
            sha3.AppendData(material);
            sha3.GetHashAndReset(hash);
        }
        ulong offset = BinaryPrimitives.ReadUInt64BigEndian(hash) % WholeMinutes(periodLength);
        return new ServicePeriod(periodLength, TimeSpan.FromMinutes(offset));
    }

    /// <summary>The period <paramref name="time"/> falls in. Times before the first period (in January 1970) are refused.</summary>
    public ulong Number(DateTimeOffset time)
    {
        var sinceFirst = time - DateTimeOffset.UnixEpoch - Offset;
        if (sinceFirst < TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(time), time, "Before the first period.");
        return (ulong)(sinceFirst.Ticks / TimeSpan.TicksPerMinute) / LengthMinutes;
    }

    public DateTimeOffset Start(ulong period) =>
        DateTimeOffset.UnixEpoch + Offset + TimeSpan.FromMinutes(checked((long)(period * LengthMinutes)));

    /// <summary>The first instant after the period, which is the start of the next.</summary>
    public DateTimeOffset End(ulong period) => Start(checked(period + 1));

    /// <summary>The blinded public key of the service with this public key, for a period: what its descriptor is signed under.</summary>
    public byte[] BlindedKey(ReadOnlySpan<byte> publicKey, ulong period) => KeyBlinding.BlindPublicKey(publicKey, period, LengthMinutes);

    /// <summary>The blinded public key of a private service, which only holders of its <paramref name="access"/> key can compute.</summary>
    public byte[] BlindedKey(ReadOnlySpan<byte> publicKey, ulong period, ServiceSecret? access) =>
        KeyBlinding.BlindPublicKey(publicKey, period, LengthMinutes, access is null ? default : access.Bytes);

    /// <summary>
    /// The lookup id the network files a service's descriptor under for a period:
    /// SHA3-256("quid lookup id" | blinded public key | INT_8(period) | INT_8(length in minutes)).
    /// </summary>
    public byte[] LookupId(ReadOnlySpan<byte> blindedPublicKey, ulong period) => ServiceRecord.LookupIdFor(blindedPublicKey, period, LengthMinutes);
}
