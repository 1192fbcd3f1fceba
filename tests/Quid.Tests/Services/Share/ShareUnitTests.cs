using Quid.Services.Share;
using Quid.Wire.Http;

namespace Quid.Tests.Services.Share;

/// <summary>The share server's pure pieces: request targets, byte ranges and validators.</summary>
public sealed class ShareUnitTests
{
    private static HttpRequestHead Head(params (string Name, string Value)[] fields) =>
        new("GET", "/", 1, [.. fields.Select(f => new HttpField(f.Name, f.Value))]);

    [Theory]
    [InlineData("/", "", true, "")]
    [InlineData("/a/b%20c/", "a|b c", true, "")]
    [InlineData("/a//b?format=json&x", "a|b", false, "format=json&x")]
    [InlineData("/%C3%A9t%C3%A9.txt", "été.txt", false, "")]
    [InlineData("http://abc.quid/x/y?z", "x|y", false, "z")]
    [InlineData("http://abc.quid", "", true, "")]
    [InlineData("/a%2Fb", "a|b", false, "")]
    public void A_target_is_decoded_then_split(string target, string segments, bool endsWithSlash, string query)
    {
        var parsed = RequestTarget.Parse(target);
        Assert.Equal(segments, string.Join('|', parsed.Segments));
        Assert.Equal(endsWithSlash, parsed.EndsWithSlash);
        Assert.Equal(query, parsed.Query);
    }

    [Theory]
    [InlineData("/..")]
    [InlineData("/a/../b")]
    [InlineData("/%2e%2e/b")]
    [InlineData("/a%2f%2E%2E%2fb")]
    [InlineData("/./a")]
    [InlineData("/a\\b")]
    [InlineData("/a%5cb")]
    [InlineData("/a%00")]
    [InlineData("/a%0d%0a")]
    [InlineData("/a%")]
    [InlineData("/a%4")]
    [InlineData("/%ff")]
    [InlineData("a")]
    [InlineData("*")]
    [InlineData("/a#b")]
    public void A_target_that_could_leave_the_share_or_is_not_a_path_is_refused(string target) =>
        Assert.Equal(400, Assert.Throws<ShareRefusal>(() => RequestTarget.Parse(target)).Status);

    [Theory]
    [InlineData(null, "Whole", 0, 1000)]
    [InlineData("bytes=0-99", "Partial", 0, 100)]
    [InlineData("bytes=900-", "Partial", 900, 100)]
    [InlineData("bytes=-100", "Partial", 900, 100)]
    [InlineData("bytes=-5000", "Partial", 0, 1000)]
    [InlineData("bytes=990-5000", "Partial", 990, 10)]
    [InlineData("BYTES = 1-1", "Whole", 0, 1000)]
    [InlineData("bytes= 1-1", "Partial", 1, 1)]
    [InlineData("bytes=1000-", "Unsatisfiable", 0, 0)]
    [InlineData("bytes=-0", "Unsatisfiable", 0, 0)]
    [InlineData("bytes=5-1", "Whole", 0, 1000)]
    [InlineData("bytes=0-1,5-6", "Whole", 0, 1000)]
    [InlineData("bytes=-", "Whole", 0, 1000)]
    [InlineData("bytes=+1-2", "Whole", 0, 1000)]
    [InlineData("bytes=99999999999999999999-", "Whole", 0, 1000)]
    [InlineData("items=0-1", "Whole", 0, 1000)]
    public void A_single_byte_range_is_served_and_anything_else_gets_the_whole_file(string? range, string outcome, long start, long length)
    {
        var head = range is null ? Head() : Head(("Range", range));
        Assert.Equal((Enum.Parse<RangeOutcome>(outcome), start, length), Validators.Range(head, 1000));
    }

    [Fact]
    public void An_empty_file_has_no_satisfiable_range()
    {
        Assert.Equal(RangeOutcome.Unsatisfiable, Validators.Range(Head(("Range", "bytes=0-")), 0).Outcome);
        Assert.Equal(RangeOutcome.Unsatisfiable, Validators.Range(Head(("Range", "bytes=-1")), 0).Outcome);
    }

    [Fact]
    public void The_validators_follow_the_file()
    {
        var modified = new DateTimeOffset(2025, 1, 19, 12, 0, 0, 500, TimeSpan.Zero);
        string etag = Validators.ETag(1000, modified);
        Assert.NotEqual(etag, Validators.ETag(1001, modified));
        Assert.NotEqual(etag, Validators.ETag(1000, modified.AddMilliseconds(1)));
        Assert.True(Validators.NotModified(Head(("If-None-Match", $"W/{etag}")), etag, modified));
        Assert.True(Validators.NotModified(Head(("If-None-Match", "*")), etag, modified));
        Assert.False(Validators.NotModified(Head(("If-None-Match", "\"x\"")), etag, modified));
        Assert.True(Validators.NotModified(Head(("If-Modified-Since", "Sun, 19 Jan 2025 12:00:00 GMT")), etag, modified));
        Assert.False(Validators.NotModified(Head(("If-Modified-Since", "Sun, 19 Jan 2025 11:59:59 GMT")), etag, modified));
        // If-None-Match wins over If-Modified-Since.
        Assert.False(Validators.NotModified(Head(("If-None-Match", "\"x\""), ("If-Modified-Since", "Sun, 19 Jan 2025 12:00:00 GMT")), etag, modified));
        Assert.True(Validators.RangeValid(Head(("If-Range", etag)), etag, modified));
        Assert.False(Validators.RangeValid(Head(("If-Range", $"W/{etag}")), etag, modified));
        Assert.True(Validators.RangeValid(Head(("If-Range", "Sun, 19 Jan 2025 12:00:00 GMT")), etag, modified));
        Assert.False(Validators.RangeValid(Head(("If-Range", "Sun, 19 Jan 2025 12:00:01 GMT")), etag, modified));
    }
}
