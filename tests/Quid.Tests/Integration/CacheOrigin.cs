using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Globalization;
using System.IO.Compression;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Quid.Tests.Integration;

/// <summary>
/// An origin for the exit cache's tests that counts what reaches it. The path says how it answers:
/// <c>/fresh/NAME</c> is cacheable for an hour, with an ETag; <c>/short/NAME</c> for a second, and
/// it answers a matching If-None-Match with 304; <c>/set-cookie</c>, <c>/private</c>,
/// <c>/no-store</c> and <c>/vary-star</c> are what a shared cache must never store;
/// <c>/vary-lang</c> varies on Accept-Language; <c>/chunked</c> is cacheable, sent in chunks;
/// <c>/slow</c> trickles its body. <c>?size=N</c> sets a body's length (the pattern of
/// <see cref="Body"/>), <c>?delay=MS</c> holds the head back that long. A path ending in
/// <c>.png</c> is answered as <c>image/png</c> with a real image (<see cref="Png"/>), which a browser
/// draws; one ending in <c>.html</c> as <c>text/html</c> with markup (<see cref="Html"/>).
/// </summary>
internal sealed class CacheOrigin : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<string, int> _counts = new();
    private readonly ConcurrentQueue<(string Path, string? IfNoneMatch, int Status)> _log = new();

    private CacheOrigin(WebApplication app) => _app = app;

    public int Port { get; private set; }

    /// <summary>Requests that reached the origin for <paramref name="path"/> (query included).</summary>
    public int Count(string path) => _counts.GetValueOrDefault(path);

    /// <summary>Every request in order: path, the validator it carried, the status it got.</summary>
    public IReadOnlyList<(string Path, string? IfNoneMatch, int Status)> Log => [.. _log];

    public static async Task<CacheOrigin> StartAsync(IPAddress address)
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(k => k.Listen(address, 0));
        var app = builder.Build();
        var origin = new CacheOrigin(app);
        app.Run(origin.AnswerAsync);
        await app.StartAsync();
        origin.Port = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()).Port;
        return origin;
    }

    /// <summary>The body of <paramref name="size"/> bytes every answer carries for <paramref name="path"/>: its bytes depend on the path, so one cannot pass for another.</summary>
    public static byte[] Body(string path, int size)
    {
        var body = new byte[size];
        var seed = new Random(path.GetHashCode(StringComparison.Ordinal) & 0x7fffffff);
        for (int i = 0; i < size; i++) body[i] = (byte)('a' + (i * 7 + seed.Next(4)) % 26);
        return body;
    }

    /// <summary>
    /// The image every answer for <paramref name="path"/> (a <c>.png</c>) carries: a 64×64 PNG, a
    /// diagonal gradient whose colours depend on the path, so one cannot pass for another.
    /// </summary>
    public static byte[] Png(string path)
    {
        const int side = 64;
        var seed = new Random(path.GetHashCode(StringComparison.Ordinal) & 0x7fffffff);
        byte[] from = [(byte)seed.Next(256), (byte)seed.Next(256), (byte)seed.Next(256)], to = [(byte)seed.Next(256), (byte)seed.Next(256), (byte)seed.Next(256)];
        var pixels = new MemoryStream();
        using (var zlib = new ZLibStream(pixels, CompressionLevel.Optimal, leaveOpen: true))
        {
            for (int y = 0; y < side; y++)
            {
                zlib.WriteByte(0); // filter: none
                for (int x = 0; x < side; x++)
                    for (int c = 0; c < 3; c++) zlib.WriteByte((byte)(from[c] + (to[c] - from[c]) * (x + y) / (2 * side - 2)));
            }
        }
        var header = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(header, side);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), side);
        header[8] = 8; // bits per sample
        header[9] = 2; // colour type: RGB
        var png = new MemoryStream();
        png.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0d, 0x0a, 0x1a, 0x0a]);
        Chunk(png, "IHDR", header);
        Chunk(png, "IDAT", pixels.ToArray());
        Chunk(png, "IEND", []);
        return png.ToArray();

        static void Chunk(Stream png, string type, byte[] data)
        {
            var length = new byte[4];
            BinaryPrimitives.WriteInt32BigEndian(length, data.Length);
            byte[] typed = [.. System.Text.Encoding.ASCII.GetBytes(type), .. data];
            var crc = new byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(crc, Crc32(typed));
            png.Write(length);
            png.Write(typed);
            png.Write(crc);
        }

        // PNG's CRC (ISO 3309), bit by bit: the images are small.
        static uint Crc32(byte[] bytes)
        {
            uint crc = 0xffffffff;
            foreach (byte b in bytes)
            {
                crc ^= b;
                for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? 0xedb88320 ^ (crc >> 1) : crc >> 1;
            }
            return ~crc;
        }
    }

    /// <summary>The page every answer for <paramref name="path"/> (an <c>.html</c>) carries: markup that a viewer must show as text, never run or render.</summary>
    public static byte[] Html(string path) => System.Text.Encoding.UTF8.GetBytes(
        $"<!doctype html><title>{path}</title><h1 id=\"injected\">Not the dashboard's</h1><img src=\"/x\" onerror=\"document.title='ran'\">\n");

    private async Task AnswerAsync(HttpContext context)
    {
        var request = context.Request;
        var response = context.Response;
        string path = request.Path.Value ?? "/";
        string key = path + request.QueryString.Value;
        _counts.AddOrUpdate(key, 1, (_, n) => n + 1);
        int size = int.TryParse(request.Query["size"], CultureInfo.InvariantCulture, out int s) ? s : 1000;
        if (int.TryParse(request.Query["delay"], CultureInfo.InvariantCulture, out int delay)) await Task.Delay(delay);
        string? ifNoneMatch = request.Headers.IfNoneMatch.FirstOrDefault();
        bool png = path.EndsWith(".png", StringComparison.Ordinal), html = path.EndsWith(".html", StringComparison.Ordinal);
        var body = png ? Png(key) : html ? Html(key) : Body(key, size);
        response.ContentType = png ? "image/png" : html ? "text/html; charset=utf-8" : "text/plain; charset=utf-8";
        var headers = response.Headers;
        switch (path.Split('/')[1])
        {
            case "fresh":
                headers.CacheControl = "max-age=3600";
                headers.ETag = "\"v1\"";
                break;
            case "short":
                headers.CacheControl = "max-age=1";
                headers.ETag = "\"s1\"";
                if (ifNoneMatch == "\"s1\"")
                {
                    response.StatusCode = 304;
                    _log.Enqueue((key, ifNoneMatch, 304));
                    return;
                }
                break;
            case "set-cookie":
                headers.CacheControl = "max-age=3600";
                headers.SetCookie = "session=1";
                break;
            case "private":
                headers.CacheControl = "private, max-age=3600";
                break;
            case "no-store":
                headers.CacheControl = "no-store, max-age=3600";
                break;
            case "vary-star":
                headers.CacheControl = "max-age=3600";
                headers.Vary = "*";
                break;
            case "vary-lang":
                headers.CacheControl = "max-age=3600";
                headers.Vary = "Accept-Language";
                body = System.Text.Encoding.ASCII.GetBytes($"language {request.Headers.AcceptLanguage}");
                break;
            case "plain":
                headers.CacheControl = "max-age=3600";
                break;
            case "chunked":
                headers.CacheControl = "max-age=3600";
                _log.Enqueue((key, ifNoneMatch, 200));
                // No Content-Length: Kestrel frames the body in chunks, one per write.
                for (int at = 0; at < body.Length; at += 1000)
                {
                    await response.Body.WriteAsync(body.AsMemory(at, Math.Min(1000, body.Length - at)));
                    await response.Body.FlushAsync();
                }
                return;
            case "slow":
                headers.CacheControl = "max-age=3600";
                response.ContentLength = body.Length;
                _log.Enqueue((key, ifNoneMatch, 200));
                // The first asker gets it at once; later ones slowly, so a test can catch the store mid-write.
                bool first = _counts[key] == 1;
                for (int at = 0; at < body.Length; at += 64 * 1024)
                {
                    await response.Body.WriteAsync(body.AsMemory(at, Math.Min(64 * 1024, body.Length - at)));
                    await response.Body.FlushAsync();
                    if (!first) await Task.Delay(100);
                }
                return;
        }
        _log.Enqueue((key, ifNoneMatch, 200));
        response.ContentLength = body.Length;
        await response.Body.WriteAsync(body);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
