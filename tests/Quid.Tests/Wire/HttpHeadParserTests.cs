using System.Text;
using Quid.Wire.Http;

namespace Quid.Tests.Wire;

public class HttpHeadParserTests
{
    /// <summary>Request heads as real clients send them to a proxy.</summary>
    public static readonly Dictionary<string, string> ClientHeads = new()
    {
        ["curl -x"] = "GET http://example.com/index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\nProxy-Connection: Keep-Alive\r\n\r\n",
        ["curl -x CONNECT"] = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nUser-Agent: curl/8.5.0\r\nProxy-Connection: Keep-Alive\r\n\r\n",
        ["curl -U"] = "GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\nProxy-Authorization: Basic YWxpY2U6c2VjcmV0\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n",
        ["wget"] = "GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\nUser-Agent: Wget/1.21.3\r\nAccept: */*\r\nAccept-Encoding: identity\r\nConnection: Keep-Alive\r\n\r\n",
        ["chromium"] = "GET http://web.quid.test:8080/ HTTP/1.1\r\nHost: web.quid.test:8080\r\nProxy-Connection: keep-alive\r\nUpgrade-Insecure-Requests: 1\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/156.0.0.0 Safari/537.36\r\nAccept: text/html,application/xhtml+xml\r\nAccept-Encoding: gzip, deflate\r\nAccept-Language: en-US\r\n\r\n",
        ["curl -0 POST"] = "POST http://example.com/form HTTP/1.0\r\nHost: example.com\r\nContent-Length: 5\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n",
        ["bare LF"] = "GET http://example.com/ HTTP/1.1\nHost: example.com\n\n",
        ["leading empty line"] = "\r\nGET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
        ["obs-text value"] = "GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\nX-Name: caf\u00e9\r\n\r\n",
    };

    public static TheoryData<string> ClientHeadNames => [.. ClientHeads.Keys];

    private static byte[] Latin1(string text) => Encoding.Latin1.GetBytes(text);

    [Fact]
    public void A_curl_request_is_read_with_its_fields_in_order()
    {
        var parse = new HttpHeadParser().ParseRequest(Latin1(ClientHeads["curl -x"]));
        Assert.Equal(HttpParseStatus.Complete, parse.Status);
        var head = parse.Head!;
        Assert.Equal(("GET", "http://example.com/index.html", 1), (head.Method, head.Target, head.MinorVersion));
        Assert.Equal(["Host", "User-Agent", "Accept", "Proxy-Connection"], head.Fields.Select(f => f.Name));
        Assert.Equal("Keep-Alive", Assert.Single(head.Values("proxy-connection")));
    }

    [Theory]
    [MemberData(nameof(ClientHeadNames))]
    public void Every_client_head_is_complete_and_consumed_exactly_leaving_pipelined_bytes(string name)
    {
        byte[] head = Latin1(ClientHeads[name]);
        byte[] next = Latin1("GET http://example.org/ HTTP/1.1\r\nHost: example.org\r\n\r\n");
        var parse = new HttpHeadParser().ParseRequest([.. head, .. next]);
        Assert.Equal(HttpParseStatus.Complete, parse.Status);
        Assert.Equal(head.Length, parse.Consumed);
    }

    [Theory]
    [MemberData(nameof(ClientHeadNames))]
    public void Every_proper_prefix_needs_more(string name)
    {
        byte[] head = Latin1(ClientHeads[name]);
        for (int length = 0; length < head.Length; length++)
            Assert.Equal(HttpParseStatus.NeedMore, new HttpHeadParser().ParseRequest(head.AsSpan(0, length)).Status);
    }

    [Theory]
    [MemberData(nameof(ClientHeadNames))]
    public void Feeding_a_byte_at_a_time_gives_what_the_whole_head_gives(string name)
    {
        byte[] head = Latin1(ClientHeads[name]);
        var whole = new HttpHeadParser().ParseRequest(head);
        var parser = new HttpHeadParser();
        HttpParse<HttpRequestHead> parse = default;
        for (int length = 1; length <= head.Length; length++)
        {
            parse = parser.ParseRequest(head.AsSpan(0, length));
            if (length < head.Length) Assert.Equal(HttpParseStatus.NeedMore, parse.Status);
        }
        Assert.Equal(whole.Consumed, parse.Consumed);
        Assert.Equal(whole.Head!.Target, parse.Head!.Target);
        Assert.Equal(whole.Head.Fields, parse.Head.Fields);
    }

    [Fact]
    public void Obs_text_in_a_value_survives_as_the_same_bytes()
    {
        var head = new HttpHeadParser().ParseRequest(Latin1(ClientHeads["obs-text value"])).Head!;
        Assert.Equal(new byte[] { (byte)'c', (byte)'a', (byte)'f', 0xE9 }, Latin1(Assert.Single(head.Values("X-Name"))));
    }

