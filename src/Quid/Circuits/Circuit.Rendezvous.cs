using System.Security.Cryptography;
using NSec.Cryptography;
using Quid.Crypto;
using Quid.Wire;

namespace Quid.Circuits;

/// <summary>A rendezvous point refused a cookie; <see cref="Reason"/> says why in the protocol's terms.</summary>
public sealed class RendezvousException(RendezvousFailure reason, string message) : IOException(message)
{
    public RendezvousFailure Reason { get; } = reason;
}

/// <summary>
/// Meeting a session-address service at a rendezvous point R, each side over its own circuit to R.
/// The client's circuit waits at R under a cookie; the service's circuit names the cookie and R
/// joins the two. Client and service then share one more onion layer, the virtual hop, keyed by
/// <see cref="ServiceHandshake"/>: to the client the service is one more hop beyond R, to the
/// service the client is the origin of a circuit that exits at it. R passes cells between the
/// circuits without reading them.
/// </summary>
public sealed partial class Circuit
{
    /// <summary>
    /// The most hops a circuit to a rendezvous point may have, R included: each side's tags and
    /// the virtual hop's must fit the tag stack's <see cref="OnionLayer.Slots"/> slots.
    /// </summary>
    public const int MaxHopsToRendezvous = OnionLayer.Slots - 1;

