using System.Globalization;
using System.Text;
using Quid.Cache;
using Quid.Wire.Http;

namespace Quid.Tests.Cache;

public class CachePolicyTests
{
    private static readonly DateTimeOffset Now = new(2024, 5, 1, 12, 0, 0, TimeSpan.Zero);
    private const string Fresh = "Cache-Control: max-age=60";

    private static string HttpDate(DateTimeOffset time) => time.ToString("r", CultureInfo.InvariantCulture);

    private static HttpRequestHead Request(string method, params string[] fields) =>
        new HttpHeadParser().ParseRequest(Encoding.Latin1.GetBytes(
            $"{method} http://example.com/a HTTP/1.1\r\nHost: example.com\r\n{string.Concat(fields.Select(f => f + "\r\n"))}\r\n")).Head!;

    private static HttpRequestHead Get(params string[] fields) => Request("GET", fields);

    private static HttpResponseHead Response(int status, params string[] fields) =>
        new HttpHeadParser().ParseResponse(Encoding.Latin1.GetBytes(
            $"HTTP/1.1 {status} Reason\r\n{string.Concat(fields.Select(f => f + "\r\n"))}\r\n")).Head!;

    private static void AssertNeitherStoredNorAnswered(Uncacheable rule, HttpRequestHead request)
    {
        Assert.Equal(rule, CachePolicy.CheckRequest(request));
        Assert.Equal(rule, CachePolicy.CheckResponse(request, Response(200, Fresh), Now));
    }

    [Theory]
    [InlineData("GET")]
    [InlineData("HEAD")]
    public void A_fresh_200_to_a_plain_GET_or_HEAD_is_stored(string method)
    {
        Assert.Equal(Uncacheable.None, CachePolicy.CheckResponse(Request(method), Response(200, Fresh), Now));
    }

    [Theory]
    [InlineData("POST")]
    [InlineData("PUT")]
    [InlineData("DELETE")]
    [InlineData("OPTIONS")]
    [InlineData("get")]
    public void A_method_other_than_GET_or_HEAD_is_never_stored_nor_answered_from_store(string method)
    {
        AssertNeitherStoredNorAnswered(Uncacheable.Method, Request(method));
    }

    [Theory]
    [InlineData("Content-Length: 3")]
    [InlineData("Transfer-Encoding: chunked")]
    [InlineData("Content-Length: 3\r\nTransfer-Encoding: chunked")]
    public void A_request_with_a_body_is_never_stored_nor_answered_from_store(string framing)
    {
        AssertNeitherStoredNorAnswered(Uncacheable.RequestBody, Get(framing));
        Assert.Equal(Uncacheable.None, CachePolicy.CheckRequest(Get("Content-Length: 0")));
    }

    [Fact]
    public void A_Range_request_is_never_stored_nor_answered_from_store()
    {
        AssertNeitherStoredNorAnswered(Uncacheable.Range, Get("Range: bytes=0-99"));
    }

    [Fact]
    public void A_request_with_Authorization_is_never_stored_nor_answered_from_store()
    {
        AssertNeitherStoredNorAnswered(Uncacheable.Authorization, Get("Authorization: Basic YTpi"));
    }

    [Fact]
    public void A_request_with_a_Cookie_is_never_stored_nor_answered_from_store()
    {
        AssertNeitherStoredNorAnswered(Uncacheable.Cookie, Get("Cookie: session=1"));
    }

    [Fact]
    public void A_request_with_Cache_Control_no_store_is_never_stored_nor_answered_from_store()
    {
        AssertNeitherStoredNorAnswered(Uncacheable.RequestNoStore, Get("Cache-Control: max-age=0, no-store"));
    }

    [Theory]
    [InlineData(201)]
    [InlineData(302)]
    [InlineData(307)]
    [InlineData(403)]
    [InlineData(500)]
    [InlineData(503)]
    public void A_status_outside_the_heuristically_cacheable_ones_is_never_stored(int status)
    {
        Assert.Equal(Uncacheable.Status, CachePolicy.CheckResponse(Get(), Response(status, Fresh), Now));
    }

