using System.Buffers.Binary;
using System.Net;
using System.Security.Cryptography;
using System.Threading.Channels;
using Quid.Crypto;
using Quid.Exchange;
using Quid.Links;
using Quid.Wire;

namespace Quid.Circuits;

public enum CircuitRole
{
    /// <summary>We built it: our applications' streams start here.</summary>
    Origin,
    /// <summary>We are a middle hop: cells pass through, one layer removed or added.</summary>
    Relay,
    /// <summary>We are the last hop of someone else's circuit: its streams leave the network here.</summary>
    Exit,
}

public enum CircuitState { Building, Open, Closed }

/// <summary>One hop of a circuit we built: who it is and the layer we share with it.</summary>
public sealed record Hop(NodeId Id, OnionLayer Layer);

/// <summary>
/// The answer to a CREATE or EXTEND: the new hop's handshake reply, or why the hop before it
/// could not extend. Neither when the circuit closed first.
/// </summary>
internal readonly record struct HopReply(byte[]? Handshake, ExtendFailure? Failure);

/// <summary>Ends circuits for them: the table a circuit is registered in, which knows its neighbours.</summary>
internal interface ICircuitOwner
{
    /// <summary>Closes the circuit and tells the neighbours on it.</summary>
    void Destroy(Circuit circuit, DestroyReason reason);
    /// <summary>A neighbour broke the relay protocol on the circuit: it ends, the links stay.</summary>
    void Violation(Circuit circuit, string reason);
}

/// <summary>Serves a stream a client began to this node's own credit desk (PROTOCOL §10.4); the handler owns the stream.</summary>
public delegate Task DeskHandler(RelayStream stream);

/// <summary>Where the streams the origin begins at this, its last hop, leave the network.</summary>
internal interface IStreamExit
{
    void Begin(Circuit circuit, RelayStream stream);
    void Resolve(Circuit circuit, ushort streamId, string host);
}

/// <summary>Extends a circuit, at the origin's request, from this, its last hop, to one of our partners.</summary>
internal interface ICircuitExtender
{
    void Extend(Circuit circuit, ReadOnlySpan<byte> request);
}

/// <summary>
/// A circuit, at any of its positions. It has an inward side (toward the client; none at the
/// origin) and an outward side (toward the exit; none at the exit). Cells arriving inward travel
/// outward: a relay removes its layer and passes them on, the exit reads them. Cells arriving
/// outward travel inward: a relay adds its layer, the origin removes every layer and reads them.
/// A cell that fails its layer, or breaks the protocol, destroys the circuit, never the node.
/// </summary>
public sealed partial class Circuit
{
    /// <summary>Echo requests waiting for their reply; more than a probe's window is a violation.</summary>
    internal const int MaxPendingEchoes = 128;

    private readonly ICircuitOwner _owner;
    private readonly Lock _lock = new();
    private readonly Lock _sendLock = new();
    private readonly Dictionary<ushort, RelayStream> _streams = [];
    private readonly Dictionary<ushort, TaskCompletionSource<IPAddress[]>> _resolves = [];
    // Replaced, never changed in place: the per-cell paths read it without a lock.
    private volatile Hop[] _hops = [];
    private TaskCompletionSource<HopReply>? _pendingReply;
    private Channel<byte[]>? _echoes;
    private Action<ReadOnlyMemory<byte>>? _echoReplies;
    private RelayForwarder? _toOutward;
    private RelayForwarder? _toInward;
    private ushort _nextStreamId;
    private int _state = (int)CircuitState.Building;
    // Sending: cells unacknowledged, held to the congestion window; the time each Increment-th
    // cell was sent, to take the round trip when its Sendme comes back.
    private readonly CongestionWindow _congestion = new();
    private readonly Queue<long> _sendmeDue = new(CongestionWindow.Max / CircuitFlow.Increment);
    private int _inFlight;
    private long _dataSent;
    private int _deliverWindow = CircuitFlow.Window;
    private int _received;
    private int _relayEarly;
    private TaskCompletionSource? _windowWaiter;
    // Cells from the client's side, counted on the inward link's read loop alone: whether the
    // circuit is in use (a download's Sendmes come this way too). Read by CarriedWithin.
    private long _cellsFromInward;
    private long _cellsSeen;
    private DateTimeOffset _carryingSeenAt;

