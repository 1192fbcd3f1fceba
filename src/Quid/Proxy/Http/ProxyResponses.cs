using System.Globalization;
using System.Net;
using System.Text;
using Quid.Wire;
using Quid.Wire.Http;

namespace Quid.Proxy.Http;

/// <summary>What the HTTP proxy itself writes to an application: its own answers, and destinations' response heads made fit to pass on.</summary>
public static class ProxyResponses
{
    /// <summary>The answer to a CONNECT whose stream is open; what follows is the tunnel.</summary>
    public static ReadOnlySpan<byte> ConnectionEstablished => "HTTP/1.1 200 Connection established\r\n\r\n"u8;

    // RFC 9110 §7.6.1, for responses. Content-Length and Transfer-Encoding are handled apart: they frame what follows.
    private static readonly HashSet<string> HopByHop = new(StringComparer.OrdinalIgnoreCase)
    {
        "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "TE", "Upgrade",
    };

    private static readonly HashSet<string> Framing = new(StringComparer.OrdinalIgnoreCase) { "Content-Length", "Transfer-Encoding" };

    /// <summary>
    /// A complete error response: a short page that names what failed, and <c>Connection: close</c>.
    /// </summary>
    public static byte[] Error(int status, string explanation)
    {
        ArgumentNullException.ThrowIfNull(explanation);
        string reason = ReasonPhrase(status);
        string body = string.Create(CultureInfo.InvariantCulture,
            $"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{status} {reason}</title></head>\n" +
            $"<body><h1>{status} {reason}</h1>\n<p>{WebUtility.HtmlEncode(explanation)}</p>\n<hr><p>Quid HTTP proxy</p></body></html>\n");
        byte[] content = Encoding.UTF8.GetBytes(body);
        byte[] head = Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture,
            $"HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {content.Length}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"));
        return [.. head, .. content];
    }

    /// <summary>The status a failed stream is answered with: 403 when the exit's policy said no, 504 when time ran out, 503 when the exit had no room, else 502.</summary>
    public static int StatusFor(EndReason reason) => reason switch
    {
        EndReason.ExitPolicy => 403,
        EndReason.Timeout => 504,
        EndReason.ResourceLimit => 503,
        _ => 502,
    };

    /// <summary>
    /// A destination's response head as the application gets it: our HTTP version, hop-by-hop
    /// fields gone, and (for a final response) <c>Connection: close</c>, since each connection
    /// carries one exchange. With <paramref name="dechunk"/> the proxy strips the chunked framing
    /// for an HTTP/1.0 client, so the framing fields go and the end of the connection ends the body.
    /// </summary>
    public static byte[] Forward(HttpResponseHead head, bool dechunk)
    {
        ArgumentNullException.ThrowIfNull(head);
        var connectionOptions = head.ListValues("Connection").ToHashSet(StringComparer.OrdinalIgnoreCase);
        connectionOptions.ExceptWith(Framing);
        bool chunked = head.Fields.Any(f => f.Is("Transfer-Encoding"));
        var text = new StringBuilder(256);
        text.Append(CultureInfo.InvariantCulture, $"HTTP/1.1 {head.Status} {head.Reason}\r\n");
        foreach (var field in head.Fields)
        {
            if (HopByHop.Contains(field.Name) || connectionOptions.Contains(field.Name)) continue;
            // Transfer-Encoding overrides Content-Length, which must then go (RFC 9112 §6.3); de-chunked, both go.
            if (field.Is("Content-Length") && (chunked || dechunk)) continue;
            if (field.Is("Transfer-Encoding") && dechunk) continue;
            text.Append(field.Name).Append(": ").Append(field.Value).Append("\r\n");
        }
        text.Append(head.IsInterim ? "\r\n" : "Connection: close\r\n\r\n");
        return Encoding.Latin1.GetBytes(text.ToString());
    }

    /// <summary>
    /// True when the response's content is chunked and nothing else: the one framing the proxy
    /// can take off for an HTTP/1.0 client without changing the content.
    /// </summary>
    public static bool IsChunkedOnly(HttpResponseHead head)
    {
        ArgumentNullException.ThrowIfNull(head);
        var codings = head.ListValues("Transfer-Encoding").ToList();
        return codings.Count == 1 && codings[0].Equals("chunked", StringComparison.OrdinalIgnoreCase);
    }

    public static string ReasonPhrase(int status) => status switch
    {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    };
}