    [Theory]
    [InlineData(200)]
    [InlineData(203)]
    [InlineData(204)]
    [InlineData(300)]
    [InlineData(301)]
    [InlineData(308)]
    [InlineData(404)]
    [InlineData(405)]
    [InlineData(410)]
    [InlineData(414)]
    [InlineData(501)]
    public void A_heuristically_cacheable_status_is_stored(int status)
    {
        Assert.Equal(Uncacheable.None, CachePolicy.CheckResponse(Get(), Response(status, Fresh), Now));
    }

    [Fact]
    public void A_response_with_Set_Cookie_is_never_stored()
    {
        Assert.Equal(Uncacheable.SetCookie, CachePolicy.CheckResponse(Get(), Response(200, Fresh, "Set-Cookie: id=1"), Now));
    }

    [Theory]
    [InlineData("private")]
    [InlineData("private=\"Set-Cookie\"")]
    [InlineData("public, max-age=60, private")]
    public void A_private_response_is_never_stored_with_or_without_field_names(string directives)
    {
        Assert.Equal(Uncacheable.Private, CachePolicy.CheckResponse(Get(), Response(200, Fresh, $"Cache-Control: {directives}"), Now));
    }

    [Fact]
    public void A_no_store_response_is_never_stored()
    {
        Assert.Equal(Uncacheable.NoStore, CachePolicy.CheckResponse(Get(), Response(200, "Cache-Control: max-age=60, no-store"), Now));
    }

    [Theory]
    [InlineData("*")]
    [InlineData("Accept-Encoding, *")]
    public void A_response_that_varies_on_everything_is_never_stored(string vary)
    {
        var response = Response(200, Fresh, $"Vary: {vary}");
        Assert.Equal(Uncacheable.VaryStar, CachePolicy.CheckResponse(Get(), response, Now));
        Assert.Null(CachePolicy.VaryKey(response, Get()));
    }

    [Theory]
    [InlineData(206, "Content-Range: bytes 0-9/100")]
    [InlineData(206, "ETag: \"a\"")]
    [InlineData(200, "Content-Range: bytes 0-9/100")]
    public void Partial_content_is_never_stored(int status, string field)
    {
        Assert.Equal(Uncacheable.PartialContent, CachePolicy.CheckResponse(Get(), Response(status, Fresh, field), Now));
    }

    [Theory]
    [InlineData("no-cache")]
    [InlineData("no-cache=\"Set-Cookie\", max-age=60")]
    public void A_no_cache_response_is_stored_only_with_a_validator_and_always_revalidated(string directives)
    {
        string cacheControl = $"Cache-Control: {directives}";
        Assert.Equal(Uncacheable.NoCacheWithoutValidator, CachePolicy.CheckResponse(Get(), Response(200, cacheControl), Now));
        var validated = Response(200, cacheControl, "ETag: \"v1\"");
        Assert.Equal(Uncacheable.None, CachePolicy.CheckResponse(Get(), validated, Now));
        Assert.False(CachePolicy.UsableWithoutValidation(Get(), validated, TimeSpan.Zero, TimeSpan.FromHours(1)));
    }

    [Theory]
    [InlineData("Content-Type: text/plain")]
    [InlineData("Cache-Control: max-age=0")]
    [InlineData("Cache-Control: public")]
    [InlineData("Expires: 0")]
    public void A_response_never_fresh_and_without_a_validator_is_never_stored(string field)
    {
        Assert.Equal(Uncacheable.NoFreshness, CachePolicy.CheckResponse(Get(), Response(200, field), Now));
        Assert.Equal(Uncacheable.None, CachePolicy.CheckResponse(Get(), Response(200, field, "ETag: \"v1\""), Now));
    }