    internal Circuit(CircuitRole role, ICircuitOwner owner, TimeProvider time)
    {
        _owner = owner;
        Role = role;
        Time = time;
        CreatedAt = time.GetUtcNow();
        _carryingSeenAt = CreatedAt;
        _nextStreamId = (ushort)Random.Shared.Next(1, ushort.MaxValue);
    }

    internal TimeProvider Time { get; }
    /// <summary>At a last hop: where the origin's streams leave the network.</summary>
    internal IStreamExit? Exit { get; init; }
    /// <summary>This node's credit desk, for streams a client begins with BeginDesk; null when it keeps none.</summary>
    internal DeskHandler? Desk { get; init; }
    /// <summary>At a last hop: who extends the circuit when the origin asks.</summary>
    internal ICircuitExtender? Extender { get; init; }
    /// <summary>How many streams may be open at once: at a last hop, the origin's; at the origin, ours (the exit's limit too, unless it set another).</summary>
    internal int MaxStreams { get; init; }
    public CircuitRole Role { get; private set; }
    public DateTimeOffset CreatedAt { get; }
    public CircuitState State => (CircuitState)Volatile.Read(ref _state);

    /// <summary>Toward the client: the link the circuit came in on. Null at the origin.</summary>
    public ICellPort? Inward { get; internal init; }
    public uint InwardId { get; internal init; }
    /// <summary>Toward the exit: the first hop at the origin, the next hop at a relay. Null at the exit.</summary>
    public ICellPort? Outward { get; private set; }
    public uint OutwardId { get; private set; }

    /// <summary>Our layer, when we are a hop of someone else's circuit.</summary>
    internal OnionLayer? Layer { get; init; }
    /// <summary>The hops of a circuit we built, first to last.</summary>
    public IReadOnlyList<Hop> Hops => _hops;

    /// <summary>
    /// The neighbour the circuit is billed to: the one that built it on our inward link. Every cell
    /// we carry on it is bandwidth we give that neighbour, shaped to its share.
    /// </summary>
    public PartnerAccount? InwardAccount { get; internal init; }
    /// <summary>The neighbour that carries the circuit for us on our outward link: what it does counts as received.</summary>
    public PartnerAccount? OutwardAccount { get; private set; }

    /// <summary>Streams with different isolation keys (SOCKS credentials) never share a circuit.</summary>
    public object? Isolation { get; internal init; }

    /// <summary>The node whose exit policy the circuit's streams meet, as the origin chose it.</summary>
    public Descriptor? ExitDescriptor { get; internal set; }

    public int StreamCount
    {
        get { lock (_lock) return _streams.Count; }
    }

    /// <summary>Whether the circuit has as many streams open as it may; call under the lock, or take it as a hint.</summary>
    internal bool IsFull => MaxStreams > 0 && _streams.Count >= MaxStreams;

    /// <summary>The neighbour toward the exit, or the one toward the client at an exit.</summary>
    public NodeId Peer => (Outward ?? Inward)!.PeerId;

    internal void SetOutward(ICellPort? link, uint id, PartnerAccount? account)
    {
        Outward = link;
        OutwardId = id;
        OutwardAccount = account;
    }

    /// <summary>
    /// Whether the client's side sent a cell within about <paramref name="window"/>, or the circuit
    /// is younger than that: a circuit in use, or about to be. Cells are counted, not timed, so the
    /// answer is as fine as the calls are frequent: a circuit asked for the first time in a long
    /// while, after carrying anything since, counts as in use once.
    /// </summary>
    internal bool CarriedWithin(TimeSpan window)
    {
        var now = Time.GetUtcNow();
        lock (_lock)
        {
            long cells = Volatile.Read(ref _cellsFromInward);
            if (cells != _cellsSeen)
            {
                _cellsSeen = cells;
                _carryingSeenAt = now;
            }
            return now - _carryingSeenAt < window;
        }
    }

    internal void MarkOpen() => Interlocked.CompareExchange(ref _state, (int)CircuitState.Open, (int)CircuitState.Building);

    /// <summary>Ends the circuit and tells its neighbours.</summary>
    public void Destroy(DestroyReason reason) => _owner.Destroy(this, reason);

    internal void Violation(string reason) => _owner.Violation(this, reason);

