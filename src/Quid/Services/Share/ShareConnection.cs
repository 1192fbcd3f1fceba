using System.Buffers;
using System.Text;

namespace Quid.Services.Share;

/// <summary>
/// One client's connection as the server sees it: a pooled buffer of bytes read and not yet
/// consumed (a head, then a body's framing, then maybe the next request), and one deadline that
/// every read or write is armed with, from a <see cref="TimeProvider"/>: the whole head must
/// arrive within the head timeout; each read of a body, and each write, within their own.
/// </summary>
internal sealed class ShareConnection : IDisposable
{
    private readonly Stream _stream;
    private readonly ShareOptions _options;
    private readonly TimeProvider _time;
    private readonly CancellationToken _stopping;
    private readonly byte[] _buffer;
    private int _start;
    private int _end;
    private CancellationTokenSource _deadline;
    private CancellationTokenSource _linked;

    public ShareConnection(Stream stream, ShareOptions options, TimeProvider time, CancellationToken stopping)
    {
        _stream = stream;
        _options = options;
        _time = time;
        _stopping = stopping;
        // The parser refuses a head once it fills MaxHeadSize, so the buffer never needs to grow.
        _buffer = ArrayPool<byte>.Shared.Rent(Math.Max(options.MaxHeadSize, 16 * 1024));
        (_deadline, _linked) = NewDeadline();
    }

    /// <summary>Cancelled when the server stops or the armed deadline passes.</summary>
    public CancellationToken Token => _linked.Token;

    public ReadOnlySpan<byte> Buffered => _buffer.AsSpan(_start, _end - _start);

    public void Consume(int count) => _start += count;

    /// <summary>
    /// Reads until a whole request head; null when the client closed or stayed idle past the head
    /// timeout without starting one. A head cut off by the timeout or by the client's close is
    /// refused (408, 400), so a client that was mid-request learns why.
    /// </summary>
    public async ValueTask<HeadParse?> ReadHeadAsync(RequestHeadParser parser)
    {
        Compact();
        _deadline.CancelAfter(_options.HeadTimeout);
        try
        {
            while (true)
            {
                var parse = parser.Parse(Buffered);
                if (parse.Outcome == HeadStatus.Complete)
                {
                    _start += parse.Consumed;
                    _deadline.CancelAfter(Timeout.InfiniteTimeSpan);
                }
                if (parse.Outcome != HeadStatus.NeedMore) return parse;
                int read = await _stream.ReadAsync(_buffer.AsMemory(_end), Token).ConfigureAwait(false);
                if (read == 0) return StartedRequest() ? HeadParse.Fail(400, "The connection ended in the middle of a request head.") : null;
                _end += read;
            }
        }
        catch (OperationCanceledException) when (!_stopping.IsCancellationRequested)
        {
            // The deadline is spent; the refusal, if any, is sent under a new one.
            _deadline.Dispose();
            _linked.Dispose();
            (_deadline, _linked) = NewDeadline();
            return StartedRequest() ? HeadParse.Fail(408, "The request head did not arrive in time.") : null;
        }
    }

    /// <summary>Reads more of a body into the buffer, after what is there; false at the end of the stream.</summary>
    public async ValueTask<bool> FillAsync()
    {
        Compact();
        _deadline.CancelAfter(_options.BodyTimeout);
        int read = await _stream.ReadAsync(_buffer.AsMemory(_end), Token).ConfigureAwait(false);
        _end += read;
        return read > 0;
    }

    /// <summary>Reads body bytes into <paramref name="destination"/>: those already buffered first, else straight from the stream.</summary>
    public async ValueTask<int> ReadAsync(Memory<byte> destination)
    {
        if (_end > _start)
        {
            int count = Math.Min(destination.Length, _end - _start);
            _buffer.AsSpan(_start, count).CopyTo(destination.Span);
            _start += count;
            return count;
        }
        _deadline.CancelAfter(_options.BodyTimeout);
        return await _stream.ReadAsync(destination, Token).ConfigureAwait(false);
    }

    public async ValueTask WriteAsync(ReadOnlyMemory<byte> bytes)
    {
        _deadline.CancelAfter(_options.SendTimeout);
        await _stream.WriteAsync(bytes, Token).ConfigureAwait(false);
    }

    /// <summary>Sends a response whose body is in memory (a page, an error), head and body in one write.</summary>
    public async ValueTask SendAsync(Response response, ReadOnlyMemory<byte> body, bool headOnly, bool close)
    {
        byte[] head = Encoding.ASCII.GetBytes(response.Head(response.HasBody ? body.Length : null, close));
        if (headOnly || !response.HasBody || body.IsEmpty)
        {
            await WriteAsync(head).ConfigureAwait(false);
        }
        else
        {
            var whole = new byte[head.Length + body.Length];
            head.CopyTo(whole, 0);
            body.CopyTo(whole.AsMemory(head.Length));
            await WriteAsync(whole).ConfigureAwait(false);
        }
        await FlushAsync().ConfigureAwait(false);
    }

    /// <summary>An error, as plain text saying why. Its wording is ours: nothing a client sent is echoed.</summary>
    public ValueTask SendErrorAsync(int status, string why, bool headOnly, bool close) =>
        SendAsync(new Response(status).Field("Content-Type", "text/plain; charset=utf-8"), Encoding.UTF8.GetBytes($"{status} {Response.Reason(status)}: {why}\n"), headOnly, close);

    public async ValueTask FlushAsync()
    {
        _deadline.CancelAfter(_options.SendTimeout);
        await _stream.FlushAsync(Token).ConfigureAwait(false);
    }

    public void Dispose()
    {
        _linked.Dispose();
        _deadline.Dispose();
        ArrayPool<byte>.Shared.Return(_buffer);
    }

    /// <summary>Something other than the empty lines allowed before a request has arrived.</summary>
    private bool StartedRequest() => Buffered.IndexOfAnyExcept((byte)'\r', (byte)'\n') >= 0;

    private void Compact()
    {
        if (_start == 0) return;
        _buffer.AsSpan(_start, _end - _start).CopyTo(_buffer);
        _end -= _start;
        _start = 0;
    }

    private (CancellationTokenSource Deadline, CancellationTokenSource Linked) NewDeadline()
    {
        var deadline = new CancellationTokenSource(Timeout.InfiniteTimeSpan, _time);
        return (deadline, CancellationTokenSource.CreateLinkedTokenSource(deadline.Token, _stopping));
    }
}
