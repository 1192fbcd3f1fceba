using System.Text;

namespace Quid.Services.Share;

/// <summary>
/// The path a request names, percent-decoded and split into segments, and its query. Decoding
/// comes before splitting, so an encoded slash or dot (<c>%2F</c>, <c>%2e%2e</c>) is judged like
/// a plain one: a <c>.</c> or <c>..</c> segment, a backslash, a NUL or any control character, or
/// bytes that are not UTF-8 make the request a bad one. Nothing here touches the file system.
/// </summary>
/// <param name="Segments">The path's segments, empty ones (from <c>//</c>) dropped; none is <c>.</c> or <c>..</c> or contains a separator.</param>
/// <param name="EndsWithSlash">The path named a folder: its listing's relative links need the slash.</param>
internal sealed record RequestTarget(IReadOnlyList<string> Segments, bool EndsWithSlash, string Query)
{
    /// <summary>The path again, each segment percent-encoded, for a link or a redirect.</summary>
    public string Path => "/" + string.Join('/', Segments.Select(Uri.EscapeDataString)) + (EndsWithSlash && Segments.Count > 0 ? "/" : "");

    /// <exception cref="ShareRefusal">400: not an origin-form or absolute http target, or a path that may not be decoded.</exception>
    public static RequestTarget Parse(string target)
    {
        string path = target;
        // Absolute form (RFC 9112 §3.2.2) is allowed to any server; the authority is ignored, as the connection says which share this is.
        if (target.StartsWith("http://", StringComparison.OrdinalIgnoreCase) || target.StartsWith("https://", StringComparison.OrdinalIgnoreCase))
        {
            int authority = target.IndexOf("//", StringComparison.Ordinal) + 2;
            int slash = target.IndexOfAny(['/', '?'], authority);
            path = slash < 0 ? "/" : target[slash] == '?' ? "/" + target[slash..] : target[slash..];
        }
        if (!path.StartsWith('/')) throw new ShareRefusal(400, "The request target is not a path.");
        string query = "";
        int question = path.IndexOf('?');
        if (question >= 0)
        {
            query = path[(question + 1)..];
            path = path[..question];
        }
        if (path.Contains('#')) throw new ShareRefusal(400, "A request target never holds a fragment.");
        string decoded = Decode(path);
        if (decoded.Contains('\\')) throw new ShareRefusal(400, "A backslash is not a path separator here.");
        var segments = decoded.Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (segments.Any(s => s is "." or "..")) throw new ShareRefusal(400, "A path with . or .. segments.");
        return new RequestTarget(segments, decoded.EndsWith('/'), query);
    }

    /// <summary>The value of <paramref name="key"/> in the query, percent-decoded; null if absent or undecodable.</summary>
    public string? QueryValue(string key)
    {
        foreach (var pair in Query.Split('&'))
        {
            int equals = pair.IndexOf('=');
            string name = equals < 0 ? pair : pair[..equals];
            if (!name.Equals(key, StringComparison.Ordinal)) continue;
            try
            {
                return equals < 0 ? "" : Uri.UnescapeDataString(pair[(equals + 1)..].Replace('+', ' '));
            }
            catch (UriFormatException)
            {
                return null;
            }
        }
        return null;
    }

    private static string Decode(string path)
    {
        var bytes = new byte[path.Length];
        int length = 0;
        for (int i = 0; i < path.Length; i++)
        {
            if (path[i] != '%')
            {
                bytes[length++] = (byte)path[i];
                continue;
            }
            if (i + 2 >= path.Length || !byte.TryParse(path.AsSpan(i + 1, 2), System.Globalization.NumberStyles.AllowHexSpecifier, null, out byte value))
                throw new ShareRefusal(400, "A % in the path not followed by two hex digits.");
            bytes[length++] = value;
            i += 2;
        }
        if (bytes.AsSpan(0, length).IndexOfAnyInRange((byte)0, (byte)0x1F) >= 0 || bytes.AsSpan(0, length).Contains((byte)0x7F))
            throw new ShareRefusal(400, "A control character in the path.");
        try
        {
            return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes, 0, length);
        }
        catch (DecoderFallbackException)
        {
            throw new ShareRefusal(400, "The path is not UTF-8.");
        }
    }
}