    /// <summary>Waits until <paramref name="share"/> lets <paramref name="bytes"/> through; at once when unshaped.</summary>
    internal ValueTask ShapeAsync(Shaper.Share? share, int bytes, CancellationToken cancellationToken)
    {
        if (share is null) return ValueTask.CompletedTask;
        var delay = share.Reserve(bytes);
        return delay <= TimeSpan.Zero ? ValueTask.CompletedTask : new ValueTask(Task.Delay(delay, Time, cancellationToken));
    }

    // ---- Sending relay messages from an end ----

    /// <summary>
    /// Sends one relay message from this end: from the origin to the last hop, sealed once per hop;
    /// from an exit to the origin, sealed with our layer. False once the circuit or link is gone.
    /// </summary>
    internal bool SendRelay(RelayCommand command, ushort streamId, ReadOnlySpan<byte> data, bool early = false, bool batched = false)
    {
        Span<byte> cell = stackalloc byte[Cell.Size];
        var body = Cell.Body(cell);
        RelayCell.Write(body, command, streamId, data);
        Filler.Fill(body[RelayCell.MessageSize..]);
        lock (_sendLock)
        {
            if (State == CircuitState.Closed) return false;
            if (!Seal(body, out var link)) return false;
            Cell.WriteHeader(cell, Role == CircuitRole.Origin ? OutwardId : InwardId, Role == CircuitRole.Origin && early ? CellCommand.RelayEarly : CellCommand.Relay);
            // The link copies the cell in order, inside the lock: nonces and queue order agree.
            if (!(batched ? link.TrySendBatched(cell) : link.TrySend(cell))) return false;
        }
        // A probe's echoes are its measurement, not service: neither side's ledger counts them.
        if (command is RelayCommand.Echo or RelayCommand.EchoReply) return true;
        if (Role == CircuitRole.Origin) OutwardAccount?.AddReceived(Cell.Size);
        else InwardAccount?.AddGiven(Cell.Size);
        return true;
    }

    /// <summary>Seals a message from this end: every hop's layer at the origin, ours at an exit. False once the keys are gone.</summary>
    private bool Seal(Span<byte> body, out ICellPort link)
    {
        try
        {
            if (Role == CircuitRole.Origin)
            {
                // At a service's end, innermost goes the layer the client's virtual hop opens.
                _serviceEnd?.SealBackward(body);
                var hops = _hops;
                for (int i = hops.Length - 1; i >= 0; i--) hops[i].Layer.SealForward(body);
                link = Outward!;
            }
            else
            {
                _serviceEnd?.SealBackward(body);
                Layer!.SealBackward(body);
                link = Inward!;
            }
            return true;
        }
        catch (ObjectDisposedException)
        {
            // Closed on another thread between our check and the seal.
            link = null!;
            return false;
        }
    }

    // ---- Cells arriving ----

    /// <summary>A Relay or RelayEarly cell arrived on <paramref name="fromInward"/>'s side (on that link's read loop).</summary>
    internal void OnRelayCell(bool fromInward, CellCommand command, Span<byte> cell)
    {
        try
        {
            Process(fromInward, command, cell);
        }
        catch (ObjectDisposedException)
        {
            // The circuit was closed on another thread while this cell was on its way: drop it.
        }
    }

