using System.Buffers;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;
using Quid.Crypto;
using Quid.Wire.Http;

namespace Quid.Cache;

/// <summary>
/// One stream's HTTP/1.1 exchanges through the exit cache, one request at a time. A request the
/// cache may answer (<see cref="CachePolicy.CheckRequest"/>, no conditions, origin-form, its Host
/// the stream's own destination) is looked up: a fresh stored response is sent, paced to the
/// origin's time; a stale one with validators is revalidated; anything else goes to the origin
/// byte for byte, and its response comes back byte for byte while its body is stored if it may
/// be. The first request the cache could not answer hands the whole stream to the plain splice.
/// </summary>
internal sealed class CacheRelay(ExitCache cache, Stream client, Stream origin, string authority, long asker, PassThrough passThrough,
    TimeProvider time, ILogger logger)
{
    private const int BufferSize = 64 * 1024;
    /// <summary>
    /// A hit waits up to this share longer than the origin took, and up to <see cref="JitterFloor"/>
    /// more, drawn anew each time, so that hits of one object do not repeat one timing exactly.
    /// Small, since every bit of it sets hits apart from misses as slower (docs/CACHE.md).
    /// </summary>
    private const double MaxJitter = 0.02;
    private static readonly TimeSpan JitterFloor = TimeSpan.FromMilliseconds(2);

    private readonly byte[] _fromClient = ArrayPool<byte>.Shared.Rent(BufferSize);
    private readonly byte[] _fromOrigin = ArrayPool<byte>.Shared.Rent(BufferSize);
    private int _clientFilled;
    private int _originFilled;
    private bool _handedOver;

    public async Task RunAsync()
    {
        try
        {
            while (true)
            {
                var (request, consumed) = await ReadRequestAsync().ConfigureAwait(false);
                if (request is null && _clientFilled == 0) return; // the client ended between requests
                if (request is null || !Answerable(request))
                {
                    await HandOverAsync().ConfigureAwait(false);
                    return;
                }
                cache.CountRequest();
                if (!await ExchangeAsync(request, consumed).ConfigureAwait(false)) return;
            }
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
            logger.LogDebug("Exit cache: a stream to {Authority} ended: {Message}", authority, e.Message);
        }
        finally
        {
            if (!_handedOver)
            {
                origin.Dispose();
                client.Dispose();
            }
            ArrayPool<byte>.Shared.Return(_fromClient);
            ArrayPool<byte>.Shared.Return(_fromOrigin);
        }
    }

    /// <summary>The next request head from the client and its length; null when the client ended, or sent what is not a head we read (then the splice takes it as it is).</summary>
    private async Task<(HttpRequestHead? Head, int Consumed)> ReadRequestAsync()
    {
        var parser = new HttpHeadParser();
        while (true)
        {
            var parse = parser.ParseRequest(_fromClient.AsSpan(0, _clientFilled));
            if (parse.Status == HttpParseStatus.Complete) return (parse.Head, parse.Consumed);
            if (parse.Status == HttpParseStatus.Failed || _clientFilled == BufferSize) return (null, 0);
            int read = await client.ReadAsync(_fromClient.AsMemory(_clientFilled, BufferSize - _clientFilled)).ConfigureAwait(false);
            if (read == 0) return (null, 0);
            _clientFilled += read;
        }
    }

    private bool Answerable(HttpRequestHead request)
    {
        if (request.MinorVersion != 1 || !request.Target.StartsWith('/')) return false;
        if (CachePolicy.CheckRequest(request) != Uncacheable.None || CachePolicy.IsConditional(request)) return false;
        // The key is the destination the stream was opened to; a Host naming another would let a
        // client store what one server said under another's name.
        var hosts = request.Values("Host").ToList();
        return hosts.Count == 1 && (hosts[0].Equals(authority, StringComparison.OrdinalIgnoreCase)
            || (!authority.Contains(':') && hosts[0].Equals(authority + ":80", StringComparison.OrdinalIgnoreCase)));
    }

    /// <summary>Answers one request; false when the connection ends with it.</summary>
    private async Task<bool> ExchangeAsync(HttpRequestHead request, int consumed)
    {
        long received = time.GetTimestamp();
        string url = "http://" + authority + request.Target;
        bool close = WantsClose(request);
        var stored = cache.Store.Variants(url).FirstOrDefault(e => CachePolicy.VaryKey(e.Head, request) == e.VaryKey);
        StoredResponse? revalidating = null;
        if (stored is not null)
        {
            var now = time.GetUtcNow();
            var age = CachePolicy.CurrentAge(stored.Head, stored.RequestTime, stored.ResponseTime, now);
            var lifetime = CachePolicy.FreshnessLifetime(stored.Head, stored.ResponseTime);
            if (CachePolicy.UsableWithoutValidation(request, stored.Head, age, lifetime))
            {
                if (await ServeAsync(stored, stored.Head, request, received, stored.FirstByte, close).ConfigureAwait(false))
                {
                    Consume(consumed);
                    return !close;
                }
            }
            else if (CachePolicy.Validators(stored.Head).Count > 0) revalidating = stored;
        }

        // An object being revalidated was admitted when it was first stored: a full answer replaces it.
        bool admitted = request.Method == "GET" && (revalidating is not null || cache.AskedByAnother(url, asker));
        var forward = revalidating is null ? _fromClient.AsMemory(0, consumed).ToArray() : Head(request, CachePolicy.Validators(revalidating.Head));
        Consume(consumed);
        while (true)
        {
            var requestTime = time.GetUtcNow();
            long sent = time.GetTimestamp();
            await origin.WriteAsync(forward).ConfigureAwait(false);
            var head = await ReadResponseHeadAsync(revalidating is not null).ConfigureAwait(false);
            if (head is null) return false;
            var responseTime = time.GetUtcNow();
            var firstByte = time.GetElapsedTime(sent);

            if (revalidating is not null && head.Status == 304)
            {
                var freshened = cache.Store.Freshen(revalidating.Id, CachePolicy.Freshen(revalidating.Head, head), requestTime, responseTime);
                bool ends = close || WantsClose(head);
                // The origin's own answer took its time already; the body is paced as it was when stored.
                if (freshened is not null && await ServeAsync(freshened, freshened.Head, request, sent, firstByte, ends).ConfigureAwait(false))
                {
                    // The 304 may have made it one no shared cache may keep (private, say): this client had it, nobody else will.
                    if (CachePolicy.CheckResponse(request, freshened.Head, responseTime) != Uncacheable.None) cache.Store.Remove(freshened.Id);
                    return !ends;
                }
                // The stored body was lost: this client asked for the whole response, which the origin must send after all.
                cache.Store.Remove(revalidating.Id);
                revalidating = null;
                forward = Head(request, []);
                continue;
            }

            var framing = Framing(request, head);
            using var write = admitted && framing.Kind != BodyKind.UntilClose && CachePolicy.CheckResponse(request, head, responseTime) == Uncacheable.None
                && CachePolicy.VaryKey(head, request) is not null
                ? cache.Store.BeginWrite(framing.Kind == BodyKind.Length ? framing.Length : null)
                : null;
            long body = await RelayBodyAsync(framing, write).ConfigureAwait(false);
            if (body < 0) return false;
            cache.CountServed(body, fromStore: false);
            if (write is not null && write.Commit(url, CachePolicy.VaryKey(head, request)!, Dated(head, responseTime), requestTime, responseTime, firstByte, time.GetElapsedTime(sent)) is not null)
                cache.Stored(url);
            return framing.Kind != BodyKind.UntilClose && !close && !WantsClose(head);
        }
    }

    /// <summary>
    /// Sends a stored response: no sooner than the origin first answered it (<paramref name="wait"/>
    /// after <paramref name="start"/>) and its body no faster than it came, each with jitter. False,
    /// having sent nothing, when its body is not whole any more.
    /// </summary>
    private async Task<bool> ServeAsync(StoredResponse entry, HttpResponseHead head, HttpRequestHead request, long start, TimeSpan wait, bool close)
    {
        bool headOnly = request.Method == "HEAD";
        using var body = headOnly ? null : cache.Store.OpenBody(entry);
        if (!headOnly && body is null) return false;
        double stretch = 1 + SecureRandom.Instance.NextDouble() * MaxJitter;
        var firstByte = wait * stretch + JitterFloor * SecureRandom.Instance.NextDouble();
        await DelayUntilAsync(start, firstByte).ConfigureAwait(false);
        await client.WriteAsync(CachePolicy.ServedHead(head, entry.BodySize, time.GetUtcNow(), close)).ConfigureAwait(false);
        cache.CountHit();
        if (body is not null) await SendBodyAsync(entry, body, start, firstByte, stretch).ConfigureAwait(false);
        // After the body: the index's write (a sync) must not hold it up, which would set hits apart by their timing.
        cache.Store.RecordHit(entry.Id);
        return true;
    }

    private async Task SendBodyAsync(StoredResponse entry, FileStream body, long start, TimeSpan firstByte, double stretch)
    {
        var bodyTime = (entry.Transfer - entry.FirstByte) * stretch;
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            long sent = 0;
            int read;
            while ((read = await body.ReadAsync(buffer.AsMemory(0, BufferSize)).ConfigureAwait(false)) > 0)
            {
                if (entry.BodySize > 0 && bodyTime > TimeSpan.Zero) await DelayUntilAsync(start, firstByte + bodyTime * ((double)sent / entry.BodySize)).ConfigureAwait(false);
                await client.WriteAsync(buffer.AsMemory(0, read)).ConfigureAwait(false);
                sent += read;
                cache.CountServed(read, fromStore: true);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private async Task DelayUntilAsync(long start, TimeSpan after)
    {
        var left = after - time.GetElapsedTime(start);
        if (left > TimeSpan.Zero) await Task.Delay(left, time).ConfigureAwait(false);
    }

    /// <summary>The request as the client sent it, with <paramref name="extra"/> fields added: a stored response's validators (the client sent none, or it would not be answered here).</summary>
    private static byte[] Head(HttpRequestHead request, IReadOnlyList<HttpField> extra)
    {
        var text = new StringBuilder(512);
        text.Append(CultureInfo.InvariantCulture, $"{request.Method} {request.Target} HTTP/1.1\r\n");
        foreach (var field in request.Fields.Concat(extra)) text.Append(field.Name).Append(": ").Append(field.Value).Append("\r\n");
        return Encoding.Latin1.GetBytes(text.Append("\r\n").ToString());
    }

    /// <summary>
    /// The final response head, passed on to the client unless it is a 304 to our revalidation
    /// (<paramref name="revalidating"/>), which the stored response answers instead; interim
    /// responses are passed on. Null when the origin ended, or when what it sent is not a response we read: then the
    /// splice has carried the rest of the stream.
    /// </summary>
    private async Task<HttpResponseHead?> ReadResponseHeadAsync(bool revalidating)
    {
        var parser = new HttpHeadParser();
        while (true)
        {
            var parse = parser.ParseResponse(_fromOrigin.AsSpan(0, _originFilled));
            if (parse.Status == HttpParseStatus.Complete)
            {
                var head = parse.Head!;
                // 101 switches the stream to another protocol: the splice carries that.
                if (head.Status == 101) break;
                if (!head.IsInterim)
                {
                    if (!(revalidating && head.Status == 304)) await client.WriteAsync(_fromOrigin.AsMemory(0, parse.Consumed)).ConfigureAwait(false);
                    ConsumeOrigin(parse.Consumed);
                    return head;
                }
                await client.WriteAsync(_fromOrigin.AsMemory(0, parse.Consumed)).ConfigureAwait(false);
                ConsumeOrigin(parse.Consumed);
                parser = new HttpHeadParser();
                continue;
            }
            if (parse.Status == HttpParseStatus.Failed || _originFilled == BufferSize) break;
            int read = await origin.ReadAsync(_fromOrigin.AsMemory(_originFilled, BufferSize - _originFilled)).ConfigureAwait(false);
            if (read == 0)
            {
                if (_originFilled > 0) await client.WriteAsync(_fromOrigin.AsMemory(0, _originFilled)).ConfigureAwait(false);
                return null;
            }
            _originFilled += read;
        }
        await HandOverAsync().ConfigureAwait(false);
        return null;
    }

    /// <summary>The stream carries what is not ours to read: the splice carries it from here, both sides' unsent bytes first.</summary>
    private async Task HandOverAsync()
    {
        _handedOver = true;
        await passThrough(_fromClient.AsMemory(0, _clientFilled), _fromOrigin.AsMemory(0, _originFilled)).ConfigureAwait(false);
    }

    private enum BodyKind { None, Length, Chunked, UntilClose }

    private readonly record struct BodyFraming(BodyKind Kind, long Length);

    /// <summary>RFC 9112 §6.3 for a response.</summary>
    private static BodyFraming Framing(HttpRequestHead request, HttpResponseHead head)
    {
        if (request.Method == "HEAD" || head.Status is 204 or 304) return new(BodyKind.None, 0);
        if (head.Fields.Any(f => f.Is("Transfer-Encoding")))
        {
            var codings = head.ListValues("Transfer-Encoding").ToList();
            return codings.Count > 0 && codings[^1].Equals("chunked", StringComparison.OrdinalIgnoreCase) ? new(BodyKind.Chunked, 0) : new(BodyKind.UntilClose, 0);
        }
        var lengths = head.ListValues("Content-Length").Distinct().ToList();
        if (lengths.Count == 1 && long.TryParse(lengths[0], NumberStyles.None, CultureInfo.InvariantCulture, out long length))
            return length == 0 ? new(BodyKind.None, 0) : new(BodyKind.Length, length);
        return new(BodyKind.UntilClose, 0);
    }

    /// <summary>
    /// Passes the body on byte for byte, its content also to <paramref name="write"/>; the content's
    /// length, or -1 when the origin ended it early or broke its framing (the client then gets
    /// what came, and the connection ends).
    /// </summary>
    private async Task<long> RelayBodyAsync(BodyFraming framing, CacheStore.CacheWrite? write)
    {
        if (framing.Kind == BodyKind.None) return 0;
        var chunks = framing.Kind == BodyKind.Chunked ? new ChunkedBodyReader() : null;
        long remaining = framing.Kind == BodyKind.Length ? framing.Length : long.MaxValue;
        long content = 0;
        while (true)
        {
            int take;
            if (chunks is not null)
            {
                take = 0;
                while (take < _originFilled && !chunks.IsDone)
                {
                    var run = chunks.Read(_fromOrigin.AsSpan(take, _originFilled - take));
                    if (run.Kind == ChunkedRunKind.Failed)
                    {
                        await client.WriteAsync(_fromOrigin.AsMemory(0, take)).ConfigureAwait(false);
                        return -1;
                    }
                    if (run.Kind == ChunkedRunKind.Data)
                    {
                        write?.Append(_fromOrigin.AsSpan(take, run.Length));
                        content += run.Length;
                    }
                    take += run.Length;
                }
            }
            else
            {
                take = (int)Math.Min(remaining, _originFilled);
                write?.Append(_fromOrigin.AsSpan(0, take));
                content += take;
                remaining -= take;
            }
            if (take > 0) await client.WriteAsync(_fromOrigin.AsMemory(0, take)).ConfigureAwait(false);
            ConsumeOrigin(take);
            if ((chunks?.IsDone ?? false) || remaining == 0) return content;
            int read = await origin.ReadAsync(_fromOrigin.AsMemory(_originFilled, BufferSize - _originFilled)).ConfigureAwait(false);
            if (read == 0) return framing.Kind == BodyKind.UntilClose ? content : -1;
            _originFilled += read;
        }
    }

    /// <summary>A response without Date gets the time it arrived, as a cache must give one it stores (RFC 9110 §6.6.1): its age and expiry are reckoned from it.</summary>
    private static HttpResponseHead Dated(HttpResponseHead head, DateTimeOffset responseTime) =>
        head.Fields.Any(f => f.Is("Date")) ? head
        : head with { Fields = [.. head.Fields, new HttpField("Date", Microsoft.Net.Http.Headers.HeaderUtilities.FormatDate(responseTime))] };

    private static bool WantsClose(HttpHead head) =>
        head.ListValues("Connection").Any(o => o.Equals("close", StringComparison.OrdinalIgnoreCase));

    private void Consume(int bytes)
    {
        _fromClient.AsSpan(bytes, _clientFilled - bytes).CopyTo(_fromClient);
        _clientFilled -= bytes;
    }

    private void ConsumeOrigin(int bytes)
    {
        _fromOrigin.AsSpan(bytes, _originFilled - bytes).CopyTo(_fromOrigin);
        _originFilled -= bytes;
    }
}
