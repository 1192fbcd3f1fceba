using System.Collections.Concurrent;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Quid.Crypto;
using Quid.Exchange;
using Quid.Links;
using Quid.Wire;

namespace Quid.Circuits;

public sealed record CircuitOptions
{
    public TimeSpan BuildTimeout { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>How long the origin waits for the exit to connect a stream.</summary>
    public TimeSpan StreamTimeout { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>
    /// How long a stream's first try waits for the exit to connect before the stream moves to a new
    /// circuit, where it waits <see cref="StreamTimeout"/> (Tor waits 10 s before it tries another
    /// circuit). Most destinations answer within a second; an exit that has not answered in 5 s
    /// is more often at the end of a full link than at the start of a slow connection.
    /// </summary>
    public TimeSpan FirstStreamTimeout { get; init; } = TimeSpan.FromSeconds(5);
    public TimeSpan ExitConnectTimeout { get; init; } = TimeSpan.FromSeconds(20);
    public int MaxStreamsPerCircuit { get; init; } = 512;
    public int MaxCircuitsPerLink { get; init; } = 1024;
    /// <summary>
    /// How many sockets streams exiting here may hold at once (<see cref="ExitSockets"/>); null
    /// derives it from the process's descriptor limit.
    /// </summary>
    public int? ExitSocketBudget { get; init; }
    /// <summary>How many client circuits may wait at this node as a rendezvous point at once.</summary>
    public int MaxRendezvousCookies { get; init; } = 4096;
    /// <summary>How long a client circuit waits at this node for its service before its cookie is forgotten.</summary>
    public TimeSpan RendezvousCookieLifetime { get; init; } = TimeSpan.FromMinutes(5);
}

/// <summary>Why a circuit was destroyed; carried in the DESTROY cell's first body byte.</summary>
public enum DestroyReason : byte
{
    None = 0,
    Protocol = 1,
    Refused = 2,
    Finished = 3,
    ResourceLimit = 4,
    HopLost = 5,
}

/// <summary>What the circuit table needs to know of the node it serves; it owns no policy itself.</summary>
public sealed record CircuitPolicy(
    /// <summary>Whether a neighbour may build circuits through us: we must grant it bandwidth.</summary>
    Func<NodeId, bool> AdmitsCircuitsFrom,
    /// <summary>The link to a neighbour we may extend circuits to (one that grants us bandwidth), or null.</summary>
    Func<NodeId, ICellPort?> ExtendTo,
    /// <summary>The ledger account of a neighbour, for billing and shaping.</summary>
    Func<NodeId, PartnerAccount?> AccountOf,
    /// <summary>
    /// What we grant a neighbour and what it grants us, in kbps, to judge whether the circuits we
    /// carry to a next hop already fill its grant; null, and no extension is refused as full.
    /// </summary>
    Func<NodeId, (long WeGrant, long TheyGrant)>? GrantKbps = null);

/// <summary>
/// Every circuit this node is part of, by link and circuit id on that link: a link's read loop
/// hands it each circuit cell, and it passes the cell to its circuit. It admits circuits from
/// partners (CREATE), extends them on the origin's request to our own partners, and ends them:
/// on DESTROY, on a protocol violation, when their link closes, or when the grant they are billed
/// to ends. The side that dialed a link sets the top bit of the ids it picks, so the two ends of a
/// link never pick the same id.
/// </summary>
public sealed class CircuitTable(NodeIdentity identity, CircuitOptions options, StreamExit exit, CircuitPolicy policy, TimeProvider time, ILogger logger)
    : ICircuitCells, ICircuitOwner, ICircuitExtender
{
    private const uint DialerBit = 0x8000_0000;

    /// <summary>A circuit that carried a cell this recently, or was built this recently, counts as in use.</summary>
    internal static readonly TimeSpan InUseWindow = TimeSpan.FromSeconds(10);

    private readonly record struct Side(Circuit Circuit, bool Inward);

    private readonly ConcurrentDictionary<(ICellPort Link, uint Id), Side> _sides = new();

    /// <summary>This node as a rendezvous point for the circuits that end here.</summary>
    public RendezvousPoint Rendezvous { get; } = new(options.MaxRendezvousCookies, options.RendezvousCookieLifetime, time);

    /// <summary>Where circuits ending here publish for services and look up for clients: the node's overlay; none, and such requests break the protocol.</summary>
    internal IServiceDirectory? ServiceDirectory { get; set; }
    /// <summary>Serves the desk streams clients begin at circuits that end here (PROTOCOL §10.4).</summary>
    public DeskHandler? Desk { get; set; }

    /// <summary>Every circuit, once each.</summary>
    public IReadOnlyCollection<Circuit> Circuits => [.. _sides.Values.Select(s => s.Circuit).Distinct()];

    // ---- Cells arriving ----

    /// <summary>Handles a circuit cell from <paramref name="link"/> on its read loop; the cell may be changed in place.</summary>
    public void OnCell(ICellPort link, Span<byte> cell)
    {
        uint id = Cell.CircuitId(cell);
        _sides.TryGetValue((link, id), out var side);
        switch (Cell.Command(cell))
        {
            case CellCommand.Create:
                OnCreate(link, id, side.Circuit is not null, Cell.Body(cell));
                break;
            case CellCommand.Created when side.Circuit is { } circuit && !side.Inward:
                circuit.OnCreated(Cell.Body(cell));
                break;
            case CellCommand.Relay or CellCommand.RelayEarly when side.Circuit is { } circuit:
                circuit.OnRelayCell(side.Inward, Cell.Command(cell), cell);
                break;
            // At a last hop extending the circuit, the next hop's DESTROY refuses the extension:
            // the circuit stays, and the origin hears why.
            case CellCommand.Destroy when side.Circuit is { } circuit && !side.Inward && circuit.Role == CircuitRole.Exit:
                circuit.OnCreateRefused();
                break;
            case CellCommand.Destroy when side.Circuit is { } circuit:
                Destroy(circuit, DestroyReason.HopLost, from: link);
                break;
        }
    }

    private void OnCreate(ICellPort link, uint id, bool exists, ReadOnlySpan<byte> body)
    {
        bool peerDialed = !link.Outbound;
        if (exists || id == 0 || ((id & DialerBit) != 0) != peerDialed)
        {
            logger.LogInformation("{Peer} sent CREATE with a bad circuit id {Id:x8}; closing the link", link.PeerId.Brief, id);
            link.Close(new LinkException(LinkError.BadCell, "CREATE with a bad circuit id."));
            return;
        }
        if (!policy.AdmitsCircuitsFrom(link.PeerId) || _sides.Count(s => s.Key.Link == link) >= options.MaxCircuitsPerLink
            || !CreateBody.TryRead(body, out var create))
        {
            SendDestroy(link, id, DestroyReason.Refused);
            return;
        }
        var created = new byte[CreatedBody.Size];
        byte[] keys;
        try
        {
            keys = Ntor.Respond(identity.Id, identity.LinkKey, create.NtorRequest, created, OnionLayer.KeyMaterialSize);
        }
        catch (CircuitHandshakeException e)
        {
            logger.LogDebug("Refused a circuit from {Peer}: {Reason}", link.PeerId.Brief, e.Message);
            SendDestroy(link, id, DestroyReason.Refused);
            return;
        }
        var circuit = new Circuit(CircuitRole.Exit, this, time)
        {
            Inward = link,
            InwardId = id,
            Layer = new OnionLayer(keys),
            InwardAccount = policy.AccountOf(link.PeerId),
            Exit = exit,
            Extender = this,
            RendezvousPoint = Rendezvous,
            ServiceDirectory = ServiceDirectory,
            Desk = Desk,
            MaxStreams = options.MaxStreamsPerCircuit,
        };
        CryptographicOperations.ZeroMemory(keys);
        if (!_sides.TryAdd((link, id), new Side(circuit, Inward: true))) return;
        circuit.MarkOpen();
        Span<byte> reply = stackalloc byte[Cell.Size];
        Cell.WriteHeader(reply, id, CellCommand.Created);
        new CreatedBody(created).Write(Cell.Body(reply));
        link.TrySend(reply);
        // How far behind the link back is: what the Created waits for, to trace slow builds.
        if (logger.IsEnabled(LogLevel.Debug))
            logger.LogDebug("Circuit {Id:x8} from {Peer}; the link back is {Backlog} ms behind", id, link.PeerId.Brief, (int)link.Backlog.TotalMilliseconds);
    }

    /// <summary>
    /// The origin asks us, its last hop, to extend to one of our partners: we build the next leg
    /// with its handshake and answer EXTENDED with the new hop's reply, or ExtendFailed.
    /// </summary>
    void ICircuitExtender.Extend(Circuit circuit, ReadOnlySpan<byte> data)
    {
        ExtendBody extend;
        try
        {
            extend = ExtendBody.Read(data);
        }
        catch (WireException)
        {
            circuit.SendRelay(RelayCommand.ExtendFailed, 0, [(byte)ExtendFailure.Malformed]);
            return;
        }
        if (circuit.Outward is not null)
        {
            circuit.SendRelay(RelayCommand.ExtendFailed, 0, [(byte)ExtendFailure.Malformed]);
            return;
        }
        var next = extend.Next;
        if (next == circuit.Inward!.PeerId || next == identity.Id || policy.ExtendTo(next) is not { } link)
        {
            circuit.SendRelay(RelayCommand.ExtendFailed, 0, [(byte)ExtendFailure.NotAPartner]);
            return;
        }
        if (!extend.EvenIfFull && IsFull(circuit, next))
        {
            circuit.SendRelay(RelayCommand.ExtendFailed, 0, [(byte)ExtendFailure.Full]);
            return;
        }
        _ = ExtendAsync(circuit, link, extend.NtorRequest);
    }

    /// <summary>
    /// Whether <paramref name="circuit"/> would overfill what <paramref name="next"/> grants us.
    /// The circuits we carry for one neighbour share our one grant to it, and any of them may need
    /// all of it: with idle capacity lent, one runs well above an even part. So a neighbour's
    /// circuits in use that go on to one next hop may need our whole grant to it there; where they
    /// go on to several, it is split evenly among those. The needs at <paramref name="next"/> share
    /// its one grant to us. When a circuit from a neighbour not yet among them would make them more
    /// than that grant, some client would get less than it was granted, where a path through
    /// another hop would not: the origin is asked to draw another. A next hop whose last probe
    /// measured less than its grant counts at what it delivered. A neighbour's further circuits
    /// go, as they share its need already counted; so do the first circuit to a next hop and one
    /// whose origin insists (<see cref="ExtendBody.EvenIfFull"/>): slow beats failed. Split, however
    /// many circuits a neighbour builds, its needs come to its one grant: it cannot fill more of
    /// our onward grants than it is granted. Our own circuits are not counted: they start on our
    /// private partners, which we never extend to.
    /// </summary>
    private bool IsFull(Circuit circuit, NodeId next)
    {
        if (policy.GrantKbps is not { } grants) return false;
        var from = circuit.Inward!.PeerId;
        // The next hops each neighbour's circuits in use go on to.
        var nextHops = new Dictionary<NodeId, HashSet<NodeId>>();
        foreach (var side in _sides.Values)
        {
            // A relayed circuit has one inward side: counted once, by the neighbour it is billed to.
            var other = side.Circuit;
            if (side.Inward && other.Outward is { } outward && other.CarriedWithin(InUseWindow))
                (nextHops.TryGetValue(other.Inward!.PeerId, out var hops) ? hops : nextHops[other.Inward.PeerId] = []).Add(outward.PeerId);
        }
        var sharing = nextHops.Where(n => n.Value.Contains(next)).Select(n => n.Key).ToList();
        if (sharing.Count == 0 || sharing.Contains(from)) return false;
        // A next hop our last probe found short of its grant carries what it delivered, not what it
        // claims: an over-claimer's grants promise more than its link carries (seen on the testbed).
        double capacity = grants(next).TheyGrant;
        if (policy.AccountOf(next)?.DeliveredKbps is { } delivered && delivered < capacity) capacity = delivered;
        double demand = sharing.Sum(p => (double)grants(p).WeGrant / nextHops[p].Count)
            + (double)grants(from).WeGrant / ((nextHops.GetValueOrDefault(from)?.Count ?? 0) + 1);
        if (demand <= capacity) return false;
        logger.LogDebug("Refused to extend a circuit to {Next}: the circuits in use there, for {Count} neighbours, would need {Demand:F0} of its {Capacity:F0} kbps",
            next.Brief, sharing.Count + 1, demand, capacity);
        return true;
    }

    private async Task ExtendAsync(Circuit circuit, ICellPort link, byte[] request)
    {
        uint id = AttachOutward(circuit, link);
        // Waiting starts before the CREATE goes, so the timeout runs from the send.
        var waiting = circuit.ExpectReply().WaitAsync(options.BuildTimeout, time);
        if (!SendCreate(link, id, request)) circuit.OnCreateRefused();
        HopReply reply;
        try
        {
            reply = await waiting.ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            reply = new HopReply(null, ExtendFailure.Timeout);
        }
        if (reply.Handshake is { } handshake)
        {
            // A relay from now on: later cells from the origin are for the next hop.
            circuit.BecomeRelay();
            circuit.SendRelay(RelayCommand.Extended, 0, handshake);
            return;
        }
        // No failure means the circuit closed meanwhile, and its neighbours were told.
        if (reply.Failure is not { } failure) return;
        _sides.TryRemove((link, id), out _);
        // A silent next hop may yet create the circuit: it is told to drop it.
        if (failure == ExtendFailure.Timeout) SendDestroy(link, id, DestroyReason.Finished);
        circuit.SetOutward(null, 0, null);
        circuit.SendRelay(RelayCommand.ExtendFailed, 0, [(byte)failure]);
    }

    /// <summary>Picks an unused id on <paramref name="link"/> and makes that link the circuit's outward side.</summary>
    internal uint AttachOutward(Circuit circuit, ICellPort link)
    {
        while (true)
        {
            uint id = ((uint)Random.Shared.Next(1, int.MaxValue) & ~DialerBit) | (link.Outbound ? DialerBit : 0);
            if (!_sides.TryAdd((link, id), new Side(circuit, Inward: false))) continue;
            circuit.SetOutward(link, id, policy.AccountOf(link.PeerId));
            return id;
        }
    }

    internal static bool SendCreate(ICellPort link, uint id, byte[] request)
    {
        Span<byte> cell = stackalloc byte[Cell.Size];
        Cell.WriteHeader(cell, id, CellCommand.Create);
        new CreateBody(request).Write(Cell.Body(cell));
        return link.TrySend(cell);
    }

    // ---- Ending ----

    /// <summary>The peer broke the relay protocol on this circuit: destroy it, keep the links.</summary>
    void ICircuitOwner.Violation(Circuit circuit, string reason)
    {
        // A relayed circuit is named by the neighbour it came from, which at a first hop is its
        // origin: that stays out of the default log level.
        if (circuit.Role == CircuitRole.Origin) logger.LogInformation("Destroying {Circuit}: {Reason}", circuit, reason);
        else
        {
            logger.LogInformation("Destroying a relayed circuit: {Reason}", reason);
            logger.LogDebug("The circuit destroyed was {Circuit}", circuit);
        }
        Destroy(circuit, DestroyReason.Protocol);
    }

    void ICircuitOwner.Destroy(Circuit circuit, DestroyReason reason) => Destroy(circuit, reason);

    /// <summary>Closes a circuit and tells each neighbour on it, except the one it heard the end from.</summary>
    private void Destroy(Circuit circuit, DestroyReason reason, ICellPort? from = null)
    {
        if (!circuit.Close()) return;
        if (circuit.Inward is { } inward)
        {
            _sides.TryRemove((inward, circuit.InwardId), out _);
            if (inward != from) SendDestroy(inward, circuit.InwardId, reason);
        }
        if (circuit.Outward is { } outward)
        {
            _sides.TryRemove((outward, circuit.OutwardId), out _);
            if (outward != from) SendDestroy(outward, circuit.OutwardId, reason);
        }
        Rendezvous.Forget(circuit);
        // Joined at a rendezvous point, the two circuits are one path: neither end goes on alone.
        if (circuit.Joined is { } joined) Destroy(joined, DestroyReason.HopLost);
    }

    /// <summary>
    /// Ends every circuit billed to <paramref name="partner"/>, the neighbour that built it through
    /// us: those we are the exit of and those we relay alike. For when our grant to it has ended:
    /// nothing granted, nothing carried. Our own circuits through it stay.
    /// </summary>
    public void EndBilledTo(NodeId partner)
    {
        foreach (var side in _sides.Where(s => s.Value.Inward && s.Key.Link.PeerId == partner).Select(s => s.Value).ToList())
            Destroy(side.Circuit, DestroyReason.Refused);
    }

    /// <summary>The link is gone, and with it every circuit on it; relays tell the other side.</summary>
    public void OnClosed(ICellPort link)
    {
        foreach (var side in _sides.Where(s => s.Key.Link == link).Select(s => s.Value).ToList())
            Destroy(side.Circuit, DestroyReason.HopLost, from: link);
    }

    private static void SendDestroy(ICellPort link, uint id, DestroyReason reason)
    {
        Span<byte> cell = stackalloc byte[Cell.Size];
        cell.Clear();
        Cell.WriteHeader(cell, id, CellCommand.Destroy);
        Cell.Body(cell)[0] = (byte)reason;
        link.TrySend(cell);
    }
}