    private void Process(bool fromInward, CellCommand command, Span<byte> cell)
    {
        var body = Cell.Body(cell);
        if (fromInward)
        {
            _cellsFromInward++;
            InwardAccount?.AddGiven(Cell.Size);
            if (!Layer!.OpenForward(body))
            {
                Violation("a cell failed its onion layer: tampered with on the way");
                return;
            }
            if (Outward is { } next && Role == CircuitRole.Relay)
            {
                if (command == CellCommand.RelayEarly && ++_relayEarly > Cell.MaxRelayEarly)
                {
                    Violation("more RelayEarly cells than the longest circuit needs");
                    return;
                }
                Cell.WriteHeader(cell, OutwardId, command);
                (_toOutward ??= new RelayForwarder(this, next, InwardAccount?.Up)).Forward(cell);
                return;
            }
            if (_joined is { } joined)
            {
                joined.PassToOrigin(cell);
                return;
            }
            // A client met here by the service of this very node: under our layer lies the virtual hop's.
            // As a joined R passes only Relay cells, its RelayEarly counts as Relay: no Extend from the
            // service's end, which would tell the client who the node's partners are.
            if (_serviceEnd is { } end)
            {
                if (!end.OpenForward(body))
                {
                    Violation("a cell failed the client's end-to-end layer: tampered with on the way");
                    return;
                }
                OnMessage(body[..RelayCell.MessageSize], early: false);
                return;
            }
            OnMessage(body[..RelayCell.MessageSize], command == CellCommand.RelayEarly);
            return;
        }

        if (Role == CircuitRole.Origin)
        {
            OutwardAccount?.AddDeliveredToUs(Cell.Size);
            foreach (var hop in _hops)
            {
                if (!hop.Layer.OpenBackward(body))
                {
                    Violation($"a cell failed the layer of hop {hop.Id.Brief}: tampered with on the way");
                    return;
                }
            }
            if (_serviceEnd is { } end && !end.OpenForward(body))
            {
                Violation("a cell failed the client's end-to-end layer: tampered with on the way");
                return;
            }
            OnMessage(body[..RelayCell.MessageSize], early: false);
            return;
        }
        // A relay adds its layer and passes the cell toward the client.
        OutwardAccount?.AddDeliveredToUs(Cell.Size);
        InwardAccount?.AddGiven(Cell.Size);
        Layer!.SealBackward(body);
        Cell.WriteHeader(cell, InwardId, CellCommand.Relay);
        (_toInward ??= new RelayForwarder(this, Inward!, InwardAccount?.Down)).Forward(cell);
    }

    /// <summary>A relay message for this end: at the origin from the last hop, at an exit from the origin.</summary>
    private void OnMessage(ReadOnlySpan<byte> plaintext, bool early)
    {
        RelayMessage message;
        try
        {
            message = RelayCell.Read(plaintext);
        }
        catch (WireException e)
        {
            Violation(e.Message);
            return;
        }
        // A service's end reads the client's messages as an exit would.
        bool origin = Role == CircuitRole.Origin && _serviceEnd is null;
        switch (message.Command)
        {
            case RelayCommand.Begin when !origin:
                OnBegin(message);
                return;
            // Only a client's circuit's last hop has a desk; elsewhere the command falls to the default below.
            case RelayCommand.BeginDesk when !origin && _serviceEnd is null && Role == CircuitRole.Exit && message.Data.IsEmpty:
                OnBeginDesk(message.StreamId);
                return;
            case RelayCommand.Echo when !origin:
                OnEcho(message.Data);
                return;
            case RelayCommand.EchoReply when origin:
                // Counted as received on arrival, before it could be read: a probe's measure, not service.
                OutwardAccount?.AddReceived(-Cell.Size);
                _echoReplies?.Invoke(message.Data.ToArray());
                return;
            case RelayCommand.Resolve when !origin:
                OnResolve(message);
                return;
            case RelayCommand.Resolved when origin:
                OnResolved(message);
                return;
            case RelayCommand.Extend when !origin && early:
                Extender!.Extend(this, message.Data);
                return;
            case RelayCommand.Extended or RelayCommand.ExtendFailed when origin:
                OnExtendReply(message);
                return;
            case RelayCommand.EstablishRendezvous when RendezvousPoint is { } point:
                point.Establish(this, message.Data);
                return;
            case RelayCommand.Rendezvous when RendezvousPoint is { } point:
                point.Join(this, message.Data);
                return;
            case RelayCommand.RendezvousEstablished or RelayCommand.Rendezvous2 or RelayCommand.RendezvousJoined or RelayCommand.RendezvousFailed when origin:
                OnRendezvousAnswer(message);
                return;
            case RelayCommand.EstablishIntroduction or RelayCommand.ServiceLookup when !origin && ServiceDirectory is { } directory:
                OnServiceRequest(directory, message);
                return;
            case RelayCommand.IntroductionEstablished or RelayCommand.Introduction or RelayCommand.ServiceLookupAnswered when origin:
                OnServiceAnswer(message);
                return;
            case RelayCommand.Sendme when message.StreamId == 0:
                if (!OnCircuitSendme()) Violation("circuit Sendme beyond the window");
                return;
        }

        RelayStream? stream;
        lock (_lock) _streams.TryGetValue(message.StreamId, out stream);
        if (stream is null) return; // a stream we already closed: cells in flight are harmless
        switch (message.Command)
        {
            case RelayCommand.Data:
                if (!OnCircuitData() || !stream.OnData(message.Data)) Violation("Data beyond the window");
                break;
            case RelayCommand.Sendme:
                if (!stream.OnSendme()) Violation("stream Sendme beyond the window");
                break;
            case RelayCommand.End:
                stream.OnEnd(EndReasonOf(message.Data));
                break;
            case RelayCommand.Connected when origin:
                OnConnected(stream, message.Data);
                break;
            default:
                Violation($"relay command {message.Command} is not allowed here");
                break;
        }
    }

