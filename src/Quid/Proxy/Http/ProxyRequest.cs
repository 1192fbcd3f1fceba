using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Quid.Proxy.Socks;
using Quid.Wire;
using Quid.Wire.Http;

namespace Quid.Proxy.Http;

/// <summary>
/// What the HTTP proxy does with a request head: tunnel (CONNECT), forward (an absolute http
/// URI), or refuse. Sans-IO: a head in, a decision and the exact bytes to send on out. The host
/// stays a name: the exit resolves it.
/// </summary>
public abstract record ProxyRequest
{
    // Fields that belong to one connection (RFC 9110 §7.6.1), plus the proxy's own credentials and
    // the Host we rebuild from the URI. Transfer-Encoding and Trailer stay: the body goes on with
    // its framing unchanged.
    private static readonly HashSet<string> HopByHop = new(StringComparer.OrdinalIgnoreCase)
    {
        "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization", "Proxy-Authenticate", "TE", "Upgrade", "Host",
    };

    // Connection may not name what every hop needs to frame and route the message: honouring it would cut the framing.
    private static readonly HashSet<string> NeverConnectionOptions = new(StringComparer.OrdinalIgnoreCase)
    {
        "Host", "Content-Length", "Transfer-Encoding",
    };

    public static ProxyRequest Interpret(HttpRequestHead head)
    {
        ArgumentNullException.ThrowIfNull(head);
        int hosts = head.Fields.Count(f => f.Is("Host"));
        if (hosts > 1 || (hosts == 0 && !head.IsHttp10))
            return Refuse(HttpErrorKind.BadHost, hosts > 1 ? "The request has more than one Host field." : "An HTTP/1.1 request must have a Host field.");
        if (Isolation(head) is not { } isolation)
            return Refuse(HttpErrorKind.BadCredentials, "Proxy-Authorization must be one set of Basic credentials (user:password in base64). Any user and password work: they only keep your applications' circuits apart.");
        var connectionOptions = head.ListValues("Connection").ToHashSet(StringComparer.OrdinalIgnoreCase);
        if (connectionOptions.Any(NeverConnectionOptions.Contains))
            return Refuse(HttpErrorKind.BadConnectionOption, "Connection may not name Host, Content-Length or Transfer-Encoding.");
        var (body, framingError) = head.Body();
        if (framingError is not null) return new RefusedRequest(framingError);

        if (head.Method == "CONNECT")
        {
            if (body.Framing == BodyFraming.Chunked || body.Length > 0)
                return Refuse(HttpErrorKind.ContentOnConnect, "A CONNECT request carries no content.");
            return ParseAuthority(head.Target, portRequired: true) is { } tunnel
                ? new TunnelRequest(new StreamTarget(tunnel.Host, tunnel.Port), isolation)
                : Refuse(HttpErrorKind.BadTarget, $"CONNECT needs host:port, such as example.org:443, not '{head.Target}'.");
        }

        string target = head.Target;
        const string scheme = "http://";
        if (!target.StartsWith(scheme, StringComparison.OrdinalIgnoreCase))
        {
            if (target.StartsWith('/') || target == "*")
                return Refuse(HttpErrorKind.NotAProxyRequest, "This is Quid's HTTP proxy, not a web site: set it as the HTTP proxy of your browser or application.");
            if (target.StartsWith("https://", StringComparison.OrdinalIgnoreCase))
                return Refuse(HttpErrorKind.UnsupportedScheme, "https addresses go through the proxy with CONNECT, so that TLS runs between your application and the site.");
            return Refuse(target.Contains("://", StringComparison.Ordinal) ? HttpErrorKind.UnsupportedScheme : HttpErrorKind.BadTarget,
                $"The proxy forwards http:// addresses; '{target[..Math.Min(target.Length, 80)]}' is not one.");
        }
        if (target.Contains('#', StringComparison.Ordinal))
            return Refuse(HttpErrorKind.BadTarget, "A request target cannot hold a fragment (#).");
        int pathStart = target.IndexOfAny(['/', '?'], scheme.Length);
        string authority = pathStart < 0 ? target[scheme.Length..] : target[scheme.Length..pathStart];
        if (ParseAuthority(authority, portRequired: false) is not { } destination)
            return Refuse(HttpErrorKind.BadTarget, $"'{authority}' is not a host with an optional port.");
        string path = pathStart < 0 ? "" : target[pathStart..];
        // RFC 9112 §3.2.4: an OPTIONS request for the server as a whole goes on in asterisk form.
        string originForm = path.Length == 0 ? (head.Method == "OPTIONS" ? "*" : "/") : path[0] == '?' ? "/" + path : path;
        return new ForwardRequest(new StreamTarget(destination.Host, destination.Port), isolation,
            ForwardedHead(head, originForm, authority, connectionOptions, body), body, head.IsHttp10, head.Method == "HEAD");
    }

    private static RefusedRequest Refuse(HttpErrorKind kind, string message) => new(new HttpError(kind, message));

