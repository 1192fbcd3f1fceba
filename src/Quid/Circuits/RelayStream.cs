using Quid.Crypto;
using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Quid.Wire;

namespace Quid.Circuits;

/// <summary>A stream could not be opened or was cut; <see cref="Reason"/> says why in the protocol's terms.</summary>
public sealed class StreamException(EndReason reason, string message) : IOException(message)
{
    public EndReason Reason { get; } = reason;

    /// <summary>For a circuit that could not be built: the hop that refused, failed the handshake or did not answer, when one is to blame.</summary>
    public NodeId? FailedHop { get; init; }

    /// <summary>The hop before <see cref="FailedHop"/> carries all its grant allows there: it is fine, only busy.</summary>
    public bool HopFull { get; init; }
}

/// <summary>
/// One TCP stream carried on a circuit. It is a duplex <see cref="Stream"/>, like a socket's:
/// writes become DATA cells within the package window, reads take the bytes of DATA cells and
/// return SENDMEs as they are taken; <see cref="CompleteWrites"/> sends END Done, like a TCP FIN,
/// and reads return 0 once the peer's END Done has come and everything before it was read. END
/// with any other reason aborts both directions: reads and writes then throw
/// <see cref="StreamException"/>. Disposing ends the stream as closing a socket would (see
/// <see cref="Dispose(bool)"/>).
/// Where the other end is a socket (the application's at a SOCKS origin, the destination's at the
/// exit), <see cref="RunAsync"/> splices the two, writing straight from the inbox to the socket.
/// One reader and one writer at a time.
/// </summary>
public sealed class RelayStream : Stream
{
    private const int ReadBufferSize = 64 * 1024;

    private readonly Circuit _circuit;
    private readonly ByteQueue _inbox = new();
    private readonly CancellationTokenSource _aborted = new();
    // Only the origin waits for CONNECTED; an exit stream has nobody to observe it.
    private readonly TaskCompletionSource<IPAddress?>? _connected;
    private readonly Lock _windowLock = new();
    private readonly Queue<long> _sendmeMarks = new();
    private TaskCompletionSource? _windowWaiter;
    private int _packageWindow = StreamFlow.Window;
    private int _deliverWindow = StreamFlow.Window;
    private long _cellsReceived;
    private long _bytesReceived;
    private long _bytesDelivered;
    private long _bytesSent;
    private int _endSent;
    private int _finished;
    private volatile bool _readerGone;
    // Set before the inbox is discarded, so a reader woken by the abort finds out why.
    private StreamException? _abortedBecause;

    internal RelayStream(Circuit circuit, ushort id, StreamTarget target, bool origin)
    {
        _circuit = circuit;
        if (origin) _connected = new(TaskCreationOptions.RunContinuationsAsynchronously);
        Id = id;
        Target = target;
    }

    public ushort Id { get; }
    public StreamTarget Target { get; }
    public long BytesSent => Interlocked.Read(ref _bytesSent);
    public long BytesReceived => Interlocked.Read(ref _bytesReceived);

    /// <summary>Completes with the exit's address for the destination, or fails with a <see cref="StreamException"/>.</summary>
    internal Task<IPAddress?> Connected => _connected?.Task ?? Task.FromResult<IPAddress?>(null);

    internal void OnConnected(IPAddress? address) => _connected?.TrySetResult(address);

    /// <summary>A DATA cell arrived (link read loop): queue it for the reader, within the window.</summary>
    internal bool OnData(ReadOnlySpan<byte> data)
    {
        lock (_windowLock)
        {
            if (--_deliverWindow < 0) return false;
            if (!_readerGone)
            {
                _cellsReceived++;
                _bytesReceived += data.Length;
                if (_cellsReceived % StreamFlow.Increment == 0) _sendmeMarks.Enqueue(_bytesReceived);
            }
        }
        // Disposed with nothing left unread: this has nobody to go to, so the peer must stop, as a socket answers data after its close with a reset.
        if (_readerGone) Abort(EndReason.Internal, notifyPeer: true);
        else _inbox.Enqueue(data);
        return true;
    }

    /// <summary>The peer acknowledged cells: widen the package window. False if it acknowledged more than was sent.</summary>
    internal bool OnSendme()
    {
        TaskCompletionSource? wake;
        lock (_windowLock)
        {
            _packageWindow += StreamFlow.Increment;
            if (_packageWindow > StreamFlow.Window) return false;
            wake = _windowWaiter;
            _windowWaiter = null;
        }
        wake?.TrySetResult();
        return true;
    }

    /// <summary>The peer sent END: Done closes its direction, anything else aborts the stream.</summary>
    internal void OnEnd(EndReason reason)
    {
        if (reason == EndReason.Done)
        {
            _inbox.Complete();
            if (_readerGone) Finish();
            return;
        }
        _connected?.TrySetException(new StreamException(reason, $"The exit refused the stream: {Describe(reason)}."));
        Abort(reason, notifyPeer: false);
    }

