using System.Buffers.Binary;
using System.Text;

namespace Quid.Wire;

/// <summary>
/// What a client and an issuer say on a desk stream: a stream the client's circuit ends at the
/// issuer itself (PROTOCOL §10.4), so the issuer serves it without learning who it is.
/// </summary>
public abstract record DeskMessage
{
    /// <summary>The largest frame body: 64 credits spent and 64 asked fit with room to spare.</summary>
    public const int MaxSize = 16 * 1024;
    /// <summary>The longest reason a refusal carries, in UTF-8 bytes.</summary>
    public const int MaxTextSize = 512;
    public abstract DeskType Type { get; }
}

public enum DeskType : byte
{
    Exchange = 1,
    Exchanged = 2,
    Refused = 3,
}

/// <summary>
/// Spend <paramref name="Spend"/> and get, blinded, <paramref name="Mint"/> of the same total and
/// epoch: how a credit changes hands (the taker swaps it for its own) and how change is made.
/// </summary>
public sealed record DeskExchange(ulong Epoch, IReadOnlyList<CreditToken> Spend, IReadOnlyList<BlindedCredit> Mint) : DeskMessage
{
    public override DeskType Type => DeskType.Exchange;
}

public sealed record DeskExchanged(CreditEvaluation Evaluation) : DeskMessage
{
    public override DeskType Type => DeskType.Exchanged;
}

public sealed record DeskRefused(CreditRefusal Reason, string Text) : DeskMessage
{
    public override DeskType Type => DeskType.Refused;
}

/// <summary>Desk frames: a 2-byte big-endian length, then the type byte and the body.</summary>
public static class DeskCodec
{
    public const int LengthSize = 2;

    public static byte[] Encode(DeskMessage message)
    {
        byte[] text = message is DeskRefused r ? Truncated(r.Text) : [];
        int length = 1 + message switch
        {
            DeskExchange m => 8 + CreditCodec.TokensLength(m.Spend) + CreditCodec.BlindedLength(m.Mint),
            DeskExchanged m => CreditCodec.EvaluationLength(m.Evaluation),
            DeskRefused => 1 + 2 + text.Length,
            _ => throw new ArgumentException($"No encoding for {message.GetType().Name}.", nameof(message)),
        };
        if (length > DeskMessage.MaxSize) throw new ArgumentException($"A desk message of {length} bytes exceeds {DeskMessage.MaxSize}.", nameof(message));
        var frame = new byte[LengthSize + length];
        BinaryPrimitives.WriteUInt16BigEndian(frame, (ushort)length);
        var writer = new WireWriter(frame.AsSpan(LengthSize));
        writer.WriteByte((byte)message.Type);
        switch (message)
        {
            case DeskExchange m:
                writer.WriteUInt64(m.Epoch);
                CreditCodec.WriteTokens(ref writer, m.Spend);
                CreditCodec.WriteBlinded(ref writer, m.Mint);
                break;
            case DeskExchanged m:
                CreditCodec.WriteEvaluation(ref writer, m.Evaluation);
                break;
            case DeskRefused m:
                writer.WriteByte((byte)m.Reason);
                writer.WriteUInt16((ushort)text.Length);
                writer.WriteBytes(text);
                break;
        }
        return frame;
    }

    /// <summary>The text's UTF-8 within <see cref="DeskMessage.MaxTextSize"/>, cut between characters so the far side can decode it.</summary>
    private static byte[] Truncated(string text)
    {
        if (text.Length > DeskMessage.MaxTextSize) text = text[..DeskMessage.MaxTextSize];
        while (Encoding.UTF8.GetByteCount(text) > DeskMessage.MaxTextSize) text = text[..(text.Length - 1)];
        if (text.Length > 0 && char.IsHighSurrogate(text[^1])) text = text[..^1];
        return Encoding.UTF8.GetBytes(text);
    }

    /// <summary>The body length a frame header announces; refuses one over <see cref="DeskMessage.MaxSize"/> before it is read.</summary>
    public static int ReadLength(ReadOnlySpan<byte> header)
    {
        if (header.Length < LengthSize) throw new WireException(WireError.Truncated, "A desk frame header is 2 bytes.");
        int length = BinaryPrimitives.ReadUInt16BigEndian(header);
        if (length == 0) throw new WireException(WireError.Truncated, "An empty desk frame.");
        return length <= DeskMessage.MaxSize ? length : throw new WireException(WireError.Oversized, $"A desk frame of {length} bytes exceeds {DeskMessage.MaxSize}.");
    }

    /// <summary>Decodes a frame's body (without its length).</summary>
    public static DeskMessage Decode(ReadOnlySpan<byte> body)
    {
        if (body.Length > DeskMessage.MaxSize) throw new WireException(WireError.Oversized, $"A desk frame of {body.Length} bytes exceeds {DeskMessage.MaxSize}.");
        var reader = new WireReader(body);
        var type = (DeskType)reader.ReadByte();
        DeskMessage message = type switch
        {
            DeskType.Exchange => new DeskExchange(reader.ReadUInt64(), CreditCodec.ReadTokens(ref reader), CreditCodec.ReadBlinded(ref reader)),
            DeskType.Exchanged => new DeskExchanged(CreditCodec.ReadEvaluation(ref reader)),
            DeskType.Refused => ReadRefused(ref reader),
            _ => throw new WireException(WireError.UnknownMessageType, $"Unknown desk message type {(byte)type}."),
        };
        reader.ExpectEnd();
        return message;
    }

    private static DeskRefused ReadRefused(ref WireReader reader)
    {
        byte reason = reader.ReadByte();
        if (!Enum.IsDefined((CreditRefusal)reason)) throw new WireException(WireError.BadField, $"Unknown credit refusal {reason}.");
        int length = reader.ReadUInt16();
        if (length > DeskMessage.MaxTextSize) throw new WireException(WireError.Oversized, $"A refusal's text of {length} bytes exceeds {DeskMessage.MaxTextSize}.");
        var bytes = reader.ReadBytes(length);
        string text;
        try
        {
            text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw new WireException(WireError.BadField, "A refusal's text is not UTF-8.");
        }
        return new DeskRefused((CreditRefusal)reason, text);
    }
}
