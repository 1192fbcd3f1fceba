namespace Quid.Services.Share;

/// <summary>
/// Takes the framing out of a chunked request body (RFC 9112 §7.1) as its bytes arrive: the
/// caller hands it framing bytes and is told how many content bytes follow, reads those itself
/// (straight into its own buffer), and says so with <see cref="DataRead"/>. Sans-IO and resumable
/// at any byte; strict about CRLF and bounded in line and trailer length, so a hostile body can
/// neither be read two ways nor make the server read a line forever.
/// </summary>
internal sealed class ChunkedDecoder
{
    public const int MaxLineLength = 4096;
    public const int MaxTrailerSize = 8 * 1024;

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
    }

    public bool IsDone => _state == State.Done;

    /// <summary>Content bytes the caller may read now, before more framing.</summary>
    public long DataRemaining => _state == State.Data ? _remaining : 0;

    /// <summary>The caller read <paramref name="count"/> content bytes, at most <see cref="DataRemaining"/>.</summary>
    public void DataRead(long count)
    {
        _remaining -= count;
        if (_remaining == 0) _state = State.DataCr;
    }

    /// <summary>Reads framing from the start of <paramref name="input"/> until content, the end of the body or the end of the input.</summary>
    /// <returns>How many bytes were framing; an error message instead if the framing is malformed.</returns>
    public (int Consumed, string? Error) ReadFraming(ReadOnlySpan<byte> input)
    {
        int consumed = 0;
        while (consumed < input.Length && _state is not (State.Data or State.Done))
        {
            if (Step(input[consumed]) is { } error) return (consumed, error);
            consumed++;
        }
        return (consumed, null);
    }

    private string? Step(byte b)
    {
        switch (_state)
        {
            case State.Size:
                if (HexValue(b) is int digit)
                {
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
                if (b is < 0x20 and not (byte)'\t' or 0x7F) return "A control character in a chunk extension.";
                return ++_lineLength > MaxLineLength ? "A chunk extension longer than any real one." : null;
            case State.SizeLf:
                if (b != (byte)'\n') return "A chunk size line must end with CRLF.";
                _digits = 0;
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
                if (b is < 0x20 and not (byte)'\t' or 0x7F) return "A control character in a trailer field.";
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

    private static int? HexValue(byte b) => b switch
    {
        >= (byte)'0' and <= (byte)'9' => b - '0',
        >= (byte)'a' and <= (byte)'f' => b - 'a' + 10,
        >= (byte)'A' and <= (byte)'F' => b - 'A' + 10,
        _ => null,
    };
}
