using System.Globalization;
using Quid.Wire.Http;

namespace Quid.Services.Share;

internal enum RangeOutcome
{
    /// <summary>No range asked, or one this server ignores (another unit, several ranges, bad syntax): the whole file, 200.</summary>
    Whole,
    /// <summary>One satisfiable range: 206.</summary>
    Partial,
    /// <summary>A range that starts past the end: 416.</summary>
    Unsatisfiable,
}

/// <summary>
/// What lets a client check and resume a download (RFC 9110 §8.8, §13, §14): a strong ETag from
/// a file's length and modification time, Last-Modified, the conditional fields, and single byte
/// ranges. <c>curl -C -</c> and <c>wget -c</c> resume with <c>Range: bytes=N-</c>; browsers add
/// <c>If-Range</c>, so a file changed meanwhile is sent whole rather than spliced.
/// </summary>
internal static class Validators
{
    /// <summary>Strong: a file of the same length written in the same 100 ns has the same bytes, for any purpose a share has.</summary>
    public static string ETag(long length, DateTimeOffset modified) => $"\"{length:x}-{modified.UtcTicks:x}\"";

    public static string HttpDate(DateTimeOffset time) => time.ToUniversalTime().ToString("r", CultureInfo.InvariantCulture);

    /// <summary>True if the client's copy is current (If-None-Match, or else If-Modified-Since): 304.</summary>
    public static bool NotModified(HttpRequestHead head, string etag, DateTimeOffset modified)
    {
        var noneMatch = head.ListValues("If-None-Match").ToList();
        if (noneMatch.Count > 0) return noneMatch.Any(tag => tag == "*" || Opaque(tag) == etag);
        return head.Values("If-Modified-Since").ToList() is [var since] && ParseDate(since) is { } date && Seconds(modified) <= date;
    }

    /// <summary>If-Range: a range may be sent only if the client's validator still names this file's bytes (a strong match).</summary>
    public static bool RangeValid(HttpRequestHead head, string etag, DateTimeOffset modified)
    {
        var ifRange = head.Values("If-Range").ToList();
        if (ifRange.Count == 0) return true;
        if (ifRange.Count > 1) return false;
        string value = ifRange[0];
        if (value.StartsWith('"')) return value == etag;
        return ParseDate(value) is { } date && Seconds(modified) == date;
    }

    /// <summary>The one byte range of <paramref name="length"/> that the Range field asks for.</summary>
    public static (RangeOutcome Outcome, long Start, long Length) Range(HttpRequestHead head, long length)
    {
        var fields = head.Values("Range").ToList();
        if (fields.Count != 1) return (RangeOutcome.Whole, 0, length);
        string value = fields[0].Trim();
        if (!value.StartsWith("bytes=", StringComparison.OrdinalIgnoreCase) || value.Contains(',')) return (RangeOutcome.Whole, 0, length);
        var spec = value.AsSpan(6).Trim();
        int dash = spec.IndexOf('-');
        if (dash < 0) return (RangeOutcome.Whole, 0, length);
        var first = spec[..dash].Trim();
        var last = spec[(dash + 1)..].Trim();
        if (first.IsEmpty)
        {
            // bytes=-n: the last n bytes.
            if (!TryParse(last, out long suffix)) return (RangeOutcome.Whole, 0, length);
            if (suffix == 0 || length == 0) return (RangeOutcome.Unsatisfiable, 0, 0);
            long tail = Math.Min(suffix, length);
            return (RangeOutcome.Partial, length - tail, tail);
        }
        if (!TryParse(first, out long start)) return (RangeOutcome.Whole, 0, length);
        long end = length - 1;
        if (!last.IsEmpty)
        {
            if (!TryParse(last, out end) || end < start) return (RangeOutcome.Whole, 0, length);
            end = Math.Min(end, length - 1);
        }
        if (start >= length) return (RangeOutcome.Unsatisfiable, 0, 0);
        return (RangeOutcome.Partial, start, end - start + 1);
    }

    private static bool TryParse(ReadOnlySpan<char> digits, out long value) =>
        long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out value);

    /// <summary>The comparison If-None-Match uses is weak: W/"x" matches "x".</summary>
    private static string Opaque(string tag) => tag.StartsWith("W/", StringComparison.Ordinal) ? tag[2..] : tag;

    private static DateTimeOffset? ParseDate(string value) =>
        DateTimeOffset.TryParseExact(value.Trim(), "r", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var date) ? date : null;

    /// <summary>HTTP dates have whole seconds; a file's time is compared as it was sent.</summary>
    private static DateTimeOffset Seconds(DateTimeOffset time) => new(time.UtcTicks - time.UtcTicks % TimeSpan.TicksPerSecond, TimeSpan.Zero);
}