    [Theory]
    [InlineData("GET http://a/ HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", HttpErrorKind.ObsoleteLineFolding)]
    [InlineData("GET http://a/ HTTP/1.1\r\nHost : a\r\n\r\n", HttpErrorKind.BadFieldName)]
    [InlineData("GET http://a/ HTTP/1.1\r\n: a\r\n\r\n", HttpErrorKind.BadFieldName)]
    [InlineData("GET http://a/ HTTP/1.1\r\nNo colon here\r\n\r\n", HttpErrorKind.BadFieldName)]
    [InlineData("GET http://a/ HTTP/1.1\r\nHost: a\rb\r\n\r\n", HttpErrorKind.BadLineEnding)]
    [InlineData("GET http://a/ HTTP/1.1\r\nX: a\u0000b\r\n\r\n", HttpErrorKind.BadFieldValue)]
    [InlineData("GET http://a/ HTTP/1.1\r\nX: a\u007fb\r\n\r\n", HttpErrorKind.BadFieldValue)]
    [InlineData("GET http://a/ HTTP/2.0\r\nHost: a\r\n\r\n", HttpErrorKind.UnsupportedVersion)]
    [InlineData("GET http://a/ HTTP/0.9\r\n\r\n", HttpErrorKind.UnsupportedVersion)]
    [InlineData("GET http://a/\r\n\r\n", HttpErrorKind.BadStartLine)]
    [InlineData("GET  http://a/ HTTP/1.1\r\n\r\n", HttpErrorKind.BadStartLine)]
    [InlineData("GET http://a/ HTTP/1.1 \r\n\r\n", HttpErrorKind.BadStartLine)]
    [InlineData("G(T http://a/ HTTP/1.1\r\n\r\n", HttpErrorKind.BadStartLine)]
    [InlineData("GET http://a/\u00e9 HTTP/1.1\r\n\r\n", HttpErrorKind.BadStartLine)]
    [InlineData("GET http://a/ HTTP/1.1\rX\r\n\r\n", HttpErrorKind.BadLineEnding)]
    [InlineData("\u0016\u0003\u0001\u0002\u0000\u0001\u0000\u01fc\u0003\u0003\n\n", HttpErrorKind.BadStartLine)]
    public void Malformed_request_heads_get_a_typed_error(string text, HttpErrorKind kind)
    {
        var parse = new HttpHeadParser().ParseRequest(Latin1(text));
        Assert.Equal(HttpParseStatus.Failed, parse.Status);
        Assert.Equal(kind, parse.Error!.Kind);
        Assert.Equal(0, parse.Consumed);
    }

    [Fact]
    public void A_head_of_exactly_the_limit_is_read_and_one_byte_more_is_refused()
    {
        const int limit = 1024;
        string start = "GET http://a/ HTTP/1.1\r\nX: ";
        string exact = start + new string('v', limit - start.Length - 4) + "\r\n\r\n";
        Assert.Equal(limit, exact.Length);
        Assert.Equal(HttpParseStatus.Complete, new HttpHeadParser(limit).ParseRequest(Latin1(exact)).Status);
        string over = start + new string('v', limit - start.Length - 3) + "\r\n\r\n";
        var parse = new HttpHeadParser(limit).ParseRequest(Latin1(over));
        Assert.Equal(HttpErrorKind.HeadTooLarge, parse.Error!.Kind);
        Assert.Equal(431, parse.Error.RequestStatus);
    }

    [Fact]
    public void A_head_that_never_ends_is_refused_at_the_limit_not_buffered()
    {
        var parser = new HttpHeadParser(4096);
        var input = new List<byte>(Latin1("GET http://a/ HTTP/1.1\r\n"));
        HttpParse<HttpRequestHead> parse;
        do
        {
            input.AddRange(Latin1("X-Filler: 0123456789\r\n"));
            parse = parser.ParseRequest(input.ToArray());
        }
        while (parse.Status == HttpParseStatus.NeedMore);
        Assert.Equal(HttpErrorKind.HeadTooLarge, parse.Error!.Kind);
        Assert.InRange(input.Count, 4096, 4096 + 22);
    }

    [Fact]
    public void More_fields_than_the_limit_are_refused()
    {
        string head = "GET http://a/ HTTP/1.1\r\n" + string.Concat(Enumerable.Repeat("X: y\r\n", HttpHeadParser.MaxFields + 1)) + "\r\n";
        Assert.Equal(HttpErrorKind.TooManyFields, new HttpHeadParser().ParseRequest(Latin1(head)).Error!.Kind);
        string fine = "GET http://a/ HTTP/1.1\r\n" + string.Concat(Enumerable.Repeat("X: y\r\n", HttpHeadParser.MaxFields)) + "\r\n";
        Assert.Equal(HttpParseStatus.Complete, new HttpHeadParser().ParseRequest(Latin1(fine)).Status);
    }

