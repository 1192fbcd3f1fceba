using System.Globalization;

namespace Quid.Wire.Http;

public enum BodyFraming
{
    None,
    ContentLength,
    Chunked,
}

/// <summary>How a request's content is delimited (RFC 9112 §6.3); <see cref="Length"/> counts only for <see cref="BodyFraming.ContentLength"/>.</summary>
public readonly record struct RequestBody(BodyFraming Framing, long Length);

/// <summary>
/// One field line. Values are kept as Latin-1 so every byte a peer sent (obs-text included)
/// survives being forwarded unchanged.
/// </summary>
public readonly record struct HttpField(string Name, string Value)
{
    public bool Is(string name) => Name.Equals(name, StringComparison.OrdinalIgnoreCase);
}

/// <summary>What every message head has: a minor version of HTTP/1 and the field lines, in order.</summary>
public abstract record HttpHead(int MinorVersion, IReadOnlyList<HttpField> Fields)
{
    /// <summary>HTTP/1.0 peers do not understand chunked framing or interim responses.</summary>
    public bool IsHttp10 => MinorVersion == 0;

    /// <summary>Every value of the field <paramref name="name"/>, across repeated lines.</summary>
    public IEnumerable<string> Values(string name) => Fields.Where(f => f.Is(name)).Select(f => f.Value);

    /// <summary>The comma-separated elements of every line of <paramref name="name"/>, trimmed, empty ones dropped (RFC 9110 §5.6.1).</summary>
    public IEnumerable<string> ListValues(string name) =>
        Values(name).SelectMany(v => v.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries));
}

/// <param name="Target">The request target exactly as sent: a proxy sees absolute URIs, or host:port for CONNECT.</param>
public sealed record HttpRequestHead(string Method, string Target, int MinorVersion, IReadOnlyList<HttpField> Fields)
    : HttpHead(MinorVersion, Fields)
{
    /// <summary>RFC 9112 §6.3, refusing what it says to refuse rather than guessing: TE with CL, a last coding other than chunked, differing lengths.</summary>
    public (RequestBody Body, HttpError? Error) Body()
    {
        bool hasTransferEncoding = Fields.Any(f => f.Is("Transfer-Encoding"));
        bool hasContentLength = Fields.Any(f => f.Is("Content-Length"));
        if (hasTransferEncoding)
        {
            if (IsHttp10)
                return (default, new HttpError(HttpErrorKind.BadTransferEncoding, "An HTTP/1.0 request cannot use Transfer-Encoding."));
            if (hasContentLength)
                return (default, new HttpError(HttpErrorKind.AmbiguousFraming, "The request has both Content-Length and Transfer-Encoding, so its length is ambiguous."));
            var codings = ListValues("Transfer-Encoding").ToList();
            bool chunkedLastOnly = codings.Count > 0 && codings[^1].Equals("chunked", StringComparison.OrdinalIgnoreCase)
                && codings.Count(c => c.Equals("chunked", StringComparison.OrdinalIgnoreCase)) == 1;
            return chunkedLastOnly
                ? (new RequestBody(BodyFraming.Chunked, 0), null)
                : (default, new HttpError(HttpErrorKind.BadTransferEncoding, "A request's Transfer-Encoding must end with chunked, once."));
        }
        if (!hasContentLength) return (new RequestBody(BodyFraming.None, 0), null);
        var lengths = ListValues("Content-Length").Distinct().ToList();
        if (lengths.Count != 1 || !long.TryParse(lengths[0], NumberStyles.None, CultureInfo.InvariantCulture, out long length))
            return (default, new HttpError(HttpErrorKind.BadContentLength, "Content-Length must be one decimal number."));
        return (length == 0 ? new RequestBody(BodyFraming.None, 0) : new RequestBody(BodyFraming.ContentLength, length), null);
    }
}

public sealed record HttpResponseHead(int Status, string Reason, int MinorVersion, IReadOnlyList<HttpField> Fields)
    : HttpHead(MinorVersion, Fields)
{
    /// <summary>1xx: another head follows on the same response.</summary>
    public bool IsInterim => Status is >= 100 and < 200;
}
