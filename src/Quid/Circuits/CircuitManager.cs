using System.Buffers.Binary;
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
    public TimeSpan ExitConnectTimeout { get; init; } = TimeSpan.FromSeconds(20);
    public int MaxStreamsPerCircuit { get; init; } = 512;
    public int MaxCircuitsPerLink { get; init; } = 1024;
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

/// <summary>Why a hop could not extend a circuit; the ExtendFailed message's byte.</summary>
public enum ExtendFailure : byte
{
    NotAPartner = 1,
    Refused = 2,
    Timeout = 3,
    Malformed = 4,
}

/// <summary>What the circuit manager needs to know of the node it serves; it owns no policy itself.</summary>
public sealed record CircuitPolicy(
    /// <summary>Whether a neighbour may build circuits through us: we must grant it bandwidth.</summary>
    Func<NodeId, bool> AdmitsCircuitsFrom,
    /// <summary>The link to a neighbour we may extend circuits to (one that grants us bandwidth), or null.</summary>
    Func<NodeId, ICellPort?> ExtendTo,
    /// <summary>The ledger account of a neighbour, for billing and shaping.</summary>
    Func<NodeId, PartnerAccount?> AccountOf);

/// <summary>
/// Every circuit this node is part of, by link and circuit id on that link. It builds origin
/// circuits hop by hop (CREATE to the first, EXTEND through the last for each next), admits
/// circuits from partners, extends them on request to our own partners, passes relay cells
/// through, and dispatches the rest to the circuits' ends. The side that dialed a link sets the
/// top bit of the ids it picks, so the two ends of a link never pick the same id.
/// </summary>
public sealed class CircuitManager(NodeIdentity identity, CircuitOptions options, ExitConnector exit, CircuitPolicy policy, TimeProvider time, ILogger logger) : ICircuitCells
{
    private const uint DialerBit = 0x8000_0000;
    private const ushort NtorHandshake = 1;

    private readonly record struct Side(Circuit Circuit, bool Inward);

    private readonly ConcurrentDictionary<(ICellPort Link, uint Id), Side> _sides = new();
    private readonly ConcurrentDictionary<ICellPort, Task<Circuit>> _probeCircuits = new();

