using System.Buffers.Binary;
using System.Security.Cryptography;
using NSec.Cryptography;
using Quid.Crypto;
using Quid.Wire;

namespace Quid.Services;

/// <summary>How long a service keeps its address; each service chooses.</summary>
public enum AddressKind
{
    /// <summary>One address for good: the caller keeps the seed (and persists it).</summary>
    Stable,
    /// <summary>A new address each time the service starts, from a fresh random seed.</summary>
    Ephemeral,
    /// <summary>A new address each period, derived from a shared secret: only holders of the secret can follow it.</summary>
    Moving,
}

/// <summary>
/// A service's keys, by <see cref="AddressKind"/>: its address, its blinded key pair and lookup
/// id for each period. A stable or ephemeral service has one Ed25519 seed; a moving service's
/// seed for period p is HKDF-SHA256(secret, salt empty, info "quid moving address" | INT_8(p)),
/// 32 bytes, and its periods are offset by its secret, since its key changes with them.
/// Secrets are wiped on <see cref="Dispose"/>.
/// </summary>
public sealed class ServiceKeys : IDisposable
{
    private static readonly byte[] MovingInfo = "quid moving address"u8.ToArray();
    private static readonly byte[] HandshakeInfo = "quid service handshake key"u8.ToArray();

    // The seed of a stable or ephemeral service, or the secret of a moving one; pinned so the
    // collector never leaves a copy behind.
    private readonly byte[] _secret = GC.AllocateArray<byte>(32, pinned: true);
    private readonly SessionAddress? _address;
    private bool _disposed;

    private ServiceKeys(AddressKind kind, ReadOnlySpan<byte> secret, ServicePeriod periods, ServiceSecret? access)
    {
        Kind = kind;
        secret.CopyTo(_secret);
        Periods = periods;
        Access = access;
        if (kind != AddressKind.Moving) _address = new SessionAddress(PublicKey(secret));
    }

    public AddressKind Kind { get; }

    /// <summary>
    /// A private service's access key: it enters the blinded key (the secret s of rend-spec-v3
    /// A.2), so only its holders can compute the lookup id; to everyone else the service does
    /// not exist. Null for a public service.
    /// </summary>
    public ServiceSecret? Access { get; }

    /// <summary>The service's schedule of periods.</summary>
    public ServicePeriod Periods { get; }

    /// <summary>The address of a stable or ephemeral service; null for a moving one, whose address depends on the period.</summary>
    public SessionAddress? FixedAddress => _address;

    public static ServiceKeys Stable(ReadOnlySpan<byte> seed, TimeSpan? periodLength = null, ServiceSecret? access = null)
    {
        if (seed.Length != KeyBlinding.SeedSize) throw new ArgumentException($"A service seed is {KeyBlinding.SeedSize} bytes.", nameof(seed));
        return new ServiceKeys(AddressKind.Stable, seed, ServicePeriod.ForKey(PublicKey(seed), periodLength), access);
    }

    public static ServiceKeys Ephemeral(TimeSpan? periodLength = null, ServiceSecret? access = null)
    {
        Span<byte> seed = stackalloc byte[KeyBlinding.SeedSize];
        RandomNumberGenerator.Fill(seed);
        try
        {
            return new ServiceKeys(AddressKind.Ephemeral, seed, ServicePeriod.ForKey(PublicKey(seed), periodLength), access);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(seed);
        }
    }

    /// <summary>The keys of a moving service; a client holding the secret uses them too, to find the service.</summary>
    public static ServiceKeys Moving(ServiceSecret secret, TimeSpan? periodLength = null, ServiceSecret? access = null)
    {
        ArgumentNullException.ThrowIfNull(secret);
        return new ServiceKeys(AddressKind.Moving, secret.Bytes, ServicePeriod.ForSecret(secret, periodLength), access);
    }

