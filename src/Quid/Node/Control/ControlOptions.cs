namespace Quid.Node.Control;

/// <summary>
/// Limits of the control API. Its clients are the node's own user: the CLI, a dashboard, a
/// metrics scraper, each with a few connections. The limits keep idle connections, from one
/// source or from many, from locking them out.
/// </summary>
public sealed record ControlOptions
{
    /// <summary>Connections open at once in all.</summary>
    public int MaxConnections { get; init; } = 128;

    /// <summary>Connections open at once from one source address; more are closed as soon as they are accepted.</summary>
    public int MaxConnectionsPerSource { get; init; } = 16;

    /// <summary>How long a connection may stay open without sending a request, and how long a request's head may take.</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long <c>POST /api/services</c> and <c>/api/shares</c> wait for the first introduction point before answering, published or not.</summary>
    public TimeSpan PublishWait { get; init; } = TimeSpan.FromSeconds(30);
}
