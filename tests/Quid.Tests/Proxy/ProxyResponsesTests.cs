using System.Text;
using Quid.Proxy.Http;
using Quid.Wire;
using Quid.Wire.Http;

namespace Quid.Tests.Proxy;

public class ProxyResponsesTests
{
    private static HttpResponseHead Response(string text) =>
        new HttpHeadParser().ParseResponse(Encoding.Latin1.GetBytes(text)).Head!;

    [Fact]
    public void A_response_reaches_the_application_without_hop_by_hop_fields_and_with_Connection_close()
    {
        var head = Response("HTTP/1.0 200 OK\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\nX-Hop: 1\r\nProxy-Authenticate: Basic\r\nUpgrade: h2c\r\nContent-Length: 2\r\nSet-Cookie: a=b\r\n\r\n");
        Assert.Equal("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nSet-Cookie: a=b\r\nConnection: close\r\n\r\n",
            Encoding.Latin1.GetString(ProxyResponses.Forward(head, dechunk: false)));
    }

    [Fact]
    public void Chunked_framing_passes_through_and_a_conflicting_length_goes()
    {
        var head = Response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 10\r\nConnection: Transfer-Encoding\r\n\r\n");
        Assert.Equal("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            Encoding.Latin1.GetString(ProxyResponses.Forward(head, dechunk: false)));
        Assert.True(ProxyResponses.IsChunkedOnly(head));
    }

    [Fact]
    public void For_an_HTTP_1_0_client_the_chunked_framing_comes_off_and_the_close_ends_the_body()
    {
        var head = Response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n");
        Assert.Equal("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n",
            Encoding.Latin1.GetString(ProxyResponses.Forward(head, dechunk: true)));
        Assert.False(ProxyResponses.IsChunkedOnly(Response("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")));
    }

    [Fact]
    public void An_interim_response_is_passed_on_without_closing()
    {
        Assert.Equal("HTTP/1.1 100 Continue\r\n\r\n", Encoding.Latin1.GetString(ProxyResponses.Forward(Response("HTTP/1.1 100 Continue\r\n\r\n"), dechunk: false)));
    }

    [Fact]
    public void An_error_page_names_what_failed_escaped_and_closes()
    {
        string page = Encoding.UTF8.GetString(ProxyResponses.Error(502, "Quid could not reach <a>:80: connection refused."));
        Assert.StartsWith("HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: ", page, StringComparison.Ordinal);
        Assert.Contains("\r\nConnection: close\r\n\r\n", page, StringComparison.Ordinal);
        Assert.Contains("<p>Quid could not reach &lt;a&gt;:80: connection refused.</p>", page, StringComparison.Ordinal);
        int body = page.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4;
        Assert.Contains($"Content-Length: {Encoding.UTF8.GetByteCount(page[body..])}\r\n", page, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(EndReason.ExitPolicy, 403)]
    [InlineData(EndReason.Timeout, 504)]
    [InlineData(EndReason.ConnectionRefused, 502)]
    [InlineData(EndReason.ResolveFailed, 502)]
    [InlineData(EndReason.Unreachable, 502)]
    [InlineData(EndReason.CircuitClosed, 502)]
    [InlineData(EndReason.Internal, 502)]
    [InlineData(EndReason.Protocol, 502)]
    public void Each_way_a_stream_fails_has_its_status(EndReason reason, int status) =>
        Assert.Equal(status, ProxyResponses.StatusFor(reason));
}
