using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Quid.Cache;

namespace Quid.Tests.Cache;

/// <summary>
/// Random, truncated, oversized and mutated exchanges through <see cref="ExitCache.RelayAsync"/>:
/// a client and an origin that each send their bytes in random pieces and close. The relay must
/// always end, never throw, keep the store within its quota, and store only whole bodies. Seeded,
/// so a failure reproduces.
/// </summary>
public sealed class CacheRelayFuzzTests : IDisposable
{
    private static readonly string[] Requests =
    [
        "GET /a HTTP/1.1\r\nHost: example.org\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: example.org\r\nAccept-Language: en\r\n\r\nGET /b HTTP/1.1\r\nHost: example.org\r\n\r\n",
        "HEAD /a HTTP/1.1\r\nHost: example.org\r\n\r\n",
        "GET /c HTTP/1.1\r\nHost: example.org\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: example.org\r\nContent-Length: 3\r\n\r\nabc",
        "GET /a HTTP/1.1\r\nHost: elsewhere.org\r\n\r\n",
        "GET /a HTTP/1.0\r\n\r\n",
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    ];

    private static readonly string[] Responses =
    [
        "HTTP/1.1 200 OK\r\nCache-Control: max-age=3600\r\nContent-Length: 5\r\n\r\nhello",
        "HTTP/1.1 200 OK\r\nCache-Control: max-age=0\r\nETag: \"x\"\r\nTransfer-Encoding: chunked\r\n\r\n5;e=1\r\nhello\r\n0\r\nT: v\r\n\r\n",
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nVary: Accept-Language\r\nCache-Control: max-age=60\r\nContent-Length: 3\r\n\r\nabc",
        "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nCache-Control: max-age=60\r\n\r\n",
        "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n\r\nuntil the close",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello",
        "HTTP/1.1 200 OK\r\nLast-Modified: Mon, 01 Jan 2024 00:00:00 GMT\r\nDate: Tue, 01 Oct 2024 00:00:00 GMT\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.1 200 OK\r\nCache-Control: max-age=3600\r\nContent-Length: 99999999999\r\n\r\nshort",
    ];

    private readonly string _directory = Directory.CreateTempSubdirectory("quid-cache-fuzz-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task Random_and_mutated_exchanges_always_end_and_store_only_whole_bodies()
    {
        const long quota = 8 << 20;
        using var cache = new ExitCache(CacheStore.Open(_directory, quota, TimeProvider.System, NullLogger.Instance), TimeProvider.System, NullLogger.Instance);
        object[] circuits = [new(), new(), new()];
        var random = new Random(20261206);
        int handedOver = 0;
        for (int i = 0; i < 3000; i++)
        {
            var client = new ScriptedStream(Input(random, Requests), random);
            var origin = new ScriptedStream(Input(random, Responses), random);
            var relay = cache.RelayAsync(client, origin, "example.org", 80, circuits[random.Next(circuits.Length)], (_, _) =>
            {
                handedOver++;
                return Task.CompletedTask;
            });
            // Throws TimeoutException if the exchange does not end, and whatever the relay let escape.
            await relay.WaitAsync(TimeSpan.FromSeconds(10));
        }
        Assert.True(cache.Store.Used <= quota);
        Assert.True(handedOver > 100 && cache.Counters.Requests > 100, $"the inputs reached too little: {handedOver} handed over, {cache.Counters.Requests} requests");
        foreach (var entry in cache.Store.Entries())
        {
            using var body = cache.Store.OpenBody(entry);
            Assert.NotNull(body);
            Assert.Equal(entry.BodySize, body.Length);
        }
    }

    /// <summary>A template, cut, grown, mutated or replaced by noise.</summary>
    private static byte[] Input(Random random, string[] templates)
    {
        var bytes = Encoding.Latin1.GetBytes(templates[random.Next(templates.Length)]).ToList();
        switch (random.Next(6))
        {
            case 0:
                return [.. bytes.Take(random.Next(bytes.Count + 1))];
            case 1:
                for (int flips = random.Next(1, 4); flips > 0; flips--) bytes[random.Next(bytes.Count)] = (byte)random.Next(256);
                return [.. bytes];
            case 2:
                var noise = new byte[random.Next(0, 300)];
                random.NextBytes(noise);
                return noise;
            case 3:
                // Oversized: a head past the parser's limit.
                return [.. bytes.Take(bytes.Count / 2), .. Encoding.ASCII.GetBytes("X-Long: " + new string('a', 70_000) + "\r\n"), .. bytes.Skip(bytes.Count / 2)];
            default:
                return [.. bytes];
        }
    }

    /// <summary>One side of a connection: sends its script in random pieces, then closes; what it is sent is dropped.</summary>
    private sealed class ScriptedStream(byte[] script, Random random) : Stream
    {
        private int _at;

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            await Task.Yield();
            int n = Math.Min(Math.Min(buffer.Length, script.Length - _at), random.Next(1, 512));
            script.AsSpan(_at, n).CopyTo(buffer.Span);
            _at += n;
            return n;
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
        public override void Write(byte[] buffer, int offset, int count) { }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
