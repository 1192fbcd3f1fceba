using System.Text;
using Quid.Wire.Http;

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
/// Reads a request head with the HTTP proxy's own parser (<see cref="HttpHeadParser"/>: strict,
/// resumable, never throwing), and says what the share server answers a refusal with; the
/// server keeps a lower limit on fields than the proxy, which must carry what a browser sends.
/// </summary>
internal sealed class RequestHeadParser(int maxHeadSize, int maxFields)
{
    private readonly HttpHeadParser _parser = new(maxHeadSize);

    /// <param name="input">Every byte received and not yet consumed, oldest first: the same prefix as the last call, plus what arrived since.</param>
    public HeadParse Parse(ReadOnlySpan<byte> input)
    {
        var parse = _parser.ParseRequest(input);
        if (parse.Status == HttpParseStatus.NeedMore) return HeadParse.NeedMore;
        if (parse.Status == HttpParseStatus.Failed) return HeadParse.Fail(parse.Error!.RequestStatus, parse.Error.Message);
        var head = parse.Head!;
        if (head.Fields.Count > maxFields) return HeadParse.Fail(431, $"More than {maxFields} header fields.");
        return new HeadParse(HeadStatus.Complete, parse.Consumed,
            new RequestHead(head.Method, head.Target, head.MinorVersion, [.. head.Fields.Select(f => KeyValuePair.Create(f.Name, f.Value))]), 0, null);
    }
}