    /// <summary>The service's address during <paramref name="period"/>: the same in every period unless it is moving.</summary>
    public SessionAddress Address(ulong period)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_address is not null) return _address;
        Span<byte> seed = stackalloc byte[KeyBlinding.SeedSize];
        try
        {
            MovingSeed(period, seed);
            return new SessionAddress(PublicKey(seed));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(seed);
        }
    }

    /// <summary>
    /// The period a client who holds only the address of <paramref name="period"/> blinds it
    /// with at <paramref name="time"/>: its own schedule's (§9.4, offset from the address's key),
    /// which for a stable or ephemeral service is <see cref="Periods"/>. A moving service's
    /// addresses change on its secret's schedule, which a client given just today's address
    /// cannot know, so its records are filed under the address's own schedule.
    /// </summary>
    public ulong BlindingPeriod(ulong period, DateTimeOffset time) =>
        Kind == AddressKind.Moving ? ServicePeriod.ForKey(Address(period).PublicKey, Periods.PeriodLength).Number(time) : period;

    /// <summary>
    /// The blinded key pair of the address of <paramref name="period"/>, blinded for
    /// <paramref name="blindingPeriod"/> (by default the same; see <see cref="BlindingPeriod"/>):
    /// it signs what the service publishes then. Dispose it after use.
    /// </summary>
    public KeyBlinding.KeyPair Blind(ulong period, ulong? blindingPeriod = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        Span<byte> seed = stackalloc byte[KeyBlinding.SeedSize];
        try
        {
            if (_address is null) MovingSeed(period, seed);
            else _secret.CopyTo(seed);
            return KeyBlinding.KeyPair.FromSeed(seed, blindingPeriod ?? period, Periods.LengthMinutes, Access is null ? default : Access.Bytes);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(seed);
        }
    }

    /// <summary>
    /// The record the service publishes for <paramref name="period"/>: its descriptor sealed for
    /// its address (§9.11), signed by the period's blinded key, living <paramref name="lifetime"/>.
    /// </summary>
    public ServiceRecord Record(ulong period, ServiceDescriptor descriptor, DateTimeOffset published, TimeSpan lifetime, ulong? blindingPeriod = null)
    {
        ArgumentNullException.ThrowIfNull(descriptor);
        ulong blinding = blindingPeriod ?? period;
        using var keys = Blind(period, blinding);
        return ServiceRecord.Create(keys, blinding, Periods.LengthMinutes, published, published + lifetime, descriptor.Seal(Address(period), Periods, blinding, Access));
    }

    /// <summary>
    /// A withdrawal of the service's records of <paramref name="period"/> (PROTOCOL §9.9): a record
    /// with no body, signed as they are, which replaces them at the storers it reaches so that
    /// lookups of the address fail at once.
    /// </summary>
    public ServiceRecord Withdrawal(ulong period, DateTimeOffset published, TimeSpan lifetime, ulong? blindingPeriod = null)
    {
        ulong blinding = blindingPeriod ?? period;
        using var keys = Blind(period, blinding);
        return ServiceRecord.Create(keys, blinding, Periods.LengthMinutes, published, published + lifetime, []);
    }

    /// <summary>
    /// The X25519 key the service answers its clients' handshakes with in <paramref name="period"/>
    /// (PROTOCOL §9.11): HKDF-SHA256 of its seed (for a moving service, the period's seed), info
    /// "quid service handshake key" | INT_8(period). Derived, not random, so that every record of
    /// the period carries the same key, whichever instance of the service published it: a client
    /// handed an older record by one storer still checks the reply of a restarted service.
    /// </summary>
    public Key HandshakeKey(ulong period, ulong? blindingPeriod = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        Span<byte> seed = stackalloc byte[KeyBlinding.SeedSize];
        Span<byte> info = stackalloc byte[HandshakeInfo.Length + 8];
        Span<byte> key = stackalloc byte[32];
        try
        {
            if (_address is null) MovingSeed(period, seed);
            else _secret.CopyTo(seed);
            HandshakeInfo.CopyTo(info);
            BinaryPrimitives.WriteUInt64BigEndian(info[HandshakeInfo.Length..], blindingPeriod ?? period);
            KeyDerivationAlgorithm.HkdfSha256.DeriveBytes(seed, salt: default, info, key);
            return Key.Import(KeyAgreementAlgorithm.X25519, key, KeyBlobFormat.RawPrivateKey,
                new KeyCreationParameters { ExportPolicy = KeyExportPolicies.None });
        }
        finally
        {
            CryptographicOperations.ZeroMemory(seed);
            CryptographicOperations.ZeroMemory(key);
        }
    }

    /// <summary>The lookup id for <paramref name="period"/>, under which the network files the service's descriptor then.</summary>
    public byte[] LookupId(ulong period, ulong? blindingPeriod = null) =>
        Periods.LookupId(Periods.BlindedKey(Address(period).PublicKey, blindingPeriod ?? period, Access), blindingPeriod ?? period);

    private void MovingSeed(ulong period, Span<byte> seed)
    {
        Span<byte> info = stackalloc byte[MovingInfo.Length + 8];
        MovingInfo.CopyTo(info);
        BinaryPrimitives.WriteUInt64BigEndian(info[MovingInfo.Length..], period);
        KeyDerivationAlgorithm.HkdfSha256.DeriveBytes(_secret, salt: default, info, seed);
    }

    private static byte[] PublicKey(ReadOnlySpan<byte> seed)
    {
        using var key = Key.Import(SignatureAlgorithm.Ed25519, seed, KeyBlobFormat.RawPrivateKey);
        return key.PublicKey.Export(KeyBlobFormat.RawPublicKey);
    }

    /// <summary>Wipes the seed or secret, and the access key, which the keys own.</summary>
    public void Dispose()
    {
        _disposed = true;
        CryptographicOperations.ZeroMemory(_secret);
        Access?.Dispose();
    }
}
