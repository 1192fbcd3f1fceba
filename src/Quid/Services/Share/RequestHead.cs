using System.Text;

namespace Quid.Services.Share;

/// <summary>
/// A request head as the share server reads it. Field values are kept as Latin-1, so every byte
/// a client sent survives to be judged (a file name in a header is UTF-8 read back from it).
/// </summary>
/// <param name="Target">The request target exactly as sent, before any decoding.</param>
internal sealed record RequestHead(string Method, string Target, int MinorVersion, IReadOnlyList<KeyValuePair<string, string>> Fields)
{
    /// <summary>Every value of the field <paramref name="name"/>, across repeated lines.</summary>
    public IEnumerable<string> Values(string name) =>
        Fields.Where(f => f.Key.Equals(name, StringComparison.OrdinalIgnoreCase)).Select(f => f.Value);

    /// <summary>The comma-separated elements of every line of <paramref name="name"/>, trimmed, empty ones dropped (RFC 9110 §5.6.1).</summary>
    public IEnumerable<string> ListValues(string name) =>
        Values(name).SelectMany(v => v.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries));

    /// <summary>HTTP/1.1 keeps the connection unless the client says close; HTTP/1.0 clients get one exchange each.</summary>
    public bool WantsKeepAlive => MinorVersion >= 1 && !ListValues("Connection").Any(v => v.Equals("close", StringComparison.OrdinalIgnoreCase));

    /// <summary>The value as the UTF-8 text a client meant (browsers send raw UTF-8 in headers).</summary>
    public static string Utf8(string latin1Value) => Encoding.UTF8.GetString(Encoding.Latin1.GetBytes(latin1Value));
}

internal enum HeadStatus
{
    /// <summary>No end of the head yet: keep the bytes, append more, call again.</summary>
    NeedMore,
    /// <summary><see cref="HeadParse.Head"/> is whole; bytes past <see cref="HeadParse.Consumed"/> are its body or the next request.</summary>
    Complete,
    /// <summary>Refused: answer <see cref="HeadParse.Status"/> and close.</summary>
    Failed,
}

internal readonly record struct HeadParse(HeadStatus Outcome, int Consumed, RequestHead? Head, int Status, string? Error)
{
    public static HeadParse NeedMore => new(HeadStatus.NeedMore, 0, null, 0, null);

    public static HeadParse Fail(int status, string error) => new(HeadStatus.Failed, 0, null, status, error);
}

/// <summary>
/// Reads an HTTP/1.x request head (RFC 9112 §2–5) from the bytes received so far, resuming its
/// search for the empty line where the last call stopped, so a head trickling in a byte at a time
/// costs linear time. Strict, since a server reading a hostile peer gains nothing from leniency:
/// no obs-fold, no bare CR, no control characters, no whitespace before a colon; a head over the
/// size or field limit is refused (431), another major version too (505). Never throws on input.
/// </summary>
/// <remarks>
/// The proxy's parser (Proxy/Http) does the same for a proxy's needs; the Services layer sits
/// below the proxy and cannot use it. Both could live in Wire as one.
/// </remarks>
internal sealed class RequestHeadParser(int maxHeadSize, int maxFields)
{
    private int _scanned;
    private int _lineStart;
    private int _headStart = -1;

    /// <param name="input">Every byte received and not yet consumed, oldest first: the same prefix as the last call, plus what arrived since.</param>
    public HeadParse Parse(ReadOnlySpan<byte> input)
    {
        // Anything but a method's first byte (a TLS greeting, noise) is refused at once, not after a line that never ends.
        if (_headStart < 0 && input.IndexOfAnyExcept((byte)'\r', (byte)'\n') is int first and >= 0 && !IsTokenChar(input[first]))
            return HeadParse.Fail(400, "Not an HTTP/1.x request.");
        if (_scanned > input.Length) Reset();
        int limit = Math.Min(input.Length, maxHeadSize);
        while (_scanned < limit)
        {
            int newline = input[_scanned..limit].IndexOf((byte)'\n');
            if (newline < 0)
            {
                _scanned = limit;
                break;
            }
            int lf = _scanned + newline;
            int lineEnd = lf > _lineStart && input[lf - 1] == (byte)'\r' ? lf - 1 : lf;
            _scanned = lf + 1;
            // Empty lines before the request line are allowed (RFC 9112 §2.2); the first one after it ends the head.
            if (lineEnd == _lineStart && _headStart >= 0)
            {
                int start = _headStart;
                int end = _scanned;
                Reset();
                return Complete(input, start, end);
            }
            if (lineEnd > _lineStart && _headStart < 0) _headStart = _lineStart;
            _lineStart = _scanned;
        }
        if (input.Length >= maxHeadSize)
        {
            Reset();
            return HeadParse.Fail(431, $"The request head is larger than {maxHeadSize} bytes.");
        }
        return HeadParse.NeedMore;
    }