    /// <summary>Stops the stream in both directions; tells the peer unless it told us.</summary>
    internal void Abort(EndReason reason, bool notifyPeer)
    {
        if (notifyPeer && Interlocked.Exchange(ref _endSent, 2) != 2) _circuit.SendRelay(RelayCommand.End, Id, [(byte)reason]);
        var because = new StreamException(reason, $"Stream aborted: {Describe(reason)}.");
        Interlocked.CompareExchange(ref _abortedBecause, because, null);
        _connected?.TrySetException(because);
        _inbox.Discard();
        _aborted.Cancel();
        lock (_windowLock)
        {
            _windowWaiter?.TrySetResult();
            _windowWaiter = null;
        }
        Finish();
    }

    /// <summary>Sends END Done: we will write no more, like a TCP FIN. The peer may go on sending.</summary>
    public void CompleteWrites()
    {
        if (Interlocked.CompareExchange(ref _endSent, 1, 0) == 0) _circuit.SendRelay(RelayCommand.End, Id, [(byte)EndReason.Done]);
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var data = await _inbox.PeekAsync(cancellationToken).ConfigureAwait(false);
        if (data.IsEmpty)
        {
            if (Volatile.Read(ref _abortedBecause) is { } aborted) throw aborted;
            return 0;
        }
        int n = Math.Min(data.Length, buffer.Length);
        data.Span[..n].CopyTo(buffer.Span);
        Delivered(n);
        return n;
    }

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (Volatile.Read(ref _endSent) == 1) throw new InvalidOperationException("Writes on this stream were completed.");
        if (!await SendDataAsync(buffer, cancellationToken).ConfigureAwait(false))
            throw Volatile.Read(ref _abortedBecause) ?? new StreamException(EndReason.CircuitClosed, "The circuit closed.");
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    // Blocking callers get the same, waiting, as a socket's blocking calls would.
    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    /// <summary>Cells go to the link as they are written: there is nothing to flush.</summary>
    public override void Flush()
    {
    }

    public override bool CanRead => true;
    public override bool CanWrite => true;
    public override bool CanSeek => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();

    /// <summary>
    /// Ends the stream as closing a socket would: what was written still arrives, with END Done
    /// after it; the peer's direction is over once it finishes too. Unread bytes, or bytes that
    /// arrive later, abort the stream instead, as they make a socket send a reset.
    /// </summary>
    protected override void Dispose(bool disposing)
    {
        if (disposing && Volatile.Read(ref _finished) == 0)
        {
            if (!StopReading()) Abort(EndReason.Internal, notifyPeer: true);
            else
            {
                CompleteWrites();
                if (_inbox.IsDrained) Finish();
            }
        }
        base.Dispose(disposing);
    }

    /// <summary>No reader from now on; false if bytes are left unread.</summary>
    private bool StopReading()
    {
        lock (_windowLock)
        {
            if (_bytesReceived != _bytesDelivered) return false;
            _readerGone = true;
            return true;
        }
    }

    /// <summary>
    /// Joins the stream to <paramref name="socket"/> and moves bytes both ways until both
    /// directions have ended or the stream is aborted. <paramref name="initialData"/> is sent first
    /// (bytes the application sent before the stream was open).
    /// </summary>
    public async Task RunAsync(Socket socket, ReadOnlyMemory<byte> initialData = default)
    {
        try
        {
            var toCircuit = PumpToCircuitAsync(socket, initialData);
            var toSocket = PumpToSocketAsync(socket);
            await Task.WhenAll(toCircuit, toSocket).ConfigureAwait(false);
        }
        finally
        {
            Finish();
            socket.Dispose();
        }
    }