    /// <summary>
    /// The client's rendezvous. The service's reply (Rendezvous2) and the handshake to check it
    /// with may come in either order: the client learns the service's handshake key from the
    /// lookup's answer, which may arrive after the service has already met us.
    /// </summary>
    private sealed class Meeting
    {
        public Ntor.Client? Handshake { get; set; }
        public byte[]? Reply { get; set; }
        public TaskCompletionSource Established { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public TaskCompletionSource Met { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private sealed class Serving(OnionLayer layer, IStreamExit streams)
    {
        public OnionLayer Layer => layer;
        public IStreamExit Streams => streams;
        public TaskCompletionSource Joined { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    // At the client: the rendezvous asked for. At the service: the one offered, until R joins it.
    private Meeting? _meeting;
    private Serving? _serving;
    // At the service, once joined: the far end of the client's virtual hop, and where its streams go.
    private volatile OnionLayer? _serviceEnd;
    private IStreamExit? _serviceStreams;
    // At a rendezvous point: the circuit this one is joined to.
    private volatile Circuit? _joined;

    /// <summary>At a last hop: where EstablishRendezvous and Rendezvous go.</summary>
    internal IRendezvousPoint? RendezvousPoint { get; init; }

    /// <summary>At a rendezvous point: the cookie this circuit waited under or named; set once, under the point's lock.</summary>
    internal RendezvousCookie? RendezvousCookie { get; set; }

    /// <summary>At a rendezvous point: the circuit this one is joined to, whose end it shares.</summary>
    internal Circuit? Joined => _joined;

    /// <summary>Whether this is the service's end of a rendezvous: the client's cells arrive here as at an exit.</summary>
    public bool IsServiceEnd => _serviceEnd is not null;

    internal static void Join(Circuit client, Circuit service)
    {
        client._joined = service;
        service._joined = client;
    }

    // ---- The client ----

    /// <summary>
    /// Asks this circuit's last hop to be the rendezvous point: it keeps the circuit under
    /// <paramref name="cookie"/> for the service. Throws <see cref="RendezvousException"/> when R
    /// refuses; the circuit stays, and may try another cookie.
    /// </summary>
    public async Task EstablishRendezvousAsync(RendezvousCookie cookie, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (Role != CircuitRole.Origin) throw new InvalidOperationException("Only the circuit's origin establishes a rendezvous.");
        if (_hops.Length > MaxHopsToRendezvous) throw new InvalidOperationException($"A circuit to a rendezvous point has at most {MaxHopsToRendezvous} hops, so the virtual hop's tag fits.");
        var meeting = new Meeting();
        lock (_lock)
        {
            if (State != CircuitState.Open) throw new StreamException(EndReason.CircuitClosed, "The circuit is closed.");
            if (_meeting is not null || _serving is not null) throw new InvalidOperationException("A circuit serves one rendezvous.");
            _meeting = meeting;
        }
        Span<byte> data = stackalloc byte[EstablishRendezvousBody.Size];
        if (!SendRelay(RelayCommand.EstablishRendezvous, 0, data[..new EstablishRendezvousBody(cookie).Write(data)]))
            throw new StreamException(EndReason.CircuitClosed, "The circuit closed.");
        try
        {
            await meeting.Established.Task.WaitAsync(timeout, Time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new StreamException(EndReason.Timeout, $"The rendezvous point did not answer within {timeout.TotalSeconds:0} s.");
        }
    }

    /// <summary>
    /// Waits for the service to meet us at the rendezvous point (its Rendezvous2) and checks its
    /// reply with <paramref name="handshake"/> (<see cref="ServiceHandshake.Start"/>, whose
    /// ephemeral key the introduction carried), after which the service is this circuit's last
    /// hop: <see cref="OpenStreamAsync"/> reaches it, not R. A reply that fails the handshake
    /// destroys the circuit.
    /// </summary>
    public async Task MeetServiceAsync(Ntor.Client handshake, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(handshake);
        var meeting = _meeting ?? throw new InvalidOperationException("No rendezvous was established on this circuit.");
        byte[]? reply;
        lock (_lock)
        {
            if (meeting.Handshake is not null) throw new InvalidOperationException("The rendezvous already has its handshake.");
            meeting.Handshake = handshake;
            reply = meeting.Reply;
        }
        // The service came first: its reply waited for our handshake.
        if (reply is not null) FinishMeeting(meeting, handshake, reply);
        try
        {
            await meeting.Met.Task.WaitAsync(timeout, Time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new StreamException(EndReason.Timeout, $"The service did not come to the rendezvous within {timeout.TotalSeconds:0} s.");
        }
    }

    // ---- The service ----

    /// <summary>
    /// Meets a client at this circuit's last hop, the rendezvous point its introduction named:
    /// answers the client's ephemeral key <paramref name="clientEphemeral"/> (from its introduction)
    /// with <paramref name="serviceKey"/> and sends R the cookie and the reply. Once R has joined
    /// the circuits, the streams the client begins go to <paramref name="connector"/>. Throws
    /// <see cref="RendezvousException"/> when R refuses (and destroys the circuit).
    /// </summary>
    public async Task MeetClientAsync(RendezvousCookie cookie, Key serviceKey, ReadOnlyMemory<byte> clientEphemeral, ServiceConnector connector,
        TimeSpan timeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connector);
        if (Role != CircuitRole.Origin) throw new InvalidOperationException("Only the circuit's origin meets a client.");
        if (_hops.Length > MaxHopsToRendezvous) throw new InvalidOperationException($"A circuit to a rendezvous point has at most {MaxHopsToRendezvous} hops, so the virtual hop's tag fits.");
        var (reply, keys) = ServiceHandshake.Respond(serviceKey, clientEphemeral.Span);
        var serving = new Serving(new OnionLayer(keys), new ServiceStreams(connector, Time));
        CryptographicOperations.ZeroMemory(keys);
        lock (_lock)
        {
            if (State != CircuitState.Open || _meeting is not null || _serving is not null)
            {
                serving.Layer.Dispose();
                if (State != CircuitState.Open) throw new StreamException(EndReason.CircuitClosed, "The circuit is closed.");
                throw new InvalidOperationException("A circuit serves one rendezvous.");
            }
            _serving = serving;
        }
        Span<byte> data = stackalloc byte[RendezvousBody.Size];
        if (!SendRelay(RelayCommand.Rendezvous, 0, data[..new RendezvousBody(cookie, reply).Write(data)]))
            throw new StreamException(EndReason.CircuitClosed, "The circuit closed.");
        try
        {
            await serving.Joined.Task.WaitAsync(timeout, Time, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Refused, silent or abandoned: the circuit is of no further use.
            Destroy(DestroyReason.Finished);
            if (e is TimeoutException) throw new StreamException(EndReason.Timeout, $"The rendezvous point did not join us within {timeout.TotalSeconds:0} s.");
            throw;
        }
    }

    /// <summary>
    /// At a rendezvous point that is the service's own node: meets the client whose circuit waited
    /// here (taken from <see cref="RendezvousPoint.TakeWaiting"/>) without a second circuit. The
    /// client hears Rendezvous2 as from any R; from then on this circuit is the service's end,
    /// the virtual hop under our layer, and the client's streams go to <paramref name="connector"/>.
    /// </summary>
    public void MeetClientHere(Key serviceKey, ReadOnlySpan<byte> clientEphemeral, ServiceConnector connector)
    {
        ArgumentNullException.ThrowIfNull(connector);
        if (Role != CircuitRole.Exit || Outward is not null) throw new InvalidOperationException("Only a client's circuit that ends here is met here.");
        var (reply, keys) = ServiceHandshake.Respond(serviceKey, clientEphemeral);
        var layer = new OnionLayer(keys);
        CryptographicOperations.ZeroMemory(keys);
        Span<byte> cell = stackalloc byte[Cell.Size];
        var body = Cell.Body(cell);
        RelayCell.Write(body, RelayCommand.Rendezvous2, 0, reply);
        Filler.Fill(body[RelayCell.MessageSize..]);
        lock (_sendLock)
        {
            if (State == CircuitState.Closed)
            {
                layer.Dispose();
                throw new StreamException(EndReason.CircuitClosed, "The client's circuit closed.");
            }
            // Rendezvous2 under our layer alone; the virtual hop is in place before the client, which
            // speaks only after it, can send.
            Layer!.SealBackward(body);
            Cell.WriteHeader(cell, InwardId, CellCommand.Relay);
            Inward!.TrySend(cell);
            _serviceStreams = new ServiceStreams(connector, Time);
            _serviceEnd = layer;
        }
        InwardAccount?.AddGiven(Cell.Size);
    }

    // ---- Messages from the rendezvous point ----

    /// <summary>At an origin: R's answer to our EstablishRendezvous or Rendezvous; one we did not ask for breaks the protocol.</summary>
    private void OnRendezvousAnswer(RelayMessage message)
    {
        var (meeting, serving) = (_meeting, _serving);
        try
        {
            switch (message.Command)
            {
                case RelayCommand.RendezvousEstablished when meeting is not null && !meeting.Established.Task.IsCompleted:
                    EmptyBody.Read(message.Data);
                    meeting.Established.TrySetResult();
                    return;
                case RelayCommand.Rendezvous2 when meeting is { Established.Task.IsCompletedSuccessfully: true, Reply: null } && !meeting.Met.Task.IsCompleted:
                    OnRendezvous2(meeting, Rendezvous2Body.Read(message.Data).HandshakeReply);
                    return;
                case RelayCommand.RendezvousJoined when serving is not null && !serving.Joined.Task.IsCompleted:
                    EmptyBody.Read(message.Data);
                    // From the next cell on, what arrives is the client's, under the virtual hop.
                    _serviceStreams = serving.Streams;
                    _serviceEnd = serving.Layer;
                    serving.Joined.TrySetResult();
                    return;
                case RelayCommand.RendezvousFailed when meeting is not null && !meeting.Established.Task.IsCompleted:
                    var refused = RendezvousFailedBody.Read(message.Data).Reason;
                    // The circuit stays, and may try another cookie.
                    lock (_lock) _meeting = null;
                    meeting.Established.TrySetException(Refused(refused));
                    return;
                case RelayCommand.RendezvousFailed when serving is not null && !serving.Joined.Task.IsCompleted:
                    serving.Joined.TrySetException(Refused(RendezvousFailedBody.Read(message.Data).Reason));
                    return;
            }
        }
        catch (WireException e)
        {
            Violation(e.Message);
            return;
        }
        Violation($"{message.Command} that was not asked for");
    }

    /// <summary>
    /// The service's reply. With the handshake in hand, the virtual hop joins the circuit here,
    /// on the read loop, so the next cell from the service is already opened with it; without,
    /// the reply waits for <see cref="MeetServiceAsync"/>, and the service, which speaks only
    /// when spoken to, sends nothing meanwhile.
    /// </summary>
    private void OnRendezvous2(Meeting meeting, byte[] reply)
    {
        Ntor.Client? handshake;
        lock (_lock)
        {
            meeting.Reply = reply;
            handshake = meeting.Handshake;
        }
        if (handshake is not null) FinishMeeting(meeting, handshake, reply);
    }

    private void FinishMeeting(Meeting meeting, Ntor.Client handshake, byte[] reply)
    {
        byte[] keys;
        try
        {
            keys = handshake.Finish(reply, OnionLayer.KeyMaterialSize);
        }
        catch (CircuitHandshakeException e)
        {
            meeting.Met.TrySetException(new StreamException(EndReason.Protocol, $"The service's handshake failed: {e.Message}"));
            Violation(e.Message);
            return;
        }
        AddHop(new Hop(new NodeId(handshake.Request[..NodeId.Size]), new OnionLayer(keys)));
        CryptographicOperations.ZeroMemory(keys);
        meeting.Met.TrySetResult();
    }

    private static RendezvousException Refused(RendezvousFailure reason) => new(reason, reason switch
    {
        RendezvousFailure.UnknownCookie => "The rendezvous point has no circuit waiting under that cookie.",
        RendezvousFailure.CookieInUse => "Another circuit already waits under that cookie at the rendezvous point.",
        RendezvousFailure.ResourceLimit => "The rendezvous point holds as many cookies as it will.",
        RendezvousFailure.Malformed => "The rendezvous point found the request malformed.",
        _ => "The circuit already served a rendezvous.",
    });

    // ---- At the rendezvous point ----

    /// <summary>
    /// A cell that passed our layer on the joined circuit goes on toward this circuit's origin,
    /// sealed with our layer as a cell from the far end would be: to the origin, whoever is beyond
    /// us is one more hop. Called only on the joined circuit's read loop, so cells keep their order.
    /// </summary>
    internal void PassToOrigin(Span<byte> cell)
    {
        if (State == CircuitState.Closed) return;
        InwardAccount?.AddGiven(Cell.Size);
        Layer!.SealBackward(Cell.Body(cell));
        Cell.WriteHeader(cell, InwardId, CellCommand.Relay);
        (_toInward ??= new RelayForwarder(this, Inward!, InwardAccount?.Down)).Forward(cell);
    }

    /// <summary>Fails what waits for a rendezvous and drops the layers it had ready; for <see cref="Close"/>.</summary>
    private void CloseRendezvous()
    {
        var closed = new StreamException(EndReason.CircuitClosed, "The circuit closed.");
        if (_meeting is { } meeting)
        {
            meeting.Established.TrySetException(closed);
            meeting.Met.TrySetException(closed);
        }
        if (_serving is { } serving)
        {
            serving.Joined.TrySetException(closed);
            serving.Layer.Dispose();
        }
        // Met here: the virtual hop's layer was ours alone.
        if (Role == CircuitRole.Exit) _serviceEnd?.Dispose();
    }
}
