namespace Quid.Cache;

/// <summary>The exit cache's settings; a node without them caches nothing (the default).</summary>
public sealed record CacheOptions
{
    /// <summary>The most the cache may take on disk, index included, counted in file-system blocks.</summary>
    public required long Quota { get; init; }

    /// <summary>
    /// Destination ports whose streams the cache reads as HTTP: 80, where HTTP is plaintext by
    /// convention. A stream to any other port is never read, so protocols where the server speaks
    /// first are never held waiting for a request; tests name their own origin's port.
    /// </summary>
    public IReadOnlySet<int> Ports { get; init; } = new HashSet<int> { 80 };
}
