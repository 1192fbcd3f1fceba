using System.Buffers;

namespace Quid.Circuits;

/// <summary>
/// Bytes waiting to be written to a socket, filled by one producer (a link's read loop, which
/// must never block) and drained by one writer task. Pooled segments, no per-write allocation.
/// Its size is bounded by the stream's flow-control window, not here.
/// </summary>
internal sealed class ByteQueue
{
    private const int SegmentSize = 64 * 1024;

    private readonly Lock _lock = new();
    private readonly Queue<Segment> _segments = new();
    private Segment? _tail;
    private long _length;
    private bool _completed;
    private TaskCompletionSource? _waiter;

    private sealed class Segment
    {
        public readonly byte[] Buffer = ArrayPool<byte>.Shared.Rent(SegmentSize);
        public int Start;
        public int End;
    }

    /// <summary>Completed, and everything before the end was taken: the reader has seen the end.</summary>
    public bool IsDrained
    {
        get { lock (_lock) return _completed && _length == 0; }
    }

    public void Enqueue(ReadOnlySpan<byte> data)
    {
        TaskCompletionSource? wake;
        lock (_lock)
        {
            if (_completed) return;
            while (!data.IsEmpty)
            {
                if (_tail is null || _tail.End == _tail.Buffer.Length)
                {
                    _tail = new Segment();
                    _segments.Enqueue(_tail);
                }
                int n = Math.Min(data.Length, _tail.Buffer.Length - _tail.End);
                data[..n].CopyTo(_tail.Buffer.AsSpan(_tail.End));
                _tail.End += n;
                _length += n;
                data = data[n..];
            }
            wake = _waiter;
            _waiter = null;
        }
        wake?.TrySetResult();
    }

    /// <summary>No more data will come; the reader drains what is left, then sees the end.</summary>
    public void Complete()
    {
        TaskCompletionSource? wake;
        lock (_lock)
        {
            _completed = true;
            wake = _waiter;
            _waiter = null;
        }
        wake?.TrySetResult();
    }

    /// <summary>Waits for data; returns the oldest contiguous run, or empty once completed and drained.</summary>
    public async ValueTask<ReadOnlyMemory<byte>> PeekAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            Task wait;
            lock (_lock)
            {
                if (_segments.TryPeek(out var head) && head.End > head.Start)
                    return head.Buffer.AsMemory(head.Start, head.End - head.Start);
                if (_completed) return ReadOnlyMemory<byte>.Empty;
                _waiter ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                wait = _waiter.Task;
            }
            await wait.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Marks <paramref name="count"/> bytes of the last peek as written.</summary>
    public void Advance(int count)
    {
        lock (_lock)
        {
            // After Discard the queue is empty and the write that just finished is moot.
            if (!_segments.TryPeek(out var head)) return;
            head.Start += count;
            _length -= count;
            if (head.Start < head.End) return;
            if (head == _tail)
            {
                head.Start = head.End = 0;
                return;
            }
            _segments.Dequeue();
            ArrayPool<byte>.Shared.Return(head.Buffer);
        }
    }

    /// <summary>
    /// Drops everything: the stream was aborted. The buffers are left to the garbage collector,
    /// not the pool, because a write from the last peek may still be reading one.
    /// </summary>
    public void Discard()
    {
        lock (_lock)
        {
            _completed = true;
            _segments.Clear();
            _tail = null;
            _length = 0;
            _waiter?.TrySetResult();
            _waiter = null;
        }
    }
}
