using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Quid.Circuits;
using Quid.Proxy.Http;
using Quid.Proxy.Socks;
using Quid.Wire;
using Quid.Wire.Http;

namespace Quid.Proxy;

/// <summary>
/// The HTTP proxy front end on loopback: CONNECT becomes a raw tunnel, and a request for an
/// absolute http URI is sent on as origin-form HTTP/1.1 with hop-by-hop fields removed. Each
/// connection carries one exchange and is answered with <c>Connection: close</c>. The parsing
/// and rewriting are sans-IO (<see cref="Http"/>); this adapter owns the sockets.
/// </summary>
/// <remarks>
/// A tunnel splices the application's socket to the relay stream. A forwarded exchange is
/// rewritten on its way, so the adapter reads and writes the relay stream itself: the request
/// head and exactly its body go out (a pipelined request after it is never sent on, so nothing
/// meant for one host or one set of credentials reaches another), and the response head comes
/// back rewritten, its content copied (or de-chunked for HTTP/1.0) until the destination closes.
/// </remarks>
public sealed class HttpProxyListener : IAsyncDisposable
{
    private const int BufferSize = 64 * 1024;
    /// <summary>Most request heads fit in this; a larger one gets a larger buffer, up to the parser's limit.</summary>
    private const int FirstHeadBuffer = 4 * 1024;
    /// <summary>Destinations may send large heads (many cookies); this bounds what one response can make us hold.</summary>
    private const int MaxResponseHead = 64 * 1024;
    private static readonly TimeSpan DrainTime = TimeSpan.FromSeconds(2);

    private readonly LoopbackListener _listener;
    private readonly StreamOpener _open;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly TimeSpan _headTimeout;

    /// <exception cref="ArgumentException"><paramref name="endPoint"/> is not a loopback address.</exception>
    public HttpProxyListener(IPEndPoint endPoint, StreamOpener open, TimeProvider time, ILogger logger, ProxyOptions? options = null)
    {
        options ??= new ProxyOptions();
        _open = open;
        _time = time;
        _logger = logger;
        _headTimeout = options.HandshakeTimeout;
        _listener = new LoopbackListener(endPoint, "HTTP proxy", options.MaxConnections, time, logger);
    }

    public IPEndPoint LocalEndPoint => _listener.LocalEndPoint;

    /// <summary>Connections being served now, exchanges and tunnels.</summary>
    public int OpenConnections => _listener.OpenConnections;

    private CancellationToken Stopping => _listener.Stopping;

    public void Start() => _listener.Start(ServeAsync);

    /// <summary>Serves one connection until it is closed: its request, then its exchange or tunnel.</summary>
    private async Task ServeAsync(Socket client)
    {
        Task? tunnelled = null;
        try
        {
            var (head, early) = await ReadRequestHeadAsync(client).ConfigureAwait(false);
            if (head is null) return;
            switch (ProxyRequest.Interpret(head))
            {
                case RefusedRequest refused:
                    _logger.LogDebug("HTTP proxy request refused: {Reason}", refused.Error.Message);
                    await RefuseAsync(client, refused.Error.RequestStatus, refused.Error.Message).ConfigureAwait(false);
                    break;
                case TunnelRequest tunnel:
                    if (await OpenAsync(client, tunnel.Target, tunnel.Isolation).ConfigureAwait(false) is not { } stream) break;
                    await AbortOnFailureAsync(stream, client.SendAsync(ProxyResponses.ConnectionEstablished.ToArray(), SocketFlags.None, Stopping).AsTask()).ConfigureAwait(false);
                    tunnelled = stream.RunAsync(client, early);
                    break;
                case ForwardRequest forward:
                    if (forward.Body.Framing == BodyFraming.Chunked)
                    {
                        if (await ReadFirstChunkLineAsync(client, early).ConfigureAwait(false) is not { } checkedEarly) break;
                        early = checkedEarly;
                    }
                    if (await OpenAsync(client, forward.Target, forward.Isolation).ConfigureAwait(false) is not { } forwarded) break;
                    await using (forwarded.ConfigureAwait(false))
                        await ExchangeAsync(client, forwarded, forward, early).ConfigureAwait(false);
                    break;
            }
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // The application went away or was too slow; nothing to answer.
        }
        finally
        {
            if (tunnelled is null) client.Dispose();
        }
        // The tunnel closes the socket when it ends.
        if (tunnelled is not null) await tunnelled.ConfigureAwait(false);
    }

