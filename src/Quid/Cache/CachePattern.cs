using System.Text.RegularExpressions;

namespace Quid.Cache;

/// <summary>
/// What <c>quid cache purge PATTERN</c> names: a URL with <c>*</c> for any run of characters,
/// with or without <c>http://</c>, such as <c>example.org/*</c> or <c>*.jpg</c>; case does not matter.
/// </summary>
public sealed class CachePattern
{
    private readonly Regex _regex;

    public CachePattern(string pattern)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(pattern);
        string glob = pattern.StartsWith("http://", StringComparison.OrdinalIgnoreCase) ? pattern["http://".Length..] : pattern;
        // Non-backtracking: a pattern of many stars cannot make a match take exponential time.
        _regex = new Regex("^" + Regex.Escape(glob).Replace(@"\*", ".*", StringComparison.Ordinal) + "$",
            RegexOptions.IgnoreCase | RegexOptions.CultureInvariant | RegexOptions.NonBacktracking);
    }

    public bool Matches(StoredResponse entry) => _regex.IsMatch(entry.Url["http://".Length..]);
}
