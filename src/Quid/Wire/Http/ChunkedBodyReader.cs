namespace Quid.Wire.Http;

public enum ChunkedRunKind
{
    /// <summary>Chunk sizes, extensions, line ends, trailers: framing, not content.</summary>
    Framing,
    /// <summary>Content bytes.</summary>
    Data,
    /// <summary>The body has ended; nothing was consumed.</summary>
    Done,
    Failed,
}

/// <summary>A run of bytes of one kind at the start of the input given to <see cref="ChunkedBodyReader.Read"/>.</summary>
public readonly record struct ChunkedRun(ChunkedRunKind Kind, int Length, HttpError? Error);

/// <summary>
/// Finds the end of a chunked body (RFC 9112 §7.1) as its bytes stream past, and says which
/// bytes are content: the HTTP proxy forwards the body with its framing, or strips the framing
/// for an HTTP/1.0 client; the share server keeps only the content of an upload. Sans-IO and byte-resumable, so it buffers nothing however the body is split;
/// strict about CRLF and bounded in line and trailer length, so a hostile body cannot make two
/// parsers disagree about where it ends or make this one read a line forever.
/// </summary>
public sealed class ChunkedBodyReader
{
    public const int MaxLineLength = 4096;
    public const int MaxTrailerSize = 32 * 1024;

    private State _state = State.Size;
    private long _remaining;
    private int _digits;
    private int _lineLength;
    private int _trailerBytes;

    private enum State
    {
        Size,
        Extension,
        SizeLf,
        Data,
        DataCr,
        DataLf,
        TrailerStart,
        Trailer,
        TrailerLf,
        FinalLf,
        Done,
        Failed,
    }

    public bool IsDone => _state == State.Done;

    /// <summary>
    /// Content bytes that follow before more framing: 0 unless the reader is inside a chunk's
    /// data. A reader that takes content straight from a socket into its own buffer reads at
    /// most this much, then hands those bytes to <see cref="Read"/> to be counted.
    /// </summary>
    public long DataRemaining => _state == State.Data ? _remaining : 0;

    /// <summary>True once a whole chunk-size line has been read: the body has started with well-formed framing.</summary>
    public bool FirstChunkLineRead { get; private set; }

    /// <summary>
    /// Reads the run of framing or content at the start of <paramref name="input"/>; call again
    /// with the rest. Bytes after the body are never consumed: they belong to the next message.
    /// </summary>
    public ChunkedRun Read(ReadOnlySpan<byte> input)
    {
        switch (_state)
        {
            case State.Done:
                return new ChunkedRun(ChunkedRunKind.Done, 0, null);
            case State.Failed:
                return Fail("The chunked body was already refused.");
            case State.Data:
                int length = (int)Math.Min(_remaining, input.Length);
                _remaining -= length;
                if (_remaining == 0) _state = State.DataCr;
                return new ChunkedRun(ChunkedRunKind.Data, length, null);
        }
        int consumed = 0;
        while (consumed < input.Length && _state is not (State.Data or State.Done))
        {
            if (Step(input[consumed]) is { } error) return Fail(error);
            consumed++;
        }
        return new ChunkedRun(ChunkedRunKind.Framing, consumed, null);
    }

    /// <summary>One framing byte; an error message if it is not allowed here.</summary>
    private string? Step(byte b)
    {
        switch (_state)
        {
            case State.Size:
                if (HexValue(b) is int digit)
                {
                    // A leading zero adds nothing; sixteen significant hex digits would overflow a long.
                    if (_remaining > long.MaxValue >> 4) return "A chunk size beyond any real body.";
                    _remaining = (_remaining << 4) + digit;
                    return ++_digits > MaxLineLength ? "A chunk size line that never ends." : null;
                }
                if (_digits == 0) return "A chunk must start with its size in hex.";
                _lineLength = _digits;
                return b switch
                {
                    (byte)'\r' => Go(State.SizeLf),
                    (byte)';' or (byte)' ' or (byte)'\t' => Go(State.Extension),
                    _ => "A chunk size followed by something other than an extension or CRLF.",
                };
            case State.Extension:
                if (b == (byte)'\r') return Go(State.SizeLf);
                if (!IsLineByte(b)) return "A control character in a chunk extension.";
                return ++_lineLength > MaxLineLength ? "A chunk extension longer than any real one." : null;
            case State.SizeLf:
                if (b != (byte)'\n') return "A chunk size line must end with CRLF.";
                _digits = 0;
                FirstChunkLineRead = true;
                return Go(_remaining == 0 ? State.TrailerStart : State.Data);
            case State.DataCr:
                return b == (byte)'\r' ? Go(State.DataLf) : "Chunk data must be followed by CRLF.";
            case State.DataLf:
                return b == (byte)'\n' ? Go(State.Size) : "Chunk data must be followed by CRLF.";
            case State.TrailerStart:
                if (b == (byte)'\r') return Go(State.FinalLf);
                _lineLength = 0;
                _state = State.Trailer;
                goto case State.Trailer;
            case State.Trailer:
                if (b == (byte)'\r') return Go(State.TrailerLf);
                if (!IsLineByte(b)) return "A control character in a trailer field.";
                if (++_trailerBytes > MaxTrailerSize) return $"Trailer fields over {MaxTrailerSize} bytes.";
                return ++_lineLength > MaxLineLength ? "A trailer field longer than any real one." : null;
            case State.TrailerLf:
                return b == (byte)'\n' ? Go(State.TrailerStart) : "A trailer field must end with CRLF.";
            case State.FinalLf:
                return b == (byte)'\n' ? Go(State.Done) : "A chunked body must end with CRLF.";
            default:
                return "The chunked body is over.";
        }
    }

    private string? Go(State next)
    {
        _state = next;
        return null;
    }

    private ChunkedRun Fail(string message)
    {
        _state = State.Failed;
        return new ChunkedRun(ChunkedRunKind.Failed, 0, new HttpError(HttpErrorKind.BadChunk, message));
    }

    // Field and extension bytes: HTAB, SP, VCHAR, obs-text.
    private static bool IsLineByte(byte b) => b is (byte)'\t' or >= 0x20 and not 0x7F;

    private static int? HexValue(byte b) => b switch
    {
        >= (byte)'0' and <= (byte)'9' => b - '0',
        >= (byte)'a' and <= (byte)'f' => b - 'a' + 10,
        >= (byte)'A' and <= (byte)'F' => b - 'A' + 10,
        _ => null,
    };
}
