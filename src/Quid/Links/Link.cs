using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Quid.Crypto;
using Quid.Crypto.Noise;
using Quid.Wire;

namespace Quid.Links;

/// <summary>Where a link is in its life, kept so a stuck link can say where it is stuck.</summary>
public enum LinkState { Open, Closing, Closed }

/// <summary>
/// One end of a link as the circuits see it: whom it reaches, which side dialed it, and a queue
/// for cells. <see cref="Link"/> is the real one; tests drive circuits over in-memory ports.
/// </summary>
public interface ICellPort
{
    NodeId PeerId { get; }
    /// <summary>Whether we dialed it: the ends of a link pick circuit ids from different halves by this.</summary>
    bool Outbound { get; }
    bool IsOpen { get; }
    /// <summary>How long what is queued on the port would take to go out (<see cref="Link.Backlog"/>).</summary>
    TimeSpan Backlog { get; }
    /// <summary>Queues one cell; false once the port is closing.</summary>
    bool TrySend(ReadOnlySpan<byte> cell);
    /// <summary>
    /// Queues one cell from another port's read loop: the sender is woken once after the whole
    /// batch that loop read, so a relay costs one thread switch per batch rather than per cell.
    /// </summary>
    bool TrySendBatched(ReadOnlySpan<byte> cell);
    void Close(Exception? reason);
}

/// <summary>
/// Takes the circuit cells (circuit id not 0) a link receives. Called on the link's read loop: it
/// must not block. The cell is the link's own buffer, so a relay may change it in place and pass
/// it on without a copy.
/// </summary>
public interface ICircuitCells
{
    void OnCell(ICellPort link, Span<byte> cell);
    void OnClosed(ICellPort link);
}

/// <summary>
/// Takes the control messages (circuit 0) a link receives, joined from their fragments but not
/// decoded, and hears when the link closes. Called on the link's read loop: it must not block.
/// </summary>
public interface IControlMessages
{
    void OnControl(Link link, byte[] payload);
    void OnClosed(Link link, Exception? reason);
}

public sealed record LinkOptions
{
    /// <summary>The whole handshake, from connect or accept to its last message.</summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>
    /// An accepted connection whose first handshake message has not arrived by then is closed: an
    /// honest initiator sends it as soon as it connects, so only a silent one waits this long.
    /// </summary>
    public TimeSpan FirstMessageTimeout { get; init; } = TimeSpan.FromSeconds(3);
    /// <summary>Handshakes a listener runs at once, from all sources together.</summary>
    public int MaxConcurrentHandshakes { get; init; } = 64;
    /// <summary>Handshakes one source (an IPv4 address, an IPv6 /64) may have in progress at once.</summary>
    public int MaxHandshakesPerSource { get; init; } = 4;
    /// <summary>Handshakes one source may start per second, on average, after a burst of <see cref="HandshakeBurstPerSource"/>.</summary>
    public double HandshakeRatePerSource { get; init; } = 2;
    public int HandshakeBurstPerSource { get; init; } = 10;
    /// <summary>Sources a listener keeps counts for; past this it forgets the one seen least recently with no handshake in progress.</summary>
    public int MaxTrackedSources { get; init; } = 4096;
    /// <summary>A padding cell goes out when nothing else has for this long.</summary>
    public TimeSpan KeepaliveInterval { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>A link that hears nothing for this long is dead.</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromSeconds(95);
    /// <summary>
    /// The last resort against a link that does not drain: more than this waiting to go out closes
    /// it. What keeps a link's queue short in time is elsewhere: the overlay drops queries and hits
    /// once a link is more than a second behind for them (<see cref="Link.UrgentBacklog"/>), and
    /// circuits hold at most one window (2 MiB) each in flight. Thirty-two such windows: a link may
    /// carry many busy circuits (the benchmark runs 20 over one), and closing it would cut them all.
    /// </summary>
    public long MaxQueuedBytes { get; init; } = 64L * 1024 * 1024;
}

/// <summary>
/// An authenticated, encrypted TCP link to one other node, carrying fixed-size cells for many
/// circuits. It owns the socket and two loops: the reader decrypts frames and hands each cell to
/// the handler; the writer packs queued cells into frames and sends them in large writes.
/// </summary>
public sealed class Link : ICellPort, IAsyncDisposable
{
    private const int ReceiveBufferSize = 256 * 1024;
    private const int SendBufferSize = 256 * 1024;
    /// <summary>
    /// Unsent bytes the kernel may hold for the socket (TCP_NOTSENT_LOWAT, Linux): its send buffer
    /// grows to megabytes, seconds of a slow link in which urgent cells would wait behind the
    /// bulk, and while writes went straight into it the link never looked behind. Above this the
    /// writer waits, the backlog is ours to see, and urgent cells go first.
    /// </summary>
    private const int KernelUnsentBytes = 32 * 1024;
    /// <summary>A write gathers about this much of the measured drain rate, so that urgent cells queued meanwhile wait no longer.</summary>
    private static readonly TimeSpan WriteSpan = TimeSpan.FromMilliseconds(50);
    /// <summary>The drain rate is measured over at least this much time spent writing to the socket.</summary>
    private static readonly TimeSpan DrainSample = TimeSpan.FromMilliseconds(500);