    internal TimeProvider Time => time;
    internal CircuitOptions Options => options;

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
            || BinaryPrimitives.ReadUInt16BigEndian(body) != NtorHandshake)
        {
            SendDestroy(link, id, DestroyReason.Refused);
            return;
        }
        Span<byte> reply = stackalloc byte[Cell.Size];
        reply.Clear();
        byte[] keys;
        try
        {
            keys = Ntor.Respond(identity.Id, identity.LinkKey, body.Slice(2, Ntor.RequestSize), Cell.Body(reply), OnionLayer.KeyMaterialSize);
        }
        catch (CircuitHandshakeException e)
        {
            logger.LogDebug("Refused a circuit from {Peer}: {Reason}", link.PeerId.Brief, e.Message);
            SendDestroy(link, id, DestroyReason.Refused);
            return;
        }
        var circuit = new Circuit(this, CircuitRole.Exit, time.GetUtcNow())
        {
            Inward = link,
            InwardId = id,
            Layer = new OnionLayer(keys),
            InwardAccount = policy.AccountOf(link.PeerId),
        };
        CryptographicOperations.ZeroMemory(keys);
        if (!_sides.TryAdd((link, id), new Side(circuit, Inward: true))) return;
        circuit.MarkOpen();
        Cell.WriteHeader(reply, id, CellCommand.Created);
        link.TrySend(reply);
        logger.LogDebug("Circuit {Id:x8} from {Peer}", id, link.PeerId.Brief);
    }

    /// <summary>
    /// The origin asks us, its last hop, to extend to one of our partners: we build the next leg
    /// with its handshake and answer EXTENDED with the new hop's reply, or ExtendFailed.
    /// </summary>
    internal void Extend(Circuit circuit, ReadOnlySpan<byte> data)
    {
        if (data.Length != NodeId.Size + Ntor.RequestSize || circuit.Outward is not null)
        {
            circuit.SendRelay(RelayCommand.ExtendFailed, 0, [(byte)ExtendFailure.Malformed]);
            return;
        }
        var next = new NodeId(data[..NodeId.Size]);
        if (next == circuit.Inward!.PeerId || next == identity.Id || policy.ExtendTo(next) is not { } link)
        {
            circuit.SendRelay(RelayCommand.ExtendFailed, 0, [(byte)ExtendFailure.NotAPartner]);
            return;
        }
        var request = data[NodeId.Size..].ToArray();
        _ = ExtendAsync(circuit, link, request);
    }

    private async Task ExtendAsync(Circuit circuit, ICellPort link, byte[] request)
    {
        uint id = Register(circuit, link);
        circuit.SetOutward(link, id, policy.AccountOf(link.PeerId));
        var reply = circuit.ExpectReply();
        byte[] answer = [];
        if (SendCreate(link, id, request))
        {
            try
            {
                answer = await reply.WaitAsync(options.BuildTimeout, time).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                // Counted as a refusal below.
            }
        }
        if (answer.Length == 0)
        {
            _sides.TryRemove((link, id), out _);
            SendDestroy(link, id, DestroyReason.Finished);
            circuit.SetOutward(null, 0, null);
            circuit.SendRelay(RelayCommand.ExtendFailed, 0, [(byte)ExtendFailure.Refused]);
            return;
        }
        // A relay from now on: later cells from the origin are for the next hop.
        circuit.BecomeRelay();
        circuit.SendRelay(RelayCommand.Extended, 0, answer);
    }

    // ---- Building ----

    /// <summary>
    /// Builds a circuit along <paramref name="path"/>: CREATE to the first hop (a neighbour), then
    /// EXTEND for each next hop, each with a fresh ntor handshake against the hop's onion key from
    /// its signed descriptor. Throws <see cref="StreamException"/> if a hop refuses or is silent.
    /// </summary>
    public async Task<Circuit> BuildAsync(ICellPort firstHop, IReadOnlyList<Descriptor> path, object? isolation, CancellationToken cancellationToken)
    {
        var circuit = new Circuit(this, CircuitRole.Origin, time.GetUtcNow()) { Isolation = isolation, ExitDescriptor = path[^1] };
        uint id = Register(circuit, firstHop);
        circuit.SetOutward(firstHop, id, policy.AccountOf(firstHop.PeerId));
        try
        {
            for (int i = 0; i < path.Count; i++)
            {
                var hop = path[i];
                using var ntor = Ntor.Start(hop.Id, hop.LinkKey);
                var replyTask = circuit.ExpectReply();
                bool sent = i == 0
                    ? SendCreate(firstHop, id, ntor.Request)
                    : circuit.SendRelay(RelayCommand.Extend, 0, [.. hop.Id.ToBytes(), .. ntor.Request], early: true);
                if (!sent) throw new StreamException(EndReason.CircuitClosed, "The circuit's first link closed.");
                byte[] reply;
                try
                {
                    reply = await replyTask.WaitAsync(options.BuildTimeout, time, cancellationToken).ConfigureAwait(false);
                }
                catch (TimeoutException)
                {
                    throw new StreamException(EndReason.Timeout, $"{hop.Id.Brief} did not answer within {options.BuildTimeout.TotalSeconds:0} s.");
                }
                if (reply.Length < Ntor.ReplySize)
                    throw new StreamException(EndReason.CircuitClosed, i == 0 ? $"{hop.Id.Brief} refused the circuit." : $"{path[i - 1].Id.Brief} could not extend to {hop.Id.Brief}.");
                byte[] keys;
                try
                {
                    keys = ntor.Finish(reply, OnionLayer.KeyMaterialSize);
                }
                catch (CircuitHandshakeException e)
                {
                    throw new StreamException(EndReason.Protocol, $"{hop.Id.Brief}: {e.Message}");
                }
                circuit.AddHop(new Hop(hop.Id, new OnionLayer(keys)));
                CryptographicOperations.ZeroMemory(keys);
            }
        }
        catch
        {
            Destroy(circuit, DestroyReason.Finished);
            throw;
        }
        circuit.MarkOpen();
        logger.LogDebug("Built {Circuit}", circuit);
        return circuit;
    }

    /// <summary>Picks an unused id on <paramref name="link"/> and records the circuit's outward side there.</summary>
    private uint Register(Circuit circuit, ICellPort link)
    {
        while (true)
        {
            uint id = ((uint)Random.Shared.Next(1, int.MaxValue) & ~DialerBit) | (link.Outbound ? DialerBit : 0);
            if (_sides.TryAdd((link, id), new Side(circuit, Inward: false))) return id;
        }
    }

    private static bool SendCreate(ICellPort link, uint id, ReadOnlySpan<byte> request)
    {
        Span<byte> cell = stackalloc byte[Cell.Size];
        cell.Clear();
        Cell.WriteHeader(cell, id, CellCommand.Create);
        var body = Cell.Body(cell);
        BinaryPrimitives.WriteUInt16BigEndian(body, NtorHandshake);
        request.CopyTo(body[2..]);
        return link.TrySend(cell);
    }

    // ---- Exit streams and shaping ----

    /// <summary>Waits until <paramref name="share"/> lets <paramref name="bytes"/> through; at once when unshaped.</summary>
    internal ValueTask ShapeAsync(Shaper.Share? share, int bytes, CancellationToken cancellationToken)
    {
        if (share is null) return ValueTask.CompletedTask;
        var delay = share.Reserve(bytes);
        return delay <= TimeSpan.Zero ? ValueTask.CompletedTask : new ValueTask(Task.Delay(delay, time, cancellationToken));
    }

    internal void StartExitStream(Circuit circuit, RelayStream stream) => _ = RunExitStreamAsync(circuit, stream);

    internal void StartResolve(Circuit circuit, ushort streamId, string host) => _ = ResolveAsync(circuit, streamId, host);

    private async Task ResolveAsync(Circuit circuit, ushort streamId, string host)
    {
        var (addresses, failure) = await exit.ResolveAsync(host, CancellationToken.None).ConfigureAwait(false);
        var answer = new byte[2 + Math.Min(addresses.Length, 16) * 17];
        answer[0] = addresses.Length > 0 ? (byte)0 : (byte)failure;
        int at = 2, count = 0;
        foreach (var address in addresses.Take(16))
        {
            at += RelayAddress.Encode(address, answer.AsSpan(at));
            count++;
        }
        answer[1] = (byte)count;
        circuit.SendRelay(RelayCommand.Resolved, streamId, answer.AsSpan(0, at));
    }

    private async Task RunExitStreamAsync(Circuit circuit, RelayStream stream)
    {
        ExitConnector.Result result;
        try
        {
            result = await exit.ConnectAsync(stream.Target, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            logger.LogWarning(e, "Exit connect failed unexpectedly");
            result = new ExitConnector.Result(null, null, EndReason.Internal);
        }
        if (result.Socket is null)
        {
            logger.LogDebug("Exit stream {Stream} on {Circuit}: {Reason}", stream.Id, circuit, result.Failure);
            stream.Abort(result.Failure, notifyPeer: true);
            return;
        }
        if (circuit.State == CircuitState.Closed)
        {
            result.Socket.Dispose();
            return;
        }
        Span<byte> address = stackalloc byte[17];
        circuit.SendRelay(RelayCommand.Connected, stream.Id, address[..RelayAddress.Encode(result.Address!, address)]);
        await stream.RunAsync(result.Socket).ConfigureAwait(false);
    }

    // ---- Probes ----

    /// <summary>
    /// Measures what a partner delivers: echo cells with random payloads go out on a one-hop
    /// circuit through it, as many as it returns, for <paramref name="duration"/>. From the first
    /// echo back, every byte it sends us on our circuits (echoes and real traffic alike) counts;
    /// an echo must carry the payload we sent. Returns kbps.
    /// </summary>
    public async Task<double> ProbeAsync(ICellPort link, Descriptor partner, TimeSpan duration, CancellationToken cancellationToken)
    {
        const int window = 64;
        var circuit = await ProbeCircuitAsync(link, partner, cancellationToken).ConfigureAwait(false);
        var account = circuit.OutwardAccount ?? throw new InvalidOperationException("A probe needs the partner's account.");
        var outstanding = new ConcurrentDictionary<ulong, byte[]>();
        using var returned = new SemaphoreSlim(0);
        int forged = 0;
        // Each probe marks its payloads, so late replies to an earlier probe are told apart from forgeries.
        ulong probe = BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8));
        long firstBytes = 0, firstAt = 0;
        circuit.OnEchoReplies(reply =>
        {
            if (reply.Length != RelayCell.MaxData || BitConverter.ToUInt64(reply.Span) != probe) return;
            // The rate counts from the first echo back: filling the pipe is not the partner's slowness.
            if (Interlocked.CompareExchange(ref firstAt, time.GetTimestamp(), 0) == 0) Interlocked.Exchange(ref firstBytes, account.BytesDeliveredToUs);
            if (outstanding.TryRemove(BitConverter.ToUInt64(reply.Span[8..]), out var sent) && reply.Span.SequenceEqual(sent))
                returned.Release();
            else
                Interlocked.Increment(ref forged);
        });
        try
        {
            long start = time.GetTimestamp();
            ulong sequence = 0;
            while (time.GetElapsedTime(start) < duration && circuit.State == CircuitState.Open)
            {
                while (outstanding.Count < window)
                {
                    var payload = RandomNumberGenerator.GetBytes(RelayCell.MaxData);
                    BitConverter.TryWriteBytes(payload, probe);
                    BitConverter.TryWriteBytes(payload.AsSpan(8), ++sequence);
                    outstanding[sequence] = payload;
                    if (!circuit.SendRelay(RelayCommand.Echo, 0, payload)) break;
                }
                var remaining = duration - time.GetElapsedTime(start);
                if (remaining <= TimeSpan.Zero || !await returned.WaitAsync(remaining, cancellationToken).ConfigureAwait(false)) break;
            }
            long end = account.BytesDeliveredToUs;
            long first = Interlocked.Read(ref firstAt);
            // An echo that does not carry what we sent is a lie about capacity: it counts for nothing.
            if (first == 0 || Volatile.Read(ref forged) > 0) return 0;
            var elapsed = time.GetElapsedTime(first);
            long delivered = end - Interlocked.Read(ref firstBytes);
            return elapsed <= TimeSpan.Zero ? 0 : delivered * 8 / 1000.0 / elapsed.TotalSeconds;
        }
        finally
        {
            circuit.OnEchoReplies(null);
        }
    }

    /// <summary>The one-hop circuit probes of this partner use, built on first use and kept.</summary>
    private async Task<Circuit> ProbeCircuitAsync(ICellPort link, Descriptor partner, CancellationToken cancellationToken)
    {
        while (true)
        {
            var building = _probeCircuits.GetOrAdd(link, _ => BuildAsync(link, [partner], isolation: null, CancellationToken.None));
            try
            {
                var circuit = await building.WaitAsync(cancellationToken).ConfigureAwait(false);
                if (circuit.State == CircuitState.Open) return circuit;
            }
            catch (StreamException)
            {
                _probeCircuits.TryRemove(new KeyValuePair<ICellPort, Task<Circuit>>(link, building));
                throw;
            }
            _probeCircuits.TryRemove(new KeyValuePair<ICellPort, Task<Circuit>>(link, building));
        }
    }

    // ---- Ending ----

    /// <summary>The peer broke the relay protocol on this circuit: destroy it, keep the links.</summary>
    internal void Violation(Circuit circuit, string reason)
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

    /// <summary>Closes a circuit and tells each neighbour on it, except the one it heard the end from.</summary>
    public void Destroy(Circuit circuit, DestroyReason reason, ICellPort? from = null)
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
    }

    /// <summary>The link is gone, and with it every circuit on it; relays tell the other side.</summary>
    public void OnClosed(ICellPort link)
    {
        _probeCircuits.TryRemove(link, out _);
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