    [Theory]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", 200, "OK", 1)]
    [InlineData("HTTP/1.0 404 Not Found\r\n\r\n", 404, "Not Found", 0)]
    [InlineData("HTTP/1.1 204\r\n\r\n", 204, "", 1)]
    [InlineData("HTTP/1.1 200 \r\n\r\n", 200, "", 1)]
    [InlineData("HTTP/1.1 100 Continue\r\n\r\n", 100, "Continue", 1)]
    public void Status_lines_are_read(string text, int status, string reason, int minor)
    {
        var head = new HttpHeadParser().ParseResponse(Latin1(text)).Head!;
        Assert.Equal((status, reason, minor), (head.Status, head.Reason, head.MinorVersion));
    }

    [Theory]
    [InlineData("HTTP/1.1 2000 OK\r\n\r\n", HttpErrorKind.BadStartLine)]
    [InlineData("HTTP/1.1 099 Low\r\n\r\n", HttpErrorKind.BadStartLine)]
    [InlineData("HTTP/1.1 600 High\r\n\r\n", HttpErrorKind.BadStartLine)]
    [InlineData("HTTP/1.1 2x0 OK\r\n\r\n", HttpErrorKind.BadStartLine)]
    [InlineData("HTTP/2 200\r\n\r\n", HttpErrorKind.UnsupportedVersion)]
    [InlineData("<html>hello</html>\r\n\r\n", HttpErrorKind.BadStartLine)]
    [InlineData("HTTP/1.1 200 OK\r\nSet-Cookie: a\r\n\tb\r\n\r\n", HttpErrorKind.ObsoleteLineFolding)]
    public void Malformed_responses_get_a_typed_error(string text, HttpErrorKind kind) =>
        Assert.Equal(kind, new HttpHeadParser().ParseResponse(Latin1(text)).Error!.Kind);

    [Fact]
    public void An_interim_response_then_the_final_one_are_read_one_after_the_other()
    {
        byte[] bytes = Latin1("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi");
        var parser = new HttpHeadParser();
        var first = parser.ParseResponse(bytes);
        Assert.True(first.Head!.IsInterim);
        var second = parser.ParseResponse(bytes.AsSpan(first.Consumed));
        Assert.Equal(200, second.Head!.Status);
        Assert.Equal("hi", Encoding.ASCII.GetString(bytes.AsSpan(first.Consumed + second.Consumed)));
    }

    /// <summary>Random and mutated input: never an exception, never more consumed than given, and the same answer however it is split.</summary>
    [Fact]
    public void Random_and_mutated_heads_keep_the_contract()
    {
        var random = new Random(20261123);
        byte[][] valid = [.. ClientHeads.Values.Select(Latin1), Latin1("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n")];
        for (int i = 0; i < 50_000; i++)
        {
            List<byte> bytes = random.Next(4) == 0 ? [.. RandomBytes(random, random.Next(0, 300))] : [.. valid[random.Next(valid.Length)]];
            for (int m = random.Next(0, 4); m > 0; m--)
                Wire.TestDescriptors.Mutate(random, bytes);
            byte[] input = [.. bytes];
            bool response = random.Next(2) == 0;
            var whole = Parse(new HttpHeadParser(512), input, response, input.Length);
            var split = Parse(new HttpHeadParser(512), input, response, random.Next(input.Length + 1));
            Assert.Equal(whole, split);
            Assert.InRange(whole.Consumed, 0, input.Length);
        }
    }

    private static byte[] RandomBytes(Random random, int count)
    {
        var bytes = new byte[count];
        random.NextBytes(bytes);
        return bytes;
    }

    /// <summary>Feeds the first <paramref name="split"/> bytes, then all of them, as an adapter would.</summary>
    private static (HttpParseStatus Status, int Consumed, HttpErrorKind? Error, string? Start, int Fields) Parse(HttpHeadParser parser, byte[] input, bool response, int split)
    {
        if (response)
        {
            var first = parser.ParseResponse(input.AsSpan(0, split));
            var parse = first.Status == HttpParseStatus.NeedMore ? parser.ParseResponse(input) : first;
            return (parse.Status, parse.Consumed, parse.Error?.Kind, parse.Head is { } h ? $"{h.Status} {h.Reason}" : null, parse.Head?.Fields.Count ?? 0);
        }
        var firstRequest = parser.ParseRequest(input.AsSpan(0, split));
        var request = firstRequest.Status == HttpParseStatus.NeedMore ? parser.ParseRequest(input) : firstRequest;
        return (request.Status, request.Consumed, request.Error?.Kind, request.Head is { } r ? $"{r.Method} {r.Target}" : null, request.Head?.Fields.Count ?? 0);
    }
}
