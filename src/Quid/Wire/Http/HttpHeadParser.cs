using System.Text;

namespace Quid.Wire.Http;

public enum HttpParseStatus
{
    /// <summary>No complete head yet: keep the bytes, append more, call again.</summary>
    NeedMore,
    /// <summary><see cref="HttpParse{T}.Head"/> is whole; bytes past <see cref="HttpParse{T}.Consumed"/> are the body or the next message.</summary>
    Complete,
    Failed,
}

/// <summary>The outcome of one call to <see cref="HttpHeadParser"/>.</summary>
public readonly struct HttpParse<T>
    where T : HttpHead
{
    private HttpParse(HttpParseStatus status, int consumed, T? head, HttpError? error)
    {
        Status = status;
        Consumed = consumed;
        Head = head;
        Error = error;
    }

    public HttpParseStatus Status { get; }

    /// <summary>The length of the head, leading empty lines included; 0 unless <see cref="HttpParseStatus.Complete"/>.</summary>
    public int Consumed { get; }

    /// <summary>Set exactly when <see cref="Status"/> is <see cref="HttpParseStatus.Complete"/>.</summary>
    public T? Head { get; }

    /// <summary>Set exactly when <see cref="Status"/> is <see cref="HttpParseStatus.Failed"/>.</summary>
    public HttpError? Error { get; }

    internal static HttpParse<T> NeedMore { get; } = new(HttpParseStatus.NeedMore, 0, null, null);

    internal static HttpParse<T> Done(int consumed, T head) => new(HttpParseStatus.Complete, consumed, head, null);

    internal static HttpParse<T> Fail(HttpErrorKind kind, string message) => new(HttpParseStatus.Failed, 0, null, new HttpError(kind, message));
}

/// <summary>
/// Reads an HTTP/1.x message head (RFC 9112 §2–5): a request line or status line, then field
/// lines, then an empty line. Sans-IO: it is given every byte received and not yet consumed, and
/// remembers how far it has already looked, so a head trickling in a byte at a time costs linear
/// time. It never throws on input and never accepts a head over its size limit. Strict where
/// leniency would let two parsers disagree about a message: no obs-fold, no whitespace before a
/// colon, no bare CR; a bare LF ends a line, since the head is rebuilt before it is sent on.
/// </summary>
public sealed class HttpHeadParser
{
    public const int DefaultMaxHeadSize = 32 * 1024;
    public const int MaxFields = 256;

