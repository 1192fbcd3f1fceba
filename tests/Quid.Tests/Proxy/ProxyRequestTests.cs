using System.Text;
using Quid.Proxy.Http;
using Quid.Proxy.Socks;
using Quid.Tests.Wire;
using Quid.Wire;
using Quid.Wire.Http;

namespace Quid.Tests.Proxy;

public class ProxyRequestTests
{
    private static ProxyRequest Interpret(string head)
    {
        var parse = new HttpHeadParser().ParseRequest(Encoding.Latin1.GetBytes(head));
        Assert.Equal(HttpParseStatus.Complete, parse.Status);
        return ProxyRequest.Interpret(parse.Head!);
    }

    private static string Forwarded(ProxyRequest request) => Encoding.Latin1.GetString(Assert.IsType<ForwardRequest>(request).Head);

    [Fact]
    public void A_curl_request_goes_on_in_origin_form_with_hop_by_hop_fields_gone()
    {
        var request = Assert.IsType<ForwardRequest>(Interpret(HttpHeadParserTests.ClientHeads["curl -x"]));
        Assert.Equal(new StreamTarget("example.com", 80), request.Target);
        Assert.Equal(SocksAuth.None, request.Isolation);
        Assert.Equal(new RequestBody(BodyFraming.None, 0), request.Body);
        Assert.Equal("GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\nConnection: close\r\n\r\n", Forwarded(request));
    }

    [Fact]
    public void Host_comes_from_the_URI_and_every_connection_specific_field_is_dropped()
    {
        var request = Interpret(
            "GET http://web.quid.test:8080/a/b?c=d&e HTTP/1.1\r\nHost: evil.example\r\nConnection: keep-alive, X-Private\r\nKeep-Alive: timeout=5\r\n" +
            "X-Private: secret\r\nProxy-Authorization: Basic YTpi\r\nProxy-Connection: keep-alive\r\nTE: gzip\r\nUpgrade: websocket\r\nCookie: k=v\r\nTrailer: X-Sum\r\n\r\n");
        Assert.Equal("GET /a/b?c=d&e HTTP/1.1\r\nHost: web.quid.test:8080\r\nCookie: k=v\r\nTrailer: X-Sum\r\nConnection: close\r\n\r\n", Forwarded(request));
        Assert.Equal(new StreamTarget("web.quid.test", 8080), ((ForwardRequest)request).Target);
    }

    [Fact]
    public void A_client_accepting_trailers_still_accepts_them_through_the_proxy()
    {
        var request = Interpret("GET http://a/ HTTP/1.1\r\nHost: a\r\nTE: trailers\r\nConnection: TE\r\n\r\n");
        Assert.Equal("GET / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\nConnection: TE, close\r\n\r\n", Forwarded(request));
    }

    [Theory]
    [InlineData("http://a", "GET", "GET / HTTP/1.1")]
    [InlineData("http://a?q=1", "GET", "GET /?q=1 HTTP/1.1")]
    [InlineData("http://a", "OPTIONS", "OPTIONS * HTTP/1.1")]
    [InlineData("HTTP://A:81/x", "GET", "GET /x HTTP/1.1")]
    [InlineData("http://[::1]:8080/", "HEAD", "HEAD / HTTP/1.1")]
    public void Request_targets_become_origin_form(string uri, string method, string requestLine) =>
        Assert.StartsWith(requestLine + "\r\n", Forwarded(Interpret($"{method} {uri} HTTP/1.1\r\nHost: x\r\n\r\n")), StringComparison.Ordinal);

    [Theory]
    [InlineData("http://example.com/", "example.com", 80)]
    [InlineData("http://example.com:8080/", "example.com", 8080)]
    [InlineData("http://example.com:/", "example.com", 80)]
    [InlineData("http://93.184.216.34/", "93.184.216.34", 80)]
    [InlineData("http://[2001:db8::1]:81/", "2001:db8::1", 81)]
    [InlineData("http://web_1.quid.test/", "web_1.quid.test", 80)]
    public void The_destination_stays_a_name_or_a_literal_for_the_exit(string uri, string host, int port) =>
        Assert.Equal(new StreamTarget(host, (ushort)port), Assert.IsType<ForwardRequest>(Interpret($"GET {uri} HTTP/1.1\r\nHost: x\r\n\r\n")).Target);

