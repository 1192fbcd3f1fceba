using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Quid.Services.Share;
using Quid.Tests.Integration;

namespace Quid.Tests.Services.Share;

/// <summary>
/// What a hostile or broken client can send: malformed, oversized, truncated and slow request
/// heads, on real sockets and through <see cref="ShareServer.ServeAsync"/> directly on a fake
/// clock, and random bytes. Each gets its 4xx or a clean close; nothing escapes as an exception.
/// </summary>
public sealed class ShareHostileInputTests : IAsyncLifetime
{
    private static readonly ShareOptions Options = new();

    private readonly string _folder = ShareHost.NewFolder();
    private ShareHost _host = null!;

    private string Shared => Path.Join(_folder, "shared");

    public Task InitializeAsync()
    {
        ShareHost.Write(Shared, "file.txt", "the file\n"u8.ToArray());
        _host = ShareHost.Start(_folder, new SharedFiles([Shared]));
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _host.DisposeAsync();

    [Theory]
    [InlineData("\u0016\u0003\u0001\u0002\u0000\u0001\u0000\u0001\u00fc\u0003\u0003", "400 Bad Request")]
    [InlineData("\u0005\u0001\u0000", "400 Bad Request")]
    [InlineData("GARBAGE\r\n\r\n", "400 Bad Request")]
    [InlineData("GET / HTTP/2.0\r\nHost: a\r\n\r\n", "505 HTTP Version Not Supported")]
    [InlineData("GET / HTTP/1.1\r\n\r\n", "400 Bad Request")]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "400 Bad Request")]
    [InlineData("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", "400 Bad Request")]
    [InlineData("GET / HTTP/1.1\rHost: a\r\n\r\n", "400 Bad Request")]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", "400 Bad Request")]
    [InlineData("GET / HTTP/1.1\r\nHost : a\r\n\r\n", "400 Bad Request")]
    [InlineData("GET / HTTP/1.1\r\nHost: a\u0000b\r\n\r\n", "400 Bad Request")]
    [InlineData("GET /file.txt\u0000 HTTP/1.1\r\nHost: a\r\n\r\n", "400 Bad Request")]
    [InlineData("GET /%00 HTTP/1.1\r\nHost: a\r\n\r\n", "400 Bad Request")]
    [InlineData("GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n", "400 Bad Request")]
    [InlineData("GET /%c0%af HTTP/1.1\r\nHost: a\r\n\r\n", "400 Bad Request")]
    [InlineData("GET /..\\..\\etc\\passwd HTTP/1.1\r\nHost: a\r\n\r\n", "400 Bad Request")]
    [InlineData("GET \\file.txt HTTP/1.1\r\nHost: a\r\n\r\n", "400 Bad Request")]
    [InlineData("GET file.txt HTTP/1.1\r\nHost: a\r\n\r\n", "400 Bad Request")]
    [InlineData("GET * HTTP/1.1\r\nHost: a\r\n\r\n", "400 Bad Request")]
    [InlineData("GET /file.txt#x HTTP/1.1\r\nHost: a\r\n\r\n", "400 Bad Request")]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", "400 Bad Request")]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", "400 Bad Request")]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "400 Bad Request")]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "501 Not Implemented")]
    [InlineData("GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", "400 Bad Request")]
    public async Task A_malformed_request_gets_its_status_and_the_connection_closes(string request, string status)
    {
        string answer = await _host.RawAsync(Encoding.Latin1.GetBytes(request));
        Assert.StartsWith($"HTTP/1.1 {status}\r\n", answer, StringComparison.Ordinal);
        Assert.Contains("Connection: close\r\n", answer, StringComparison.Ordinal);
        Assert.DoesNotContain("the file", answer, StringComparison.Ordinal);
        await TheShareStillServesAsync();
    }

    [Fact]
    public async Task An_unknown_method_gets_405_naming_the_allowed_ones_and_the_connection_stays()
    {
        string answer = await _host.RawAsync("BREW /file.txt HTTP/1.1\r\nHost: a\r\n\r\nGET /file.txt HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"u8.ToArray());
        Assert.StartsWith("HTTP/1.1 405 Method Not Allowed\r\n", answer, StringComparison.Ordinal);
        Assert.Contains("Allow: GET, HEAD\r\n", answer, StringComparison.Ordinal);
        Assert.EndsWith("the file\n", answer, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_head_over_8_KiB_or_with_over_100_fields_gets_431()
    {
        string big = "GET / HTTP/1.1\r\nHost: a\r\nX-Filler: " + new string('f', 9000) + "\r\n\r\n";
        Assert.StartsWith("HTTP/1.1 431 Request Header Fields Too Large\r\n", await _host.RawAsync(Encoding.ASCII.GetBytes(big)), StringComparison.Ordinal);
        string many = "GET / HTTP/1.1\r\nHost: a\r\n" + string.Concat(Enumerable.Range(0, 100).Select(i => $"X-{i}: y\r\n")) + "\r\n";
        Assert.StartsWith("HTTP/1.1 431 Request Header Fields Too Large\r\n", await _host.RawAsync(Encoding.ASCII.GetBytes(many)), StringComparison.Ordinal);
        // 64 KiB of endless head: refused at the limit while the client is still sending.
        Assert.StartsWith("HTTP/1.1 431 Request Header Fields Too Large\r\n", await _host.RawAsync(new byte[64 * 1024].Select(_ => (byte)'G').ToArray()), StringComparison.Ordinal);
        await TheShareStillServesAsync();
    }

    [Fact]
    public async Task A_head_cut_off_by_the_client_gets_400_and_an_idle_close_gets_nothing()
    {
        using (var socket = new Socket(SocketType.Stream, ProtocolType.Tcp))
        {
            await socket.ConnectAsync(_host.Listener.LocalEndPoint);
            await socket.SendAsync("GET /file.txt HTTP/1.1\r\nHost:"u8.ToArray());
            socket.Shutdown(SocketShutdown.Send);
            Assert.StartsWith("HTTP/1.1 400 Bad Request\r\n", await ShareHost.ReadToEndAsync(socket), StringComparison.Ordinal);
        }
        using (var socket = new Socket(SocketType.Stream, ProtocolType.Tcp))
        {
            await socket.ConnectAsync(_host.Listener.LocalEndPoint);
            await socket.SendAsync("\r\n"u8.ToArray());
            socket.Shutdown(SocketShutdown.Send);
            Assert.Equal("", await ShareHost.ReadToEndAsync(socket));
        }
        await TheShareStillServesAsync();
    }

    [Fact]
    public async Task Pipelined_requests_are_answered_in_order_and_HTTP_1_0_gets_one_exchange()
    {
        string answer = await _host.RawAsync("HEAD /file.txt HTTP/1.1\r\nHost: a\r\n\r\nGET /missing HTTP/1.1\r\nHost: a\r\n\r\nGET /file.txt HTTP/1.0\r\n\r\nGET /file.txt HTTP/1.1\r\nHost: a\r\n\r\n"u8.ToArray());
        var statuses = Regex.Matches(answer, "HTTP/1\\.1 \\d{3} [A-Za-z ]+(?=\r\n)").Select(m => m.Value).ToList();
        Assert.Equal(["HTTP/1.1 200 OK", "HTTP/1.1 404 Not Found", "HTTP/1.1 200 OK"], statuses);
        Assert.EndsWith("Connection: close\r\n\r\nthe file\n", answer, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_slow_head_is_timed_out_with_408_and_an_idle_connection_is_closed_quietly()
    {
        var time = new FakeTimeProvider();
        var server = new ShareServer(new SharedFiles([Shared]), time, NullLogger.Instance);

        var slow = new TestConnection();
        var serving = server.ServeAsync(slow, CancellationToken.None);
        slow.Send("GET /file.txt HTTP/1.1\r\nHo");
        await AdvancePastAsync(time, slow, serving, Options.HeadTimeout);
        Assert.StartsWith("HTTP/1.1 408 Request Timeout\r\n", slow.WrittenText, StringComparison.Ordinal);

        // One exchange, then nothing: the keep-alive connection is closed at the head timeout, with nothing to say.
        var idle = new TestConnection();
        serving = server.ServeAsync(idle, CancellationToken.None);
        idle.Send("GET /file.txt HTTP/1.1\r\nHost: a\r\n\r\n");
        await AdvancePastAsync(time, idle, serving, Options.HeadTimeout);
        Assert.StartsWith("HTTP/1.1 200 OK\r\n", idle.WrittenText, StringComparison.Ordinal);
        Assert.EndsWith("the file\n", idle.WrittenText, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_stalled_upload_is_abandoned_at_the_body_timeout_and_leaves_nothing()
    {
        var time = new FakeTimeProvider();
        string inbox = Path.Join(_folder, "inbox");
        var server = new ShareServer(new UploadInbox(inbox), time, NullLogger.Instance);
        var stalled = new TestConnection();
        var serving = server.ServeAsync(stalled, CancellationToken.None);
        stalled.Send("PUT /stalled.bin HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n0123456789");
        await Eventually.WaitUntilAsync(() => Directory.EnumerateFiles(inbox).Any(), TimeSpan.FromSeconds(10), "the upload to start");
        await AdvancePastAsync(time, stalled, serving, Options.BodyTimeout);
        Assert.Empty(Directory.EnumerateFileSystemEntries(inbox));
    }

    [Fact]
    public async Task Cancelling_ends_a_connection_without_an_exception()
    {
        var server = new ShareServer(new SharedFiles([Shared]), TimeProvider.System, NullLogger.Instance);
        using var stopping = new CancellationTokenSource();
        var connection = new TestConnection();
        var serving = server.ServeAsync(connection, stopping.Token);
        await Eventually.WaitUntilAsync(() => connection.ServerWaiting, TimeSpan.FromSeconds(10), "the server to wait for a request");
        await stopping.CancelAsync();
        await serving.WaitAsync(TimeSpan.FromSeconds(10));
    }

    /// <summary>Once the server has read everything and waits, moves the clock past <paramref name="timeout"/>: the connection must end.</summary>
    private static async Task AdvancePastAsync(FakeTimeProvider time, TestConnection connection, Task serving, TimeSpan timeout)
    {
        await Eventually.WaitUntilAsync(() => connection.ServerWaiting, TimeSpan.FromSeconds(10), "the server to read what was sent");
        Assert.False(serving.IsCompleted);
        time.Advance(timeout - TimeSpan.FromSeconds(1));
        Assert.False(serving.IsCompleted);
        time.Advance(TimeSpan.FromSeconds(2));
        await serving.WaitAsync(TimeSpan.FromSeconds(10));
    }

    private async Task TheShareStillServesAsync()
    {
        var (_, body, _) = await Curl.RunAsync("-s", _host.Url("/file.txt"));
        Assert.Equal("the file\n", body);
    }
}
