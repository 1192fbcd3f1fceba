using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Quid.Services.Share;

namespace Quid.Tests.Services.Share;

/// <summary>
/// Random and mutated requests through <see cref="ShareServer.ServeAsync"/> on an in-memory
/// connection, for a read-only share and an inbox: it must always return, never throw, and leave
/// no temporary file behind. And the head parser must read a head the same however it is split.
/// Seeded, so a failure reproduces.
/// </summary>
public sealed class ShareFuzzTests : IDisposable
{
    private static readonly string[] Templates =
    [
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /file.txt HTTP/1.1\r\nHost: a\r\nRange: bytes=2-5\r\nIf-Range: \"x\"\r\n\r\n",
        "GET /file.txt HTTP/1.1\r\nHost: a\r\nRange: bytes=-3\r\nIf-None-Match: *\r\n\r\n",
        "HEAD /sub/?format=json HTTP/1.1\r\nHost: a\r\nAccept: application/json\r\n\r\n",
        "GET /sub HTTP/1.0\r\n\r\n",
        "PUT /up.bin HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
        "PUT /up.bin HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: v\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Type: multipart/form-data; boundary=XY\r\nContent-Length: 120\r\n\r\n" +
            "pre\r\n--XY\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a;b.txt\"\r\n\r\ndata\r\n--XY \r\n\r\nfield\r\n--XY--\r\nepilogue",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Type: multipart/form-data; boundary=\"q\"\r\nTransfer-Encoding: chunked\r\n\r\n" +
            "30\r\n--q\r\nContent-Disposition: form-data; filename=\"z\"\r\n\r\n\r\n7\r\n\r\n--q--\r\n0\r\n\r\n",
    ];

    private readonly string _folder = ShareHost.NewFolder();

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public async Task Random_and_mutated_requests_never_escape_as_exceptions()
    {
        ShareHost.Write(_folder, "shared/file.txt", "0123456789"u8.ToArray());
        ShareHost.Write(_folder, "shared/sub/inner.txt", "inner"u8.ToArray());
        string inbox = Path.Join(_folder, "inbox");
        var options = new ShareOptions { HeadTimeout = TimeSpan.FromSeconds(5), BodyTimeout = TimeSpan.FromSeconds(5) };
        ShareServer[] servers =
        [
            new(new SharedFiles([Path.Join(_folder, "shared")]), TimeProvider.System, NullLogger.Instance, options),
            new(new UploadInbox(inbox, maxUploadBytes: 64, listed: true), TimeProvider.System, NullLogger.Instance, options),
        ];
        var random = new Random(20250119);
        for (int i = 0; i < 4000; i++)
        {
            byte[] input = Input(random);
            var connection = new TestConnection();
            // Sent in random pieces, then the client closes: every path through the server must end.
            for (int at = 0; at < input.Length;)
            {
                int piece = Math.Min(input.Length - at, random.Next(1, 64));
                connection.Send(input[at..(at + piece)]);
                at += piece;
            }
            connection.EndInput();
            var serving = servers[i % 2].ServeAsync(connection, CancellationToken.None);
            try
            {
                await serving.WaitAsync(TimeSpan.FromSeconds(10));
            }
            catch (TimeoutException)
            {
                Assert.Fail($"Input {i} did not end: {Escape(input)}");
            }
        }
        Assert.DoesNotContain(Directory.EnumerateFiles(inbox), path => Path.GetFileName(path).StartsWith('.'));
    }

    [Fact]
    public void The_head_parser_reads_a_head_the_same_however_it_is_split()
    {
        var random = new Random(42);
        for (int i = 0; i < 50_000; i++)
        {
            byte[] input = Input(random);
            var whole = Parse([input]);
            int split = random.Next(input.Length + 1);
            Assert.Equal(whole, Parse([input[..split], input[split..]]));
            Assert.Equal(whole, Parse(input.Select(b => new[] { b }).ToArray()));
        }
    }

    /// <summary>Feeds the pieces one after another, as a connection would; the outcome, what was consumed, and the head read.</summary>
    private static string Parse(byte[][] pieces)
    {
        var parser = new RequestHeadParser(8 * 1024, 100);
        var received = new List<byte>();
        HeadParse parse = HeadParse.NeedMore;
        foreach (var piece in pieces)
        {
            received.AddRange(piece);
            parse = parser.Parse(received.ToArray());
            if (parse.Outcome != HeadStatus.NeedMore) break;
        }
        var head = parse.Head;
        return $"{parse.Outcome} {parse.Status} {parse.Consumed} {head?.Method} {head?.Target} {head?.MinorVersion} " +
            string.Join("|", head?.Fields.Select(f => f.Name + ":" + f.Value) ?? []);
    }

    private static byte[] Input(Random random)
    {
        if (random.Next(4) == 0)
        {
            var noise = new byte[random.Next(0, 300)];
            random.NextBytes(noise);
            return noise;
        }
        var bytes = new List<byte>();
        for (int requests = random.Next(1, 4); requests > 0; requests--) bytes.AddRange(Encoding.Latin1.GetBytes(Templates[random.Next(Templates.Length)]));
        for (int mutations = random.Next(0, 6); mutations > 0; mutations--) Mutate(random, bytes);
        return [.. bytes];
    }

    private static void Mutate(Random random, List<byte> bytes)
    {
        int at = random.Next(bytes.Count + 1);
        byte[] interesting = [0, (byte)'\r', (byte)'\n', (byte)' ', (byte)':', (byte)'/', (byte)'%', (byte)'.', (byte)'-', (byte)'"', (byte)';', (byte)'\\', 0x7F, 0xFF];
        switch (random.Next(6))
        {
            case 0 when at < bytes.Count:
                bytes[at] = (byte)random.Next(256);
                break;
            case 1 when at < bytes.Count:
                bytes.RemoveRange(at, Math.Min(random.Next(1, 8), bytes.Count - at));
                break;
            case 2:
                bytes.Insert(at, interesting[random.Next(interesting.Length)]);
                break;
            case 3:
                bytes.InsertRange(at, Encoding.ASCII.GetBytes(random.Next(2) == 0 ? "../" : "%2e%2e%2f"));
                break;
            case 4:
                bytes.InsertRange(at, Encoding.ASCII.GetBytes(random.Next(int.MaxValue).ToString("x", System.Globalization.CultureInfo.InvariantCulture)));
                break;
            default:
                if (at < bytes.Count) bytes.RemoveRange(at, bytes.Count - at);
                break;
        }
    }

    private static string Escape(byte[] input) => string.Concat(input.Select(b => b is >= 0x20 and < 0x7F ? ((char)b).ToString() : $"\\x{b:x2}"));
}
