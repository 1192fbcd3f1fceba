using Quid.Crypto;
using Quid.Wire;

namespace Quid.Overlay;

/// <summary>Which of the ultrapeers a flood goes out through a widening step sends to.</summary>
internal enum Spread
{
    /// <summary>All of them in one step.</summary>
    All,
    /// <summary>One of them a step, each in turn.</summary>
    Each,
}

/// <summary>One stage of a widening flood: the TTL, and through which of our ultrapeers it goes.</summary>
internal readonly record struct WideningStep(byte Ttl, Spread Spread);

/// <summary>
/// A flood of ours that widens step by step, as Gnutella's dynamic querying does: the same id
/// goes out again with a larger TTL only while its first steps did not find enough, and a node
/// that handled it with a smaller TTL passes it on without answering again (<see cref="QueryRoutes"/>).
/// It holds the sends of every step, planned when the flood starts over the neighbours it goes out
/// through, and when the next step is due.
/// </summary>
internal sealed class Widening
{
    private readonly List<(NodeId To, byte Ttl)[]> _steps = [];
    private int _step;
    private DateTimeOffset _due;

    /// <param name="through">Where a TTL of 1 goes.</param>
    /// <param name="deeper">Where larger TTLs go: only neighbours that pass a flood on.</param>
    public Widening(IReadOnlyList<WideningStep> plan, IReadOnlyList<NodeId> through, IReadOnlyList<NodeId> deeper, DateTimeOffset start)
    {
        _due = start;
        foreach (var (ttl, spread) in plan)
        {
            byte capped = Math.Min(ttl, QueryMessage.MaxTtl);
            var to = capped > 1 ? deeper : through;
            switch (spread)
            {
                case Spread.All:
                    if (to.Count > 0) _steps.Add([.. to.Select(n => (n, capped))]);
                    break;
                case Spread.Each:
                    foreach (var n in to) _steps.Add([(n, capped)]);
                    break;
            }
        }
    }

    /// <summary>Every step has gone out.</summary>
    public bool Done => _step >= _steps.Count;

    /// <summary>
    /// The sends of the next step if it is due, to neighbours still <paramref name="linked"/>, and
    /// the step after it <paramref name="interval"/> later; a step whose every link closed is
    /// skipped at once. Null when none is due.
    /// </summary>
    public (NodeId To, byte Ttl)[]? Next(DateTimeOffset now, IReadOnlySet<NodeId> linked, TimeSpan interval)
    {
        while (_step < _steps.Count && now >= _due)
        {
            var sends = _steps[_step++].Where(s => linked.Contains(s.To)).ToArray();
            if (sends.Length == 0) continue;
            _due = now + interval;
            return sends;
        }
        return null;
    }
}