    // ---- Circuit-level windows ----

    /// <summary>Counts a Data cell received; every Increment of them earns the sender a circuit Sendme.</summary>
    private bool OnCircuitData()
    {
        if (Interlocked.Decrement(ref _deliverWindow) < 0) return false;
        if (Interlocked.Increment(ref _received) % CircuitFlow.Increment == 0)
        {
            Interlocked.Add(ref _deliverWindow, CircuitFlow.Increment);
            // On the read loop of the link it came in on: the writer is woken once after the whole
            // read, not once per Sendme (four a read, of a download on loopback).
            SendRelay(RelayCommand.Sendme, 0, [], batched: true);
        }
        return true;
    }

    private bool OnCircuitSendme()
    {
        TaskCompletionSource? wake;
        lock (_lock)
        {
            // A Sendme for cells we never sent.
            if (!_sendmeDue.TryDequeue(out long sent)) return false;
            _inFlight -= CircuitFlow.Increment;
            _congestion.Acknowledged(Time.GetElapsedTime(sent));
            if (_inFlight >= _congestion.Cells) return true;
            wake = _windowWaiter;
            _windowWaiter = null;
        }
        wake?.TrySetResult();
        return true;
    }

    /// <summary>The congestion window of what this end sends, in cells, and the round trips that set it.</summary>
    internal (int Cells, TimeSpan Rtt, TimeSpan MinRtt) Congestion
    {
        get { lock (_lock) return (_congestion.Cells, _congestion.Rtt, _congestion.MinRtt); }
    }

    /// <summary>Takes one cell of the circuit's window for a Data cell; null when there is one, else what to wait for.</summary>
    internal Task? TakeWindow()
    {
        lock (_lock)
        {
            if (State == CircuitState.Closed) return Task.CompletedTask;
            if (_inFlight < _congestion.Cells)
            {
                _congestion.Sent(++_inFlight);
                if (++_dataSent % CircuitFlow.Increment == 0) _sendmeDue.Enqueue(Time.GetTimestamp());
                return null;
            }
            _windowWaiter ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return _windowWaiter.Task;
        }
    }

    // ---- Building (origin) ----

    internal void AddHop(Hop hop)
    {
        lock (_lock) _hops = [.. _hops, hop];
    }

    /// <summary>Waits for the reply to the CREATE or EXTEND we are about to send.</summary>
    internal Task<HopReply> ExpectReply()
    {
        var reply = new TaskCompletionSource<HopReply>(TaskCreationOptions.RunContinuationsAsynchronously);
        _pendingReply = reply;
        return reply.Task;
    }

    /// <summary>The reply to a CREATE we sent on our outward link.</summary>
    internal void OnCreated(ReadOnlySpan<byte> body) => _pendingReply?.TrySetResult(new HopReply(CreatedBody.Read(body).NtorReply, null));

    /// <summary>The last hop's answer to our EXTEND; one we cannot read breaks the protocol.</summary>
    private void OnExtendReply(RelayMessage message)
    {
        HopReply reply;
        try
        {
            reply = message.Command == RelayCommand.Extended
                ? new HopReply(ExtendedBody.Read(message.Data).NtorReply, null)
                : new HopReply(null, ExtendFailedBody.Read(message.Data).Reason);
        }
        catch (WireException e)
        {
            Violation(e.Message);
            return;
        }
        _pendingReply?.TrySetResult(reply);
    }

    /// <summary>At a last hop extending the circuit: the next hop refused our CREATE, or it could not be sent.</summary>
    internal void OnCreateRefused() => _pendingReply?.TrySetResult(new HopReply(null, ExtendFailure.Refused));

    /// <summary>At an exit that extended: from here on we only pass cells through.</summary>
    internal void BecomeRelay() => Role = CircuitRole.Relay;

    // ---- Streams ----

