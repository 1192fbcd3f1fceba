using Quid.Crypto;

namespace Quid.Circuits;

/// <summary>
/// The budget of exit sockets: descriptors for the streams that leave the network here, shared
/// fairly. A stream takes one from just before its connect until its socket closes. No partner
/// (the neighbour a circuit is billed to) may hold more than its share, the budget divided among
/// the partners holding some, and never more than half of it; within a partner's share, no
/// circuit more than its like share. So one partner, or one circuit, filling its share leaves
/// room for the others, however many streams it asks for; a stream beyond a share is refused,
/// never queued, and a share grows back as the partner's streams end.
/// </summary>
public sealed class ExitSockets
{
    /// <summary>
    /// Descriptors the rest of the node may need however many streams exit here: the runtime's own
    /// (192: on the JIT two for each of the 75 or so assemblies it loads, plus its event and signal
    /// pipes; the native build needs a tenth of that), the ledger (quid.db, its -wal and -shm), the
    /// four listeners and the control API's connections (64 in all), and the links: up to 160
    /// neighbours (an ultrapeer's most) and 64 handshakes in flight (224).
    /// </summary>
    public const int Reserve = 480;
    /// <summary>Where the limit cannot be read: a common default soft limit of systems that have one.</summary>
    public const long AssumedDescriptorLimit = 4096;
    /// <summary>Above any limit a machine has in practice: descriptors are then not what runs out.</summary>
    private const int MaxBudget = 1_000_000;

    private readonly Lock _lock = new();
    private readonly Dictionary<NodeId, PartnerHold> _partners = [];
    private int _inUse;

    public ExitSockets(int budget)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(budget, 1);
        Budget = budget;
    }

    public int Budget { get; }

    public int InUse
    {
        get { lock (_lock) return _inUse; }
    }

    /// <summary>
    /// The budget for a descriptor limit: three quarters of what the <see cref="Reserve"/> leaves,
    /// the last quarter kept for the local proxies' connections (each stream of our own
    /// applications holds one) and for what the reserve underestimates; never less than a quarter
    /// of the limit, so a node under a tiny limit still exits some streams.
    /// </summary>
    public static int BudgetFor(long descriptorLimit) =>
        (int)Math.Clamp(Math.Max(descriptorLimit / 4, (descriptorLimit - Reserve) * 3 / 4), 1, MaxBudget);

    /// <summary>Takes one exit socket for a stream of <paramref name="circuit"/>, billed to <paramref name="partner"/>; null when past a share.</summary>
    public Lease? TryTake(NodeId partner, object circuit)
    {
        lock (_lock)
        {
            if (_inUse >= Budget) return null;
            _partners.TryGetValue(partner, out var hold);
            int partnerShare = Share(Budget, _partners.Count + (hold is null ? 1 : 0));
            if (hold is not null && hold.Held >= partnerShare) return null;
            int circuitHeld = hold?.Circuits.GetValueOrDefault(circuit) ?? 0;
            int circuitShare = Share(partnerShare, (hold?.Circuits.Count ?? 0) + (circuitHeld == 0 ? 1 : 0));
            if (circuitHeld >= circuitShare) return null;
            if (hold is null) _partners.Add(partner, hold = new PartnerHold());
            hold.Held++;
            hold.Circuits[circuit] = circuitHeld + 1;
            _inUse++;
            return new Lease(this, partner, circuit);
        }
    }

    /// <summary>An equal part of <paramref name="total"/> among <paramref name="holders"/>, and never more than half: a newcomer always finds room.</summary>
    private static int Share(int total, int holders) => Math.Max(1, total / Math.Max(2, holders));

    private void Return(NodeId partner, object circuit)
    {
        lock (_lock)
        {
            var hold = _partners[partner];
            _inUse--;
            if (--hold.Held == 0)
            {
                _partners.Remove(partner);
                return;
            }
            int left = hold.Circuits[circuit] - 1;
            if (left == 0) hold.Circuits.Remove(circuit);
            else hold.Circuits[circuit] = left;
        }
    }

    private sealed class PartnerHold
    {
        public int Held;
        public readonly Dictionary<object, int> Circuits = new(ReferenceEqualityComparer.Instance);
    }

    /// <summary>One exit socket held; disposing it gives it back, once.</summary>
    public sealed class Lease : IDisposable
    {
        private readonly ExitSockets _owner;
        private readonly NodeId _partner;
        private readonly object _circuit;
        private int _returned;

        internal Lease(ExitSockets owner, NodeId partner, object circuit)
        {
            _owner = owner;
            _partner = partner;
            _circuit = circuit;
        }

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _returned, 1) == 0) _owner.Return(_partner, _circuit);
        }
    }
}
