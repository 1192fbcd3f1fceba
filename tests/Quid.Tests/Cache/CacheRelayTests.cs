using System.Text;
using System.Threading.Channels;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Quid.Cache;
using Quid.Tests.Integration;

namespace Quid.Tests.Cache;

/// <summary>The exit cache's relay on in-memory connections, with the clock in the test's hands.</summary>
public sealed class CacheRelayTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("quid-cache-relay-").FullName;
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 6, 12, 0, 0, TimeSpan.Zero));

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private ExitCache NewCache() => new(CacheStore.Open(_directory, 16 << 20, _time, NullLogger.Instance), _time, NullLogger.Instance);

    private const string Request = "GET /x HTTP/1.1\r\nHost: example.org\r\n\r\n";
    private const string Response = "HTTP/1.1 200 OK\r\nCache-Control: max-age=3600\r\nContent-Length: 5\r\n\r\nhello";

    /// <summary>One exchange on its own connection, the origin answering <paramref name="response"/> after <paramref name="originTime"/> of the test's clock; what reached the origin.</summary>
    private async Task<string> ExchangeAsync(ExitCache cache, object circuit, TimeSpan originTime, string response = Response)
    {
        var client = new Side(_time);
        var origin = new Side(_time);
        var relay = cache.RelayAsync(client, origin, "example.org", 80, circuit, (_, _) => throw new InvalidOperationException("handed over"));
        client.Send(Request);
        await Eventually.WaitUntilAsync(() => origin.Received.Length > 0, TimeSpan.FromSeconds(5), "the request to reach the origin");
        _time.Advance(originTime);
        origin.Send(response);
        string body = response[(response.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4)..];
        await Eventually.WaitUntilAsync(() => client.Received.EndsWith(body, StringComparison.Ordinal), TimeSpan.FromSeconds(5), "the response");
        client.EndInput();
        await relay.WaitAsync(TimeSpan.FromSeconds(10));
        return origin.Received;
    }

    [Fact]
    public async Task A_stale_object_the_origin_answers_in_full_is_replaced_by_the_new_answer()
    {
        using var cache = NewCache();
        const string stale = "HTTP/1.1 200 OK\r\nCache-Control: max-age=0\r\nETag: \"1\"\r\nContent-Length: 3\r\n\r\nold";
        await ExchangeAsync(cache, new object(), TimeSpan.Zero, stale);
        await ExchangeAsync(cache, new object(), TimeSpan.Zero, stale);
        Assert.Single(cache.Store.Entries());

        string asked = await ExchangeAsync(cache, new object(), TimeSpan.Zero,
            "HTTP/1.1 200 OK\r\nCache-Control: max-age=0\r\nETag: \"2\"\r\nContent-Length: 3\r\n\r\nnew");
        Assert.Contains("If-None-Match: \"1\"", asked, StringComparison.Ordinal);
        var entry = Assert.Single(cache.Store.Entries());
        using var body = cache.Store.OpenBody(entry)!;
        Assert.Equal("new", new StreamReader(body).ReadToEnd());
    }

    [Fact]
    public async Task A_hit_is_not_answered_before_the_origin_first_answered_it()
    {
        using var cache = NewCache();
        object alice = new(), bob = new(), carol = new();
        await ExchangeAsync(cache, alice, TimeSpan.FromSeconds(1));
        await ExchangeAsync(cache, bob, TimeSpan.FromSeconds(5));
        Assert.Equal(5, Assert.Single(cache.Store.Entries()).FirstByte.TotalSeconds);

        var client = new Side(_time);
        var origin = new Side(_time);
        var relay = cache.RelayAsync(client, origin, "example.org", 80, carol, (_, _) => throw new InvalidOperationException("handed over"));
        var asked = _time.GetUtcNow();
        client.Send(Request);
        // The clock moves on 100 ms each time the condition is checked; the answer may come only once
        // 5 s of it have passed since the request.
        await Eventually.WaitUntilAsync(() =>
        {
            if (client.FirstWrite is null) _time.Advance(TimeSpan.FromMilliseconds(100));
            return client.Received.EndsWith("hello", StringComparison.Ordinal);
        }, TimeSpan.FromSeconds(10), "the hit");
        Assert.True(client.FirstWrite - asked >= TimeSpan.FromSeconds(5), $"the hit came {client.FirstWrite - asked} after the request");
        Assert.Empty(origin.Received);
        Assert.DoesNotContain("Age:", client.Received, StringComparison.Ordinal);
        client.EndInput();
        await relay.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Theory]
    [InlineData("GET /x HTTP/1.1\r\nHost: elsewhere.org\r\n\r\n")]
    [InlineData("GET /x HTTP/1.0\r\nHost: example.org\r\n\r\n")]
    [InlineData("GET /x HTTP/1.1\r\nHost: example.org\r\nCookie: a=b\r\n\r\n")]
    [InlineData("\u0016\u0003\u0001\u0002\u0000\u0001\u0000\u0001\u00fc\u0003\u0003")]
    public async Task What_the_cache_does_not_answer_goes_to_the_splice_byte_for_byte(string sent)
    {
        using var cache = NewCache();
        var client = new Side(_time);
        var origin = new Side(_time);
        string? handed = null;
        var relay = cache.RelayAsync(client, origin, "example.org", 80, new object(), (toOrigin, toClient) =>
        {
            handed = Encoding.Latin1.GetString(toOrigin.Span) + "|" + Encoding.Latin1.GetString(toClient.Span);
            return Task.CompletedTask;
        });
        client.Send(sent);
        if (!sent.StartsWith("GET", StringComparison.Ordinal)) client.EndInput(); // a TLS client waits for the server: only its close ends the read
        await relay.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(sent + "|", handed);
        Assert.Empty(origin.Received);
    }

    /// <summary>One side of a connection: what the test sends arrives in the relay's reads; what the relay writes is kept, with the clock's time of its first byte.</summary>
    private sealed class Side(TimeProvider time) : Stream
    {
        private readonly Channel<byte[]> _incoming = Channel.CreateUnbounded<byte[]>();
        private readonly StringBuilder _received = new();
        private byte[] _pending = [];
        private int _at;

        public DateTimeOffset? FirstWrite { get; private set; }

        public string Received
        {
            get { lock (_received) return _received.ToString(); }
        }

        public void Send(string text) => _incoming.Writer.TryWrite(Encoding.Latin1.GetBytes(text));

        public void EndInput() => _incoming.Writer.TryComplete();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_at == _pending.Length)
            {
                if (!await _incoming.Reader.WaitToReadAsync(cancellationToken)) return 0;
                _pending = await _incoming.Reader.ReadAsync(cancellationToken);
                _at = 0;
            }
            int n = Math.Min(buffer.Length, _pending.Length - _at);
            _pending.AsSpan(_at, n).CopyTo(buffer.Span);
            _at += n;
            return n;
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            lock (_received)
            {
                FirstWrite ??= time.GetUtcNow();
                _received.Append(Encoding.Latin1.GetString(buffer.Span));
            }
            return ValueTask.CompletedTask;
        }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
        public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
