using System.Buffers;
using Quid.Wire;

namespace Quid.Links;

/// <summary>
/// The cells waiting to go out on one link, in two lanes: urgent cells (circuit builds and
/// control messages, see <see cref="Link"/>) go out before the bulk, each lane in order. Producers
/// on any thread copy a cell in; the link's writer takes whole chunks, each already the plaintext
/// of one frame, so a cell is copied once on its way to the socket. Memory is bounded by the
/// callers' flow-control windows; the byte count is exposed so the link can refuse a peer that
/// ignores them.
/// </summary>
internal sealed class CellQueue
{
    public const int CellsPerChunk = LinkFraming.MaxCellsPerFrame;
    private const int ChunkBytes = CellsPerChunk * Cell.Size;

    private readonly Lock _lock = new();
    private readonly Lane _urgent = new();
    private readonly Lane _bulk = new();
    private long _queuedBytes;
    private long _urgentBytes;
    private bool _closed;
    private TaskCompletionSource? _waiter;

    public long QueuedBytes => Volatile.Read(ref _queuedBytes);
    /// <summary>What of <see cref="QueuedBytes"/> is in the urgent lane: what an urgent cell queued now waits behind.</summary>
    public long UrgentBytes => Volatile.Read(ref _urgentBytes);

    internal sealed class Chunk
    {
        public byte[] Buffer = ArrayPool<byte>.Shared.Rent(ChunkBytes);
        public int Cells;
        public ReadOnlySpan<byte> Data => Buffer.AsSpan(0, Cells * Cell.Size);
    }

    /// <summary>Full chunks in order, then the one being filled.</summary>
    private sealed class Lane
    {
        private readonly Queue<Chunk> _full = new();
        private Chunk? _tail;

        public bool IsEmpty => _full.Count == 0 && _tail is not { Cells: > 0 };

        public void Add(ReadOnlySpan<byte> cell)
        {
            var tail = _tail ??= new Chunk();
            cell.CopyTo(tail.Buffer.AsSpan(tail.Cells * Cell.Size, Cell.Size));
            if (++tail.Cells < CellsPerChunk) return;
            _full.Enqueue(tail);
            _tail = null;
        }

        /// <summary>The oldest chunk, sealing a partly filled tail; null when empty.</summary>
        public Chunk? Take()
        {
            if (_full.Count > 0) return _full.Dequeue();
            if (_tail is not { Cells: > 0 } tail) return null;
            _tail = null;
            return tail;
        }

        public void Clear()
        {
            while (_full.Count > 0) Return(_full.Dequeue());
            if (_tail is not null) Return(_tail);
            _tail = null;
        }
    }

    /// <summary>
    /// Copies one cell in, to the urgent lane or the bulk, and, unless <paramref name="wake"/> is
    /// false, wakes the writer; false once closed.
    /// </summary>
    public bool Enqueue(ReadOnlySpan<byte> cell, bool wake = true, bool urgent = false)
    {
        // Chunks come from the array pool: a short cell would go out padded with an earlier cell's bytes.
        if (cell.Length != Cell.Size) throw new ArgumentException($"A cell is {Cell.Size} bytes, got {cell.Length}.", nameof(cell));
        TaskCompletionSource? waiter = null;
        lock (_lock)
        {
            if (_closed) return false;
            if (urgent)
            {
                _urgent.Add(cell);
                _urgentBytes += Cell.Size;
            }
            else _bulk.Add(cell);
            _queuedBytes += Cell.Size;
            if (wake)
            {
                waiter = _waiter;
                _waiter = null;
            }
        }
        waiter?.TrySetResult();
        return true;
    }

    /// <summary>Takes the oldest urgent chunk, else the oldest of the bulk, sealing a partly filled tail; null when empty.</summary>
    public Chunk? TryDequeue()
    {
        lock (_lock)
        {
            var chunk = _urgent.Take();
            if (chunk is not null) _urgentBytes -= chunk.Cells * Cell.Size;
            else chunk = _bulk.Take();
            if (chunk is not null) _queuedBytes -= chunk.Cells * Cell.Size;
            return chunk;
        }
    }

    public static void Return(Chunk chunk) => ArrayPool<byte>.Shared.Return(chunk.Buffer);

    /// <summary>Completes when a cell is queued or the queue closes.</summary>
    public Task WaitAsync()
    {
        lock (_lock)
        {
            if (_closed || !_urgent.IsEmpty || !_bulk.IsEmpty) return Task.CompletedTask;
            _waiter ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return _waiter.Task;
        }
    }

    /// <summary>Wakes the writer, to send what was queued without waking it, or to notice a state change such as draining.</summary>
    public void Nudge()
    {
        TaskCompletionSource? wake;
        lock (_lock)
        {
            wake = _waiter;
            _waiter = null;
        }
        wake?.TrySetResult();
    }

    public bool IsClosed
    {
        get { lock (_lock) return _closed; }
    }

    public void Close()
    {
        TaskCompletionSource? wake;
        lock (_lock)
        {
            _closed = true;
            wake = _waiter;
            _waiter = null;
            _urgent.Clear();
            _bulk.Clear();
            _queuedBytes = 0;
            _urgentBytes = 0;
        }
        wake?.TrySetResult();
    }
}
