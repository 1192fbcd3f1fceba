using System.Net;
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
    /// <summary>A partner built it to us: its streams leave the network here.</summary>
    Exit,
}

public enum CircuitState { Building, Open, Closed }

/// <summary>
/// A circuit on one link and the streams it multiplexes. The same class serves both ends; the
/// role decides which relay commands are legal. A relay cell that breaks the protocol closes
/// the circuit, never the node.
/// </summary>
public sealed class Circuit
{
    private readonly CircuitManager _manager;
    private readonly Lock _lock = new();
    private readonly Dictionary<ushort, RelayStream> _streams = [];
    private readonly TaskCompletionSource _created = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ushort _nextStreamId;
    private int _state = (int)CircuitState.Building;

    /// <summary>Echo requests waiting for their reply; more than a probe's window is a violation.</summary>
    internal const int MaxPendingEchoes = 128;

    private Channel<byte[]>? _echoes;
    private Action<ReadOnlyMemory<byte>>? _echoReplies;

    internal Circuit(CircuitManager manager, Link link, uint id, CircuitRole role, DateTimeOffset created, PartnerAccount? account)
    {
        _manager = manager;
        Link = link;
        Id = id;
        Role = role;
        CreatedAt = created;
        Account = account;
        _nextStreamId = (ushort)Random.Shared.Next(1, ushort.MaxValue);
    }

    internal CircuitManager Manager => _manager;
    public Link Link { get; }
    public uint Id { get; }
    public CircuitRole Role { get; }
    public NodeId Peer => Link.PeerId;
    public DateTimeOffset CreatedAt { get; }
    /// <summary>
    /// The neighbour this circuit is billed to or served by: at an exit, every cell is bandwidth we
    /// give the partner that built the circuit; at the origin, bandwidth the partner gives us.
    /// </summary>
    public PartnerAccount? Account { get; }
    public CircuitState State => (CircuitState)Volatile.Read(ref _state);

    public int StreamCount
    {
        get { lock (_lock) return _streams.Count; }
    }

    internal Task Created => _created.Task;

    internal void MarkOpen()
    {
        Interlocked.CompareExchange(ref _state, (int)CircuitState.Open, (int)CircuitState.Building);
        _created.TrySetResult();
    }

    /// <summary>Sends one relay message on this circuit; false once the link is gone.</summary>
    internal bool SendRelay(RelayCommand command, ushort streamId, ReadOnlySpan<byte> data)
    {
        Span<byte> cell = stackalloc byte[Cell.Size];
        Cell.WriteHeader(cell, Id, CellCommand.Relay);
        RelayCell.Write(Cell.Body(cell), command, streamId, data);
        if (!Link.TrySend(cell)) return false;
        Count(Cell.Size, incoming: false);
        return true;
    }

    private void Count(int bytes, bool incoming)
    {
        if (Account is not { } account) return;
        if (Role == CircuitRole.Exit) account.AddGiven(bytes);
        else if (incoming) account.AddDeliveredToUs(bytes);
        else account.AddReceived(bytes);
    }