    [Theory]
    [InlineData("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", "example.com", 443)]
    [InlineData("CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n", "::1", 8443)]
    [InlineData("CONNECT 127.0.0.1:22 HTTP/1.0\r\n\r\n", "127.0.0.1", 22)]
    public void CONNECT_opens_a_tunnel_to_host_and_port(string head, string host, int port) =>
        Assert.Equal(new TunnelRequest(new StreamTarget(host, (ushort)port), SocksAuth.None), Interpret(head));

    [Fact]
    public void Basic_credentials_choose_the_same_isolation_as_SOCKS5_username_and_password()
    {
        var request = Assert.IsType<ForwardRequest>(Interpret(HttpHeadParserTests.ClientHeads["curl -U"]));
        Assert.Equal(SocksAuth.FromUsernamePassword("alice"u8, "secret"u8), request.Isolation);
        var tunnel = Assert.IsType<TunnelRequest>(Interpret("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nProxy-Authorization: basic Ym9iOg==\r\n\r\n"));
        Assert.Equal(SocksAuth.FromUsernamePassword("bob"u8, []), tunnel.Isolation);
    }

    [Fact]
    public void Bodies_are_framed_by_their_length_or_by_chunks()
    {
        Assert.Equal(new RequestBody(BodyFraming.ContentLength, 5), Assert.IsType<ForwardRequest>(Interpret(HttpHeadParserTests.ClientHeads["curl -0 POST"])).Body);
        Assert.Equal(new RequestBody(BodyFraming.ContentLength, 5), Assert.IsType<ForwardRequest>(Interpret("POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n")).Body);
        var chunked = Assert.IsType<ForwardRequest>(Interpret("POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"));
        Assert.Equal(BodyFraming.Chunked, chunked.Body.Framing);
        // The body goes on with its framing, so the framing field goes with it.
        Assert.Contains("Transfer-Encoding: chunked\r\n", Forwarded(chunked), StringComparison.Ordinal);
        Assert.True(Assert.IsType<ForwardRequest>(Interpret("GET http://a/ HTTP/1.0\r\n\r\n")).Http10Client);
    }

    [Theory]
    [InlineData("Content-Length: 5, 5\r\n")]
    [InlineData("Content-Length: 5\r\nContent-Length: 5\r\n")]
    [InlineData("Content-Length: 5 ,5,  5\r\n")]
    public void Identical_repeated_lengths_go_on_as_one(string lengths)
    {
        // RFC 9110 §8.6 lets a recipient replace identical repeated values with one; passed on as
        // they came, they would meet a destination that reads "5, 5" as no number at all.
        var request = Interpret($"POST http://a/ HTTP/1.1\r\nHost: a\r\n{lengths}X-After: 1\r\n\r\n");
        Assert.Equal("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nX-After: 1\r\nConnection: close\r\n\r\n", Forwarded(request));
        Assert.Equal(new RequestBody(BodyFraming.ContentLength, 5), Assert.IsType<ForwardRequest>(request).Body);
    }

    [Fact]
    public void A_repeated_zero_length_goes_on_as_one_zero()
    {
        var request = Interpret("POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 0, 0\r\n\r\n");
        Assert.Equal("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", Forwarded(request));
    }

