using System.Buffers.Binary;
using System.Security.Cryptography;
using Quid.Crypto;
using Quid.Wire;

namespace Quid.Services;

/// <summary>Why a record's body could not be read as a service descriptor.</summary>
public enum ServiceDescriptorError
{
    /// <summary>The body is not sealed for this address and period, or was changed on the way.</summary>
    NotForThisAddress,
    /// <summary>It opened, but what it holds is not a descriptor this node reads.</summary>
    Malformed,
}

public sealed class ServiceDescriptorException(ServiceDescriptorError error, string message) : Exception(message)
{
    public ServiceDescriptorError Error { get; } = error;
}

/// <summary>
/// What a service tells its clients for one period, inside its record's body (PROTOCOL §9.11):
/// the X25519 key its end-to-end handshake answers with (<see cref="ServiceHandshake"/>). Sealed
/// with AES-256-GCM under a key derived from the service's address and the period, so the
/// ultrapeers that store the record, which see only the blinded key, cannot read it, and
/// a holder of the address can.
/// </summary>
public sealed class ServiceDescriptor
{
    public const byte Version = 1;
    private const int NonceSize = 12;
    private const int TagSize = 16;
    private const int PlainSize = 1 + 32;
    /// <summary>The sealed body's size: nonce, the plain descriptor, tag.</summary>
    public const int SealedSize = NonceSize + PlainSize + TagSize;

    private static readonly byte[] KeyInfo = "quid service descriptor key"u8.ToArray();

    public ServiceDescriptor(byte[] handshakeKey)
    {
        ArgumentNullException.ThrowIfNull(handshakeKey);
        if (handshakeKey.Length != 32) throw new ArgumentException("A handshake key is a 32-byte X25519 public key.", nameof(handshakeKey));
        HandshakeKey = handshakeKey;
    }

    /// <summary>The service's X25519 key for <see cref="ServiceHandshake"/>.</summary>
    public byte[] HandshakeKey { get; }

    /// <summary>
    /// Seals the descriptor for the service at <paramref name="address"/> in period
    /// <paramref name="period"/> of <paramref name="periods"/>; a private service's
    /// <paramref name="access"/> key enters its blinded key.
    /// </summary>
    public byte[] Seal(SessionAddress address, ServicePeriod periods, ulong period, ServiceSecret? access = null)
    {
        var blinded = periods.BlindedKey(address.PublicKey, period, access);
        Span<byte> plain = stackalloc byte[PlainSize];
        plain[0] = Version;
        HandshakeKey.CopyTo(plain[1..]);
        var sealedBody = new byte[SealedSize];
        RandomNumberGenerator.Fill(sealedBody.AsSpan(0, NonceSize));
        using var aes = new AesGcm(Key(address, periods, period, blinded), TagSize);
        aes.Encrypt(sealedBody.AsSpan(0, NonceSize), plain, sealedBody.AsSpan(NonceSize, PlainSize), sealedBody.AsSpan(NonceSize + PlainSize), blinded);
        return sealedBody;
    }

    /// <summary>
    /// Opens a record's body with the address the client was given. Throws
    /// <see cref="ServiceDescriptorException"/> for a body sealed for another address or period,
    /// changed on the way, or holding what this node does not read.
    /// </summary>
    public static ServiceDescriptor Open(ServiceRecord record, SessionAddress address, ServicePeriod periods, ServiceSecret? access = null)
    {
        ArgumentNullException.ThrowIfNull(record);
        var body = record.Body;
        if (body.Length != SealedSize)
            throw new ServiceDescriptorException(ServiceDescriptorError.Malformed, $"A descriptor is sealed in {SealedSize} bytes, not {body.Length}.");
        var blinded = periods.BlindedKey(address.PublicKey, record.Period, access);
        if (!record.BlindedKey.SequenceEqual(blinded))
            throw new ServiceDescriptorException(ServiceDescriptorError.NotForThisAddress, "The record is signed by another service's key.");
        Span<byte> plain = stackalloc byte[PlainSize];
        using var aes = new AesGcm(Key(address, periods, record.Period, blinded), TagSize);
        try
        {
            aes.Decrypt(body[..NonceSize], body.Slice(NonceSize, PlainSize), body[(NonceSize + PlainSize)..], plain, blinded);
        }
        catch (AuthenticationTagMismatchException)
        {
            throw new ServiceDescriptorException(ServiceDescriptorError.NotForThisAddress, "The descriptor does not open with this address's key for the period.");
        }
        if (plain[0] != Version)
            throw new ServiceDescriptorException(ServiceDescriptorError.Malformed, $"Descriptor version {plain[0]}, expected {Version}.");
        return new ServiceDescriptor(plain[1..].ToArray());
    }

    /// <summary>
    /// HKDF-SHA256(IKM = A | INT_8(p) | INT_8(L), salt = A'(p), info = "quid service descriptor key"), 32 bytes:
    /// from the address itself, which the storers never see.
    /// </summary>
    private static byte[] Key(SessionAddress address, ServicePeriod periods, ulong period, byte[] blinded)
    {
        Span<byte> ikm = stackalloc byte[KeyBlinding.PublicKeySize + 16];
        address.PublicKey.CopyTo(ikm);
        BinaryPrimitives.WriteUInt64BigEndian(ikm[KeyBlinding.PublicKeySize..], period);
        BinaryPrimitives.WriteUInt64BigEndian(ikm[(KeyBlinding.PublicKeySize + 8)..], periods.LengthMinutes);
        return HKDF.DeriveKey(HashAlgorithmName.SHA256, ikm.ToArray(), 32, blinded, KeyInfo);
    }
}