    private readonly int _maxHeadSize;
    // Resumable scan: where to look next, where the current line starts, where the head starts (-1 while only empty lines were seen).
    private int _scanned;
    private int _lineStart;
    private int _headStart = -1;

    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maxHeadSize"/> is not positive.</exception>
    public HttpHeadParser(int maxHeadSize = DefaultMaxHeadSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxHeadSize);
        _maxHeadSize = maxHeadSize;
    }

    /// <param name="input">Every byte received and not yet consumed, oldest first; the same prefix as the last call, plus what arrived since.</param>
    public HttpParse<HttpRequestHead> ParseRequest(ReadOnlySpan<byte> input)
    {
        // A request starts with a method, a token: anything else (a TLS or SOCKS greeting sent to
        // the wrong port) is refused at its first byte instead of waiting for a line end that never comes.
        if (Start(input) is int first && !IsTokenChar(input[first]))
            return StartLineError<HttpRequestHead>(input.Slice(first, 1), "request line", "METHOD target HTTP/1.1");
        var (status, end) = FindEnd(input);
        if (status == HttpParseStatus.NeedMore) return HttpParse<HttpRequestHead>.NeedMore;
        if (status == HttpParseStatus.Failed) return HttpParse<HttpRequestHead>.Fail(HttpErrorKind.HeadTooLarge, $"The request head is larger than {_maxHeadSize} bytes.");
        var lines = Lines(input[..end], _headStart);
        Reset();
        if (ParseRequestLine(input[lines[0]]) is not (var method, var target, int minor))
            return StartLineError<HttpRequestHead>(input[lines[0]], "request line", "METHOD target HTTP/1.1");
        var fields = new List<HttpField>();
        if (ParseFields(input, lines, fields) is { } error) return HttpParse<HttpRequestHead>.Fail(error.Kind, error.Message);
        return HttpParse<HttpRequestHead>.Done(end, new HttpRequestHead(method, target, minor, fields));
    }

    /// <inheritdoc cref="ParseRequest"/>
    public HttpParse<HttpResponseHead> ParseResponse(ReadOnlySpan<byte> input)
    {
        if (Start(input) is int first && input[first] != (byte)'H')
            return StartLineError<HttpResponseHead>(input.Slice(first, 1), "status line", "HTTP/1.1 200 OK");
        var (status, end) = FindEnd(input);
        if (status == HttpParseStatus.NeedMore) return HttpParse<HttpResponseHead>.NeedMore;
        if (status == HttpParseStatus.Failed) return HttpParse<HttpResponseHead>.Fail(HttpErrorKind.HeadTooLarge, $"The response head is larger than {_maxHeadSize} bytes.");
        var lines = Lines(input[..end], _headStart);
        Reset();
        if (ParseStatusLine(input[lines[0]]) is not (int code, var reason, int minor))
            return StartLineError<HttpResponseHead>(input[lines[0]], "status line", "HTTP/1.1 200 OK");
        var fields = new List<HttpField>();
        if (ParseFields(input, lines, fields) is { } error) return HttpParse<HttpResponseHead>.Fail(error.Kind, error.Message);
        return HttpParse<HttpResponseHead>.Done(end, new HttpResponseHead(code, reason, minor, fields));
    }

    /// <summary>Finds the empty line that ends the head, resuming where the last call stopped. Leading empty lines are skipped (RFC 9112 §2.2).</summary>
    private (HttpParseStatus Status, int End) FindEnd(ReadOnlySpan<byte> input)
    {
        // Shorter input than last time: the caller started a new message without consuming; start over.
        if (_scanned > input.Length) Reset();
        int limit = Math.Min(input.Length, _maxHeadSize);
        for (int i = _scanned; i < limit; i++)
        {
            if (input[i] != (byte)'\n') continue;
            int lineEnd = i > _lineStart && input[i - 1] == (byte)'\r' ? i - 1 : i;
            bool empty = lineEnd == _lineStart;
            if (empty && _headStart >= 0) return (HttpParseStatus.Complete, i + 1);
            if (!empty && _headStart < 0) _headStart = _lineStart;
            _lineStart = i + 1;
        }
        _scanned = limit;
        if (input.Length >= _maxHeadSize)
        {
            Reset();
            return (HttpParseStatus.Failed, 0);
        }
        return (HttpParseStatus.NeedMore, 0);
    }

    /// <summary>Where the start line begins, after any leading line ends; null until a byte of it has arrived.</summary>
    private static int? Start(ReadOnlySpan<byte> input)
    {
        int at = input.IndexOfAnyExcept((byte)'\r', (byte)'\n');
        return at < 0 ? null : at;
    }

    private void Reset()
    {
        _scanned = 0;
        _lineStart = 0;
        _headStart = -1;
    }

    /// <summary>The ranges of the start line and field lines, without their line endings; the empty last line is left out.</summary>
    private static List<Range> Lines(ReadOnlySpan<byte> head, int start)
    {
        var lines = new List<Range>();
        for (int i = start; i < head.Length; i++)
        {
            if (head[i] != (byte)'\n') continue;
            int end = i > start && head[i - 1] == (byte)'\r' ? i - 1 : i;
            if (end > start) lines.Add(start..end);
            start = i + 1;
        }
        return lines;
    }

    private static HttpError? ParseFields(ReadOnlySpan<byte> input, List<Range> lines, List<HttpField> fields)
    {
        if (lines.Count - 1 > MaxFields) return new HttpError(HttpErrorKind.TooManyFields, $"More than {MaxFields} header fields.");
        for (int i = 1; i < lines.Count; i++)
        {
            var line = input[lines[i]];
            if (line[0] is (byte)' ' or (byte)'\t')
                return new HttpError(HttpErrorKind.ObsoleteLineFolding, "A header field continues on the next line (obsolete line folding).");
            int colon = line.IndexOf((byte)':');
            if (colon < 1 || !IsToken(line[..colon]))
                return new HttpError(HttpErrorKind.BadFieldName, $"'{Printable(line[..Math.Max(colon, 0)])}' is not a header field name followed by a colon.");
            var value = line[(colon + 1)..].Trim(" \t"u8);
            foreach (byte b in value)
            {
                if (b == (byte)'\r') return new HttpError(HttpErrorKind.BadLineEnding, "A CR inside a header line that does not end it.");
                if (b is < 0x20 and not (byte)'\t' or 0x7F)
                    return new HttpError(HttpErrorKind.BadFieldValue, $"The value of {Encoding.ASCII.GetString(line[..colon])} holds a control character.");
            }
            fields.Add(new HttpField(Encoding.ASCII.GetString(line[..colon]), Encoding.Latin1.GetString(value)));
        }
        return null;
    }

    // RFC 9112 §3: method SP request-target SP HTTP-version. The target is visible ASCII only.
    private static (string Method, string Target, int Minor)? ParseRequestLine(ReadOnlySpan<byte> line)
    {
        int first = line.IndexOf((byte)' ');
        int last = line.LastIndexOf((byte)' ');
        if (first < 1 || last <= first + 1) return null;
        var method = line[..first];
        var target = line[(first + 1)..last];
        if (!IsToken(method) || target.IndexOfAnyExceptInRange((byte)0x21, (byte)0x7E) >= 0) return null;
        return ParseVersion(line[(last + 1)..]) is int minor ? (Encoding.ASCII.GetString(method), Encoding.ASCII.GetString(target), minor) : null;
    }

    // RFC 9112 §4: HTTP-version SP 3DIGIT SP [ reason-phrase ]; a missing last SP is tolerated, as in "HTTP/1.1 200".
    private static (int Status, string Reason, int Minor)? ParseStatusLine(ReadOnlySpan<byte> line)
    {
        if (line.Length < 12 || line[8] != (byte)' ' || ParseVersion(line[..8]) is not int minor) return null;
        var digits = line[9..12];
        if (digits.IndexOfAnyExceptInRange((byte)'0', (byte)'9') >= 0) return null;
        int status = (digits[0] - '0') * 100 + (digits[1] - '0') * 10 + (digits[2] - '0');
        if (status is < 100 or > 599) return null;
        if (line.Length == 12) return (status, "", minor);
        if (line[12] != (byte)' ') return null;
        var reason = line[13..];
        foreach (byte b in reason)
            if (b is < 0x20 and not (byte)'\t' or 0x7F) return null;
        return (status, Encoding.Latin1.GetString(reason), minor);
    }

    /// <summary>The minor version of "HTTP/1.x"; null for anything else, including other major versions.</summary>
    private static int? ParseVersion(ReadOnlySpan<byte> version) =>
        version.Length == 8 && version.StartsWith("HTTP/1."u8) && char.IsAsciiDigit((char)version[7]) ? version[7] - '0' : null;

    private static HttpParse<T> StartLineError<T>(ReadOnlySpan<byte> line, string what, string example)
        where T : HttpHead
    {
        // "HTTP/2.0" and the like are versions we do not speak, not garbage: they get 505, not 400.
        int at = line.IndexOf("HTTP/"u8);
        if (at >= 0 && line.Length >= at + 8 && line[at + 5] != (byte)'1' && char.IsAsciiDigit((char)line[at + 5]))
            return HttpParse<T>.Fail(HttpErrorKind.UnsupportedVersion, $"Only HTTP/1.x is spoken here, not {Printable(line[at..(at + 8)])}.");
        if (line.Contains((byte)'\r')) return HttpParse<T>.Fail(HttpErrorKind.BadLineEnding, $"A CR inside the {what} that does not end it.");
        return HttpParse<T>.Fail(HttpErrorKind.BadStartLine, $"'{Printable(line[..Math.Min(line.Length, 80)])}' is not an HTTP/1.x {what} ({example}).");
    }

    private static bool IsToken(ReadOnlySpan<byte> bytes)
    {
        if (bytes.IsEmpty) return false;
        foreach (byte b in bytes)
            if (!IsTokenChar(b)) return false;
        return true;
    }

    // RFC 9110 §5.6.2 tchar.
    internal static bool IsTokenChar(byte b) =>
        b is >= (byte)'a' and <= (byte)'z' or >= (byte)'A' and <= (byte)'Z' or >= (byte)'0' and <= (byte)'9'
            or (byte)'!' or (byte)'#' or (byte)'$' or (byte)'%' or (byte)'&' or (byte)'\'' or (byte)'*' or (byte)'+'
            or (byte)'-' or (byte)'.' or (byte)'^' or (byte)'_' or (byte)'`' or (byte)'|' or (byte)'~';

    /// <summary>Peer bytes for an error message: printable ASCII kept, anything else shown as '?', so nothing hostile reaches a log or a page raw.</summary>
    internal static string Printable(ReadOnlySpan<byte> bytes)
    {
        var text = new StringBuilder(bytes.Length);
        foreach (byte b in bytes) text.Append(b is >= 0x20 and < 0x7F ? (char)b : '?');
        return text.ToString();
    }
}