    /// <summary>
    /// Basic credentials select the isolation group exactly like SOCKS5 username/password, so an
    /// application may use either front end with the same credentials. They authenticate nothing.
    /// </summary>
    private static SocksAuth? Isolation(HttpRequestHead head)
    {
        var values = head.Values("Proxy-Authorization").ToList();
        if (values.Count == 0) return SocksAuth.None;
        if (values.Count > 1) return null;
        var parts = values[0].Split(' ', 2, StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length != 2 || !parts[0].Equals("Basic", StringComparison.OrdinalIgnoreCase)) return null;
        var decoded = new byte[parts[1].Length];
        if (!Convert.TryFromBase64String(parts[1], decoded, out int length)) return null;
        var credentials = decoded.AsSpan(0, length);
        int colon = credentials.IndexOf((byte)':');
        return colon < 0 ? null : SocksAuth.FromUsernamePassword(credentials[..colon], credentials[(colon + 1)..]);
    }

    /// <summary>host[:port] with an optional port (80 by default); IPv6 in brackets; no user info. Null if malformed.</summary>
    internal static (string Host, ushort Port)? ParseAuthority(string authority, bool portRequired)
    {
        string host;
        string port;
        if (authority.StartsWith('['))
        {
            int close = authority.IndexOf(']', StringComparison.Ordinal);
            if (close < 0 || !IPAddress.TryParse(authority.AsSpan(1, close - 1), out var address)
                || address.AddressFamily != AddressFamily.InterNetworkV6 || authority.Contains('%', StringComparison.Ordinal))
                return null;
            host = address.ToString();
            string rest = authority[(close + 1)..];
            if (rest.Length > 0 && rest[0] != ':') return null;
            port = rest.Length > 0 ? rest[1..] : "";
            if (rest.Length == 0 && portRequired) return null;
        }
        else
        {
            int colon = authority.IndexOf(':', StringComparison.Ordinal);
            if (colon < 0 && portRequired) return null;
            host = colon < 0 ? authority : authority[..colon];
            port = colon < 0 ? "" : authority[(colon + 1)..];
            // A registered name or an IPv4 literal (RFC 3986 §3.2.2), without percent-encoding or user info.
            if (host.Length is 0 or > StreamTarget.MaxHostLength || !host.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_' or '~'))
                return null;
        }
        if (port.Length == 0) return portRequired ? null : (host, 80);
        return port.Length <= 5 && port.All(char.IsAsciiDigit) && int.Parse(port, CultureInfo.InvariantCulture) is >= 1 and <= 65535 and var number
            ? (host, (ushort)number)
            : null;
    }

    /// <summary>
    /// The request as the destination gets it: origin form, HTTP/1.1, Host from the URI, hop-by-hop
    /// fields gone, one exchange per connection. Content-Length goes as one number, where the first
    /// of its lines was: identical repeated values (<c>5, 5</c>) are one length (RFC 9110 §8.6), and
    /// a destination that reads them otherwise must not see them.
    /// </summary>
    private static byte[] ForwardedHead(HttpRequestHead head, string originForm, string authority, HashSet<string> connectionOptions, RequestBody body)
    {
        var text = new StringBuilder(256);
        text.Append(head.Method).Append(' ').Append(originForm).Append(" HTTP/1.1\r\nHost: ").Append(authority).Append("\r\n");
        bool lengthWritten = false;
        foreach (var field in head.Fields)
        {
            if (HopByHop.Contains(field.Name) || connectionOptions.Contains(field.Name)) continue;
            if (field.Is("Content-Length"))
            {
                if (!lengthWritten) text.Append("Content-Length: ").Append(body.Length.ToString(CultureInfo.InvariantCulture)).Append("\r\n");
                lengthWritten = true;
                continue;
            }
            text.Append(field.Name).Append(": ").Append(field.Value).Append("\r\n");
        }
        // The response's framing reaches the client unchanged, so a client that accepts trailers still gets them.
        bool trailers = !head.IsHttp10 && head.ListValues("TE").Any(t => t.StartsWith("trailers", StringComparison.OrdinalIgnoreCase));
        text.Append(trailers ? "TE: trailers\r\nConnection: TE, close\r\n\r\n" : "Connection: close\r\n\r\n");
        return Encoding.Latin1.GetBytes(text.ToString());
    }
}

/// <summary>CONNECT host:port: once the stream is open, the connection becomes a raw tunnel.</summary>
public sealed record TunnelRequest(StreamTarget Target, SocksAuth Isolation) : ProxyRequest;

/// <summary>A request for an absolute http URI, to be sent on as <see cref="Head"/> followed by its body.</summary>
/// <param name="Http10Client">The response must reach it without chunked framing or interim responses.</param>
/// <param name="HeadMethod">The response has no content, whatever its fields say.</param>
public sealed record ForwardRequest(StreamTarget Target, SocksAuth Isolation, byte[] Head, RequestBody Body, bool Http10Client, bool HeadMethod) : ProxyRequest;

public sealed record RefusedRequest(HttpError Error) : ProxyRequest;
