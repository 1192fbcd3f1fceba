using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;
using System.Text;
using Quid.Crypto;

namespace Quid.Services;

/// <summary>
/// The 32-byte secret of a moving service, or of a private share: whoever holds it derives the
/// service's address for any period, and nobody else can link two of them. Its text form is for
/// people to copy: <c>quid-secret-</c> then base32(SECRET | CHECKSUM | VERSION), with CHECKSUM =
/// SHA3-256(".quid secret checksum" | SECRET | VERSION)[:2], the same layout as an address so a
/// typo is caught before it silently names another service. Wiped on <see cref="Dispose"/>.
/// </summary>
public sealed class ServiceSecret : IDisposable
{
    public const int Size = 32;
    public const string Prefix = "quid-secret-";
    public const byte Version = 1;
    private const int ChecksumSize = 2;
    private const int DecodedSize = Size + ChecksumSize + 1;
    private const int EncodedLength = (DecodedSize * 8 + 4) / 5;
    private static readonly byte[] ChecksumLabel = ".quid secret checksum"u8.ToArray();

    private readonly byte[] _secret = GC.AllocateArray<byte>(Size, pinned: true);
    private bool _disposed;

    public ServiceSecret(ReadOnlySpan<byte> secret)
    {
        if (secret.Length != Size) throw new ArgumentException($"A service secret is {Size} bytes.", nameof(secret));
        secret.CopyTo(_secret);
    }

    public static ServiceSecret Generate()
    {
        Span<byte> secret = stackalloc byte[Size];
        RandomNumberGenerator.Fill(secret);
        try
        {
            return new ServiceSecret(secret);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(secret);
        }
    }

    internal ReadOnlySpan<byte> Bytes
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _secret;
        }
    }

    /// <summary>Parses the text form, ignoring the case of the letters and blanks around it (it is pasted).</summary>
    public static ServiceSecret Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return Decode(text, out var error) ?? throw new SessionAddressException(error, Describe(error));
    }

    public static bool TryParse([NotNullWhen(true)] string? text, [NotNullWhen(true)] out ServiceSecret? secret)
    {
        secret = text is null ? null : Decode(text, out _);
        return secret is not null;
    }

    private static ServiceSecret? Decode(string text, out SessionAddressError error)
    {
        error = default;
        var trimmed = text.AsSpan().Trim();
        if (trimmed.Length < Prefix.Length || !Ascii.EqualsIgnoreCase(trimmed[..Prefix.Length], Prefix)) return Fail(SessionAddressError.Prefix, out error);
        var body = trimmed[Prefix.Length..];
        if (body.Length != EncodedLength) return Fail(SessionAddressError.Length, out error);

        Span<byte> decoded = stackalloc byte[DecodedSize];
        Span<byte> checksum = stackalloc byte[ChecksumSize];
        try
        {
            if (!Base32.TryDecode(body, decoded, out int written) || written != DecodedSize) return Fail(SessionAddressError.Character, out error);
            if (decoded[^1] != Version) return Fail(SessionAddressError.Version, out error);
            SessionAddress.Checksum(ChecksumLabel, decoded[..Size], Version, checksum);
            if (!CryptographicOperations.FixedTimeEquals(checksum, decoded.Slice(Size, ChecksumSize))) return Fail(SessionAddressError.Checksum, out error);
            return new ServiceSecret(decoded[..Size]);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(decoded);
        }
    }

    private static ServiceSecret? Fail(SessionAddressError reason, out SessionAddressError error)
    {
        error = reason;
        return null;
    }

    private static string Describe(SessionAddressError error) => error switch
    {
        SessionAddressError.Prefix => $"A service secret starts with {Prefix}.",
        SessionAddressError.Length => $"A service secret has {EncodedLength} characters after {Prefix}; this one is cut short or runs on.",
        SessionAddressError.Character => $"A service secret has only the letters a-z and the digits 2-7 after {Prefix}.",
        SessionAddressError.Version => "This service secret is of a version this node does not know; a newer Quid may.",
        _ => "This service secret is mistyped: its checksum does not match.",
    };

    /// <summary>The text form. It is the secret itself: show it only to the person who shares it.</summary>
    public string ToText()
    {
        Span<byte> encoded = stackalloc byte[DecodedSize];
        try
        {
            Bytes.CopyTo(encoded);
            SessionAddress.Checksum(ChecksumLabel, _secret, Version, encoded.Slice(Size, ChecksumSize));
            encoded[^1] = Version;
            return Prefix + Base32.Encode(encoded);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(encoded);
        }
    }

    public void Dispose()
    {
        _disposed = true;
        CryptographicOperations.ZeroMemory(_secret);
    }
}
