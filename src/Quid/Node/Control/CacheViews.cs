using Quid.Cache;

namespace Quid.Node.Control;

/// <summary>The exit cache's entries as the control API and <c>quid cache</c> show them, from a running node or from the data directory.</summary>
public static class CacheViews
{
    /// <summary>The shortest prefix of a key that <c>quid cache show</c> takes: short enough to type, long enough not to collide by chance.</summary>
    public const int MinKeyPrefix = 6;

    public static CacheReport Report(ExitCache? cache, string? search, string? type, string? host, int limit, DateTimeOffset now)
    {
        if (cache is null) return new CacheReport(false, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, []);
        var counters = cache.Counters;
        var entries = cache.Store.Entries();
        var matching = Filter(entries, search, type, host).ToList();
        return new CacheReport(true, cache.Store.Quota, cache.Store.Used, entries.Count, counters.Requests, counters.Hits, counters.HitRatio, counters.ByteHitRatio,
            counters.BytesServed, counters.BytesFromStore, counters.Stored, matching.Count,
            [.. matching.OrderByDescending(e => e.StoredAt).Take(limit).Select(e => Entry(e, now, withHead: false))]);
    }

    /// <summary>Entries whose URL holds <paramref name="search"/>, whose type starts with <paramref name="type"/> and whose host ends with <paramref name="host"/>, each when given.</summary>
    public static IEnumerable<StoredResponse> Filter(IEnumerable<StoredResponse> entries, string? search, string? type, string? host) =>
        entries.Where(e => (string.IsNullOrEmpty(search) || e.Url.Contains(search, StringComparison.OrdinalIgnoreCase))
            && (string.IsNullOrEmpty(type) || e.ContentType.StartsWith(type, StringComparison.OrdinalIgnoreCase))
            && (string.IsNullOrEmpty(host) || e.Host.EndsWith(host, StringComparison.OrdinalIgnoreCase)));

    public static CacheEntryReport Entry(StoredResponse entry, DateTimeOffset now, bool withHead) =>
        new(entry.Id, entry.Url, entry.Host, entry.PathAndQuery, entry.ContentType, entry.BodySize, entry.Hits, Math.Max(0, (now - entry.StoredAt).TotalSeconds),
            entry.StoredAt, entry.Head.Status, Fresh(entry, now), withHead ? [.. entry.Head.Fields.Select(f => $"{f.Name}: {f.Value}")] : null);

    /// <summary>Whether a client would be answered from it now without asking the origin.</summary>
    public static bool Fresh(StoredResponse entry, DateTimeOffset now) =>
        CachePolicy.CurrentAge(entry.Head, entry.RequestTime, entry.ResponseTime, now) < CachePolicy.FreshnessLifetime(entry.Head, entry.ResponseTime);

    /// <summary>The entry a key or a prefix of one (at least <see cref="MinKeyPrefix"/> characters) names; null, with why, when none or several do.</summary>
    public static StoredResponse? Find(IReadOnlyList<StoredResponse> entries, string key, out string? problem)
    {
        problem = null;
        if (key.Length < MinKeyPrefix)
        {
            problem = $"'{key}' is too short to name an entry: give at least {MinKeyPrefix} characters of its key, as 'quid cache' lists them.";
            return null;
        }
        var found = entries.Where(e => e.Id.StartsWith(key, StringComparison.OrdinalIgnoreCase)).Take(2).ToList();
        if (found.Count == 1) return found[0];
        problem = found.Count == 0 ? $"No entry in the cache has the key {key}: 'quid cache' lists them." : $"Several entries start with {key}: give more of the key.";
        return null;
    }
}