    private readonly Socket _socket;
    private readonly LinkCipher _send;
    private readonly LinkCipher _receive;
    private readonly LinkOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly CellQueue _queue = new();
    private readonly CancellationTokenSource _closing = new();
    private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ControlReassembler _control = new();
    private ICircuitCells? _circuits;
    private IControlMessages? _controlMessages;
    private ITimer? _keepalive;
    private Task _readLoop = Task.CompletedTask;
    private Task _writeLoop = Task.CompletedTask;
    private byte[] _pendingInput;
    private long _lastReceived;
    private long _lastSent;
    private int _state = (int)LinkState.Open;
    private volatile bool _draining;
    /// <summary>When the write to the socket now under way began; 0 between writes.</summary>
    private long _writeStarted;
    /// <summary>Bytes a second the link has been measured to drain at; 0 until measured.</summary>
    private long _drainRate;
    // The writer's sample so far: only its loop touches these.
    private long _sampleBytes;
    private TimeSpan _sampleTime;

    public NodeId PeerId { get; }
    public byte[] PeerSigningKey { get; }
    public IPEndPoint RemoteEndPoint { get; }
    public IPEndPoint LocalEndPoint { get; }
    public bool Outbound { get; }
    public DateTimeOffset Established { get; }
    public LinkState State => (LinkState)Volatile.Read(ref _state);
    public bool IsOpen => State == LinkState.Open;
    public long BytesSent => Interlocked.Read(ref _bytesSent);
    public long BytesReceived => Interlocked.Read(ref _bytesReceived);
    public long QueuedBytes => _queue.QueuedBytes;
    /// <summary>
    /// Bytes a second the link drains at, as measured by the time its writes spent in the socket:
    /// while the kernel's buffer takes them at once this reads high, but then nothing waits; when
    /// the network (or the peer) is the bottleneck, writes wait for room and it reads the real
    /// rate. 0 until the writer has spent <see cref="DrainSample"/> writing.
    /// </summary>
    public long DrainBytesPerSecond => Volatile.Read(ref _drainRate);

    /// <summary>
    /// How far behind the link is: how long what is queued would take to go out at the measured
    /// drain rate, and at least as long as the write under way has waited for the socket (which
    /// also covers a link whose rate is not measured yet, or whose peer stopped reading).
    /// </summary>
    public TimeSpan Backlog => Behind(_queue.QueuedBytes);

    /// <summary>
    /// How far behind the link is for an urgent cell, such as a control message's: it waits only
    /// for the urgent lane and the write under way. The overlay drops queries and hits for a link
    /// more than a second behind by this measure.
    /// </summary>
    public TimeSpan UrgentBacklog => Behind(_queue.UrgentBytes);

