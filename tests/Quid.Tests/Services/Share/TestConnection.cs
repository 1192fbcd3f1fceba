using System.Text;
using System.Threading.Channels;

namespace Quid.Tests.Services.Share;

/// <summary>
/// An in-memory duplex stream standing in for a connection: the test sends the client's bytes in
/// whatever pieces it likes, and can see when the server has read them all and waits for more,
/// the moment to move a fake clock. What the server writes is collected.
/// </summary>
internal sealed class TestConnection : Stream
{
    private readonly Channel<byte[]> _incoming = Channel.CreateUnbounded<byte[]>();
    private readonly MemoryStream _written = new();
    private ReadOnlyMemory<byte> _current;
    private int _waiting;

    public void Send(byte[] bytes) => _incoming.Writer.TryWrite(bytes);

    public void Send(string text) => Send(Encoding.Latin1.GetBytes(text));

    /// <summary>The client closes its side: reads return 0 once what was sent is read.</summary>
    public void EndInput() => _incoming.Writer.TryComplete();

    /// <summary>
    /// True while the server is blocked on a read with every byte sent already read. The queue is
    /// looked at first: a piece is taken from it only after the flag is cleared, so a flag seen
    /// after an empty queue is from a read that began after everything was taken.
    /// </summary>
    public bool ServerWaiting => _incoming.Reader.Count == 0 && Volatile.Read(ref _waiting) == 1;

    public byte[] Written
    {
        get
        {
            lock (_written) return _written.ToArray();
        }
    }

    public string WrittenText => Encoding.Latin1.GetString(Written);

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        while (_current.IsEmpty)
        {
            if (_incoming.Reader.TryRead(out var next))
            {
                _current = next;
                continue;
            }
            Volatile.Write(ref _waiting, 1);
            try
            {
                if (!await _incoming.Reader.WaitToReadAsync(cancellationToken)) return 0;
            }
            finally
            {
                Volatile.Write(ref _waiting, 0);
            }
        }
        int count = Math.Min(buffer.Length, _current.Length);
        _current[..count].CopyTo(buffer);
        _current = _current[count..];
        return count;
    }

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        lock (_written) _written.Write(buffer.Span);
        return ValueTask.CompletedTask;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override void Flush()
    {
    }

    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public override bool CanRead => true;
    public override bool CanWrite => true;
    public override bool CanSeek => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}