    private void Reset()
    {
        _scanned = 0;
        _lineStart = 0;
        _headStart = -1;
    }

    private HeadParse Complete(ReadOnlySpan<byte> input, int start, int end)
    {
        var lines = new List<Range>();
        for (int i = start; i < end; i++)
        {
            if (input[i] != (byte)'\n') continue;
            int lineEnd = i > start && input[i - 1] == (byte)'\r' ? i - 1 : i;
            if (lineEnd > start) lines.Add(start..lineEnd);
            start = i + 1;
        }
        if (lines.Count - 1 > maxFields) return HeadParse.Fail(431, $"More than {maxFields} header fields.");
        var requestLine = input[lines[0]];
        int firstSpace = requestLine.IndexOf((byte)' ');
        int lastSpace = requestLine.LastIndexOf((byte)' ');
        if (firstSpace < 1 || lastSpace <= firstSpace + 1) return HeadParse.Fail(400, "The request line is not METHOD target HTTP/1.1.");
        var method = requestLine[..firstSpace];
        var target = requestLine[(firstSpace + 1)..lastSpace];
        var version = requestLine[(lastSpace + 1)..];
        if (!IsToken(method) || target.IndexOfAnyExceptInRange((byte)0x21, (byte)0x7E) >= 0)
            return HeadParse.Fail(400, "The request line is not METHOD target HTTP/1.1.");
        if (version.Length != 8 || !version.StartsWith("HTTP/"u8) || !char.IsAsciiDigit((char)version[5]) || version[6] != (byte)'.' || !char.IsAsciiDigit((char)version[7]))
            return HeadParse.Fail(400, "The request line does not end with an HTTP version.");
        if (version[5] != (byte)'1') return HeadParse.Fail(505, "Only HTTP/1.x is spoken here.");
        var fields = new List<KeyValuePair<string, string>>(lines.Count - 1);
        for (int i = 1; i < lines.Count; i++)
        {
            var line = input[lines[i]];
            if (line[0] is (byte)' ' or (byte)'\t') return HeadParse.Fail(400, "A header field continues on the next line (obsolete line folding).");
            int colon = line.IndexOf((byte)':');
            if (colon < 1 || !IsToken(line[..colon])) return HeadParse.Fail(400, "A header line is not a field name followed by a colon.");
            var value = line[(colon + 1)..].Trim(" \t"u8);
            foreach (byte b in value)
            {
                if (b is < 0x20 and not (byte)'\t' or 0x7F) return HeadParse.Fail(400, "A header field holds a control character.");
            }
            fields.Add(new(Encoding.ASCII.GetString(line[..colon]), Encoding.Latin1.GetString(value)));
        }
        return new HeadParse(HeadStatus.Complete, end, new RequestHead(Encoding.ASCII.GetString(method), Encoding.ASCII.GetString(target), version[7] - '0', fields), 0, null);
    }

    private static bool IsToken(ReadOnlySpan<byte> bytes)
    {
        foreach (byte b in bytes)
        {
            if (!IsTokenChar(b)) return false;
        }
        return !bytes.IsEmpty;
    }

    // RFC 9110 §5.6.2 tchar.
    private static bool IsTokenChar(byte b) =>
        b is >= (byte)'a' and <= (byte)'z' or >= (byte)'A' and <= (byte)'Z' or >= (byte)'0' and <= (byte)'9'
            or (byte)'!' or (byte)'#' or (byte)'$' or (byte)'%' or (byte)'&' or (byte)'\'' or (byte)'*' or (byte)'+'
            or (byte)'-' or (byte)'.' or (byte)'^' or (byte)'_' or (byte)'`' or (byte)'|' or (byte)'~';
}
