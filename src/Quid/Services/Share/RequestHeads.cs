using System.Text;
using Quid.Wire.Http;

namespace Quid.Services.Share;

/// <summary>What the share server reads in a request head beyond what every HTTP reader does.</summary>
internal static class RequestHeads
{
    /// <summary>HTTP/1.1 keeps the connection unless the client says close; HTTP/1.0 clients get one exchange each.</summary>
    public static bool WantsKeepAlive(this HttpRequestHead head) =>
        head.MinorVersion >= 1 && !head.ListValues("Connection").Any(v => v.Equals("close", StringComparison.OrdinalIgnoreCase));

    /// <summary>A field value (kept as Latin-1, every byte as sent) as the UTF-8 text a client meant: browsers send raw UTF-8 in headers.</summary>
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

internal readonly record struct HeadParse(HeadStatus Outcome, int Consumed, HttpRequestHead? Head, int Status, string? Error)
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
        return new HeadParse(HeadStatus.Complete, parse.Consumed, head, 0, null);
    }
}
