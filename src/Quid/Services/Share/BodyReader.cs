using Quid.Wire.Http;

namespace Quid.Services.Share;

/// <summary>
/// A request's body as its content: Content-Length bytes, or chunked framing taken off by a
/// <see cref="ChunkedBodyReader"/>. The framing is judged by the rule the HTTP proxy uses
/// (<see cref="HttpRequestHead.Body"/>), and a coding other than chunked alone, which would need
/// decoding, is refused too, before a byte of the body is read.
/// </summary>
internal sealed class BodyReader
{
    private readonly ShareConnection _connection;
    private readonly ChunkedBodyReader? _chunked;
    private long _remaining;

    private BodyReader(ShareConnection connection, long? length)
    {
        _connection = connection;
        Length = length;
        if (length is long declared) _remaining = declared;
        else _chunked = new ChunkedBodyReader();
    }

    /// <summary>The length the client declared; null for a chunked body.</summary>
    public long? Length { get; }

    /// <summary>True unless the head declared no body or an empty one.</summary>
    public bool IsPresent => Length != 0;

    /// <summary>True once every byte of the body was read, so the connection is at the next request.</summary>
    public bool IsComplete => _chunked?.IsDone ?? _remaining == 0;

    /// <exception cref="ShareRefusal">Framing this server does not read, or that could be read two ways.</exception>
    public static BodyReader For(HttpRequestHead head, ShareConnection connection)
    {
        var (body, error) = head.Body();
        if (error is not null) throw new ShareRefusal(error.RequestStatus, error.Message);
        if (body.Framing != BodyFraming.Chunked) return new BodyReader(connection, body.Length);
        // Content is stored as it comes: a coding other than chunked would need decoding first.
        if (head.ListValues("Transfer-Encoding").Count() != 1) throw new ShareRefusal(501, "Only the chunked transfer coding is read here.");
        return new BodyReader(connection, null);
    }

    /// <summary>Reads content into <paramref name="destination"/>; 0 at the end of the body.</summary>
    /// <exception cref="ShareRefusal">The framing is malformed, or the connection ended before the body did.</exception>
    public async ValueTask<int> ReadAsync(Memory<byte> destination)
    {
        if (_chunked is null)
        {
            if (_remaining == 0) return 0;
            int read = await _connection.ReadAsync(destination[..(int)Math.Min(destination.Length, _remaining)]).ConfigureAwait(false);
            if (read == 0) throw new ShareRefusal(400, "The connection ended before the body did.");
            _remaining -= read;
            return read;
        }
        while (!_chunked.IsDone)
        {
            if (_chunked.DataRemaining > 0)
            {
                // Content goes from the connection straight into the caller's buffer; the reader only counts it.
                int read = await _connection.ReadAsync(destination[..(int)Math.Min(destination.Length, _chunked.DataRemaining)]).ConfigureAwait(false);
                if (read == 0) throw new ShareRefusal(400, "The connection ended before the body did.");
                _chunked.Read(destination.Span[..read]);
                return read;
            }
            if (_connection.Buffered.IsEmpty && !await _connection.FillAsync().ConfigureAwait(false))
                throw new ShareRefusal(400, "The connection ended before the body did.");
            var run = _chunked.Read(_connection.Buffered);
            if (run.Kind == ChunkedRunKind.Failed) throw new ShareRefusal(400, $"The chunked body is malformed: {run.Error!.Message}");
            _connection.Consume(run.Length);
        }
        return 0;
    }
}
