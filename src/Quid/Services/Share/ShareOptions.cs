namespace Quid.Services.Share;

/// <summary>
/// The limits a <see cref="ShareServer"/> holds each connection to, so that no peer can make it
/// hold memory, a file or a task for long without sending or reading.
/// </summary>
public sealed record ShareOptions
{
    /// <summary>The most a request line and its header fields may take together; more is refused with 431.</summary>
    public int MaxHeadSize { get; init; } = 8 * 1024;

    public int MaxHeaderFields { get; init; } = 100;

    /// <summary>A request's head must arrive whole within this long of the server starting to wait for it, idle keep-alive time included.</summary>
    public TimeSpan HeadTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>An upload that sends nothing for this long is abandoned.</summary>
    public TimeSpan BodyTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>A client that reads nothing of a response for this long is dropped, and the file it held closed.</summary>
    public TimeSpan SendTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>After this many requests on one connection, the last answer says close.</summary>
    public int MaxRequestsPerConnection { get; init; } = 1000;
}