    [Theory]
    [InlineData("max-age=99999999999999999999")]
    [InlineData("max-age=abc")]
    [InlineData("no-store=;;\"")]
    [InlineData("private, =")]
    public void A_Cache_Control_the_parser_refuses_keeps_the_exchange_out_of_store(string directives)
    {
        string cacheControl = $"Cache-Control: {directives}";
        var response = Response(200, cacheControl, "ETag: \"v1\"");
        Assert.Equal(Uncacheable.BadCacheControl, CachePolicy.CheckResponse(Get(), response, Now));
        Assert.Equal(TimeSpan.Zero, CachePolicy.FreshnessLifetime(response, Now));
        Assert.Equal(Uncacheable.BadCacheControl, CachePolicy.CheckRequest(Get(cacheControl)));
        Assert.False(CachePolicy.UsableWithoutValidation(Get(cacheControl), Response(200, Fresh), TimeSpan.Zero, TimeSpan.FromHours(1)));
    }

    [Theory]
    [InlineData("Cache-Control: s-maxage=10, max-age=20", 10)]
    [InlineData("Cache-Control: max-age=20, s-maxage=10", 10)]
    [InlineData("Cache-Control: max-age=20", 20)]
    [InlineData("Cache-Control: public", 30)]
    [InlineData("Cache-Control: s-maxage=0", 0)]
    public void s_maxage_wins_over_max_age_which_wins_over_Expires_less_Date(string cacheControl, int seconds)
    {
        var response = Response(200, $"Date: {HttpDate(Now)}", cacheControl, $"Expires: {HttpDate(Now.AddSeconds(30))}");
        Assert.Equal(TimeSpan.FromSeconds(seconds), CachePolicy.FreshnessLifetime(response, Now.AddMinutes(5)));
    }

    [Theory]
    [InlineData("0")]
    [InlineData("next week")]
    [InlineData("Wed, 01 May 2024 11:00:00 GMT")]
    public void An_invalid_or_past_Expires_means_already_expired_even_with_Last_Modified(string expires)
    {
        var response = Response(200, $"Date: {HttpDate(Now)}", $"Expires: {expires}", $"Last-Modified: {HttpDate(Now.AddDays(-30))}");
        Assert.Equal(TimeSpan.Zero, CachePolicy.FreshnessLifetime(response, Now));
    }

    [Fact]
    public void Expires_of_a_response_without_Date_counts_from_when_it_arrived()
    {
        var response = Response(200, $"Expires: {HttpDate(Now.AddSeconds(90))}");
        Assert.Equal(TimeSpan.FromSeconds(30), CachePolicy.FreshnessLifetime(response, Now.AddSeconds(60)));
    }

    [Theory]
    [InlineData(200, 5 * 3600, 30 * 60)]
    [InlineData(404, 5 * 3600, 30 * 60)]
    [InlineData(200, 30 * 86400, 86400)]
    [InlineData(302, 5 * 3600, 0)]
    [InlineData(200, -3600, 0)]
    public void Heuristic_freshness_is_a_tenth_of_the_time_since_Last_Modified_at_most_a_day(int status, int sinceModified, int seconds)
    {
        var response = Response(status, $"Date: {HttpDate(Now)}", $"Last-Modified: {HttpDate(Now.AddSeconds(-sinceModified))}");
        Assert.Equal(TimeSpan.FromSeconds(seconds), CachePolicy.FreshnessLifetime(response, Now));
    }

    [Fact]
    public void Explicit_freshness_leaves_no_room_for_the_heuristic()
    {
        var response = Response(200, $"Date: {HttpDate(Now)}", "Cache-Control: max-age=5", $"Last-Modified: {HttpDate(Now.AddDays(-30))}");
        Assert.Equal(TimeSpan.FromSeconds(5), CachePolicy.FreshnessLifetime(response, Now));
    }

