using Microsoft.Net.Http.Headers;
using Quid.Wire.Http;

namespace Quid.Cache;

/// <summary>
/// The rules of a shared cache (RFC 9111) that the exit's cache follows: what may be stored, how
/// long it stays fresh, how old it is, and which stored variant a request selects. Sans-IO and
/// conservative: a field it cannot read counts against caching, never for it, and nothing here throws
/// on what a peer sent.
/// </summary>
public static partial class CachePolicy
{
    // RFC 9110 §15.1: the statuses a cache may reuse without explicit freshness. Others are never stored.
    private static readonly HashSet<int> HeuristicallyCacheable = [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];

    private static readonly TimeSpan HeuristicCap = TimeSpan.FromDays(1);

    // RFC 9111 §1.2.2: a delta-seconds too large to hold counts as 2^31.
    private static readonly TimeSpan MaxDeltaSeconds = TimeSpan.FromSeconds(2147483648);

    /// <summary>
    /// Whether the request may be answered from store and its response stored. A request that
    /// says something about its user (credentials, cookies) or asks for something other than a
    /// whole representation is passed to the origin untouched.
    /// </summary>
    public static Uncacheable CheckRequest(HttpRequestHead request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Method is not ("GET" or "HEAD")) return Uncacheable.Method;
        var (body, error) = request.Body();
        if (error is not null || body.Framing != BodyFraming.None) return Uncacheable.RequestBody;
        if (Has(request, "Range")) return Uncacheable.Range;
        if (Has(request, "Authorization")) return Uncacheable.Authorization;
        if (Has(request, "Cookie")) return Uncacheable.Cookie;
        if (!TryCacheControl(request, out var directives)) return Uncacheable.BadCacheControl;
        return directives?.NoStore == true ? Uncacheable.RequestNoStore : Uncacheable.None;
    }

    /// <summary>
    /// True for a request with a precondition (<c>If-*</c>): its answer depends on what the client
    /// holds, so the relay sends it to the origin rather than judging it from store.
    /// </summary>
    public static bool IsConditional(HttpRequestHead request)
    {
        ArgumentNullException.ThrowIfNull(request);
        return request.Fields.Any(f => f.Is("If-None-Match") || f.Is("If-Modified-Since") || f.Is("If-Match")
            || f.Is("If-Unmodified-Since") || f.Is("If-Range"));
    }

    /// <summary>
    /// Whether <paramref name="response"/> to <paramref name="request"/> may be stored (RFC 9111
    /// §3), with stricter defaults than the RFC requires: nothing private to a user, no partial
    /// content, only statuses a cache may reuse anyway, and nothing that could never be used.
    /// </summary>
    /// <param name="responseTime">When the response head arrived: the date of a response without a Date.</param>
    public static Uncacheable CheckResponse(HttpRequestHead request, HttpResponseHead response, DateTimeOffset responseTime)
    {
        ArgumentNullException.ThrowIfNull(response);
        var requestRule = CheckRequest(request);
        if (requestRule != Uncacheable.None) return requestRule;
        if (response.Status == 206 || Has(response, "Content-Range")) return Uncacheable.PartialContent;
        if (!HeuristicallyCacheable.Contains(response.Status)) return Uncacheable.Status;
        if (Has(response, "Set-Cookie")) return Uncacheable.SetCookie;
        if (!TryCacheControl(response, out var directives)) return Uncacheable.BadCacheControl;
        if (directives?.Private == true) return Uncacheable.Private;
        if (directives?.NoStore == true) return Uncacheable.NoStore;
        if (IsVaryStar(response)) return Uncacheable.VaryStar;
        bool validator = HasValidator(response);
        if (directives?.NoCache == true && !validator) return Uncacheable.NoCacheWithoutValidator;
        if (FreshnessLifetime(response, responseTime) == TimeSpan.Zero && !validator) return Uncacheable.NoFreshness;
        return Uncacheable.None;
    }

    /// <summary>
    /// How long the response stays fresh for a shared cache (RFC 9111 §4.2.1): <c>s-maxage</c>,
    /// else <c>max-age</c>, else <c>Expires</c> less <c>Date</c> (an invalid <c>Expires</c> is
    /// already past), else the heuristic of §4.2.2: a tenth of the time since <c>Last-Modified</c>,
    /// at most a day, and only for a status a cache may reuse heuristically. Zero when none apply.
    /// </summary>
    /// <param name="responseTime">When the response head arrived: the date of a response without a Date.</param>
    public static TimeSpan FreshnessLifetime(HttpResponseHead response, DateTimeOffset responseTime)
    {
        ArgumentNullException.ThrowIfNull(response);
        if (!TryCacheControl(response, out var directives)) return TimeSpan.Zero;
        if (directives?.SharedMaxAge is TimeSpan shared) return shared;
        if (directives?.MaxAge is TimeSpan maxAge) return maxAge;
        DateTimeOffset date = Date(response, "Date") ?? responseTime;
        if (Has(response, "Expires"))
            return Date(response, "Expires") is DateTimeOffset expires && expires > date ? expires - date : TimeSpan.Zero;
        if (HeuristicallyCacheable.Contains(response.Status) && Date(response, "Last-Modified") is DateTimeOffset lastModified && lastModified < date)
            return TimeSpan.FromTicks(Math.Min((date - lastModified).Ticks / 10, HeuristicCap.Ticks));
        return TimeSpan.Zero;
    }

    /// <summary>
    /// The age of a stored response at <paramref name="now"/> (RFC 9111 §4.2.3): the larger of the
    /// apparent age and the <c>Age</c> it came with plus the time the request took, plus the time
    /// it has been in store. An <c>Age</c> that cannot be read counts as 2^31 seconds, so the
    /// response is never taken for fresh; a clock that stepped back adds nothing.
    /// </summary>
    /// <param name="requestTime">When the request that brought the response (or last revalidated it) was sent.</param>
    /// <param name="responseTime">When that response's head arrived.</param>
    public static TimeSpan CurrentAge(HttpResponseHead response, DateTimeOffset requestTime, DateTimeOffset responseTime, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(response);
        var apparentAge = Positive(responseTime - (Date(response, "Date") ?? responseTime));
        var responseDelay = Positive(responseTime - requestTime);
        var correctedAgeValue = AgeValue(response) + responseDelay;
        var correctedInitialAge = apparentAge > correctedAgeValue ? apparentAge : correctedAgeValue;
        return correctedInitialAge + Positive(now - responseTime);
    }

    /// <summary>
    /// The secondary key (RFC 9111 §4.1) a request has for a response that varies: the request's
    /// values of each field <c>Vary</c> names, with names lower-cased and sorted and values
    /// trimmed and their whitespace runs made one space, so requests that differ only in layout
    /// share a stored variant. An absent field differs from an empty one. Empty when the response
    /// does not vary; null for <c>Vary: *</c>, which no request matches.
    /// </summary>
    public static string? VaryKey(HttpResponseHead response, HttpRequestHead request)
    {
        ArgumentNullException.ThrowIfNull(response);
        ArgumentNullException.ThrowIfNull(request);
        if (IsVaryStar(response)) return null;
        var names = response.ListValues("Vary").Select(n => n.ToLowerInvariant()).Distinct().Order(StringComparer.Ordinal);
        return string.Join('\n', names.Select(name =>
            Has(request, name) ? name + ":" + string.Join(", ", request.Values(name).Select(CollapseWhitespace)) : name));
    }

    /// <summary>
    /// Whether a fresh stored response may answer <paramref name="request"/> without asking the
    /// origin. Served heads carry no <c>Age</c> and today's <c>Date</c> (see <see cref="ServedHead"/>),
    /// so a cache downstream takes the response for new; serving it only in the first half of its
    /// lifetime bounds the extra freshness that cache grants to half a lifetime. Never for
    /// <c>no-cache</c> (qualified or not), nor when the client asks for a newer response
    /// (<c>no-cache</c>, <c>max-age</c>, <c>min-fresh</c>, or <c>Pragma: no-cache</c> without
    /// <c>Cache-Control</c>). <c>max-stale</c> changes nothing: nothing stale is served.
    /// </summary>
    /// <param name="currentAge">From <see cref="CurrentAge"/>.</param>
    /// <param name="lifetime">From <see cref="FreshnessLifetime"/>.</param>
    public static bool UsableWithoutValidation(HttpRequestHead request, HttpResponseHead stored, TimeSpan currentAge, TimeSpan lifetime)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(stored);
        if (currentAge >= lifetime / 2) return false;
        if (!TryCacheControl(stored, out var storedDirectives) || storedDirectives?.NoCache == true) return false;
        if (!TryCacheControl(request, out var asked)) return false;
        if (asked is null)
            return !request.ListValues("Pragma").Contains("no-cache", StringComparer.OrdinalIgnoreCase);
        if (asked.NoCache) return false;
        if (asked.MaxAge is TimeSpan maxAge && currentAge > maxAge) return false;
        return asked.MinFresh is not TimeSpan minFresh || currentAge + minFresh <= lifetime;
    }

    /// <summary>True when the response has a validator a conditional request can carry: an <c>ETag</c> or a <c>Last-Modified</c>.</summary>
    public static bool HasValidator(HttpResponseHead response)
    {
        ArgumentNullException.ThrowIfNull(response);
        return ETag(response) is not null || Date(response, "Last-Modified") is not null;
    }

    private static bool Has(HttpHead head, string name) => head.Fields.Any(f => f.Is(name));

    private static bool IsVaryStar(HttpResponseHead response) => response.ListValues("Vary").Contains("*", StringComparer.Ordinal);

    /// <summary>The value of a field that must appear once; a repeated field is as good as none.</summary>
    private static string? Single(HttpHead head, string name) => head.Values(name).ToList() is [var value] ? value : null;

    /// <summary>The field's HTTP-date; an invalid or repeated one is no date.</summary>
    private static DateTimeOffset? Date(HttpHead head, string name) =>
        Single(head, name) is string value && HeaderUtilities.TryParseDate(value, out var date) ? date : null;

    /// <summary>The response's entity tag as sent, when it has one that parses.</summary>
    private static string? ETag(HttpResponseHead response) =>
        Single(response, "ETag") is string value && EntityTagHeaderValue.TryParse(value, out _) ? value : null;

    /// <summary>
    /// The head's <c>Cache-Control</c> lines read as one list: false when the parser refuses it
    /// (including a delta-seconds it cannot hold), null directives when there is none.
    /// </summary>
    private static bool TryCacheControl(HttpHead head, out CacheControlHeaderValue? directives)
    {
        directives = null;
        string joined = string.Join(", ", head.Values("Cache-Control"));
        return string.IsNullOrWhiteSpace(joined) || CacheControlHeaderValue.TryParse(joined, out directives);
    }

    private static TimeSpan AgeValue(HttpResponseHead response)
    {
        if (!Has(response, "Age")) return TimeSpan.Zero;
        return Single(response, "Age") is string value && HeaderUtilities.TryParseNonNegativeInt64(value, out long seconds) && seconds < MaxDeltaSeconds.TotalSeconds
            ? TimeSpan.FromSeconds(seconds)
            : MaxDeltaSeconds;
    }

    private static TimeSpan Positive(TimeSpan span) => span > TimeSpan.Zero ? span : TimeSpan.Zero;

    private static string CollapseWhitespace(string value) =>
        string.Join(' ', value.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries));
}
