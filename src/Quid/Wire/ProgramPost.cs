using System.Buffers.Binary;

namespace Quid.Wire;

/// <summary>A message for a program, with the postage it takes (PROTOCOL §11.3).</summary>
public sealed record ProgramPost(IReadOnlyList<EpochCredit> Payment, byte[] Message);

public enum ProgramAnswerKind : byte
{
    /// <summary>A message the program sent back to whoever posted (its reply address).</summary>
    Reply = 1,
    /// <summary>The program has handled the post; every reply came before this.</summary>
    Done = 2,
    /// <summary>The host did not hand the post over: the text says why.</summary>
    Refused = 3,
}

/// <summary>What a host says back on a program's stream.</summary>
public sealed record ProgramAnswer(ProgramAnswerKind Kind, byte[] Data);

/// <summary>
/// Frames on a stream to a program's session address (PROTOCOL §11.3): each a 4-byte big-endian
/// length and a body; a post is its payment (as in a desk Put) and the message, an answer its
/// kind and data.
/// </summary>
public static class ProgramPostCodec
{
    public const int LengthSize = 4;
    /// <summary>The largest message a program is handed, or sends.</summary>
    public const int MaxMessage = 64 << 10;
    /// <summary>The largest frame: a whole message and a payment of the most credits a desk message carries.</summary>
    public const int MaxFrame = MaxMessage + (16 << 10);

    public static byte[] Encode(ProgramPost post)
    {
        if (post.Message.Length is < 1 or > MaxMessage) throw new ArgumentException($"A message is 1 to {MaxMessage} bytes.", nameof(post));
        int length = CreditCodec.PaymentLength(post.Payment) + post.Message.Length;
        var frame = new byte[LengthSize + length];
        BinaryPrimitives.WriteUInt32BigEndian(frame, (uint)length);
        var writer = new WireWriter(frame.AsSpan(LengthSize));
        CreditCodec.WritePayment(ref writer, post.Payment);
        writer.WriteBytes(post.Message);
        return frame;
    }

    public static ProgramPost DecodePost(ReadOnlySpan<byte> body)
    {
        var reader = new WireReader(body);
        var payment = CreditCodec.ReadPayment(ref reader);
        var message = reader.ReadBytes(reader.Remaining).ToArray();
        if (message.Length is < 1 or > MaxMessage) throw new WireException(message.Length == 0 ? WireError.Truncated : WireError.Oversized, $"A message of {message.Length} bytes; 1 to {MaxMessage}.");
        return new ProgramPost(payment, message);
    }

    public static byte[] Encode(ProgramAnswer answer)
    {
        if (answer.Data.Length > MaxMessage) throw new ArgumentException($"An answer carries at most {MaxMessage} bytes.", nameof(answer));
        var frame = new byte[LengthSize + 1 + answer.Data.Length];
        BinaryPrimitives.WriteUInt32BigEndian(frame, (uint)(1 + answer.Data.Length));
        frame[LengthSize] = (byte)answer.Kind;
        answer.Data.CopyTo(frame.AsSpan(LengthSize + 1));
        return frame;
    }

    public static ProgramAnswer DecodeAnswer(ReadOnlySpan<byte> body)
    {
        if (body.Length == 0) throw new WireException(WireError.Truncated, "An empty answer.");
        var kind = (ProgramAnswerKind)body[0];
        if (!Enum.IsDefined(kind)) throw new WireException(WireError.UnknownMessageType, $"Unknown answer kind {body[0]}.");
        if (body.Length - 1 > MaxMessage) throw new WireException(WireError.Oversized, $"An answer of {body.Length - 1} bytes exceeds {MaxMessage}.");
        return new ProgramAnswer(kind, body[1..].ToArray());
    }

    /// <summary>Reads one frame's body; null when the stream ended cleanly before it.</summary>
    public static async Task<byte[]?> ReadFrameAsync(Stream stream, CancellationToken cancellationToken)
    {
        var header = new byte[LengthSize];
        int read = await stream.ReadAtLeastAsync(header, LengthSize, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
        if (read == 0) return null;
        if (read < LengthSize) throw new WireException(WireError.Truncated, "The stream ended inside a frame header.");
        uint length = BinaryPrimitives.ReadUInt32BigEndian(header);
        if (length is 0 or > MaxFrame) throw new WireException(length == 0 ? WireError.Truncated : WireError.Oversized, $"A frame of {length} bytes; 1 to {MaxFrame}.");
        var body = new byte[length];
        read = await stream.ReadAtLeastAsync(body, body.Length, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
        return read == body.Length ? body : throw new WireException(WireError.Truncated, "The stream ended inside a frame.");
    }
}
