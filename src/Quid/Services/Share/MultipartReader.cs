using System.Buffers;
using System.Text;

namespace Quid.Services.Share;

/// <summary>
/// Reads a <c>multipart/form-data</c> body (RFC 7578, RFC 2046 §5.1) as it streams in: each
/// part's head, then its content, copied on until the next boundary, never held whole. Only what
/// the server needs is read from a part's head: its file name, if it is a file. Bytes that are no
/// file's content (the preamble, part heads, form fields) are bounded by
/// <see cref="MaxOtherBytes"/>, so a form cannot grow without limit outside the upload limit.
/// </summary>
internal sealed class MultipartReader : IDisposable
{
    public const int MaxOtherBytes = 64 * 1024;
    public const int MaxPartHeadSize = 8 * 1024;
    private const int BufferSize = 64 * 1024;

    private readonly BodyReader _body;
    /// <summary>CRLF "--" boundary: what ends a part's content.</summary>
    private readonly byte[] _delimiter;
    private readonly byte[] _buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
    private int _start;
    private int _end;
    private bool _started;
    private long _otherBytes;

    public MultipartReader(BodyReader body, string boundary)
    {
        _body = body;
        _delimiter = Encoding.ASCII.GetBytes("\r\n--" + boundary);
    }

    /// <summary>The boundary of a multipart/form-data Content-Type (1 to 70 characters, RFC 2046 §5.1.1); null for any other type.</summary>
    public static string? Boundary(string? contentType)
    {
        if (contentType is null) return null;
        var parameters = Parameters(contentType);
        if (parameters.Count == 0 || !parameters[0].Key.Equals("multipart/form-data", StringComparison.OrdinalIgnoreCase)) return null;
        string? boundary = parameters.Skip(1).FirstOrDefault(p => p.Key.Equals("boundary", StringComparison.OrdinalIgnoreCase)).Value;
        return boundary is { Length: >= 1 and <= 70 } && boundary.All(c => c is >= ' ' and < (char)0x7F) ? boundary : null;
    }

    /// <summary>Moves to the next part and reads its head.</summary>
    /// <returns>False after the last part; else whether the part is a file, and its name as the client gave it.</returns>
    /// <exception cref="ShareRefusal">Malformed framing, or more than <see cref="MaxOtherBytes"/> outside files.</exception>
    public async ValueTask<(bool More, string? FileName)> NextPartAsync()
    {
        if (!_started)
        {
            _started = true;
            // The first boundary may start the body, without the CRLF before it; else a preamble comes first.
            if (await EnsureAsync(_delimiter.Length - 2).ConfigureAwait(false) && Buffered.StartsWith(_delimiter.AsSpan(2))) _start += _delimiter.Length - 2;
            else await CopyPartAsync(null, 0).ConfigureAwait(false);
        }
        if (!await EnsureAsync(2).ConfigureAwait(false)) throw Malformed("The form ended after a boundary.");
        if (Buffered.StartsWith("--"u8))
        {
            _start += 2;
            await DrainAsync().ConfigureAwait(false);
            return (false, null);
        }
        // Transport padding, then the CRLF that ends the boundary line.
        while (true)
        {
            if (!await EnsureAsync(2).ConfigureAwait(false)) throw Malformed("The form ended after a boundary.");
            if (Buffered[0] is not ((byte)' ' or (byte)'\t')) break;
            Consume(1);
        }
        if (!Buffered.StartsWith("\r\n"u8)) throw Malformed("A boundary line does not end with CRLF.");
        Consume(2);
        if (!await EnsureAsync(2).ConfigureAwait(false)) throw Malformed("The form ended in a part's head.");
        if (Buffered.StartsWith("\r\n"u8))
        {
            Consume(2);
            return (true, null);
        }
        int end;
        while ((end = Buffered.IndexOf("\r\n\r\n"u8)) < 0)
        {
            if (Buffered.Length >= MaxPartHeadSize) throw Malformed($"A part's head is over {MaxPartHeadSize} bytes.");
            if (!await FillAsync().ConfigureAwait(false)) throw Malformed("The form ended in a part's head.");
        }
        string? fileName = FileName(Buffered[..end]);
        Consume(end + 4);
        return (true, fileName);
    }

