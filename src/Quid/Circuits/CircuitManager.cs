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
}

/// <summary>
/// Every circuit this node is an end of, by link and circuit id. Builds origin circuits to
/// partners, admits exit circuits from partners we grant bandwidth to, and dispatches cells.
/// Circuit ids are chosen by the builder; the side that dialed the link sets the top bit, so
/// the two ends of a link never pick the same id.
/// </summary>
public sealed class CircuitManager(CircuitOptions options, ExitConnector exit, Func<NodeId, bool> admitsCircuitsFrom,
    Func<NodeId, PartnerAccount?> accountOf, TimeProvider time, ILogger logger)
{
    private const uint DialerBit = 0x8000_0000;

    private readonly ConcurrentDictionary<(Link Link, uint Id), Circuit> _circuits = new();
    private readonly ConcurrentDictionary<Link, Task<Circuit>> _originByLink = new();

    internal TimeProvider Time => time;
    internal CircuitOptions Options => options;

    public ICollection<Circuit> Circuits => _circuits.Values;

    /// <summary>Handles a circuit cell from <paramref name="link"/> on its read loop.</summary>
    public void OnCell(Link link, ReadOnlySpan<byte> cell)
    {
        uint id = Cell.CircuitId(cell);
        _circuits.TryGetValue((link, id), out var circuit);
        switch (Cell.Command(cell))
        {
            case CellCommand.Create:
                OnCreate(link, id, circuit);
                break;
            case CellCommand.Created when circuit is { Role: CircuitRole.Origin, State: CircuitState.Building }:
                circuit.MarkOpen();
                break;
            case CellCommand.Relay when circuit is not null:
                circuit.OnRelay(Cell.Body(cell));
                break;
            case CellCommand.Destroy when circuit is not null:
                Remove(circuit);
                break;
        }
    }

    private void OnCreate(Link link, uint id, Circuit? existing)
    {
        bool peerDialed = !link.Outbound;
        if (existing is not null || id == 0 || ((id & DialerBit) != 0) != peerDialed)
        {
            logger.LogInformation("{Peer} sent CREATE with a bad circuit id {Id:x8}; closing the link", link.PeerId.Brief, id);
            link.Close(new LinkException(LinkError.BadCell, "CREATE with a bad circuit id."));
            return;
        }
        if (!admitsCircuitsFrom(link.PeerId) || _circuits.Count(c => c.Key.Link == link) >= options.MaxCircuitsPerLink)
        {
            SendDestroy(link, id, DestroyReason.Refused);
            return;
        }
        var circuit = new Circuit(this, link, id, CircuitRole.Exit, time.GetUtcNow(), accountOf(link.PeerId));
        if (!_circuits.TryAdd((link, id), circuit)) return;
        circuit.MarkOpen();
        SendCell(link, id, CellCommand.Created);
        logger.LogDebug("Exit circuit {Id:x8} from {Peer}", id, link.PeerId.Brief);
    }

    /// <summary>The origin circuit through <paramref name="firstHop"/>, built on first use and shared by later streams.</summary>
    public async Task<Circuit> GetCircuitAsync(Link firstHop, CancellationToken cancellationToken)
    {
        while (true)
        {
            var building = _originByLink.GetOrAdd(firstHop, BuildAsync);
            try
            {
                var circuit = await building.WaitAsync(cancellationToken).ConfigureAwait(false);
                if (circuit.State == CircuitState.Open) return circuit;
            }
            catch (StreamException)
            {
                _originByLink.TryRemove(new KeyValuePair<Link, Task<Circuit>>(firstHop, building));
                throw;
            }
            _originByLink.TryRemove(new KeyValuePair<Link, Task<Circuit>>(firstHop, building));
        }
    }

    private async Task<Circuit> BuildAsync(Link link)
    {
        uint id;
        Circuit circuit;
        do
        {
            id = ((uint)Random.Shared.Next(1, int.MaxValue) & ~DialerBit) | (link.Outbound ? DialerBit : 0);
            circuit = new Circuit(this, link, id, CircuitRole.Origin, time.GetUtcNow(), accountOf(link.PeerId));
        }
        while (!_circuits.TryAdd((link, id), circuit));

        if (!SendCell(link, id, CellCommand.Create))
        {
            Remove(circuit);
            throw new StreamException(EndReason.CircuitClosed, $"The link to {link.PeerId.Brief} is closed.");
        }
        try
        {
            await circuit.Created.WaitAsync(options.BuildTimeout, time).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            Destroy(circuit, DestroyReason.Finished);
            throw new StreamException(EndReason.Timeout, $"{link.PeerId.Brief} did not answer CREATE within {options.BuildTimeout.TotalSeconds:0} s.");
        }
        catch (StreamException)
        {
            throw new StreamException(EndReason.CircuitClosed, $"{link.PeerId.Brief} refused the circuit.");
        }
        logger.LogDebug("Built circuit {Id:x8} through {Peer}", id, link.PeerId.Brief);
        return circuit;
    }

    /// <summary>
    /// Opens a stream through the first of <paramref name="firstHops"/> that can carry it. Only
    /// circuit failures move on to the next; an answer from the destination is final.
    /// </summary>
    public async Task<RelayStream> OpenStreamAsync(IReadOnlyList<Link> firstHops, StreamTarget target, CancellationToken cancellationToken)
    {
        if (firstHops.Count == 0) throw new StreamException(EndReason.Unreachable, "No partner grants us bandwidth yet, so there is no circuit to use.");
        StreamException? last = null;
        foreach (var link in firstHops)
        {
            try
            {
                var circuit = await GetCircuitAsync(link, cancellationToken).ConfigureAwait(false);
                return await circuit.OpenStreamAsync(target, options.StreamTimeout, cancellationToken).ConfigureAwait(false);
            }
            catch (StreamException e) when (e.Reason is EndReason.CircuitClosed or EndReason.Timeout)
            {
                last = e;
            }
        }
        throw last!;
    }

    /// <summary>Waits until <paramref name="share"/> lets <paramref name="bytes"/> through; at once when unshaped.</summary>
    internal ValueTask ShapeAsync(Shaper.Share? share, int bytes, CancellationToken cancellationToken)
    {
        if (share is null) return ValueTask.CompletedTask;
        var delay = share.Reserve(bytes);
        return delay <= TimeSpan.Zero ? ValueTask.CompletedTask : new ValueTask(Task.Delay(delay, time, cancellationToken));
    }

    /// <summary>
    /// Measures what a partner delivers: echo cells with random payloads go out on our circuit
    /// through it, as many as it returns, for <paramref name="duration"/>; every byte it sends us
    /// on our circuits meanwhile (echoes and real traffic alike) counts, and an echo must carry the
    /// payload we sent. Returns kbps.
    /// </summary>
    public async Task<double> ProbeAsync(Link link, TimeSpan duration, CancellationToken cancellationToken)
    {
        const int window = 64;
        var circuit = await GetCircuitAsync(link, cancellationToken).ConfigureAwait(false);
        var account = circuit.Account ?? throw new InvalidOperationException("A probe needs the partner's account.");
        var outstanding = new ConcurrentDictionary<ulong, byte[]>();
        using var returned = new SemaphoreSlim(0);
        int forged = 0;
        // Each probe marks its payloads, so late replies to an earlier probe are told apart from forgeries.
        ulong probe = BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8));
        // The rate counts from the first echo back: filling the pipe is not the partner's slowness.
        long firstBytes = 0, firstAt = 0;
        circuit.OnEchoReplies(reply =>
        {
            if (reply.Length != RelayCell.MaxData || BitConverter.ToUInt64(reply.Span) != probe) return;
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

    internal void StartExitStream(Circuit circuit, RelayStream stream) => _ = RunExitStreamAsync(circuit, stream);

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

    /// <summary>The peer broke the relay protocol on this circuit: destroy it, keep the link.</summary>
    internal void Violation(Circuit circuit, string reason)
    {
        logger.LogInformation("Destroying {Circuit}: {Reason}", circuit, reason);
        Destroy(circuit, DestroyReason.Protocol);
    }

    public void Destroy(Circuit circuit, DestroyReason reason)
    {
        if (Remove(circuit)) SendDestroy(circuit.Link, circuit.Id, reason);
    }

    private bool Remove(Circuit circuit)
    {
        _circuits.TryRemove(new KeyValuePair<(Link, uint), Circuit>((circuit.Link, circuit.Id), circuit));
        return circuit.Close();
    }

    /// <summary>The link is gone, and with it every circuit on it.</summary>
    public void OnLinkClosed(Link link)
    {
        _originByLink.TryRemove(link, out _);
        foreach (var entry in _circuits.Where(c => c.Key.Link == link).ToList()) Remove(entry.Value);
    }

    private static void SendDestroy(Link link, uint id, DestroyReason reason)
    {
        Span<byte> cell = stackalloc byte[Cell.Size];
        cell.Clear();
        Cell.WriteHeader(cell, id, CellCommand.Destroy);
        Cell.Body(cell)[0] = (byte)reason;
        link.TrySend(cell);
    }

    private static bool SendCell(Link link, uint id, CellCommand command)
    {
        Span<byte> cell = stackalloc byte[Cell.Size];
        cell.Clear();
        Cell.WriteHeader(cell, id, command);
        return link.TrySend(cell);
    }
}