    private TimeSpan Behind(long queuedBytes)
    {
        long started = Volatile.Read(ref _writeStarted);
        var waited = started == 0 ? TimeSpan.Zero : _time.GetElapsedTime(started);
        long rate = DrainBytesPerSecond;
        var queued = rate > 0 ? TimeSpan.FromSeconds((double)queuedBytes / rate) : TimeSpan.Zero;
        return queued > waited ? queued : waited;
    }
    /// <summary>Completes when the link has closed, for whatever reason.</summary>
    public Task Closed => _closed.Task;

    private long _bytesSent;
    private long _bytesReceived;

    private Link(Socket socket, LinkHandshake handshake, byte[] pendingInput, bool outbound, LinkOptions options, TimeProvider time, ILogger logger)
    {
        _socket = socket;
        (_send, _receive) = handshake.Split();
        PeerId = handshake.PeerId;
        PeerSigningKey = handshake.PeerSigningKey;
        _pendingInput = pendingInput;
        Outbound = outbound;
        _options = options;
        _time = time;
        _logger = logger;
        if (OperatingSystem.IsLinux()) LimitKernelUnsent(socket);
        RemoteEndPoint = (IPEndPoint)socket.RemoteEndPoint!;
        LocalEndPoint = (IPEndPoint)socket.LocalEndPoint!;
        Established = time.GetUtcNow();
        _lastReceived = _lastSent = time.GetTimestamp();
    }

    private static void LimitKernelUnsent(Socket socket)
    {
        const int IpProtoTcp = 6, TcpNotSentLowat = 25;
        try
        {
            socket.SetRawSocketOption(IpProtoTcp, TcpNotSentLowat, BitConverter.GetBytes(KernelUnsentBytes));
        }
        catch (SocketException)
        {
            // A kernel before 3.12: the link works, with the kernel's whole buffer ahead of urgent cells.
        }
    }