    private async Task PumpToCircuitAsync(Socket socket, ReadOnlyMemory<byte> initialData)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(ReadBufferSize);
        try
        {
            if (!await SendDataAsync(initialData, _aborted.Token).ConfigureAwait(false)) return;
            while (true)
            {
                int read = await socket.ReceiveAsync(buffer.AsMemory(0, ReadSize()), SocketFlags.None, _aborted.Token).ConfigureAwait(false);
                if (read == 0)
                {
                    CompleteWrites();
                    return;
                }
                if (!await SendDataAsync(buffer.AsMemory(0, read), _aborted.Token).ConfigureAwait(false)) return;
            }
        }
        catch (OperationCanceledException)
        {
            // Aborted: the other side already knows.
        }
        catch (SocketException)
        {
            Abort(EndReason.Internal, notifyPeer: true);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// Cuts data into DATA cells, waiting for the window; false when the stream is gone. At an
    /// exit, the cells wait for the partner's share first: that is what shapes its downloads.
    /// </summary>
    private async ValueTask<bool> SendDataAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        if (_circuit.Role == CircuitRole.Exit && !data.IsEmpty)
            await _circuit.ShapeAsync(_circuit.InwardAccount?.Down, CellBytes(data.Length), cancellationToken).ConfigureAwait(false);
        while (!data.IsEmpty)
        {
            Task? wait = null;
            lock (_windowLock)
            {
                if (_aborted.IsCancellationRequested) return false;
                if (_packageWindow == 0)
                {
                    _windowWaiter ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    wait = _windowWaiter.Task;
                }
                else
                {
                    _packageWindow--;
                }
            }
            if (wait is not null)
            {
                await wait.WaitAsync(cancellationToken).ConfigureAwait(false);
                continue;
            }
            // And one cell of the circuit's window, shared by all its streams.
            while (_circuit.TakeWindow() is { } circuitWait)
            {
                await circuitWait.WaitAsync(cancellationToken).ConfigureAwait(false);
                if (_aborted.IsCancellationRequested || _circuit.State == CircuitState.Closed) return false;
            }
            int n = Math.Min(data.Length, RelayCell.MaxData);
            if (!_circuit.SendRelay(RelayCommand.Data, Id, data.Span[..n])) return false;
            Interlocked.Add(ref _bytesSent, n);
            data = data[n..];
        }
        return true;
    }

    private async Task PumpToSocketAsync(Socket socket)
    {
        try
        {
            while (true)
            {
                // The inbox wakes this on an abort too: it is emptied and completed.
                var data = await _inbox.PeekAsync(CancellationToken.None).ConfigureAwait(false);
                if (data.IsEmpty)
                {
                    // The peer finished sending and everything is written: pass the FIN on.
                    if (Volatile.Read(ref _abortedBecause) is null) socket.Shutdown(SocketShutdown.Send);
                    return;
                }
                // At an exit, what the partner sends waits for its share before it reaches the
                // destination; the SENDMEs wait with it, so the partner's excess waits at the partner.
                if (_circuit.Role == CircuitRole.Exit)
                    await _circuit.ShapeAsync(_circuit.InwardAccount?.Up, CellBytes(data.Length), _aborted.Token).ConfigureAwait(false);
                int written = await socket.SendAsync(data, SocketFlags.None, _aborted.Token).ConfigureAwait(false);
                Delivered(written);
            }
        }
        catch (OperationCanceledException)
        {
            // Aborted.
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            Abort(EndReason.Internal, notifyPeer: true);
        }
    }

    /// <summary>The first <paramref name="count"/> bytes of the inbox reached the application or destination: acknowledge them.</summary>
    private void Delivered(int count)
    {
        _inbox.Advance(count);
        AcknowledgeDelivered(count);
    }

    private void AcknowledgeDelivered(int written)
    {
        int sendmes = 0;
        lock (_windowLock)
        {
            _bytesDelivered += written;
            while (_sendmeMarks.TryPeek(out long mark) && mark <= _bytesDelivered)
            {
                _sendmeMarks.Dequeue();
                _deliverWindow += StreamFlow.Increment;
                sendmes++;
            }
        }
        for (int i = 0; i < sendmes; i++) _circuit.SendRelay(RelayCommand.Sendme, Id, []);
    }

    /// <summary>
    /// How much to read from the socket at once. At an exit the reads are sized to about 20 ms of
    /// the partner's share, so shaping stays smooth at low rates (one 64 KiB read is a quarter of
    /// a second at 2 Mbit/s) and costs few calls at high ones; always whole cells' worth, since
    /// the share pays for whole cells.
    /// </summary>
    private int ReadSize() =>
        _circuit.Role == CircuitRole.Exit && _circuit.InwardAccount?.Down is { } share
            ? (int)Math.Clamp(share.GuaranteedBytesPerSecond / 50 / RelayCell.MaxData, 1, ReadBufferSize / RelayCell.MaxData) * RelayCell.MaxData
            : ReadBufferSize;

    /// <summary>The link bytes that carry <paramref name="dataBytes"/>: grants are counted in whole cells.</summary>
    private static int CellBytes(int dataBytes) => (dataBytes + RelayCell.MaxData - 1) / RelayCell.MaxData * Cell.Size;

    private void Finish()
    {
        if (Interlocked.Exchange(ref _finished, 1) == 0) _circuit.RemoveStream(this);
    }

    internal static string Describe(EndReason reason) => reason switch
    {
        EndReason.Done => "finished",
        EndReason.ConnectionRefused => "connection refused",
        EndReason.ResolveFailed => "the exit could not resolve the name",
        EndReason.ExitPolicy => "the exit's policy forbids this destination",
        EndReason.Timeout => "timed out",
        EndReason.Unreachable => "destination unreachable",
        EndReason.CircuitClosed => "the circuit closed",
        EndReason.Protocol => "protocol violation",
        EndReason.ResourceLimit => "the exit has no room for more of your streams",
        _ => "internal error",
    };
}
