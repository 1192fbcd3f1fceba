namespace Quid.Cache;

/// <summary>
/// Why an exchange is neither stored nor answered from store, named so a log or a test can tell
/// the rules apart. <see cref="None"/> means the exchange may be cached.
/// </summary>
public enum Uncacheable
{
    None,
    /// <summary>Not GET or HEAD: other methods change state or are not reused.</summary>
    Method,
    /// <summary>A request with content: what it asks depends on bytes the key does not hold.</summary>
    RequestBody,
    /// <summary>A request for part of a representation; we store only whole ones.</summary>
    Range,
    /// <summary>A request with credentials, whose answer may be meant for that user alone.</summary>
    Authorization,
    /// <summary>A request with a cookie, whose answer may be meant for that user alone.</summary>
    Cookie,
    /// <summary>The request's <c>Cache-Control: no-store</c>.</summary>
    RequestNoStore,
    /// <summary>A <c>Cache-Control</c> the parser refuses: it may hide <c>private</c> or <c>no-store</c>.</summary>
    BadCacheControl,
    /// <summary>A status outside the ones RFC 9110 §15.1 lets a cache reuse heuristically.</summary>
    Status,
    /// <summary>A response that sets a cookie is meant for one user.</summary>
    SetCookie,
    /// <summary><c>Cache-Control: private</c>, with or without field names.</summary>
    Private,
    /// <summary>The response's <c>Cache-Control: no-store</c>.</summary>
    NoStore,
    /// <summary><c>Vary: *</c>: no later request can be shown to match.</summary>
    VaryStar,
    /// <summary>206 or <c>Content-Range</c>: part of a representation.</summary>
    PartialContent,
    /// <summary><c>no-cache</c> means revalidate before every use, which needs a validator.</summary>
    NoCacheWithoutValidator,
    /// <summary>Never fresh and nothing to revalidate with: a stored copy could never be used.</summary>
    NoFreshness,
}