    /// <summary>Dials a node and runs the handshake; <paramref name="expectedPeer"/> pins the node id when known.</summary>
    public static async Task<Link> ConnectAsync(IPEndPoint remote, IPAddress? bindAddress, NodeIdentity identity, NodeId? expectedPeer,
        LinkOptions options, TimeProvider time, ILogger logger, CancellationToken cancellationToken)
    {
        var socket = new Socket(remote.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            if (bindAddress is not null && bindAddress.AddressFamily == remote.AddressFamily)
                socket.Bind(new IPEndPoint(bindAddress, 0));
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(options.HandshakeTimeout);
            try
            {
                await socket.ConnectAsync(remote, timeout.Token).ConfigureAwait(false);
                using var handshake = LinkHandshake.Initiate(identity, expectedPeer);
                var pending = await RunHandshakeAsync(socket, handshake, timeout.Token).ConfigureAwait(false);
                return new Link(socket, handshake, pending, outbound: true, options, time, logger);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new LinkException(LinkError.HandshakeTimeout, $"No link to {remote} within {options.HandshakeTimeout.TotalSeconds:0} s.");
            }
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Runs the responder's handshake on an accepted socket.</summary>
    public static async Task<Link> AcceptAsync(Socket socket, NodeIdentity identity, LinkOptions options, TimeProvider time, ILogger logger, CancellationToken cancellationToken)
    {
        socket.NoDelay = true;
        try
        {
            // A silent connection is dropped at the first message's deadline; one that has begun gets the whole handshake's.
            long accepted = time.GetTimestamp();
            bool heard = false;
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(options.FirstMessageTimeout < options.HandshakeTimeout ? options.FirstMessageTimeout : options.HandshakeTimeout);
            using var handshake = LinkHandshake.Respond(identity);
            try
            {
                var pending = await RunHandshakeAsync(socket, handshake, timeout.Token, firstMessageReceived: () =>
                {
                    heard = true;
                    var left = options.HandshakeTimeout - time.GetElapsedTime(accepted);
                    timeout.CancelAfter(left > TimeSpan.Zero ? left : TimeSpan.Zero);
                }).ConfigureAwait(false);
                return new Link(socket, handshake, pending, outbound: false, options, time, logger);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new LinkException(LinkError.HandshakeTimeout, heard
                    ? $"Peer {socket.RemoteEndPoint} did not finish the handshake in time."
                    : $"Peer {socket.RemoteEndPoint} sent no handshake message within {options.FirstMessageTimeout.TotalSeconds:0.#} s.");
            }
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Drives the sans-IO handshake over the socket; returns bytes read past its end.</summary>
    private static async Task<byte[]> RunHandshakeAsync(Socket socket, LinkHandshake handshake, CancellationToken cancellationToken, Action? firstMessageReceived = null)
    {
        var first = handshake.Start();
        if (first.Length > 0) await socket.SendAsync(first, SocketFlags.None, cancellationToken).ConfigureAwait(false);
        var buffer = new byte[4 * LinkHandshake.MaxMessageSize];
        int filled = 0;
        while (!handshake.IsComplete)
        {
            if (filled == buffer.Length) throw new LinkException(LinkError.HandshakeFailed, "Handshake message too large.");
            int read = await socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (read == 0) throw new LinkException(LinkError.HandshakeFailed, "Peer closed the connection during the handshake.");
            filled += read;
            int offset = 0;
            while (!handshake.IsComplete)
            {
                var reply = handshake.Receive(buffer.AsSpan(offset, filled - offset), out int consumed);
                if (consumed == 0) break;
                firstMessageReceived?.Invoke();
                firstMessageReceived = null;
                offset += consumed;
                if (reply.Length > 0) await socket.SendAsync(reply, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            }
            buffer.AsSpan(offset, filled - offset).CopyTo(buffer);
            filled -= offset;
        }
        return buffer.AsSpan(0, filled).ToArray();
    }

    /// <summary>Starts the loops; from here on circuit cells go to <paramref name="circuits"/>, control messages to <paramref name="control"/>.</summary>
    public void Start(ICircuitCells circuits, IControlMessages control)
    {
        _circuits = circuits;
        _controlMessages = control;
        _readLoop = Task.Run(ReadLoopAsync);
        _writeLoop = Task.Run(WriteLoopAsync);
        var period = _options.KeepaliveInterval / 3;
        _keepalive = _time.CreateTimer(_ => CheckLiveness(), null, period, period);
    }

    // Links a read loop queued cells on without waking their writers; flushed once per socket read.
    [ThreadStatic] private static List<Link>? t_deferred;

    /// <summary>Queues one cell; false when the link is closing.</summary>
    public bool TrySend(ReadOnlySpan<byte> cell) => Send(cell, wake: true);

    /// <inheritdoc/>
    public bool TrySendBatched(ReadOnlySpan<byte> cell)
    {
        if (t_deferred is not { } deferred) return TrySend(cell);
        // Each read loop keeps its own list, so no other loop's flush can miss this cell.
        if (!deferred.Contains(this)) deferred.Add(this);
        return Send(cell, wake: false);
    }

    private bool Send(ReadOnlySpan<byte> cell, bool wake)
    {
        if (!_queue.Enqueue(cell, wake, IsUrgent(cell))) return false;
        if (_queue.QueuedBytes > _options.MaxQueuedBytes)
        {
            Close(new LinkException(LinkError.Overloaded, $"More than {_options.MaxQueuedBytes >> 20} MiB queued for {PeerId.Brief}."));
            return false;
        }
        return true;
    }

    /// <summary>
    /// Cells that go out before the bulk of relay cells: circuit builds (CREATE, CREATED, and the
    /// RelayEarly cells that extend, at most <see cref="Cell.MaxRelayEarly"/> a circuit), control
    /// messages and padding. On a loaded link of a few Mbit/s a CREATE waited seconds behind
    /// downloads, and a probe's circuit was not built within its wait (seen on the testbed).
    /// Relay cells and DESTROY keep their order: a DESTROY must not overtake its circuit's cells.
    /// </summary>
    private static bool IsUrgent(ReadOnlySpan<byte> cell) => Cell.Command(cell) is not (CellCommand.Relay or CellCommand.Destroy);

    public bool SendControl(ControlMessage message)
    {
        var payload = ControlCodec.Encode(message);
        int count = ControlFraming.CellCount(payload.Length);
        var cells = ArrayPool<byte>.Shared.Rent(count * Cell.Size);
        try
        {
            ControlFraming.WriteCells(payload, cells);
            for (int i = 0; i < count; i++)
                if (!TrySend(cells.AsSpan(i * Cell.Size, Cell.Size))) return false;
            return true;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(cells);
        }
    }

    private async Task ReadLoopAsync()
    {
        var buffer = ArrayPool<byte>.Shared.Rent(ReceiveBufferSize);
        var cells = ArrayPool<byte>.Shared.Rent(LinkFraming.MaxCellsPerFrame * Cell.Size);
        var deferred = new List<Link>();
        try
        {
            int filled = _pendingInput.Length;
            _pendingInput.CopyTo(buffer, 0);
            _pendingInput = [];
            while (true)
            {
                int offset = 0;
                t_deferred = deferred;
                while (true)
                {
                    var status = LinkFraming.Decode(_receive, buffer.AsSpan(offset, filled - offset), cells, out int consumed, out int cellBytes);
                    if (status != OperationStatus.Done) break;
                    offset += consumed;
                    Interlocked.Add(ref _bytesReceived, consumed);
                    Volatile.Write(ref _lastReceived, _time.GetTimestamp());
                    for (int at = 0; at < cellBytes; at += Cell.Size)
                    {
                        var cell = cells.AsSpan(at, Cell.Size);
                        try
                        {
                            Cell.Validate(cell);
                        }
                        catch (WireException e)
                        {
                            throw new LinkException(LinkError.BadCell, e.Message, e);
                        }
                        if (Cell.CircuitId(cell) != 0) _circuits!.OnCell(this, cell);
                        else if (Cell.Command(cell) == CellCommand.Control && Reassemble(cell) is { } payload) _controlMessages!.OnControl(this, payload);
                    }
                }
                t_deferred = null;
                FlushDeferred(deferred);
                if (offset > 0)
                {
                    buffer.AsSpan(offset, filled - offset).CopyTo(buffer);
                    filled -= offset;
                }
                int read = await _socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None, _closing.Token).ConfigureAwait(false);
                if (read == 0)
                {
                    Close(null);
                    return;
                }
                filled += read;
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
        {
            Close(null);
        }
        catch (Exception e) when (e is SocketException or LinkException or WireException)
        {
            Close(e);
        }
        finally
        {
            t_deferred = null;
            FlushDeferred(deferred);
            ArrayPool<byte>.Shared.Return(buffer);
            ArrayPool<byte>.Shared.Return(cells);
        }
    }

    /// <summary>Adds a control fragment; the whole message once its last fragment is in.</summary>
    private byte[]? Reassemble(ReadOnlySpan<byte> cell)
    {
        try
        {
            return _control.Add(Cell.Body(cell));
        }
        catch (WireException e)
        {
            throw new LinkException(LinkError.BadCell, $"Malformed control message: {e.Message}", e);
        }
    }

    private static void FlushDeferred(List<Link> deferred)
    {
        foreach (var link in deferred) link._queue.Nudge();
        deferred.Clear();
    }

    private async Task WriteLoopAsync()
    {
        var output = ArrayPool<byte>.Shared.Rent(SendBufferSize + LinkFraming.MaxFrameSize);
        try
        {
            while (true)
            {
                if (_draining && _queue.QueuedBytes == 0)
                {
                    Close(null);
                    return;
                }
                await _queue.WaitAsync().ConfigureAwait(false);
                if (_queue.IsClosed) return;
                int length = 0;
                // Gather frames until the buffer is full or the queue empty: one syscall for many
                // cells; on a slow link, about WriteSpan's worth.
                long rate = Volatile.Read(ref _drainRate);
                int limit = rate == 0 ? SendBufferSize : (int)Math.Clamp(rate * WriteSpan.TotalSeconds, 1, SendBufferSize);
                while (length < limit && _queue.TryDequeue() is { } chunk)
                {
                    length += LinkFraming.Encode(_send, chunk.Data, output.AsSpan(length));
                    CellQueue.Return(chunk);
                }
                if (length == 0) continue;
                long started = _time.GetTimestamp();
                Volatile.Write(ref _writeStarted, started);
                await _socket.SendAsync(output.AsMemory(0, length), SocketFlags.None, _closing.Token).ConfigureAwait(false);
                long sent = _time.GetTimestamp();
                Volatile.Write(ref _writeStarted, 0);
                Interlocked.Add(ref _bytesSent, length);
                Volatile.Write(ref _lastSent, sent);
                MeasureDrain(length, _time.GetElapsedTime(started, sent));
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
        {
            Close(null);
        }
        catch (SocketException e)
        {
            Close(e);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(output);
        }
    }

    /// <summary>Adds one write to the sample; a full sample is the drain rate from then on.</summary>
    private void MeasureDrain(int bytes, TimeSpan took)
    {
        _sampleBytes += bytes;
        _sampleTime += took;
        if (_sampleTime < DrainSample) return;
        Volatile.Write(ref _drainRate, (long)(_sampleBytes / _sampleTime.TotalSeconds));
        _sampleBytes = 0;
        _sampleTime = TimeSpan.Zero;
    }

    private void CheckLiveness()
    {
        if (State != LinkState.Open) return;
        if (_time.GetElapsedTime(Volatile.Read(ref _lastReceived)) > _options.IdleTimeout)
        {
            Close(new LinkException(LinkError.IdleTimeout, $"Nothing heard from {PeerId.Brief} for {_options.IdleTimeout.TotalSeconds:0} s."));
            return;
        }
        if (_time.GetElapsedTime(Volatile.Read(ref _lastSent)) > _options.KeepaliveInterval)
        {
            Span<byte> padding = stackalloc byte[Cell.Size];
            padding.Clear();
            Cell.WriteHeader(padding, 0, CellCommand.Padding);
            TrySend(padding);
        }
    }

    /// <summary>Closes the link at once; queued cells are dropped. Safe to call from any thread, more than once.</summary>
    public void Close(Exception? reason)
    {
        if (Interlocked.CompareExchange(ref _state, (int)LinkState.Closing, (int)LinkState.Open) != (int)LinkState.Open) return;
        if (reason is null) _logger.LogDebug("Link to {Peer} closed", PeerId.Brief);
        else _logger.LogInformation("Link to {Peer} closed: {Reason}", PeerId.Brief, reason.Message);
        _keepalive?.Dispose();
        _queue.Close();
        _closing.Cancel();
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
            // Already reset by the peer: nothing left to shut down.
        }
        _socket.Dispose();
        Volatile.Write(ref _state, (int)LinkState.Closed);
        _circuits?.OnClosed(this);
        _controlMessages?.OnClosed(this, reason);
        _closed.TrySetResult();
    }

    /// <summary>Sends what is queued (for at most <paramref name="timeout"/>), then closes.</summary>
    public async Task DrainAndCloseAsync(TimeSpan timeout)
    {
        _draining = true;
        _queue.Nudge();
        try
        {
            await Closed.WaitAsync(timeout, _time).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            Close(null);
        }
    }

    public async ValueTask DisposeAsync()
    {
        Close(null);
        await Task.WhenAll(_readLoop, _writeLoop).ConfigureAwait(false);
        _send.Dispose();
        _receive.Dispose();
        _closing.Dispose();
    }

    public override string ToString() => $"link {PeerId.Brief} {(Outbound ? "to" : "from")} {RemoteEndPoint}";
}
