using System.Collections.Concurrent;
using Quid.Crypto;
using Quid.Links;
using Quid.Tests.Integration;
using Quid.Wire;

namespace Quid.Tests.Circuits;

/// <summary>
/// The wire of an in-memory test network. What any port sends is delivered to the circuit table at
/// the other end one cell at a time, in the order sent. A cell sent while another is being
/// delivered (a relay passing it on, an end answering) waits its turn instead of being handed over
/// inside the sender's call, as a real link's read loop takes it after the cell in hand. So a
/// table never sees a cell in the middle of another, and no test has to pump.
/// </summary>
internal sealed class CellWire
{
    private readonly Lock _lock = new();
    private readonly Queue<Action> _deliveries = new();
    private readonly ConcurrentQueue<Exception> _failures = new();
    private bool _delivering;

    /// <summary>What a table threw while taking a cell: a real link's read loop would have died of it.</summary>
    public IReadOnlyCollection<Exception> Failures => _failures;

    /// <summary>
    /// Waits until every cell sent so far has been delivered, with all it set off: the delivery in
    /// hand may be on another thread (whichever sent first while the wire was idle).
    /// </summary>
    public Task SettleAsync() => Eventually.WaitUntilAsync(() => IsIdle, TimeSpan.FromSeconds(10), "every cell in flight to be delivered");

    public bool IsIdle
    {
        get { lock (_lock) return !_delivering && _deliveries.Count == 0; }
    }

    public void Post(Action delivery)
    {
        if (Enqueue(delivery)) Drain();
    }

    /// <summary>Queues a delivery; true when the caller must <see cref="Drain"/>, since nobody else is delivering.</summary>
    public bool Enqueue(Action delivery)
    {
        lock (_lock)
        {
            _deliveries.Enqueue(delivery);
            if (_delivering) return false;
            _delivering = true;
            return true;
        }
    }

    /// <summary>Delivers until the queue is empty, including what the deliveries themselves send.</summary>
    public void Drain()
    {
        while (true)
        {
            Action next;
            lock (_lock)
            {
                if (!_deliveries.TryDequeue(out next!))
                {
                    _delivering = false;
                    return;
                }
            }
            try
            {
                next();
            }
            catch (Exception e)
            {
                _failures.Enqueue(e);
            }
        }
    }
}

/// <summary>
/// One end of an in-memory link. It records every cell sent on it, as the wire carried it, and can
/// play a misbehaving hop's part on the way out: change a cell (<see cref="Tamper"/>) or stop
/// passing cells on (<see cref="Stall"/>) and keep them until <see cref="Resume"/>.
/// </summary>
internal sealed class MemoryPort(CellWire wire, NodeId peerId, bool outbound) : ICellPort
{
    private readonly Lock _lock = new();
    private readonly ConcurrentQueue<byte[]> _sent = new();
    private readonly List<byte[]> _held = [];
    private bool _stalled;
    private int _passing;
    private volatile bool _closed;

    public NodeId PeerId => peerId;
    public bool Outbound => outbound;
    public bool IsOpen => !_closed;
    /// <summary>Cells are delivered as sent: nothing waits to go out.</summary>
    public TimeSpan Backlog => TimeSpan.Zero;
    public Exception? CloseReason { get; private set; }

    /// <summary>The port at the other end of the link.</summary>
    public MemoryPort Other { get; set; } = null!;
    /// <summary>Where the cells arriving on this port go.</summary>
    public ICircuitCells Cells { get; set; } = null!;

    /// <summary>Changes each cell on its way out, after the sender is done with it.</summary>
    public Action<byte[]>? Tamper { get; set; }

    /// <summary>Every cell sent on this port, as it went on the wire.</summary>
    public IReadOnlyCollection<byte[]> Sent => _sent;

    public IEnumerable<byte[]> SentCells(CellCommand command) => _sent.Where(c => Cell.Command(c) == command);

    /// <summary>Cells kept back while the port is stalled.</summary>
    public int Held
    {
        get { lock (_lock) return _held.Count; }
    }

    public bool TrySend(ReadOnlySpan<byte> cell)
    {
        if (_closed) return false;
        var copy = cell.ToArray();
        Tamper?.Invoke(copy);
        // The receiver works on the cell in place (a hop opens its layer there): the record is a copy of its own.
        _sent.Enqueue([.. copy]);
        bool drain;
        // Queued under the port's lock, so cells leave in the order sent, held ones first.
        lock (_lock)
        {
            if (_stalled && _passing-- <= 0)
            {
                _held.Add(copy);
                return true;
            }
            drain = wire.Enqueue(() => Other.Receive(copy));
        }
        if (drain) wire.Drain();
        return true;
    }

    public bool TrySendBatched(ReadOnlySpan<byte> cell) => TrySend(cell);

    /// <summary>From now on, after <paramref name="passing"/> more cells, cells sent here wait, in order, instead of going out.</summary>
    public void Stall(int passing = 0)
    {
        lock (_lock)
        {
            _stalled = true;
            _passing = passing;
        }
    }

    /// <summary>Sends what was held, in order, and lets later cells through again.</summary>
    public void Resume()
    {
        bool drain = false;
        lock (_lock)
        {
            _stalled = false;
            foreach (var cell in _held) drain |= wire.Enqueue(() => Other.Receive(cell));
            _held.Clear();
        }
        if (drain) wire.Drain();
    }

    /// <summary>Closes both ends of the link; each side's table hears of it, as over a real link.</summary>
    public void Close(Exception? reason)
    {
        if (_closed) return;
        CloseReason = reason;
        _closed = Other._closed = true;
        wire.Post(() => Cells.OnClosed(this));
        wire.Post(() => Other.Cells.OnClosed(Other));
    }

    private void Receive(byte[] cell)
    {
        if (!_closed) Cells.OnCell(this, cell);
    }
}