    [Fact]
    public void The_current_age_adds_the_Age_received_the_time_the_request_took_and_the_time_in_store()
    {
        // Sent at Now, answered 2 s later by a cache that held it 100 s, dated by the origin 1 s after the request.
        var response = Response(200, $"Date: {HttpDate(Now.AddSeconds(1))}", "Age: 100");
        var age = CachePolicy.CurrentAge(response, requestTime: Now, responseTime: Now.AddSeconds(2), now: Now.AddSeconds(62));
        Assert.Equal(TimeSpan.FromSeconds(100 + 2 + 60), age);
    }

    [Fact]
    public void The_apparent_age_wins_when_the_Date_is_older_than_the_Age_says()
    {
        var response = Response(200, $"Date: {HttpDate(Now.AddSeconds(-500))}", "Age: 100");
        var age = CachePolicy.CurrentAge(response, requestTime: Now, responseTime: Now.AddSeconds(2), now: Now.AddSeconds(2));
        Assert.Equal(TimeSpan.FromSeconds(502), age);
    }

    [Fact]
    public void A_clock_that_stepped_back_makes_nothing_younger()
    {
        var response = Response(200, $"Date: {HttpDate(Now.AddSeconds(10))}");
        Assert.Equal(TimeSpan.Zero, CachePolicy.CurrentAge(response, requestTime: Now.AddSeconds(1), responseTime: Now, now: Now.AddSeconds(-30)));
    }

    [Theory]
    [InlineData("Age: 99999999999999999999")]
    [InlineData("Age: soon")]
    [InlineData("Age: -5")]
    [InlineData("Age: 5\r\nAge: 6")]
    public void An_Age_that_overflows_or_cannot_be_read_counts_as_2_to_the_31_seconds(string field)
    {
        var response = Response(200, $"Date: {HttpDate(Now)}", Fresh, field);
        var age = CachePolicy.CurrentAge(response, Now, Now, Now);
        Assert.Equal(TimeSpan.FromSeconds(2147483648), age);
        Assert.False(CachePolicy.UsableWithoutValidation(Get(), response, age, CachePolicy.FreshnessLifetime(response, Now)));
    }

    [Fact]
    public void Requests_that_differ_only_in_layout_have_the_same_Vary_key()
    {
        var response = Response(200, Fresh, "Vary: Accept-Language, accept-encoding");
        var reordered = Response(200, Fresh, "Vary: ACCEPT-ENCODING", "Vary: Accept-Language");
        string? key = CachePolicy.VaryKey(response, Get("Accept-Encoding: gzip,  br", "Accept-Language: en"));
        Assert.Equal("accept-encoding:gzip, br\naccept-language:en", key);
        Assert.Equal(key, CachePolicy.VaryKey(reordered, Get("accept-language: en", "accept-encoding: gzip,\t br")));
        Assert.Equal(key, CachePolicy.VaryKey(response, Get("Accept-Language: en", "Accept-Encoding: gzip", "Accept-Encoding: br")));
    }

    [Fact]
    public void Requests_with_other_values_or_a_missing_field_have_another_Vary_key()
    {
        var response = Response(200, Fresh, "Vary: Accept-Encoding");
        string? gzip = CachePolicy.VaryKey(response, Get("Accept-Encoding: gzip"));
        string? empty = CachePolicy.VaryKey(response, Get("Accept-Encoding:"));
        string? absent = CachePolicy.VaryKey(response, Get());
        Assert.Equal(3, new[] { gzip, empty, absent }.Distinct().Count());
        Assert.NotEqual(gzip, CachePolicy.VaryKey(response, Get("Accept-Encoding: GZIP")));
        Assert.Equal("", CachePolicy.VaryKey(Response(200, Fresh), Get("Accept-Encoding: gzip")));
    }

