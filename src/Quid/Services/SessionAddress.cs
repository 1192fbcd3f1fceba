using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;
using System.Text;
using Quid.Crypto;

namespace Quid.Services;

/// <summary>Why some text is not a session address or a service secret.</summary>
public enum SessionAddressError
{
    /// <summary>The name does not end in .quid.</summary>
    Suffix,
    /// <summary>The secret does not start with quid-secret-.</summary>
    Prefix,
    /// <summary>Too few or too many characters: truncated or run into other text.</summary>
    Length,
    /// <summary>A character outside the base32 alphabet (a-z, 2-7).</summary>
    Character,
    /// <summary>A version this node does not know.</summary>
    Version,
    /// <summary>The checksum does not match: a typo.</summary>
    Checksum,
    /// <summary>The checksum matches but the key is not a usable Ed25519 key: made on purpose, never by a service.</summary>
    Key,
}

/// <summary>The only exception parsing a session address or a service secret throws: the text was mistyped, and this says how.</summary>
public sealed class SessionAddressException(SessionAddressError error, string message) : FormatException(message)
{
    public SessionAddressError Error { get; } = error;
}

/// <summary>
/// The address of a service, <c>&lt;56 base32 characters&gt;.quid</c>: its Ed25519 public key
/// with a checksum and a version, laid out as Tor's v3 onion addresses are (rend-spec-v3 §6):
/// base32(PUBKEY | CHECKSUM | VERSION), CHECKSUM = SHA3-256(".quid checksum" | PUBKEY | VERSION)[:2].
/// The network never sees it: only the blinded key and lookup id of each period, which
/// <see cref="ServicePeriod"/> derives from it.
/// </summary>
public sealed class SessionAddress : IEquatable<SessionAddress>
{
    public const string Suffix = ".quid";
    public const byte Version = 1;
    /// <summary>Base32 characters before the suffix: 35 bytes, 280 bits, no padding.</summary>
    public const int EncodedLength = 56;
    private const int ChecksumSize = 2;
    private const int DecodedSize = KeyBlinding.PublicKeySize + ChecksumSize + 1;
    private static readonly byte[] ChecksumLabel = ".quid checksum"u8.ToArray();

    private readonly byte[] _publicKey;

    /// <summary>The address of the service whose Ed25519 public key is <paramref name="publicKey"/>.</summary>
    public SessionAddress(ReadOnlySpan<byte> publicKey)
    {
        if (!KeyBlinding.IsValidPublicKey(publicKey))
            throw new ArgumentException("Not an Ed25519 public key of the prime-order group.", nameof(publicKey));
        _publicKey = publicKey.ToArray();
    }

    public ReadOnlySpan<byte> PublicKey => _publicKey;

    /// <summary>The first 8 characters and the suffix, for logs: enough to tell services apart, not to reach one.</summary>
    public string Brief => $"{ToString()[..8]}….quid";

    /// <summary>
    /// Parses an address as a user or a browser writes it: any case, an optional trailing dot, and
    /// subdomains (<c>www.&lt;address&gt;.quid</c>), which name the same service.
    /// </summary>
    public static SessionAddress Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return Decode(text, out var error) ?? throw new SessionAddressException(error, Describe(error));
    }

    public static bool TryParse([NotNullWhen(true)] string? text, [NotNullWhen(true)] out SessionAddress? address)
    {
        address = text is null ? null : Decode(text, out _);
        return address is not null;
    }

    private static SessionAddress? Decode(string text, out SessionAddressError error)
    {
        error = default;
        var name = text.AsSpan();
        if (name.EndsWith('.')) name = name[..^1];
        // ASCII only: ordinal case folding would take ".quıd" (a dotless i) for ".quid".
        if (name.Length < Suffix.Length || !Ascii.EqualsIgnoreCase(name[^Suffix.Length..], Suffix)) return Fail(SessionAddressError.Suffix, out error);
        name = name[..^Suffix.Length];
        var label = name[(name.LastIndexOf('.') + 1)..];
        if (label.Length != EncodedLength) return Fail(SessionAddressError.Length, out error);

        Span<byte> decoded = stackalloc byte[DecodedSize];
        if (!Base32.TryDecode(label, decoded, out int written) || written != DecodedSize) return Fail(SessionAddressError.Character, out error);
        // The version first: a later version may compute its checksum differently.
        if (decoded[^1] != Version) return Fail(SessionAddressError.Version, out error);
        var publicKey = decoded[..KeyBlinding.PublicKeySize];
        Span<byte> checksum = stackalloc byte[ChecksumSize];
        Checksum(ChecksumLabel, publicKey, Version, checksum);
        if (!checksum.SequenceEqual(decoded.Slice(KeyBlinding.PublicKeySize, ChecksumSize))) return Fail(SessionAddressError.Checksum, out error);
        if (!KeyBlinding.IsValidPublicKey(publicKey)) return Fail(SessionAddressError.Key, out error);
        return new SessionAddress(publicKey);
    }

    private static SessionAddress? Fail(SessionAddressError reason, out SessionAddressError error)
    {
        error = reason;
        return null;
    }

    private static string Describe(SessionAddressError error) => error switch
    {
        SessionAddressError.Suffix => "A session address ends in .quid.",
        SessionAddressError.Length => $"A session address has {EncodedLength} characters before .quid; this one is cut short or runs on.",
        SessionAddressError.Character => "A session address has only the letters a-z and the digits 2-7 before .quid.",
        SessionAddressError.Version => "This session address is of a version this node does not know; a newer Quid may.",
        SessionAddressError.Checksum => "This session address is mistyped: its checksum does not match.",
        _ => "This session address holds no usable key; no service made it.",
    };

    /// <summary>SHA3-256(label | key | version)[:2], the checksum of addresses and secrets alike.</summary>
    internal static void Checksum(ReadOnlySpan<byte> label, ReadOnlySpan<byte> key, byte version, Span<byte> checksum)
    {
        Span<byte> hash = stackalloc byte[32];
        using var sha3 = KeyBlinding.Sha3();
        sha3.AppendData(label);
        sha3.AppendData(key);
        sha3.AppendData([version]);
        sha3.GetHashAndReset(hash);
        hash[..ChecksumSize].CopyTo(checksum);
        CryptographicOperations.ZeroMemory(hash);
    }

    /// <summary>The key, its checksum and the version in base32, lowercase, then .quid.</summary>
    public override string ToString()
    {
        Span<byte> encoded = stackalloc byte[DecodedSize];
        _publicKey.CopyTo(encoded);
        Checksum(ChecksumLabel, _publicKey, Version, encoded.Slice(KeyBlinding.PublicKeySize, ChecksumSize));
        encoded[^1] = Version;
        return Base32.Encode(encoded) + Suffix;
    }

    public bool Equals(SessionAddress? other) => other is not null && _publicKey.AsSpan().SequenceEqual(other._publicKey);

    public override bool Equals(object? obj) => Equals(obj as SessionAddress);

    public override int GetHashCode() => BitConverter.ToInt32(_publicKey);

    public static bool operator ==(SessionAddress? left, SessionAddress? right) => left?.Equals(right) ?? right is null;

    public static bool operator !=(SessionAddress? left, SessionAddress? right) => !(left == right);
}
