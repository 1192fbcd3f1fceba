namespace Quid.Wire.Http;

/// <summary>
/// One field line. Values are kept as Latin-1 so every byte a peer sent (obs-text included)
/// survives being forwarded unchanged.
/// </summary>
public readonly record struct HttpField(string Name, string Value)
{
    public bool Is(string name) => Name.Equals(name, StringComparison.OrdinalIgnoreCase);
}

/// <summary>What every message head has: a minor version of HTTP/1 and the field lines, in order.</summary>
public abstract record HttpHead(int MinorVersion, IReadOnlyList<HttpField> Fields)
{
    /// <summary>HTTP/1.0 peers do not understand chunked framing or interim responses.</summary>
    public bool IsHttp10 => MinorVersion == 0;

    /// <summary>Every value of the field <paramref name="name"/>, across repeated lines.</summary>
    public IEnumerable<string> Values(string name) => Fields.Where(f => f.Is(name)).Select(f => f.Value);

    /// <summary>The comma-separated elements of every line of <paramref name="name"/>, trimmed, empty ones dropped (RFC 9110 §5.6.1).</summary>
    public IEnumerable<string> ListValues(string name) =>
        Values(name).SelectMany(v => v.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries));
}

/// <param name="Target">The request target exactly as sent: a proxy sees absolute URIs, or host:port for CONNECT.</param>
public sealed record HttpRequestHead(string Method, string Target, int MinorVersion, IReadOnlyList<HttpField> Fields)
    : HttpHead(MinorVersion, Fields);

public sealed record HttpResponseHead(int Status, string Reason, int MinorVersion, IReadOnlyList<HttpField> Fields)
    : HttpHead(MinorVersion, Fields)
{
    /// <summary>1xx: another head follows on the same response.</summary>
    public bool IsInterim => Status is >= 100 and < 200;
}
