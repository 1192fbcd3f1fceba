using Quid.Cache;

namespace Quid.Node.Control;

/// <summary>The exit cache's entries as the control API and <c>quid cache</c> show them, from a running node or from the data directory.</summary>
public static class CacheViews
{
    /// <summary>The shortest prefix of a key that <c>quid cache show</c> takes: short enough to type, long enough not to collide by chance.</summary>
    public const int MinKeyPrefix = 6;

    /// <summary>The most entries a listing holds (the most recently stored); its <c>Matching</c> counts them all.</summary>
    public const int MaxListed = 1000;

    public static CacheReport Report(ExitCache? cache, string? search, string? type, string? host, int limit, DateTimeOffset now)
    {
        if (cache is null) return new CacheReport(false, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, []);
        return Report(cache.Store.Entries(), cache.Store.Quota, cache.Store.Used, cache.Counters, search, type, host, limit, now);
    }

    /// <summary>
    /// The report of <paramref name="entries"/>: a running node's, or those read from the data
    /// directory while no node runs, whose <paramref name="counters"/> are zero (they count from a start).
    /// </summary>
    public static CacheReport Report(IReadOnlyList<StoredResponse> entries, long quota, long used, CacheCounters counters,
        string? search, string? type, string? host, int limit, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(entries);
        var matching = Filter(entries, search, type, host).ToList();
        return new CacheReport(true, quota, used, entries.Count, counters.Requests, counters.Hits, counters.HitRatio, counters.ByteHitRatio,
            counters.BytesServed, counters.BytesFromStore, counters.Stored, matching.Count,
            [.. matching.OrderByDescending(e => e.StoredAt).Take(limit).Select(e => Entry(e, now, withHead: false))]);
    }

    /// <summary>What the cache in <paramref name="directory"/> takes on disk, counted in blocks as its quota counts them.</summary>
    public static long OnDisk(string directory) =>
        Directory.Exists(directory)
            ? Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories).Sum(f => CacheStore.Blocks(new FileInfo(f).Length))
            : 0;

    /// <summary>
    /// Entries whose URL holds <paramref name="search"/>, whose type starts with <paramref name="type"/> and
    /// whose host ends with <paramref name="host"/>, each when given. The host is matched with its port
    /// (<c>example.org:8080</c>) and without it, so <c>example.org</c> picks the entries of every port.
    /// </summary>
    public static IEnumerable<StoredResponse> Filter(IEnumerable<StoredResponse> entries, string? search, string? type, string? host) =>
        entries.Where(e => (string.IsNullOrEmpty(search) || e.Url.Contains(search, StringComparison.OrdinalIgnoreCase))
            && (string.IsNullOrEmpty(type) || e.ContentType.StartsWith(type, StringComparison.OrdinalIgnoreCase))
            && (string.IsNullOrEmpty(host) || e.Host.EndsWith(host, StringComparison.OrdinalIgnoreCase)
                || new Uri(e.Url).Host.EndsWith(host, StringComparison.OrdinalIgnoreCase)));

    public static CacheEntryReport Entry(StoredResponse entry, DateTimeOffset now, bool withHead) =>
        new(entry.Id, entry.Url, entry.Host, entry.PathAndQuery, entry.ContentType, entry.BodySize, entry.Hits, Math.Max(0, (now - entry.StoredAt).TotalSeconds),
            entry.StoredAt, entry.Head.Status, Fresh(entry, now), withHead ? [.. entry.Head.Fields.Select(f => $"{f.Name}: {f.Value}")] : null);

    /// <summary>Whether a client would be answered from it now without asking the origin.</summary>
    public static bool Fresh(StoredResponse entry, DateTimeOffset now) =>
        CachePolicy.CurrentAge(entry.Head, entry.RequestTime, entry.ResponseTime, now) < CachePolicy.FreshnessLifetime(entry.Head, entry.ResponseTime);

    /// <summary>Why <paramref name="key"/> cannot name an entry whatever the cache holds (too short), or null: checked before asking anything.</summary>
    public static string? KeyProblem(string key) =>
        key.Length < MinKeyPrefix
            ? $"'{key}' is too short to name an entry: give at least {MinKeyPrefix} characters of its key, as 'quid cache' lists them."
            : null;

    /// <summary>The entry a key or a prefix of one (at least <see cref="MinKeyPrefix"/> characters) names; null, with why, when none or several do.</summary>
    public static StoredResponse? Find(IReadOnlyList<StoredResponse> entries, string key, out string? problem)
    {
        problem = KeyProblem(key);
        if (problem is not null) return null;
        var found = entries.Where(e => e.Id.StartsWith(key, StringComparison.OrdinalIgnoreCase)).Take(2).ToList();
        if (found.Count == 1) return found[0];
        problem = found.Count == 0 ? $"No entry in the cache has the key {key}: 'quid cache' lists them." : $"Several entries start with {key}: give more of the key.";
        return null;
    }
}
