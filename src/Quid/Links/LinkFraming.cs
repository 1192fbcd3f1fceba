using System.Buffers;
using System.Buffers.Binary;
using Quid.Crypto;
using Quid.Wire;

namespace Quid.Links;

/// <summary>Why a link was closed on its peer's account.</summary>
public enum LinkError
{
    HandshakeFailed,
    HandshakeTimeout,
    WrongPeer,
    BadFrame,
    Decryption,
    BadCell,
    Overloaded,
    IdleTimeout,
}

/// <summary>A link broke its protocol; the link is closed and the node carries on.</summary>
public sealed class LinkException(LinkError error, string message, Exception? inner = null) : Exception(message, inner)
{
    public LinkError Error { get; } = error;
}

/// <summary>
/// Frames on an established link: u16 big-endian length, then the sealed frame (AEGIS-256, see
/// <see cref="LinkCipher"/>) whose plaintext is a whole number of cells. One frame carries up to
/// 31 cells, so one AEAD call and one length prefix serve many cells.
/// </summary>
public static class LinkFraming
{
    public const int LengthPrefix = 2;
    public const int TagSize = LinkCipher.TagSize;
    public const int MaxNoiseMessage = 65535;
    public const int MaxCellsPerFrame = (MaxNoiseMessage - TagSize) / Cell.Size;
    public const int MaxFrameSize = LengthPrefix + MaxCellsPerFrame * Cell.Size + TagSize;

    public static int FrameSize(int cells) => LengthPrefix + cells * Cell.Size + TagSize;

    /// <summary>Encrypts whole cells into one frame at <paramref name="destination"/>; returns its length.</summary>
    public static int Encode(LinkCipher send, ReadOnlySpan<byte> cells, Span<byte> destination)
    {
        int messageLength = cells.Length + TagSize;
        BinaryPrimitives.WriteUInt16BigEndian(destination, (ushort)messageLength);
        send.Encrypt(cells, destination.Slice(LengthPrefix, messageLength));
        return LengthPrefix + messageLength;
    }

    /// <summary>
    /// Decodes one frame from the front of <paramref name="input"/> into <paramref name="cells"/>
    /// (at least MaxCellsPerFrame cells long). Needs-more-data when the frame is incomplete;
    /// a malformed or forged frame is a <see cref="LinkException"/>.
    /// </summary>
    public static OperationStatus Decode(LinkCipher receive, ReadOnlySpan<byte> input, Span<byte> cells, out int consumed, out int cellBytes)
    {
        consumed = 0;
        cellBytes = 0;
        if (input.Length < LengthPrefix) return OperationStatus.NeedMoreData;
        int messageLength = BinaryPrimitives.ReadUInt16BigEndian(input);
        int plaintextLength = messageLength - TagSize;
        if (plaintextLength <= 0 || plaintextLength % Cell.Size != 0)
            throw new LinkException(LinkError.BadFrame, $"Frame of {messageLength} bytes does not hold whole cells.");
        if (input.Length < LengthPrefix + messageLength) return OperationStatus.NeedMoreData;
        if (!receive.TryDecrypt(input.Slice(LengthPrefix, messageLength), cells, out cellBytes))
            throw new LinkException(LinkError.Decryption, "Frame failed authentication.");
        consumed = LengthPrefix + messageLength;
        return OperationStatus.Done;
    }
}