    [Theory]
    [InlineData("", 29, true)]
    [InlineData("", 30, false)]
    [InlineData("Cache-Control: max-stale=3600", 40, false)]
    [InlineData("Cache-Control: no-cache", 0, false)]
    [InlineData("Cache-Control: max-age=10", 20, false)]
    [InlineData("Cache-Control: max-age=20", 20, true)]
    [InlineData("Cache-Control: min-fresh=41", 20, false)]
    [InlineData("Cache-Control: min-fresh=40", 20, true)]
    [InlineData("Pragma: no-cache", 0, false)]
    [InlineData("Pragma: no-cache\r\nCache-Control: max-age=60", 0, true)]
    public void A_hit_is_served_without_validation_only_in_the_first_half_of_its_lifetime_and_as_the_client_allows(string field, int age, bool usable)
    {
        var request = field.Length == 0 ? Get() : Get(field);
        Assert.Equal(usable, CachePolicy.UsableWithoutValidation(request, Response(200, Fresh), TimeSpan.FromSeconds(age), TimeSpan.FromSeconds(60)));
    }

    [Theory]
    [InlineData("If-None-Match: \"a\"")]
    [InlineData("If-Modified-Since: Wed, 01 May 2024 11:00:00 GMT")]
    [InlineData("If-Match: \"a\"")]
    [InlineData("If-Unmodified-Since: Wed, 01 May 2024 11:00:00 GMT")]
    [InlineData("If-Range: \"a\"")]
    public void A_request_with_a_precondition_is_conditional(string field)
    {
        Assert.True(CachePolicy.IsConditional(Get(field)));
        Assert.False(CachePolicy.IsConditional(Get("Accept: */*")));
    }

    [Fact]
    public void A_revalidation_carries_the_stored_ETag_and_Last_Modified_as_sent()
    {
        string lastModified = HttpDate(Now.AddDays(-1));
        var stored = Response(200, "ETag: W/\"v1\"", $"Last-Modified: {lastModified}");
        Assert.Equal([new HttpField("If-None-Match", "W/\"v1\""), new HttpField("If-Modified-Since", lastModified)], CachePolicy.Validators(stored));
        Assert.True(CachePolicy.HasValidator(stored));
        var unreadable = Response(200, "ETag: v1", "Last-Modified: yesterday");
        Assert.Empty(CachePolicy.Validators(unreadable));
        Assert.False(CachePolicy.HasValidator(unreadable));
    }

    [Fact]
    public void A_304_replaces_the_stored_fields_it_has_but_not_the_body_s_framing_nor_a_cookie()
    {
        var stored = Response(200, $"Date: {HttpDate(Now.AddHours(-2))}", "Age: 50", "Cache-Control: max-age=60", "ETag: \"v1\"",
            "Content-Type: text/plain", "Content-Length: 5", "Content-Encoding: gzip", "X-Served-By: a", "X-Served-By: b");
        var notModified = Response(304, $"Date: {HttpDate(Now)}", "Cache-Control: max-age=120", "ETag: \"v1\"", "X-Served-By: c",
            "Content-Length: 0", "Content-Encoding: br", "Set-Cookie: id=1", "Connection: keep-alive, X-Hop", "X-Hop: 1", "Keep-Alive: timeout=5");
        var freshened = CachePolicy.Freshen(stored, notModified);
        Assert.Equal((200, "Reason"), (freshened.Status, freshened.Reason));
        Assert.Equal(
            ["Content-Type: text/plain", "Content-Length: 5", "Content-Encoding: gzip",
             $"Date: {HttpDate(Now)}", "Cache-Control: max-age=120", "ETag: \"v1\"", "X-Served-By: c"],
            freshened.Fields.Select(f => $"{f.Name}: {f.Value}"));
        Assert.Equal(TimeSpan.FromSeconds(120), CachePolicy.FreshnessLifetime(freshened, Now));
        Assert.Equal(TimeSpan.Zero, CachePolicy.CurrentAge(freshened, Now, Now, Now));
    }

