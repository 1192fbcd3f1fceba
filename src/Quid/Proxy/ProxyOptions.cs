namespace Quid.Proxy;

/// <summary>Limits of the local proxy front ends; each listener (SOCKS, HTTP) has them on its own.</summary>
public sealed record ProxyOptions
{
    public const int DefaultMaxConnections = 512;

    /// <summary>
    /// Connections one listener serves at once, streams and handshakes alike; more are closed as
    /// soon as they are accepted. Browsers open at most a few dozen per proxy, so this is room for
    /// many applications while keeping a local flood from taking every file descriptor.
    /// </summary>
    public int MaxConnections { get; init; } = DefaultMaxConnections;

    /// <summary>How long an application may take to finish its SOCKS handshake or HTTP request head.</summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(30);
}