    [Theory]
    [InlineData("GET / HTTP/1.1\r\nHost: 127.0.0.1:8118\r\n\r\n", HttpErrorKind.NotAProxyRequest)]
    [InlineData("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", HttpErrorKind.NotAProxyRequest)]
    [InlineData("GET https://a/ HTTP/1.1\r\nHost: a\r\n\r\n", HttpErrorKind.UnsupportedScheme)]
    [InlineData("GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", HttpErrorKind.UnsupportedScheme)]
    [InlineData("GET http://user:pw@a/ HTTP/1.1\r\nHost: a\r\n\r\n", HttpErrorKind.BadTarget)]
    [InlineData("GET http://a/#frag HTTP/1.1\r\nHost: a\r\n\r\n", HttpErrorKind.BadTarget)]
    [InlineData("GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", HttpErrorKind.BadTarget)]
    [InlineData("GET http://a:0/ HTTP/1.1\r\nHost: a\r\n\r\n", HttpErrorKind.BadTarget)]
    [InlineData("GET http://a:65536/ HTTP/1.1\r\nHost: a\r\n\r\n", HttpErrorKind.BadTarget)]
    [InlineData("GET http://a%2eb/ HTTP/1.1\r\nHost: a\r\n\r\n", HttpErrorKind.BadTarget)]
    [InlineData("GET http://[fe80::1%25eth0]/ HTTP/1.1\r\nHost: a\r\n\r\n", HttpErrorKind.BadTarget)]
    [InlineData("GET http://[1.2.3.4]/ HTTP/1.1\r\nHost: a\r\n\r\n", HttpErrorKind.BadTarget)]
    [InlineData("GET cat HTTP/1.1\r\nHost: a\r\n\r\n", HttpErrorKind.BadTarget)]
    [InlineData("CONNECT example.com HTTP/1.1\r\nHost: a\r\n\r\n", HttpErrorKind.BadTarget)]
    [InlineData("CONNECT [::1] HTTP/1.1\r\nHost: a\r\n\r\n", HttpErrorKind.BadTarget)]
    [InlineData("CONNECT a:443 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n", HttpErrorKind.ContentOnConnect)]
    [InlineData("GET http://a/ HTTP/1.1\r\n\r\n", HttpErrorKind.BadHost)]
    [InlineData("GET http://a/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", HttpErrorKind.BadHost)]
    [InlineData("POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", HttpErrorKind.AmbiguousFraming)]
    [InlineData("POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", HttpErrorKind.BadTransferEncoding)]
    [InlineData("POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", HttpErrorKind.BadTransferEncoding)]
    [InlineData("POST http://a/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", HttpErrorKind.BadTransferEncoding)]
    [InlineData("POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", HttpErrorKind.BadContentLength)]
    [InlineData("POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n", HttpErrorKind.BadContentLength)]
    [InlineData("POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 5,\r\nContent-Length: 05\r\n\r\n", HttpErrorKind.BadContentLength)]
    [InlineData("POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: -3\r\n\r\n", HttpErrorKind.BadContentLength)]
    [InlineData("POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", HttpErrorKind.BadContentLength)]
    [InlineData("GET http://a/ HTTP/1.1\r\nHost: a\r\nConnection: Content-Length\r\nContent-Length: 3\r\n\r\n", HttpErrorKind.BadConnectionOption)]
    [InlineData("GET http://a/ HTTP/1.1\r\nHost: a\r\nProxy-Authorization: Digest x\r\n\r\n", HttpErrorKind.BadCredentials)]
    [InlineData("GET http://a/ HTTP/1.1\r\nHost: a\r\nProxy-Authorization: Basic !!!\r\n\r\n", HttpErrorKind.BadCredentials)]
    [InlineData("GET http://a/ HTTP/1.1\r\nHost: a\r\nProxy-Authorization: Basic bm9jb2xvbg==\r\n\r\n", HttpErrorKind.BadCredentials)]
    [InlineData("GET http://a/ HTTP/1.1\r\nHost: a\r\nProxy-Authorization: Basic YTpi\r\nProxy-Authorization: Basic YTpi\r\n\r\n", HttpErrorKind.BadCredentials)]
    public void Requests_a_proxy_must_not_guess_about_are_refused_with_a_typed_error(string head, HttpErrorKind kind)
    {
        var refused = Assert.IsType<RefusedRequest>(Interpret(head));
        Assert.Equal(kind, refused.Error.Kind);
        Assert.Equal(400, refused.Error.RequestStatus);
    }

    [Fact]
    public void A_name_longer_than_an_exit_can_be_asked_for_is_refused()
    {
        string host = new('a', StreamTarget.MaxHostLength + 1);
        Assert.Equal(HttpErrorKind.BadTarget, Assert.IsType<RefusedRequest>(Interpret($"GET http://{host}/ HTTP/1.1\r\nHost: a\r\n\r\n")).Error.Kind);
        Assert.IsType<ForwardRequest>(Interpret($"GET http://{host[1..]}/ HTTP/1.1\r\nHost: a\r\n\r\n"));
    }
}