    /// <summary>A stream id that is neither an open stream nor a pending lookup. Call under the lock.</summary>
    private ushort NextStreamId()
    {
        do _nextStreamId = (ushort)(_nextStreamId == ushort.MaxValue ? 1 : _nextStreamId + 1);
        while (_streams.ContainsKey(_nextStreamId) || _resolves.ContainsKey(_nextStreamId));
        return _nextStreamId;
    }

    /// <summary>Asks the exit to resolve <paramref name="host"/> with its own resolver; we never resolve it ourselves.</summary>
    public async Task<IPAddress[]> ResolveAsync(string host, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var answer = new TaskCompletionSource<IPAddress[]>(TaskCreationOptions.RunContinuationsAsynchronously);
        ushort id;
        lock (_lock)
        {
            if (State != CircuitState.Open) throw new StreamException(EndReason.CircuitClosed, "The circuit is closed.");
            id = NextStreamId();
            _resolves.Add(id, answer);
        }
        try
        {
            Span<byte> request = stackalloc byte[3 + StreamTarget.MaxHostLength];
            if (!SendRelay(RelayCommand.Resolve, id, request[..new StreamTarget(host, 0).Encode(request)]))
                throw new StreamException(EndReason.CircuitClosed, "The circuit closed.");
            return await answer.Task.WaitAsync(timeout, Time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new StreamException(EndReason.Timeout, $"The exit did not resolve {host} within {timeout.TotalSeconds:0} s.");
        }
        finally
        {
            lock (_lock) _resolves.Remove(id);
        }
    }

    /// <summary>At the exit: resolve with our resolver and answer u8 status (0, or an end reason), u8 count, addresses.</summary>
    private void OnResolve(RelayMessage message)
    {
        StreamTarget target;
        try
        {
            target = StreamTarget.Decode(message.Data);
        }
        catch (WireException)
        {
            SendRelay(RelayCommand.Resolved, message.StreamId, [(byte)EndReason.Protocol, 0]);
            return;
        }
        (_serviceStreams ?? Exit)!.Resolve(this, message.StreamId, target.Host);
    }

    private void OnResolved(RelayMessage message)
    {
        TaskCompletionSource<IPAddress[]>? answer;
        lock (_lock) _resolves.TryGetValue(message.StreamId, out answer);
        if (answer is null) return;
        try
        {
            var resolved = ResolvedBody.Read(message.Data);
            if (resolved.Failure is { } failure)
                answer.TrySetException(new StreamException(failure, $"The exit could not resolve the name: {RelayStream.Describe(failure)}."));
            else
                answer.TrySetResult([.. resolved.Addresses]);
        }
        catch (WireException e)
        {
            answer.TrySetException(new StreamException(EndReason.Protocol, e.Message));
        }
    }

    /// <summary>Opens a stream to the credit desk of this (origin) circuit's last hop (PROTOCOL §10.4).</summary>
    public Task<RelayStream> OpenDeskStreamAsync(TimeSpan timeout, CancellationToken cancellationToken) =>
        OpenStreamAsync(DeskTarget, RelayCommand.BeginDesk, timeout, cancellationToken);

    /// <summary>Opens a stream to <paramref name="target"/> through this (origin) circuit; the exit resolves the name.</summary>
    public Task<RelayStream> OpenStreamAsync(StreamTarget target, TimeSpan timeout, CancellationToken cancellationToken) =>
        OpenStreamAsync(target, RelayCommand.Begin, timeout, cancellationToken);

    private async Task<RelayStream> OpenStreamAsync(StreamTarget target, RelayCommand begin, TimeSpan timeout, CancellationToken cancellationToken)
    {
        RelayStream stream;
        lock (_lock)
        {
            if (State != CircuitState.Open) throw new StreamException(EndReason.CircuitClosed, "The circuit is closed.");
            if (IsFull) throw new StreamException(EndReason.ResourceLimit, $"The circuit has its {MaxStreams} streams open.");
            stream = new RelayStream(this, NextStreamId(), target, origin: true);
            _streams.Add(stream.Id, stream);
        }
        Span<byte> body = stackalloc byte[3 + StreamTarget.MaxHostLength];
        if (!SendRelay(begin, stream.Id, begin == RelayCommand.Begin ? body[..target.Encode(body)] : []))
        {
            stream.Abort(EndReason.CircuitClosed, notifyPeer: false);
            throw new StreamException(EndReason.CircuitClosed, "The circuit closed.");
        }
        try
        {
            await stream.Connected.WaitAsync(timeout, Time, cancellationToken).ConfigureAwait(false);
            return stream;
        }
        catch (TimeoutException)
        {
            stream.Abort(EndReason.Timeout, notifyPeer: true);
            throw new StreamException(EndReason.Timeout, $"The exit did not connect to {target} within {timeout.TotalSeconds:0} s.");
        }
        catch (OperationCanceledException)
        {
            // The application gave up: abort, so the exit drops its half-made connection too.
            stream.Abort(EndReason.Internal, notifyPeer: true);
            throw;
        }
    }

    /// <summary>A Connected we cannot read: the exit broke the protocol, and the stream ends, on both sides.</summary>
    private static void OnConnected(RelayStream stream, ReadOnlySpan<byte> data)
    {
        IPAddress address;
        try
        {
            address = ConnectedBody.Read(data).Address;
        }
        catch (WireException)
        {
            stream.Abort(EndReason.Protocol, notifyPeer: true);
            return;
        }
        stream.OnConnected(address);
    }

    /// <summary>An End we cannot read aborts the stream as a protocol error, never closes it as done.</summary>
    private static EndReason EndReasonOf(ReadOnlySpan<byte> data)
    {
        try
        {
            return EndBody.Read(data).Reason;
        }
        catch (WireException)
        {
            return EndReason.Protocol;
        }
    }

    private void OnBegin(RelayMessage message)
    {
        StreamTarget target;
        try
        {
            target = StreamTarget.Decode(message.Data);
        }
        catch (WireException)
        {
            SendRelay(RelayCommand.End, message.StreamId, [(byte)EndReason.Protocol]);
            return;
        }
        RelayStream stream;
        lock (_lock)
        {
            if (message.StreamId == 0 || _streams.ContainsKey(message.StreamId))
            {
                Violation($"BEGIN reuses stream id {message.StreamId}");
                return;
            }
            if (_streams.Count >= MaxStreams)
            {
                SendRelay(RelayCommand.End, message.StreamId, [(byte)EndReason.ResourceLimit]);
                return;
            }
            stream = new RelayStream(this, message.StreamId, target, origin: false);
            _streams.Add(stream.Id, stream);
        }
        (_serviceStreams ?? Exit)!.Begin(this, stream);
    }

    /// <summary>A stream to our desk: no destination, no exit policy, no socket; refused with an End when we keep no desk.</summary>
    private void OnBeginDesk(ushort streamId)
    {
        if (Desk is not { } desk)
        {
            SendRelay(RelayCommand.End, streamId, [(byte)EndReason.ConnectionRefused]);
            return;
        }
        RelayStream stream;
        lock (_lock)
        {
            if (streamId == 0 || _streams.ContainsKey(streamId))
            {
                Violation($"BEGIN_DESK reuses stream id {streamId}");
                return;
            }
            if (_streams.Count >= MaxStreams)
            {
                SendRelay(RelayCommand.End, streamId, [(byte)EndReason.ResourceLimit]);
                return;
            }
            stream = new RelayStream(this, streamId, DeskTarget, origin: false);
            _streams.Add(stream.Id, stream);
        }
        SendRelay(RelayCommand.Connected, streamId, [4, 0, 0, 0, 0]);
        _ = desk(stream);
    }

    /// <summary>What a desk stream's target says in logs: it has none.</summary>
    internal static readonly StreamTarget DeskTarget = new("desk", 0);

    internal void RemoveStream(RelayStream stream)
    {
        lock (_lock)
        {
            if (_streams.TryGetValue(stream.Id, out var current) && current == stream) _streams.Remove(stream.Id);
        }
    }

    // ---- Probes ----

    /// <summary>
    /// A probe from the partner: the payload goes straight back, through the partner's shaped
    /// share like any other cell we carry for it, so a probe measures what it really gets.
    /// </summary>
    private void OnEcho(ReadOnlySpan<byte> payload)
    {
        // Counted as given on arrival, before it could be read: the prober's measure, not service.
        InwardAccount?.AddGiven(-Cell.Size);
        if (_echoes is null)
        {
            _echoes = Channel.CreateBounded<byte[]>(new BoundedChannelOptions(MaxPendingEchoes) { SingleReader = true, SingleWriter = true });
            _ = AnswerEchoesAsync(_echoes.Reader);
        }
        if (!_echoes.Writer.TryWrite(payload.ToArray())) Violation("more echo requests than a probe window");
    }

    private async Task AnswerEchoesAsync(ChannelReader<byte[]> echoes)
    {
        try
        {
            await foreach (var payload in echoes.ReadAllAsync().ConfigureAwait(false))
            {
                await ShapeAsync(InwardAccount?.Down, Cell.Size, CancellationToken.None).ConfigureAwait(false);
                if (!SendRelay(RelayCommand.EchoReply, 0, payload)) return;
            }
        }
        catch (OperationCanceledException)
        {
            // The circuit closed while a reply waited for its turn.
        }
    }

    /// <summary>Routes echo replies on this origin circuit to a running probe; null to stop.</summary>
    internal void OnEchoReplies(Action<ReadOnlyMemory<byte>>? handler) => _echoReplies = handler;

    // ---- Closing ----

    /// <summary>Closes the circuit and aborts its streams. Idempotent; true the first time.</summary>
    internal bool Close()
    {
        if (Interlocked.Exchange(ref _state, (int)CircuitState.Closed) == (int)CircuitState.Closed) return false;
        _pendingReply?.TrySetResult(default);
        RelayStream[] streams;
        TaskCompletionSource? wake;
        lock (_lock)
        {
            streams = [.. _streams.Values];
            _streams.Clear();
            foreach (var pending in _resolves.Values) pending.TrySetException(new StreamException(EndReason.CircuitClosed, "The circuit closed."));
            wake = _windowWaiter;
            _windowWaiter = null;
        }
        wake?.TrySetResult();
        foreach (var stream in streams) stream.Abort(EndReason.CircuitClosed, notifyPeer: false);
        _echoes?.Writer.TryComplete();
        _toOutward?.Close();
        _toInward?.Close();
        CloseRendezvous();
        CloseServiceRequests();
        foreach (var hop in _hops) hop.Layer.Dispose();
        Layer?.Dispose();
        return true;
    }

    public override string ToString() => Role switch
    {
        CircuitRole.Origin => $"circuit {OutwardId:x8} via {string.Join(" → ", Hops.Select(h => h.Id.Brief))}",
        _ => $"circuit {InwardId:x8} ({Role}) from {Inward!.PeerId.Brief}",
    };
}

/// <summary>
/// Passes a relay circuit's cells to the next link in one direction, shaped to the share of the
/// neighbour the circuit is billed to. Cells go straight through while the share allows; once
/// one must wait, it and every later cell queue, in order, and a pump sends them as the share
/// allows. The queue can never outgrow a circuit window, since the ends respect it; if it does,
/// an end is cheating and the circuit is destroyed.
/// </summary>
internal sealed class RelayForwarder(Circuit circuit, ICellPort link, Shaper.Share? share)
{
    private const int MaxQueued = CircuitFlow.Window + 64;
    private readonly Queue<byte[]> _queue = new();
    private readonly Lock _lock = new();
    private bool _pumping;
    private bool _closed;

