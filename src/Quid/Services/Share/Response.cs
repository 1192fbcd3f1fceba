using System.Globalization;
using System.Text;

namespace Quid.Services.Share;

/// <summary>
/// A response head being put together. No Date and no Server field: a share reached through the
/// network should not tell its clock's skew or its software to whoever fetches from it.
/// </summary>
internal sealed class Response(int status)
{
    private readonly List<KeyValuePair<string, string>> _fields = [new("X-Content-Type-Options", "nosniff")];

    public int Status { get; } = status;

    /// <summary>304 and 1xx answers have no body, so no Content-Length either.</summary>
    public bool HasBody => Status is not (304 or < 200);

    public Response Field(string name, string value)
    {
        _fields.Add(new(name, value));
        return this;
    }

    /// <param name="contentLength">The length of the body that follows, or would follow were this not a HEAD; null for none.</param>
    public string Head(long? contentLength, bool close)
    {
        var head = new StringBuilder(256);
        head.Append(CultureInfo.InvariantCulture, $"HTTP/1.1 {Status} {Reason(Status)}\r\n");
        foreach (var (name, value) in _fields) head.Append(name).Append(": ").Append(value).Append("\r\n");
        if (contentLength is long length) head.Append(CultureInfo.InvariantCulture, $"Content-Length: {length}\r\n");
        if (close) head.Append("Connection: close\r\n");
        return head.Append("\r\n").ToString();
    }

    public static string Reason(int status) => status switch
    {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        206 => "Partial Content",
        301 => "Moved Permanently",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        _ => "Internal Server Error",
    };

    /// <summary>
    /// Content-Disposition: attachment with the name in both forms (RFC 6266): ASCII for old
    /// clients, UTF-8 percent-encoded for the rest. Header values stay ASCII either way.
    /// </summary>
    public static string Attachment(string fileName)
    {
        var ascii = new StringBuilder(fileName.Length);
        foreach (char c in fileName) ascii.Append(c is >= ' ' and < (char)0x7F and not '"' and not '\\' and not '%' ? c : '_');
        return $"attachment; filename=\"{ascii}\"; filename*=UTF-8''{Uri.EscapeDataString(fileName)}";
    }
}
