using System.Buffers.Binary;
using Quid.Crypto;

namespace Quid.Wire;

/// <summary>
/// What ultrapeers store for a session-addressed service for one period (PROTOCOL §9.9): the
/// lookup id it is filed under, the blinded key that signs it, and an encrypted body only a
/// holder of the address can read. A storer checks that the lookup id is the one the blinded
/// key and period give and that the key signed the record, so nobody can file a record under
/// another service's lookup id; it learns neither the address nor what the body says.
/// </summary>
public sealed class ServiceRecord
{
    public const byte Version = 1;
    public const int LookupIdSize = 32;
    public const int MaxBodySize = 1536;
    /// <summary>The longest a record may claim to live: a service republishes well within it.</summary>
    public static readonly TimeSpan MaxLifetime = TimeSpan.FromHours(3);
    private const int FixedSize = 1 + LookupIdSize + KeyBlinding.PublicKeySize + 4 * 8 + 2 + KeyBlinding.SignatureSize;
    public const int MaxEncodedSize = FixedSize + MaxBodySize;

    private static readonly byte[] SignatureContext = "quid service record v1"u8.ToArray();
    private static readonly byte[] LookupLabel = "quid lookup id"u8.ToArray();

    private ServiceRecord(byte[] encoded, DateTimeOffset published, DateTimeOffset expires, ulong period, ulong periodMinutes, int bodyLength)
    {
        Encoded = encoded;
        Published = published;
        Expires = expires;
        Period = period;
        PeriodMinutes = periodMinutes;
        _bodyLength = bodyLength;
    }

    private readonly int _bodyLength;

    /// <summary>The record as it travels, signature last.</summary>
    public byte[] Encoded { get; }
    public ReadOnlySpan<byte> LookupId => Encoded.AsSpan(1, LookupIdSize);
    public ReadOnlySpan<byte> BlindedKey => Encoded.AsSpan(1 + LookupIdSize, KeyBlinding.PublicKeySize);
    public ulong Period { get; }
    public ulong PeriodMinutes { get; }
    public DateTimeOffset Published { get; }
    public DateTimeOffset Expires { get; }
    /// <summary>The encrypted descriptor: opaque to the network.</summary>
    public ReadOnlySpan<byte> Body => Encoded.AsSpan(FixedSize - KeyBlinding.SignatureSize, _bodyLength);
    private ReadOnlySpan<byte> Signed => Encoded.AsSpan(0, Encoded.Length - KeyBlinding.SignatureSize);
    private ReadOnlySpan<byte> Signature => Encoded.AsSpan(Encoded.Length - KeyBlinding.SignatureSize);

    public bool IsExpired(DateTimeOffset now) => now >= Expires;

    /// <summary>
    /// A record with no body withdraws the service's records of its lookup id (PROTOCOL §9.9): the
    /// service is gone, and a lookup that finds it fails at once. It needs the same signature as a
    /// record, so only the service can withdraw itself.
    /// </summary>
    public bool IsWithdrawal => _bodyLength == 0;

    /// <summary>
    /// Whether this record takes the place of <paramref name="stored"/> of the same lookup id: the
    /// newer does, and a withdrawal of the same second too, as a service that stops just after a
    /// republication would otherwise not be withdrawn (times are whole seconds).
    /// </summary>
    public bool Replaces(ServiceRecord stored) =>
        Published > stored.Published || (IsWithdrawal && !stored.IsWithdrawal && Published == stored.Published);

    /// <summary>
    /// The lookup id a service's record is filed under for a period:
    /// SHA3-256("quid lookup id" | blinded public key | INT_8(period) | INT_8(length in minutes)).
    /// </summary>
    public static byte[] LookupIdFor(ReadOnlySpan<byte> blindedKey, ulong period, ulong periodMinutes)
    {
        if (blindedKey.Length != KeyBlinding.PublicKeySize)
            throw new ArgumentException($"A blinded public key is {KeyBlinding.PublicKeySize} bytes.", nameof(blindedKey));
        Span<byte> number = stackalloc byte[8];
        using var sha3 = KeyBlinding.Sha3();
        sha3.AppendData(LookupLabel);
        sha3.AppendData(blindedKey);
        BinaryPrimitives.WriteUInt64BigEndian(number, period);
        sha3.AppendData(number);
        BinaryPrimitives.WriteUInt64BigEndian(number, periodMinutes);
        sha3.AppendData(number);
        return sha3.GetHashAndReset();
    }