    /// <summary>Hands the current part's content to <paramref name="sink"/>, or skips it if null, up to the boundary after it.</summary>
    /// <returns>How many bytes the part held.</returns>
    /// <exception cref="ShareRefusal">The body ended before the boundary; a file over <paramref name="limit"/> (413); a skipped part over the bound of bytes outside files (413).</exception>
    public async ValueTask<long> CopyPartAsync(Func<ReadOnlyMemory<byte>, ValueTask>? sink, long limit)
    {
        long copied = 0;
        while (true)
        {
            int at = Buffered.IndexOf(_delimiter);
            // Short of a boundary, all but a boundary's length less one byte is content for sure.
            int content = at >= 0 ? at : Math.Max(0, Buffered.Length - (_delimiter.Length - 1));
            if (content > 0)
            {
                if (sink is null)
                {
                    Consume(content);
                }
                else
                {
                    if (copied + content > limit) throw new ShareRefusal(413, "The files are over the upload limit.");
                    await sink(_buffer.AsMemory(_start, content)).ConfigureAwait(false);
                    _start += content;
                }
                copied += content;
            }
            if (at >= 0)
            {
                _start += _delimiter.Length;
                return copied;
            }
            if (!await FillAsync().ConfigureAwait(false)) throw Malformed("The form ended before its closing boundary.");
        }
    }

    public void Dispose() => ArrayPool<byte>.Shared.Return(_buffer);

    private ReadOnlySpan<byte> Buffered => _buffer.AsSpan(_start, _end - _start);

    /// <summary>Consumes bytes that are no file's content, within their bound.</summary>
    private void Consume(int count)
    {
        _start += count;
        if ((_otherBytes += count) > MaxOtherBytes) throw new ShareRefusal(413, $"More than {MaxOtherBytes / 1024} KiB of the form are not files.");
    }

    /// <summary>After the closing boundary: the epilogue is read and dropped, so the connection is at the next request.</summary>
    private async ValueTask DrainAsync()
    {
        do Consume(_end - _start);
        while (await FillAsync().ConfigureAwait(false));
    }

    private async ValueTask<bool> EnsureAsync(int count)
    {
        while (_end - _start < count)
        {
            if (!await FillAsync().ConfigureAwait(false)) return false;
        }
        return true;
    }

    private async ValueTask<bool> FillAsync()
    {
        if (_start > 0)
        {
            _buffer.AsSpan(_start, _end - _start).CopyTo(_buffer);
            _end -= _start;
            _start = 0;
        }
        int read = await _body.ReadAsync(_buffer.AsMemory(_end)).ConfigureAwait(false);
        _end += read;
        return read > 0;
    }

    private static ShareRefusal Malformed(string why) => new(400, why);

    /// <summary>The filename parameter of the part's Content-Disposition; null for a part that is no file, or a file input left empty.</summary>
    private static string? FileName(ReadOnlySpan<byte> head)
    {
        // Browsers send names as raw UTF-8; anything undecodable becomes U+FFFD, which the inbox replaces.
        foreach (var line in Encoding.UTF8.GetString(head).Split("\r\n"))
        {
            int colon = line.IndexOf(':');
            if (colon < 0 || !line.AsSpan(0, colon).Trim().Equals("Content-Disposition", StringComparison.OrdinalIgnoreCase)) continue;
            var parameters = Parameters(line[(colon + 1)..]);
            string? name = parameters.Skip(1).FirstOrDefault(p => p.Key.Equals("filename", StringComparison.OrdinalIgnoreCase)).Value;
            return string.IsNullOrEmpty(name) ? null : name;
        }
        return null;
    }

    /// <summary>
    /// A header value as <c>first; name=value; name="quoted; value"</c>: the first element with an
    /// empty value, then each parameter. Quoted values may hold ';'.
    /// </summary>
    private static List<KeyValuePair<string, string>> Parameters(string value)
    {
        var result = new List<KeyValuePair<string, string>>();
        int i = 0;
        while (i < value.Length)
        {
            int separator = value.IndexOfAny([';', '='], i);
            if (separator < 0 || value[separator] == ';')
            {
                int end = separator < 0 ? value.Length : separator;
                result.Add(new(value[i..end].Trim(), ""));
                i = end + 1;
                continue;
            }
            string key = value[i..separator].Trim();
            i = separator + 1;
            while (i < value.Length && value[i] is ' ' or '\t') i++;
            var text = new StringBuilder();
            if (i < value.Length && value[i] == '"')
            {
                // No backslash escapes: browsers and curl send a backslash as itself and a quote as %22.
                int close = value.IndexOf('"', i + 1);
                if (close < 0) close = value.Length;
                text.Append(value.AsSpan(i + 1, close - i - 1));
                int next = value.IndexOf(';', close);
                i = next < 0 ? value.Length : next + 1;
            }
            else
            {
                int end = value.IndexOf(';', i);
                if (end < 0) end = value.Length;
                text.Append(value.AsSpan(i, end - i).Trim());
                i = end + 1;
            }
            result.Add(new(key, text.ToString()));
        }
        return result;
    }
}
