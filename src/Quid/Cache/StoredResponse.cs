using Quid.Wire.Http;

namespace Quid.Cache;

/// <summary>
/// One response in the exit cache: its head as the origin sent it (framing and all), where its
/// body lies, and what the obliviousness rules need: how long the origin took to answer it and to
/// send it, so a hit is never answered faster. Nothing here names who asked for it.
/// </summary>
/// <param name="Id">A random name, also the body's file name: nothing about the URL can be read from the directory.</param>
/// <param name="Url">The primary key: <c>http://host[:port]/path?query</c>, the host the stream was opened to.</param>
/// <param name="VaryKey">The secondary key: the request's values of the fields the response varies on (empty when none).</param>
/// <param name="Sha256">Of the body as stored; checked before every use, so a torn write is never served.</param>
/// <param name="RequestTime">When the request that brought it (or last validated it) went to the origin.</param>
/// <param name="ResponseTime">When that response's head arrived (RFC 9111 §4.2.3's response_time).</param>
/// <param name="FirstByte">From sending the request to the origin to its head arriving.</param>
/// <param name="Transfer">From sending the request to the origin to the last byte of the body.</param>
/// <param name="StoredAt">For the owner's listing only; never sent to a client.</param>
public sealed record StoredResponse(
    string Id, string Url, string VaryKey, HttpResponseHead Head, long BodySize, byte[] Sha256,
    DateTimeOffset RequestTime, DateTimeOffset ResponseTime, TimeSpan FirstByte, TimeSpan Transfer, DateTimeOffset StoredAt, long Hits)
{
    public string Host => new Uri(Url).Authority;
    public string PathAndQuery => new Uri(Url).PathAndQuery;
    public string ContentType => Head.Values("Content-Type").FirstOrDefault()?.Split(';')[0].Trim().ToLowerInvariant() ?? "";
}
