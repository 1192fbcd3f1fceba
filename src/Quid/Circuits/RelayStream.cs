using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Quid.Wire;

namespace Quid.Circuits;

/// <summary>A stream could not be opened or was cut; <see cref="Reason"/> says why in the protocol's terms.</summary>
public sealed class StreamException(EndReason reason, string message) : Exception(message)
{
    public EndReason Reason { get; } = reason;
}

/// <summary>
/// One TCP stream carried on a circuit, joined to a local socket: the application's at the
/// origin, the destination's at the exit. Two pumps move bytes: socket to DATA cells (within the
/// package window) and DATA cells to socket (returning SENDMEs as bytes are written).
/// END with reason Done closes one direction, like a TCP FIN; any other reason aborts both.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Reliability", "CA1001",
    Justification = "The token source has no timer to free, and Abort may cancel it after the stream has finished.")]
public sealed class RelayStream
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
    private int _endSent;
    private int _finished;

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
    private long _bytesSent;

    /// <summary>Completes with the exit's address for the destination, or fails with a <see cref="StreamException"/>.</summary>
    internal Task<IPAddress?> Connected => _connected?.Task ?? Task.FromResult<IPAddress?>(null);

    internal void OnConnected(IPAddress? address) => _connected?.TrySetResult(address);

    /// <summary>A DATA cell arrived (link read loop): queue it for the socket, within the window.</summary>
    internal bool OnData(ReadOnlySpan<byte> data)
    {
        lock (_windowLock)
        {
            if (--_deliverWindow < 0) return false;
            _cellsReceived++;
            _bytesReceived += data.Length;
            if (_cellsReceived % StreamFlow.Increment == 0) _sendmeMarks.Enqueue(_bytesReceived);
        }
        _inbox.Enqueue(data);
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
            return;
        }
        _connected?.TrySetException(new StreamException(reason, $"The exit refused the stream: {Describe(reason)}."));
        Abort(reason, notifyPeer: false);
    }

    /// <summary>Stops the stream in both directions; tells the peer unless it told us.</summary>
    internal void Abort(EndReason reason, bool notifyPeer)
    {
        if (notifyPeer && Interlocked.Exchange(ref _endSent, 2) != 2) _circuit.SendRelay(RelayCommand.End, Id, [(byte)reason]);
        _connected?.TrySetException(new StreamException(reason, $"Stream aborted: {Describe(reason)}."));
        _inbox.Discard();
        _aborted.Cancel();
        lock (_windowLock)
        {
            _windowWaiter?.TrySetResult();
            _windowWaiter = null;
        }
        Finish();
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
            if (!await SendDataAsync(initialData).ConfigureAwait(false)) return;
            while (true)
            {
                int read = await socket.ReceiveAsync(buffer.AsMemory(0, ReadSize()), SocketFlags.None, _aborted.Token).ConfigureAwait(false);
                if (read == 0)
                {
                    if (Interlocked.CompareExchange(ref _endSent, 1, 0) == 0) _circuit.SendRelay(RelayCommand.End, Id, [(byte)EndReason.Done]);
                    return;
                }
                if (!await SendDataAsync(buffer.AsMemory(0, read)).ConfigureAwait(false)) return;
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
    private async ValueTask<bool> SendDataAsync(ReadOnlyMemory<byte> data)
    {
        if (_circuit.Role == CircuitRole.Exit && !data.IsEmpty)
            await _circuit.Manager.ShapeAsync(_circuit.InwardAccount?.Down, CellBytes(data.Length), _aborted.Token).ConfigureAwait(false);
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
                await wait.ConfigureAwait(false);
                continue;
            }
            // And one cell of the circuit's window, shared by all its streams.
            while (_circuit.TakeWindow() is { } circuitWait)
            {
                await circuitWait.ConfigureAwait(false);
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
                var data = await _inbox.PeekAsync(_aborted.Token).ConfigureAwait(false);
                if (data.IsEmpty)
                {
                    // The peer finished sending and everything is written: pass the FIN on.
                    if (!_aborted.IsCancellationRequested) socket.Shutdown(SocketShutdown.Send);
                    return;
                }
                // At an exit, what the partner sends waits for its share before it reaches the
                // destination; the SENDMEs wait with it, so the partner's excess waits at the partner.
                if (_circuit.Role == CircuitRole.Exit)
                    await _circuit.Manager.ShapeAsync(_circuit.InwardAccount?.Up, CellBytes(data.Length), _aborted.Token).ConfigureAwait(false);
                int written = await socket.SendAsync(data, SocketFlags.None, _aborted.Token).ConfigureAwait(false);
                _inbox.Advance(written);
                AcknowledgeDelivered(written);
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
        _ => "internal error",
    };
}
