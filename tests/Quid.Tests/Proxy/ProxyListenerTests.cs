using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Quid.Circuits;
using Quid.Proxy;
using Quid.Proxy.Socks;
using Quid.Tests.Integration;
using Quid.Wire;

namespace Quid.Tests.Proxy;

/// <summary>
/// The front ends' socket adapters on real loopback sockets, with a network that fails in a
/// chosen way: what the application is told for each failure, and what the node was asked for.
/// </summary>
public sealed class ProxyListenerTests
{
    private static readonly IPEndPoint AnyLoopbackPort = new(IPAddress.Loopback, 0);

    /// <summary>A stand-in for the network: records each request and fails it with <paramref name="reason"/>.</summary>
    private static StreamOpener Failing(EndReason reason, ConcurrentQueue<(StreamTarget, SocksAuth)> asked) => (target, isolation, _) =>
    {
        asked.Enqueue((target, isolation));
        return Task.FromException<RelayStream>(new StreamException(reason, $"The exit refused the stream: {reason}."));
    };

    private static async Task<string> ExchangeAsync(IPEndPoint proxy, byte[] request)
    {
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(proxy);
        await socket.SendAsync(request);
        return await ReadToEndAsync(socket);
    }

    private static async Task<string> ReadToEndAsync(Socket socket)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var answer = new List<byte>();
        var buffer = new byte[4096];
        int read;
        while ((read = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token)) > 0) answer.AddRange(buffer.AsSpan(0, read));
        return Encoding.UTF8.GetString([.. answer]);
    }

    [Theory]
    [InlineData(EndReason.ConnectionRefused, "502 Bad Gateway")]
    [InlineData(EndReason.ResolveFailed, "502 Bad Gateway")]
    [InlineData(EndReason.ExitPolicy, "403 Forbidden")]
    [InlineData(EndReason.Timeout, "504 Gateway Timeout")]
    [InlineData(EndReason.CircuitClosed, "502 Bad Gateway")]
    public async Task Each_stream_failure_gets_its_status_and_a_page_naming_the_destination_and_the_reason(EndReason reason, string status)
    {
        var asked = new ConcurrentQueue<(StreamTarget, SocksAuth)>();
        await using var proxy = new HttpProxyListener(AnyLoopbackPort, Failing(reason, asked), TimeProvider.System, NullLogger.Instance);
        proxy.Start();
        foreach (string request in new[]
        {
            "GET http://web.quid.test:8080/x HTTP/1.1\r\nHost: web.quid.test:8080\r\nProxy-Authorization: Basic YWxpY2U6cHc=\r\n\r\n",
            "CONNECT web.quid.test:8080 HTTP/1.1\r\nHost: web.quid.test:8080\r\nProxy-Authorization: Basic YWxpY2U6cHc=\r\n\r\n",
        })
        {
            string answer = await ExchangeAsync(proxy.LocalEndPoint, Encoding.ASCII.GetBytes(request));
            Assert.StartsWith($"HTTP/1.1 {status}\r\n", answer, StringComparison.Ordinal);
            Assert.Contains($"Quid could not open a connection to web.quid.test:8080: The exit refused the stream: {reason}.", answer, StringComparison.Ordinal);
        }
        // The name went to the network as a name, with the credentials as the isolation key.
        Assert.All(asked, a => Assert.Equal((new StreamTarget("web.quid.test", 8080), SocksAuth.FromUsernamePassword("alice"u8, "pw"u8)), a));
        Assert.Equal(2, asked.Count);
    }

    [Theory]
    [InlineData("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "400 Bad Request", "not a web site")]
    [InlineData("\u0005\u0001\u0000", "400 Bad Request", "not an HTTP/1.x request line")]
    [InlineData("GET http://a/ HTTP/2.0\r\n\r\n", "505 HTTP Version Not Supported", "Only HTTP/1.x")]
    [InlineData("GET https://a/ HTTP/1.1\r\nHost: a\r\n\r\n", "400 Bad Request", "CONNECT")]
    public async Task A_request_the_proxy_cannot_serve_is_answered_with_why(string request, string status, string why)
    {
        var asked = new ConcurrentQueue<(StreamTarget, SocksAuth)>();
        await using var proxy = new HttpProxyListener(AnyLoopbackPort, Failing(EndReason.Internal, asked), TimeProvider.System, NullLogger.Instance);
        proxy.Start();
        string answer = await ExchangeAsync(proxy.LocalEndPoint, Encoding.Latin1.GetBytes(request));
        Assert.StartsWith($"HTTP/1.1 {status}\r\n", answer, StringComparison.Ordinal);
        Assert.Contains(why, answer, StringComparison.Ordinal);
        Assert.Empty(asked);
    }

    [Fact]
    public async Task A_head_over_the_limit_gets_431_even_while_the_application_keeps_sending()
    {
        var asked = new ConcurrentQueue<(StreamTarget, SocksAuth)>();
        await using var proxy = new HttpProxyListener(AnyLoopbackPort, Failing(EndReason.Internal, asked), TimeProvider.System, NullLogger.Instance);
        proxy.Start();
        // 64 KiB of fields: twice the limit, so the proxy answers while unread bytes are still arriving.
        byte[] request = Encoding.ASCII.GetBytes("GET http://a/ HTTP/1.1\r\nHost: a\r\n" + string.Concat(Enumerable.Repeat("X-Filler: " + new string('f', 500) + "\r\n", 128)) + "\r\n");
        string answer = await ExchangeAsync(proxy.LocalEndPoint, request);
        Assert.StartsWith("HTTP/1.1 431 Request Header Fields Too Large\r\n", answer, StringComparison.Ordinal);
        Assert.Empty(asked);
    }

    [Theory]
    [InlineData("ZZ\r\n")]
    [InlineData("5\nhello\r\n")]
    [InlineData("5;\u0001\r\nhello\r\n")]
    [InlineData("5\r\nhello0\r\n\r\n")]
    public async Task A_chunked_body_with_bad_framing_is_refused_before_the_network_hears_of_the_request(string body)
    {
        var asked = new ConcurrentQueue<(StreamTarget, SocksAuth)>();
        await using var proxy = new HttpProxyListener(AnyLoopbackPort, Failing(EndReason.Internal, asked), TimeProvider.System, NullLogger.Instance);
        proxy.Start();
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(proxy.LocalEndPoint);
        // The head alone first: the proxy must wait for the body's first chunk line before it opens anything.
        await socket.SendAsync("POST http://web.quid.test/ HTTP/1.1\r\nHost: web.quid.test\r\nTransfer-Encoding: chunked\r\n\r\n"u8.ToArray());
        await socket.SendAsync(Encoding.Latin1.GetBytes(body));
        string answer = await ReadToEndAsync(socket);
        Assert.StartsWith("HTTP/1.1 400 Bad Request\r\n", answer, StringComparison.Ordinal);
        Assert.Contains("chunk", answer, StringComparison.OrdinalIgnoreCase);
        Assert.Empty(asked);
    }

    [Fact]
    public async Task A_well_framed_chunked_body_goes_to_the_network()
    {
        var asked = new ConcurrentQueue<(StreamTarget, SocksAuth)>();
        await using var proxy = new HttpProxyListener(AnyLoopbackPort, Failing(EndReason.ConnectionRefused, asked), TimeProvider.System, NullLogger.Instance);
        proxy.Start();
        string answer = await ExchangeAsync(proxy.LocalEndPoint,
            "POST http://web.quid.test/ HTTP/1.1\r\nHost: web.quid.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"u8.ToArray());
        Assert.StartsWith("HTTP/1.1 502 Bad Gateway\r\n", answer, StringComparison.Ordinal);
        Assert.Equal(new StreamTarget("web.quid.test", 80), Assert.Single(asked).Item1);
    }

    [Fact]
    public async Task An_application_sending_IP_addresses_over_SOCKS_is_warned_about_once_per_port_and_the_address_is_never_logged()
    {
        var asked = new ConcurrentQueue<(StreamTarget, SocksAuth)>();
        var log = new LogCapture(LogLevel.Information);
        await using var socks = new SocksListener(AnyLoopbackPort, Failing(EndReason.ConnectionRefused, asked), (_, _, _) => Task.FromResult<IPAddress[]>([]),
            TimeProvider.System, log.CreateLogger("Quid"));
        socks.Start();
        byte[] ipv4To443 = [5, 1, 0, 5, 1, 0, 1, 192, 0, 2, 7, 0x01, 0xBB];
        byte[] ipv6To443 = [5, 1, 0, 5, 1, 0, 4, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x42, 0x01, 0xBB];
        byte[] socks4To80 = [4, 1, 0, 80, 198, 51, 100, 9, 0];
        byte[] nameTo8080 = [5, 1, 0, 5, 1, 0, 3, 13, .. "web.quid.test"u8, 0x1F, 0x90];
        foreach (var request in new[] { ipv4To443, ipv4To443, ipv6To443, socks4To80, socks4To80, nameTo8080 })
            await ExchangeAsync(socks.LocalEndPoint, request);
        Assert.Equal(6, asked.Count);

        var warnings = log.Lines.Where(l => l.Text.Contains("resolved", StringComparison.Ordinal)).ToList();
        Assert.Equal(2, warnings.Count);
        Assert.All(warnings, w => Assert.True(w.Level >= LogLevel.Information));
        Assert.Contains(warnings, w => w.Text.Contains("port 443", StringComparison.Ordinal));
        Assert.Contains(warnings, w => w.Text.Contains("port 80", StringComparison.Ordinal));
        Assert.DoesNotContain(log.Lines, l => l.Text.Contains("192.0.2", StringComparison.Ordinal) || l.Text.Contains("2001:db8", StringComparison.Ordinal)
            || l.Text.Contains("198.51.100", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(EndReason.ConnectionRefused, 0x05)]
    [InlineData(EndReason.ResolveFailed, 0x04)]
    [InlineData(EndReason.ExitPolicy, 0x02)]
    [InlineData(EndReason.Timeout, 0x06)]
    [InlineData(EndReason.Internal, 0x01)]
    public async Task Each_stream_failure_gets_its_SOCKS5_reply_code(EndReason reason, byte code)
    {
        var asked = new ConcurrentQueue<(StreamTarget, SocksAuth)>();
        await using var socks = new SocksListener(AnyLoopbackPort, Failing(reason, asked), (_, _, _) => Task.FromResult<IPAddress[]>([]), TimeProvider.System, NullLogger.Instance);
        socks.Start();
        string answer = await ExchangeAsync(socks.LocalEndPoint, [5, 1, 0, 5, 1, 0, 3, 13, .. "web.quid.test"u8, 0x1F, 0x90]);
        Assert.Equal(new byte[] { 5, 0, 5, code, 0, 1, 0, 0, 0, 0, 0, 0 }, Encoding.UTF8.GetBytes(answer));
        Assert.Equal((new StreamTarget("web.quid.test", 8080), SocksAuth.None), Assert.Single(asked));
    }

    [Theory]
    [InlineData(0x02)] // BIND
    [InlineData(0x03)] // UDP ASSOCIATE
    public async Task BIND_and_UDP_ASSOCIATE_are_answered_command_not_supported(byte command)
    {
        var asked = new ConcurrentQueue<(StreamTarget, SocksAuth)>();
        await using var socks = new SocksListener(AnyLoopbackPort, Failing(EndReason.Internal, asked), (_, _, _) => Task.FromResult<IPAddress[]>([]), TimeProvider.System, NullLogger.Instance);
        socks.Start();
        string answer = await ExchangeAsync(socks.LocalEndPoint, [5, 1, 0, 5, command, 0, 1, 0, 0, 0, 0, 0, 0]);
        Assert.Equal(new byte[] { 5, 0, 5, 7, 0, 1, 0, 0, 0, 0, 0, 0 }, Encoding.UTF8.GetBytes(answer));
        Assert.Empty(asked);
    }

    [Fact]
    public async Task A_RESOLVE_answered_with_no_address_at_all_is_host_unreachable()
    {
        var asked = new ConcurrentQueue<(StreamTarget, SocksAuth)>();
        await using var socks = new SocksListener(AnyLoopbackPort, Failing(EndReason.Internal, asked), (_, _, _) => Task.FromResult<IPAddress[]>([]), TimeProvider.System, NullLogger.Instance);
        socks.Start();
        string answer = await ExchangeAsync(socks.LocalEndPoint, [5, 1, 0, 5, 0xF0, 0, 3, 4, .. "name"u8, 0, 0]);
        Assert.Equal(new byte[] { 5, 0, 5, 4, 0, 1, 0, 0, 0, 0, 0, 0 }, Encoding.UTF8.GetBytes(answer));
    }

    [Fact]
    public async Task Connections_over_the_cap_are_closed_at_once_with_one_warning_and_a_freed_place_is_served_again()
    {
        var asked = new ConcurrentQueue<(StreamTarget, SocksAuth)>();
        var log = new LogCapture(LogLevel.Information);
        await using var socks = new SocksListener(AnyLoopbackPort, Failing(EndReason.Internal, asked), (_, _, _) => Task.FromResult<IPAddress[]>([]),
            TimeProvider.System, log.CreateLogger("Quid"), new ProxyOptions { MaxConnections = 2 });
        socks.Start();
        var first = await ConnectAsync(socks.LocalEndPoint);
        using var second = await ConnectAsync(socks.LocalEndPoint);
        await Eventually.WaitUntilAsync(() => socks.OpenConnections == 2, TimeSpan.FromSeconds(10), "two connections to be served");
        for (int i = 0; i < 5; i++)
        {
            using var over = await ConnectAsync(socks.LocalEndPoint);
            Assert.Equal("", await ReadToEndOrResetAsync(over));
        }
        Assert.Single(log.Lines, l => l.Level == LogLevel.Warning && l.Text.Contains("2 connections open, its limit", StringComparison.Ordinal));

        first.Dispose();
        await Eventually.WaitUntilAsync(() => socks.OpenConnections == 1, TimeSpan.FromSeconds(10), "the closed connection to free its place");
        using var third = await ConnectAsync(socks.LocalEndPoint);
        await third.SendAsync(new byte[] { 5, 1, 0 });
        var reply = new byte[2];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        Assert.Equal(2, await third.ReceiveAsync(reply, SocketFlags.None, timeout.Token));
        Assert.Equal(new byte[] { 5, 0 }, reply);
    }

    private static async Task<Socket> ConnectAsync(IPEndPoint endPoint)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(endPoint);
        return socket;
    }

    /// <summary>What the peer sends before it closes; a reset counts as closing.</summary>
    private static async Task<string> ReadToEndOrResetAsync(Socket socket)
    {
        try
        {
            return await ReadToEndAsync(socket);
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
        {
            return "";
        }
    }

    public static TheoryData<string> NotLoopback => ["0.0.0.0", "::", "192.0.2.1", "::ffff:10.0.0.1"];

    [Theory]
    [MemberData(nameof(NotLoopback))]
    public async Task Neither_front_end_binds_anything_but_loopback(string address)
    {
        var endPoint = new IPEndPoint(IPAddress.Parse(address), 0);
        var asked = new ConcurrentQueue<(StreamTarget, SocksAuth)>();
        var http = Assert.Throws<ArgumentException>(() => new HttpProxyListener(endPoint, Failing(EndReason.Internal, asked), TimeProvider.System, NullLogger.Instance));
        Assert.Contains("HTTP proxy listens on loopback only", http.Message, StringComparison.Ordinal);
        var socks = Assert.Throws<ArgumentException>(() => new SocksListener(endPoint, Failing(EndReason.Internal, asked), (_, _, _) => Task.FromResult<IPAddress[]>([]), TimeProvider.System, NullLogger.Instance));
        Assert.Contains("SOCKS proxy listens on loopback only", socks.Message, StringComparison.Ordinal);
        // And loopback itself, v4 and v6, is fine.
        await using var v6 = new HttpProxyListener(new IPEndPoint(IPAddress.IPv6Loopback, 0), Failing(EndReason.Internal, asked), TimeProvider.System, NullLogger.Instance);
        Assert.True(IPAddress.IsLoopback(v6.LocalEndPoint.Address));
    }
}
