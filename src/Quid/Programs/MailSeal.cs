using System.Buffers.Binary;
using System.Security.Cryptography;
using NSec.Cryptography;

namespace Quid.Programs;

/// <summary>
/// Mail as a remailer carries it (docs/HOSTING.md): sealed to the mailbox owner's X25519 key with
/// a fresh key of the sender's (X25519, HKDF-SHA256 over both public keys, ChaCha20-Poly1305), and
/// padded to one of a few sizes first, so that neither the remailer, nor the mailbox's host, nor
/// anyone watching learns what it says or more of its length than its size class.
/// </summary>
public static class MailSeal
{
    public const int KeySize = 32;
    private const int TagSize = 16;
    private const int LengthSize = 4;
    private static readonly byte[] Info = "quid mail v1"u8.ToArray();
    /// <summary>What a sealed message adds to its padded plaintext: the sender's public key and the tag.</summary>
    public const int Overhead = KeySize + TagSize;
    /// <summary>The padded sizes, each the plaintext with its length: the largest fills a FORWARD to the longest address.</summary>
    public static ReadOnlySpan<int> Sizes => [1 << 10, 4 << 10, 16 << 10, Remailer.MaxPayload - 1 - 1 - 64 - Overhead];
    /// <summary>The longest message a seal takes.</summary>
    public static int MaxMessage => Sizes[^1] - LengthSize;

    /// <summary>A new mailbox key pair: (private, public), raw.</summary>
    public static (byte[] Private, byte[] Public) NewKey()
    {
        using var key = Key.Create(KeyAgreementAlgorithm.X25519, new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport });
        return (key.Export(KeyBlobFormat.RawPrivateKey), key.PublicKey.Export(KeyBlobFormat.RawPublicKey));
    }

    public static byte[] Seal(ReadOnlySpan<byte> recipient, ReadOnlySpan<byte> message)
    {
        if (message.Length > MaxMessage) throw new ArgumentException($"A message of {message.Length:N0} bytes; mail carries at most {MaxMessage:N0}.", nameof(message));
        int padded = 0;
        foreach (int size in Sizes)
            if (size >= message.Length + LengthSize)
            {
                padded = size;
                break;
            }
        var plain = new byte[padded];
        BinaryPrimitives.WriteInt32BigEndian(plain, message.Length);
        message.CopyTo(plain.AsSpan(LengthSize));
        using var ephemeral = Key.Create(KeyAgreementAlgorithm.X25519, new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport });
        var ours = ephemeral.PublicKey.Export(KeyBlobFormat.RawPublicKey);
        var sealedMessage = new byte[KeySize + padded + TagSize];
        ours.CopyTo(sealedMessage, 0);
        using var cipher = new System.Security.Cryptography.ChaCha20Poly1305(KeyFor(ephemeral, recipient, ours, recipient));
        cipher.Encrypt(new byte[12], plain, sealedMessage.AsSpan(KeySize, padded), sealedMessage.AsSpan(KeySize + padded));
        return sealedMessage;
    }

    /// <summary>The message sealed to <paramref name="privateKey"/>'s public half; throws <see cref="CryptographicException"/> when it was not, or was changed.</summary>
    public static byte[] Open(ReadOnlySpan<byte> privateKey, ReadOnlySpan<byte> sealedMessage)
    {
        if (sealedMessage.Length < Overhead + LengthSize) throw new CryptographicException("Too short to be sealed mail.");
        using var key = Key.Import(KeyAgreementAlgorithm.X25519, privateKey, KeyBlobFormat.RawPrivateKey);
        var theirs = sealedMessage[..KeySize];
        var plain = new byte[sealedMessage.Length - Overhead];
        using var cipher = new System.Security.Cryptography.ChaCha20Poly1305(KeyFor(key, theirs, theirs, key.PublicKey.Export(KeyBlobFormat.RawPublicKey)));
        cipher.Decrypt(new byte[12], sealedMessage[KeySize..^TagSize], sealedMessage[^TagSize..], plain);
        int length = BinaryPrimitives.ReadInt32BigEndian(plain);
        if (length < 0 || length > plain.Length - LengthSize) throw new CryptographicException("Its length does not fit it.");
        return plain.AsSpan(LengthSize, length).ToArray();
    }

    /// <summary>The message key: HKDF-SHA256 of the shared secret, with both public keys (sender's first) bound in.</summary>
    private static byte[] KeyFor(Key ours, ReadOnlySpan<byte> theirPublic, ReadOnlySpan<byte> senderPublic, ReadOnlySpan<byte> recipientPublic)
    {
        PublicKey peer;
        try
        {
            peer = PublicKey.Import(KeyAgreementAlgorithm.X25519, theirPublic, KeyBlobFormat.RawPublicKey);
        }
        catch (FormatException e)
        {
            throw new CryptographicException("Not an X25519 key.", e);
        }
        using var shared = KeyAgreementAlgorithm.X25519.Agree(ours, peer) ?? throw new CryptographicException("A key that agrees on nothing.");
        return KeyDerivationAlgorithm.HkdfSha256.DeriveBytes(shared, salt: [.. senderPublic, .. recipientPublic], Info, 32);
    }
}