    public void Forward(ReadOnlySpan<byte> cell)
    {
        lock (_lock)
        {
            if (_closed) return;
            if (!_pumping)
            {
                var delay = share?.Reserve(Cell.Size) ?? TimeSpan.Zero;
                if (delay <= TimeSpan.Zero)
                {
                    link.TrySendBatched(cell);
                    return;
                }
                _pumping = true;
                _queue.Enqueue(cell.ToArray());
                _ = PumpAsync(delay);
                return;
            }
            if (_queue.Count >= MaxQueued)
            {
                circuit.Violation("a relay queue outgrew the circuit window");
                return;
            }
            _queue.Enqueue(cell.ToArray());
        }
    }

    /// <summary>Sends the queued cells, each after the share allows it; the first has already reserved <paramref name="delay"/>.</summary>
    private async Task PumpAsync(TimeSpan delay)
    {
        var time = circuit.Time;
        while (true)
        {
            if (delay > TimeSpan.Zero) await Task.Delay(delay, time).ConfigureAwait(false);
            lock (_lock)
            {
                if (_closed || !_queue.TryDequeue(out var cell)) return;
                link.TrySend(cell);
                if (_queue.Count == 0)
                {
                    _pumping = false;
                    return;
                }
                delay = share?.Reserve(Cell.Size) ?? TimeSpan.Zero;
            }
        }
    }

    public void Close()
    {
        lock (_lock)
        {
            _closed = true;
            _queue.Clear();
        }
    }
}