    /// <summary>Opens a stream to <paramref name="target"/> through this (origin) circuit; the exit resolves the name.</summary>
    public async Task<RelayStream> OpenStreamAsync(StreamTarget target, TimeSpan timeout, CancellationToken cancellationToken)
    {
        RelayStream stream;
        lock (_lock)
        {
            if (State != CircuitState.Open) throw new StreamException(EndReason.CircuitClosed, "The circuit is closed.");
            do _nextStreamId = (ushort)(_nextStreamId == ushort.MaxValue ? 1 : _nextStreamId + 1);
            while (_streams.ContainsKey(_nextStreamId));
            stream = new RelayStream(this, _nextStreamId, target, origin: true);
            _streams.Add(stream.Id, stream);
        }
        Span<byte> begin = stackalloc byte[3 + StreamTarget.MaxHostLength];
        if (!SendRelay(RelayCommand.Begin, stream.Id, begin[..target.Encode(begin)]))
        {
            stream.Abort(EndReason.CircuitClosed, notifyPeer: false);
            throw new StreamException(EndReason.CircuitClosed, "The link to the exit closed.");
        }
        try
        {
            await stream.Connected.WaitAsync(timeout, _manager.Time, cancellationToken).ConfigureAwait(false);
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

    /// <summary>Handles a Relay cell's body for this circuit (on the link's read loop).</summary>
    internal void OnRelay(ReadOnlySpan<byte> body)
    {
        Count(Cell.Size, incoming: true);
        RelayMessage message;
        try
        {
            message = RelayCell.Read(body);
        }
        catch (WireException e)
        {
            _manager.Violation(this, e.Message);
            return;
        }
        switch (message.Command)
        {
            case RelayCommand.Begin:
                OnBegin(message);
                return;
            case RelayCommand.Echo when Role == CircuitRole.Exit:
                OnEcho(message.Data);
                return;
            case RelayCommand.EchoReply when Role == CircuitRole.Origin:
                _echoReplies?.Invoke(message.Data.ToArray());
                return;
        }
        RelayStream? stream;
        lock (_lock) _streams.TryGetValue(message.StreamId, out stream);
        if (stream is null) return; // A stream we already closed: cells in flight are harmless.
        switch (message.Command)
        {
            case RelayCommand.Data:
                if (!stream.OnData(message.Data)) _manager.Violation(this, "DATA beyond the stream window.");
                break;
            case RelayCommand.Sendme:
                if (!stream.OnSendme()) _manager.Violation(this, "SENDME beyond the stream window.");
                break;
            case RelayCommand.End:
                stream.OnEnd(message.Data.Length > 0 && Enum.IsDefined((EndReason)message.Data[0]) ? (EndReason)message.Data[0] : EndReason.Protocol);
                break;
            case RelayCommand.Connected when Role == CircuitRole.Origin:
                stream.OnConnected(DecodeAddress(message.Data));
                break;
            default:
                _manager.Violation(this, $"Relay command {message.Command} is not allowed here.");
                break;
        }
    }

    private static IPAddress? DecodeAddress(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty) return null;
        var reader = new WireReader(data);
        try
        {
            return RelayAddress.Decode(ref reader);
        }
        catch (WireException)
        {
            return null;
        }
    }

    private void OnBegin(RelayMessage message)
    {
        if (Role != CircuitRole.Exit)
        {
            _manager.Violation(this, "BEGIN on a circuit that does not exit here.");
            return;
        }
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
                _manager.Violation(this, $"BEGIN reuses stream id {message.StreamId}.");
                return;
            }
            if (_streams.Count >= _manager.Options.MaxStreamsPerCircuit)
            {
                SendRelay(RelayCommand.End, message.StreamId, [(byte)EndReason.Internal]);
                return;
            }
            stream = new RelayStream(this, message.StreamId, target, origin: false);
            _streams.Add(stream.Id, stream);
        }
        _manager.StartExitStream(this, stream);
    }

    /// <summary>
    /// A probe from the partner: the payload goes straight back, through the partner's shaped
    /// share like any other cell we carry for it, so a probe measures what it really gets.
    /// </summary>
    private void OnEcho(ReadOnlySpan<byte> payload)
    {
        if (_echoes is null)
        {
            _echoes = Channel.CreateBounded<byte[]>(new BoundedChannelOptions(MaxPendingEchoes) { SingleReader = true, SingleWriter = true });
            _ = AnswerEchoesAsync(_echoes.Reader);
        }
        if (!_echoes.Writer.TryWrite(payload.ToArray())) _manager.Violation(this, "more echo requests than a probe window.");
    }

    private async Task AnswerEchoesAsync(ChannelReader<byte[]> echoes)
    {
        try
        {
            await foreach (var payload in echoes.ReadAllAsync().ConfigureAwait(false))
            {
                await _manager.ShapeAsync(Account?.Down, Cell.Size, CancellationToken.None).ConfigureAwait(false);
                if (State == CircuitState.Closed || !SendRelay(RelayCommand.EchoReply, 0, payload)) return;
            }
        }
        catch (OperationCanceledException)
        {
            // The circuit closed while a reply waited for its turn.
        }
    }

    /// <summary>Routes echo replies on this origin circuit to a running probe; null to stop.</summary>
    internal void OnEchoReplies(Action<ReadOnlyMemory<byte>>? handler) => _echoReplies = handler;

    internal void RemoveStream(RelayStream stream)
    {
        lock (_lock)
        {
            if (_streams.TryGetValue(stream.Id, out var current) && current == stream) _streams.Remove(stream.Id);
        }
    }

    /// <summary>Closes the circuit and aborts its streams. Idempotent.</summary>
    internal bool Close()
    {
        if (Interlocked.Exchange(ref _state, (int)CircuitState.Closed) == (int)CircuitState.Closed) return false;
        _created.TrySetException(new StreamException(EndReason.CircuitClosed, "The circuit closed before it was built."));
        _ = _created.Task.Exception; // observed: whoever waits has its own handling
        RelayStream[] streams;
        lock (_lock)
        {
            streams = [.. _streams.Values];
            _streams.Clear();
        }
        foreach (var stream in streams) stream.Abort(EndReason.CircuitClosed, notifyPeer: false);
        _echoes?.Writer.TryComplete();
        return true;
    }

    public override string ToString() => $"circuit {Id:x8} ({Role}) via {Peer.Brief}";
}
