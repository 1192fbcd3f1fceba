namespace Quid.Wire.Http;

/// <summary>Why bytes from an application or a destination were refused as HTTP.</summary>
public enum HttpErrorKind
{
    /// <summary>No end of the head within the size limit.</summary>
    HeadTooLarge,
    TooManyFields,
    /// <summary>A CR not followed by LF, or a NUL, inside the head.</summary>
    BadLineEnding,
    /// <summary>The request line or status line does not have the form HTTP/1.x requires.</summary>
    BadStartLine,
    /// <summary>Not HTTP/1.x.</summary>
    UnsupportedVersion,
    /// <summary>A field name that is not a token, or whitespace before its colon.</summary>
    BadFieldName,
    /// <summary>A control character in a field value.</summary>
    BadFieldValue,
    /// <summary>A field line continued on the next line (obs-fold), which RFC 9112 lets us refuse.</summary>
    ObsoleteLineFolding,
    /// <summary>The request target is not an absolute http URI (or host:port for CONNECT).</summary>
    BadTarget,
    /// <summary>An https or other non-http URI: those go through CONNECT.</summary>
    UnsupportedScheme,
    /// <summary>A request in origin form, as sent to a web server: the proxy was opened as a web site.</summary>
    NotAProxyRequest,
    /// <summary>An HTTP/1.1 request with no Host, or with more than one.</summary>
    BadHost,
    BadContentLength,
    /// <summary>A Transfer-Encoding whose last coding is not chunked, or one sent by an HTTP/1.0 client.</summary>
    BadTransferEncoding,
    /// <summary>Both Content-Length and Transfer-Encoding: the framing smuggling attacks rely on.</summary>
    AmbiguousFraming,
    /// <summary>Connection names a field every hop needs (Host, Content-Length, Transfer-Encoding).</summary>
    BadConnectionOption,
    /// <summary>A Proxy-Authorization that is not Basic credentials.</summary>
    BadCredentials,
    /// <summary>A CONNECT request with content, which has no meaning.</summary>
    ContentOnConnect,
    /// <summary>Malformed chunked framing in a body.</summary>
    BadChunk,
}

public sealed record HttpError(HttpErrorKind Kind, string Message)
{
    /// <summary>The status a proxy answers an application's malformed request with (RFC 9110 §15).</summary>
    public int RequestStatus => Kind switch
    {
        HttpErrorKind.HeadTooLarge or HttpErrorKind.TooManyFields => 431,
        HttpErrorKind.UnsupportedVersion => 505,
        _ => 400,
    };
}
