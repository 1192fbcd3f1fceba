namespace Quid.Proxy.Socks;

public enum SocksErrorKind
{
    /// <summary>The first byte was neither 4 nor 5 (often an HTTP client pointed at the SOCKS port).</summary>
    UnknownVersion,
    /// <summary>The client offered no method this server accepts.</summary>
    NoAcceptableMethod,
    /// <summary>The username/password sub-negotiation did not start with version 1.</summary>
    BadAuthVersion,
    /// <summary>A field held a value the protocol forbids.</summary>
    BadField,
    UnsupportedCommand,
    UnsupportedAddressType,
    /// <summary>A NUL-terminated SOCKS4 field ran past 255 bytes.</summary>
    Oversized,
    /// <summary>A host name was empty or held bytes outside printable ASCII.</summary>
    BadHostName,
    /// <summary><see cref="SocksServerHandshake.Step"/> was called after the handshake finished or failed.</summary>
    HandshakeOver,
}

public sealed record SocksError(SocksErrorKind Kind, string Message);