    /// <summary>Signs a record with the blinded key pair of <paramref name="period"/>.</summary>
    public static ServiceRecord Create(KeyBlinding.KeyPair keys, ulong period, ulong periodMinutes, DateTimeOffset published, DateTimeOffset expires, ReadOnlySpan<byte> body)
    {
        if (body.Length > MaxBodySize) throw new ArgumentException($"A record body is at most {MaxBodySize} bytes.", nameof(body));
        if (expires <= published || expires - published > MaxLifetime)
            throw new ArgumentException($"A record lives more than nothing and at most {MaxLifetime.TotalHours:0} hours.", nameof(expires));
        var encoded = new byte[FixedSize + body.Length];
        var writer = new WireWriter(encoded);
        writer.WriteByte(Version);
        writer.WriteBytes(LookupIdFor(keys.PublicKey, period, periodMinutes));
        writer.WriteBytes(keys.PublicKey);
        writer.WriteUInt64(period);
        writer.WriteUInt64(periodMinutes);
        writer.WriteUInt64((ulong)published.ToUnixTimeSeconds());
        writer.WriteUInt64((ulong)expires.ToUnixTimeSeconds());
        writer.WriteUInt16((ushort)body.Length);
        writer.WriteBytes(body);
        keys.Sign(SignedMessage(encoded.AsSpan(0, writer.Position)), writer.Reserve(KeyBlinding.SignatureSize));
        return Decode(encoded);
    }

    /// <summary>
    /// Reads a record's structure; <see cref="Verify"/> checks what it claims. Throws only
    /// <see cref="WireException"/>.
    /// </summary>
    public static ServiceRecord Decode(ReadOnlySpan<byte> encoded)
    {
        if (encoded.Length > MaxEncodedSize) throw new WireException(WireError.Oversized, $"Service record of {encoded.Length} bytes exceeds {MaxEncodedSize}.");
        var reader = new WireReader(encoded);
        byte version = reader.ReadByte();
        if (version != Version) throw new WireException(WireError.BadVersion, $"Service record version {version}, expected {Version}.");
        reader.ReadBytes(LookupIdSize + KeyBlinding.PublicKeySize);
        ulong period = reader.ReadUInt64();
        ulong minutes = reader.ReadUInt64();
        var published = UnixTime(reader.ReadUInt64(), "publication");
        var expires = UnixTime(reader.ReadUInt64(), "expiry");
        int bodyLength = reader.ReadUInt16();
        if (bodyLength > MaxBodySize) throw new WireException(WireError.Oversized, $"Service record body of {bodyLength} bytes exceeds {MaxBodySize}.");
        reader.ReadBytes(bodyLength);
        reader.ReadBytes(KeyBlinding.SignatureSize);
        reader.ExpectEnd();
        if (minutes == 0) throw new WireException(WireError.BadField, "A service period of no minutes.");
        return new ServiceRecord(encoded.ToArray(), published, expires, period, minutes, bodyLength);
    }

    /// <summary>
    /// Whether the record may be stored and served at <paramref name="now"/>: current, dated
    /// sanely, filed under the lookup id its key and period give, and signed by that key.
    /// </summary>
    public WireError? Verify(DateTimeOffset now, TimeSpan maxClockSkew)
    {
        if (IsExpired(now)) return WireError.Expired;
        if (Published > now + maxClockSkew || Expires <= Published || Expires - Published > MaxLifetime) return WireError.BadField;
        if (!KeyBlinding.IsValidPublicKey(BlindedKey) || !LookupId.SequenceEqual(LookupIdFor(BlindedKey, Period, PeriodMinutes))) return WireError.BadField;
        return NodeIdentity.Verify(BlindedKey, SignedMessage(Signed), Signature) ? null : WireError.BadSignature;
    }

    private static byte[] SignedMessage(ReadOnlySpan<byte> fields) => [.. SignatureContext, .. fields];

    private static DateTimeOffset UnixTime(ulong seconds, string what) =>
        seconds <= (ulong)DateTimeOffset.MaxValue.ToUnixTimeSeconds()
            ? DateTimeOffset.FromUnixTimeSeconds((long)seconds)
            : throw new WireException(WireError.BadField, $"A service record's {what} time is out of range.");
}