    [Fact]
    public void A_served_head_has_Date_now_and_no_Age_nor_hop_by_hop_fields()
    {
        var storedAt = Now.AddHours(-1);
        var stored = Response(200, $"Date: {HttpDate(storedAt)}", "Age: 30", "Cache-Control: max-age=7200",
            $"Expires: {HttpDate(storedAt.AddHours(2))}", "Connection: keep-alive, X-Hop", "X-Hop: 1", "Keep-Alive: timeout=5",
            "Proxy-Connection: keep-alive", "TE: trailers", "Trailer: X-Sum", "Transfer-Encoding: chunked", "Upgrade: h2c",
            "Content-Length: 999", "Content-Type: text/plain");
        Assert.Equal(
            $"HTTP/1.1 200 Reason\r\nDate: {HttpDate(Now)}\r\nCache-Control: max-age=7200\r\nExpires: {HttpDate(Now.AddHours(2))}\r\n" +
            "Content-Type: text/plain\r\nContent-Length: 5\r\nConnection: close\r\n\r\n",
            Encoding.Latin1.GetString(CachePolicy.ServedHead(stored, 5, Now, close: true)));
    }

    [Fact]
    public void A_served_Expires_without_a_stored_Date_is_now_and_an_unreadable_one_stays()
    {
        var stored = Response(200, $"Expires: {HttpDate(Now.AddHours(-3))}", "Expires: 0");
        Assert.Equal(
            $"HTTP/1.1 200 Reason\r\nDate: {HttpDate(Now)}\r\nExpires: {HttpDate(Now)}\r\nExpires: 0\r\nContent-Length: 0\r\n\r\n",
            Encoding.Latin1.GetString(CachePolicy.ServedHead(stored, 0, Now, close: false)));
    }

    [Fact]
    public void A_HEAD_gets_the_stored_body_length_and_a_204_none()
    {
        // Stored from a chunked GET: no Content-Length of its own, a body of 1234 bytes on disk.
        string head = Encoding.Latin1.GetString(CachePolicy.ServedHead(Response(200, Fresh), 1234, Now, close: false));
        Assert.Contains("\r\nContent-Length: 1234\r\n", head, StringComparison.Ordinal);
        Assert.Equal(head.IndexOf("Content-Length", StringComparison.Ordinal), head.LastIndexOf("Content-Length", StringComparison.Ordinal));
        string noContent = Encoding.Latin1.GetString(CachePolicy.ServedHead(Response(204, Fresh, "Content-Length: 0"), 0, Now, close: false));
        Assert.DoesNotContain("Content-Length", noContent, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Cache-Control: max-age=99999999999999999999")]
    [InlineData("Cache-Control: ,,,;=\"")]
    [InlineData("Cache-Control: max-age=-1, s-maxage=1.5")]
    [InlineData("Date: garbage\r\nExpires: garbage\r\nLast-Modified: garbage\r\nETag: garbage")]
    [InlineData("Date: Mon, 01 May 2024 12:00:00 GMT\r\nLast-Modified: Wed, 01 May 2024 99:00:00 GMT")]
    [InlineData("Age: 99999999999999999999\r\nVary: \u00ff, ,\r\nConnection: ,")]
    public void Malformed_values_never_throw_and_count_against_caching(string fields)
    {
        var response = Response(200, fields);
        var request = Get(fields);
        Assert.NotEqual(Uncacheable.None, CachePolicy.CheckResponse(Get(), response, Now));
        var lifetime = CachePolicy.FreshnessLifetime(response, Now);
        Assert.Equal(TimeSpan.Zero, lifetime);
        Assert.False(CachePolicy.UsableWithoutValidation(request, response, CachePolicy.CurrentAge(response, Now, Now, Now), lifetime));
        Assert.Empty(CachePolicy.Validators(response));
        _ = CachePolicy.VaryKey(response, request);
        _ = CachePolicy.Freshen(response, response);
        _ = CachePolicy.ServedHead(response, 0, Now, close: true);
    }
}