    /// <summary>Reads until a whole request head; returns it and the bytes after it, or null once a refusal was sent.</summary>
    private async Task<(HttpRequestHead? Head, byte[] Early)> ReadRequestHeadAsync(Socket client)
    {
        using var timeout = new CancellationTokenSource(_headTimeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, Stopping);
        var parser = new HttpHeadParser();
        // An idle connection holds no buffer: wait for its first byte, then take a small one from
        // the pool, and a larger one only for a larger head.
        await client.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None, linked.Token).ConfigureAwait(false);
        var buffer = ArrayPool<byte>.Shared.Rent(FirstHeadBuffer);
        int filled = 0;
        try
        {
            while (true)
            {
                var parse = parser.ParseRequest(buffer.AsSpan(0, filled));
                if (parse.Status == HttpParseStatus.Complete) return (parse.Head, buffer[parse.Consumed..filled]);
                if (parse.Status == HttpParseStatus.Failed)
                {
                    _logger.LogDebug("HTTP proxy request refused: {Reason}", parse.Error!.Message);
                    await RefuseAsync(client, parse.Error.RequestStatus, parse.Error.Message).ConfigureAwait(false);
                    return (null, []);
                }
                if (filled == buffer.Length)
                {
                    // Not full of a head yet, or the parser would have refused it: the limit is further.
                    var larger = ArrayPool<byte>.Shared.Rent(Math.Min(buffer.Length * 2, HttpHeadParser.DefaultMaxHeadSize));
                    buffer.AsSpan(0, filled).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                }
                int read = await client.ReceiveAsync(buffer.AsMemory(filled, Math.Min(buffer.Length, HttpHeadParser.DefaultMaxHeadSize) - filled), SocketFlags.None, linked.Token).ConfigureAwait(false);
                if (read == 0) return (null, []);
                filled += read;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// Before a chunked request goes anywhere: reads until its first chunk-size line is whole and
    /// checks the framing of every byte received by then, so a body that is malformed from the
    /// start is refused before the destination hears of the request. Framing that breaks later,
    /// in a body streamed on as it arrives, can only end the stream (the destination then never
    /// sees a whole request); holding a whole body back to check it first would take unbounded
    /// memory. Returns the bytes received after the head, or null once a refusal was sent.
    /// </summary>
    private async Task<byte[]?> ReadFirstChunkLineAsync(Socket client, byte[] early)
    {
        using var timeout = new CancellationTokenSource(_headTimeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, Stopping);
        var reader = new ChunkedBodyReader();
        var received = early;
        int checkedLength = 0;
        var buffer = new byte[1024];
        while (true)
        {
            var (length, error) = BodyBytes(reader, received.AsSpan(checkedLength));
            if (error is not null)
            {
                _logger.LogDebug("HTTP proxy request body refused: {Reason}", error.Message);
                await RefuseAsync(client, error.RequestStatus, $"The request's chunked body is malformed: {error.Message}").ConfigureAwait(false);
                return null;
            }
            checkedLength += length;
            if (reader.FirstChunkLineRead) return received;
            // The reader refuses a size line over its limit, so this grows by at most that much.
            int read = await client.ReceiveAsync(buffer, SocketFlags.None, linked.Token).ConfigureAwait(false);
            if (read == 0) return null;
            received = [.. received, .. buffer.AsSpan(0, read)];
        }
    }

    private async Task<RelayStream?> OpenAsync(Socket client, StreamTarget target, SocksAuth isolation)
    {
        try
        {
            return await _open(target, isolation, Stopping).ConfigureAwait(false);
        }
        catch (StreamException e)
        {
            _logger.LogDebug("HTTP proxy stream to {Target} failed: {Reason}", target, e.Message);
            await RefuseAsync(client, ProxyResponses.StatusFor(e.Reason), $"Quid could not open a connection to {target}: {e.Message}").ConfigureAwait(false);
            return null;
        }
    }

    /// <summary>An open stream the application never hears of (it left before the answer) is ended at the exit too.</summary>
    private static async Task<T> AbortOnFailureAsync<T>(RelayStream stream, Task<T> step)
    {
        try
        {
            return await step.ConfigureAwait(false);
        }
        catch
        {
            stream.Abort(EndReason.Internal, notifyPeer: true);
            throw;
        }
    }

    private Task RefuseAsync(Socket client, int status, string explanation) =>
        LoopbackListener.AnswerAndCloseAsync(client, ProxyResponses.Error(status, explanation), DrainTime, _time, Stopping);

    /// <summary>
    /// One forwarded exchange: the request goes out while the response comes back, until the
    /// destination closes. The caller disposes the stream, which ends it as closing a socket would.
    /// </summary>
    private async Task ExchangeAsync(Socket client, RelayStream stream, ForwardRequest request, byte[] early)
    {
        using var done = CancellationTokenSource.CreateLinkedTokenSource(Stopping);
        var upload = SendRequestAsync(client, stream, request, early, done.Token);
        var (answered, failure) = await RelayResponseAsync(stream, client, request, done.Token).ConfigureAwait(false);
        if (answered)
        {
            // The response is whole. A staged close: end our side, and let the application finish
            // sending (or notice) for a moment before the socket goes (RFC 9112 §9.6).
            client.Shutdown(SocketShutdown.Send);
            done.CancelAfter(DrainTime);
            await upload.ConfigureAwait(false);
            return;
        }
        await done.CancelAsync().ConfigureAwait(false);
        if (await upload.ConfigureAwait(false) is { } badBody)
        {
            _logger.LogDebug("HTTP proxy request body refused: {Reason}", badBody);
            await RefuseAsync(client, 400, badBody).ConfigureAwait(false);
        }
        else if (failure is not null)
        {
            _logger.LogDebug("HTTP proxy: {Failure}", failure);
            await RefuseAsync(client, 502, failure).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The rewritten head, then exactly the request's body, then whatever the application sends
    /// is read and dropped. Returns why the body's framing was refused, if it was.
    /// </summary>
    private static async Task<string?> SendRequestAsync(Socket client, RelayStream stream, ForwardRequest request, byte[] early, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            await stream.WriteAsync(request.Head, cancellationToken).ConfigureAwait(false);
            var pending = early.AsMemory();
            var chunked = request.Body.Framing == BodyFraming.Chunked ? new ChunkedBodyReader() : null;
            long remaining = request.Body.Framing == BodyFraming.ContentLength ? request.Body.Length : 0;
            while (chunked is { IsDone: false } || remaining > 0)
            {
                if (pending.IsEmpty)
                {
                    int read = await client.ReceiveAsync(buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false);
                    // The application gave up before its body was whole: the stream ends with it.
                    if (read == 0)
                    {
                        stream.Abort(EndReason.Internal, notifyPeer: true);
                        return null;
                    }
                    pending = buffer.AsMemory(0, read);
                }
                var (body, error) = chunked is null ? ((int)Math.Min(remaining, pending.Length), null) : BodyBytes(chunked, pending.Span);
                if (error is not null)
                {
                    stream.Abort(EndReason.Internal, notifyPeer: true);
                    return $"The request's chunked body is malformed: {error.Message}";
                }
                await stream.WriteAsync(pending[..body], cancellationToken).ConfigureAwait(false);
                remaining -= chunked is null ? body : 0;
                pending = pending[body..];
            }
            // Anything after the body is a pipelined request: we answer Connection: close and never send it on.
            while (await client.ReceiveAsync(buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false) > 0)
            {
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // Cut short, or the exchange is over: the response side stops reading at once.
            stream.Abort(EndReason.Internal, notifyPeer: true);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return null;
    }

    /// <summary>How many bytes at the start of <paramref name="input"/> belong to the chunked body, framing and all; or why its framing is refused.</summary>
    private static (int Length, HttpError? Error) BodyBytes(ChunkedBodyReader reader, ReadOnlySpan<byte> input)
    {
        int length = 0;
        while (length < input.Length && !reader.IsDone)
        {
            var run = reader.Read(input[length..]);
            if (run.Kind == ChunkedRunKind.Failed) return (0, run.Error);
            length += run.Length;
        }
        return (length, null);
    }

    /// <summary>
    /// Reads the destination's response head (passing on or dropping interim ones), sends it on
    /// rewritten, then copies the content until the destination closes. Answered once a final
    /// response reached the application; otherwise Failure says what to tell it, if anything.
    /// </summary>
    private static async Task<(bool Answered, string? Failure)> RelayResponseAsync(RelayStream stream, Socket client, ForwardRequest request, CancellationToken cancellationToken)
    {
        var target = stream.Target;
        var buffer = ArrayPool<byte>.Shared.Rent(MaxResponseHead);
        var parser = new HttpHeadParser(MaxResponseHead);
        int filled = 0;
        try
        {
            while (true)
            {
                var parse = parser.ParseResponse(buffer.AsSpan(0, filled));
                if (parse.Status == HttpParseStatus.Failed)
                    return (false, $"{target} answered with something that is not an HTTP/1.x response: {parse.Error!.Message}");
                if (parse.Status == HttpParseStatus.NeedMore)
                {
                    int read = await stream.ReadAsync(buffer.AsMemory(filled), cancellationToken).ConfigureAwait(false);
                    if (read == 0) return (false, $"{target} closed the connection without answering.");
                    filled += read;
                    continue;
                }
                var head = parse.Head!;
                buffer.AsSpan(parse.Consumed, filled - parse.Consumed).CopyTo(buffer);
                filled -= parse.Consumed;
                if (head.Status == 101)
                    return (false, $"{target} switched protocols, which only a CONNECT tunnel can carry.");
                if (head.IsInterim)
                {
                    // HTTP/1.0 clients know no interim responses (RFC 9110 §15.2).
                    if (!request.Http10Client) await client.SendAsync(ProxyResponses.Forward(head, dechunk: false), SocketFlags.None, cancellationToken).ConfigureAwait(false);
                    continue;
                }
                bool hasContent = !request.HeadMethod && head.Status is not (204 or 304);
                bool dechunk = request.Http10Client && hasContent && ProxyResponses.IsChunkedOnly(head);
                await client.SendAsync(ProxyResponses.Forward(head, dechunk), SocketFlags.None, cancellationToken).ConfigureAwait(false);
                await CopyContentAsync(stream, client, buffer, filled, dechunk ? new ChunkedBodyReader() : null, cancellationToken).ConfigureAwait(false);
                return (true, null);
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            return (false, null);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Copies the content until the destination closes; with a reader, only the chunks' data, until the last chunk.</summary>
    private static async Task CopyContentAsync(RelayStream stream, Socket client, byte[] buffer, int filled, ChunkedBodyReader? dechunk, CancellationToken cancellationToken)
    {
        while (true)
        {
            if (dechunk is null)
            {
                if (filled > 0) await client.SendAsync(buffer.AsMemory(0, filled), SocketFlags.None, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                for (int at = 0; at < filled && !dechunk.IsDone;)
                {
                    var run = dechunk.Read(buffer.AsSpan(at, filled - at));
                    // Broken framing from the destination: the content so far is all the client gets.
                    if (run.Kind == ChunkedRunKind.Failed) return;
                    if (run.Kind == ChunkedRunKind.Data)
                        await client.SendAsync(buffer.AsMemory(at, run.Length), SocketFlags.None, cancellationToken).ConfigureAwait(false);
                    at += run.Length;
                }
                if (dechunk.IsDone) return;
            }
            filled = await stream.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            if (filled == 0) return;
        }
    }

    public ValueTask DisposeAsync() => _listener.DisposeAsync();
}
