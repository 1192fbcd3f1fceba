using System.Globalization;
using System.Text;
using Microsoft.Net.Http.Headers;
using Quid.Wire.Http;

namespace Quid.Cache;

// The heads the cache writes: the conditions of a revalidation, a stored head freshened by a 304,
// and the head a client is served from store.
public static partial class CachePolicy
{
    // RFC 9110 §7.6.1: fields for one connection only. Any Proxy-* field is one too.
    private static readonly HashSet<string> HopByHop = new(StringComparer.OrdinalIgnoreCase)
    {
        "Connection", "Keep-Alive", "TE", "Trailer", "Transfer-Encoding", "Upgrade",
    };

    // What a 304 must not change in a stored head (RFC 9111 §3.2): fields that describe the stored
    // bytes, and a cookie, which was for the one client whose request brought the 304.
    private static readonly HashSet<string> KeptFromStore = new(StringComparer.OrdinalIgnoreCase)
    {
        "Content-Length", "Content-Range", "Content-Encoding", "Set-Cookie",
    };

    /// <summary>
    /// The conditional fields that ask the origin whether <paramref name="stored"/> is still
    /// current (RFC 9111 §4.3.1): <c>If-None-Match</c> with its <c>ETag</c> and
    /// <c>If-Modified-Since</c> with its <c>Last-Modified</c>, each as the origin sent it.
    /// </summary>
    public static IReadOnlyList<HttpField> Validators(HttpResponseHead stored)
    {
        ArgumentNullException.ThrowIfNull(stored);
        var fields = new List<HttpField>(2);
        if (ETag(stored) is string etag) fields.Add(new HttpField("If-None-Match", etag));
        if (Single(stored, "Last-Modified") is string lastModified && HeaderUtilities.TryParseDate(lastModified, out _))
            fields.Add(new HttpField("If-Modified-Since", lastModified));
        return fields;
    }

    /// <summary>
    /// The stored head updated by a 304 (RFC 9111 §4.3.4): each field the 304 has replaces every
    /// stored line of that name, except hop-by-hop fields, those that describe the stored bytes
    /// (<c>Content-Length</c>, <c>Content-Range</c>, <c>Content-Encoding</c>) and <c>Set-Cookie</c>.
    /// <c>Date</c> and <c>Age</c> always come from the 304, which starts the response's age anew:
    /// reckon it from then on with the revalidation's request and response times, and check the
    /// result with <see cref="CheckResponse"/> again, since the 304 may have made it private.
    /// </summary>
    public static HttpResponseHead Freshen(HttpResponseHead stored, HttpResponseHead notModified)
    {
        ArgumentNullException.ThrowIfNull(stored);
        ArgumentNullException.ThrowIfNull(notModified);
        var connectionOptions = notModified.ListValues("Connection").ToHashSet(StringComparer.OrdinalIgnoreCase);
        var updates = notModified.Fields
            .Where(f => !IsHopByHop(f.Name) && !connectionOptions.Contains(f.Name) && !KeptFromStore.Contains(f.Name))
            .ToList();
        var replaced = updates.Select(f => f.Name).Append("Date").Append("Age").ToHashSet(StringComparer.OrdinalIgnoreCase);
        return stored with { Fields = [.. stored.Fields.Where(f => !replaced.Contains(f.Name)), .. updates] };
    }

    /// <summary>
    /// The head a client is served from store, as Latin-1 bytes ending in an empty line. So that
    /// nothing tells when the object was stored, it has today's <c>Date</c>, no <c>Age</c>, and an
    /// <c>Expires</c> as far from that <c>Date</c> as the origin put it from its own (or equal
    /// to it when the stored head has no <c>Date</c>). This departs from RFC 9111 §4's "MUST
    /// generate Age" on purpose; <see cref="UsableWithoutValidation"/> bounds what it costs.
    /// Hop-by-hop fields go; the body's length is <paramref name="contentLength"/>, the stored
    /// body's, also for a HEAD request (which gets the head a GET would), except for a 304, which
    /// keeps the stored <c>Content-Length</c>, and a 204, which has none.
    /// </summary>
    /// <param name="contentLength">The length of the stored body, which follows this head unless the request was a HEAD.</param>
    /// <param name="close">Adds <c>Connection: close</c>.</param>
    public static byte[] ServedHead(HttpResponseHead stored, long contentLength, DateTimeOffset now, bool close)
    {
        ArgumentNullException.ThrowIfNull(stored);
        var connectionOptions = stored.ListValues("Connection").ToHashSet(StringComparer.OrdinalIgnoreCase);
        DateTimeOffset? date = Date(stored, "Date");
        bool keepLength = stored.Status == 304;
        var text = new StringBuilder(256);
        text.Append(CultureInfo.InvariantCulture, $"HTTP/1.1 {stored.Status} {stored.Reason}\r\n");
        text.Append("Date: ").Append(HeaderUtilities.FormatDate(now)).Append("\r\n");
        foreach (var field in stored.Fields)
        {
            if (IsHopByHop(field.Name) || connectionOptions.Contains(field.Name) || field.Is("Date") || field.Is("Age")) continue;
            if (field.Is("Content-Length") && !keepLength) continue;
            string value = field.Is("Expires") && HeaderUtilities.TryParseDate(field.Value, out var expires)
                ? HeaderUtilities.FormatDate(now + (expires - (date ?? expires)))
                : field.Value;
            text.Append(field.Name).Append(": ").Append(value).Append("\r\n");
        }
        if (!keepLength && stored.Status != 204)
            text.Append(CultureInfo.InvariantCulture, $"Content-Length: {contentLength}\r\n");
        if (close) text.Append("Connection: close\r\n");
        text.Append("\r\n");
        return Encoding.Latin1.GetBytes(text.ToString());
    }

    private static bool IsHopByHop(string name) =>
        HopByHop.Contains(name) || name.StartsWith("Proxy-", StringComparison.OrdinalIgnoreCase);
}
