namespace Quid.Circuits;

/// <summary>
/// What the path rule walks over, as one client sees it. <paramref name="FirstHops"/>: the
/// partners that grant the client, with what each grants (kbps) and whether the agreement is
/// private; <paramref name="Partners"/>: the nodes that grant a hop in public agreements, as its
/// signed descriptor lists them (empty when it is unknown); <paramref name="MayRelay"/>: whether a
/// node may be a hop after the first (its descriptor is known and current, it has not just
/// failed); <paramref name="Exits"/>: whether it may be the last.
/// </summary>
public sealed record PathWalk<TNode>(
    TNode Client,
    IReadOnlyList<(TNode Node, long Kbps, bool Private)> FirstHops,
    Func<TNode, IReadOnlyList<TNode>> Partners,
    Func<TNode, bool> MayRelay,
    Func<TNode, bool> Exits) where TNode : notnull;

/// <summary>
/// The path rule, one copy for the node's circuits and the simulator's anonymity measure. The
/// first hop is a private partner (one that no descriptor names), drawn in proportion to what it
/// grants the client, since the client's traffic is carried on that grant; a public partner
/// only when no walk from a private one reaches an exit. Each next hop is drawn uniformly from the nodes
/// that grant the hop before in public agreements (its traffic onward is carried on their
/// grants), never the client, never a node twice; the last must exit. A walk that runs into a
/// dead end starts over, up to <see cref="Attempts"/> times. The node draws with
/// <see cref="Crypto.SecureRandom"/>, so nobody can foretell its paths; the simulator with a
/// seeded source, so that a run can be repeated.
/// </summary>
public static class PathRule
{
    public const int Attempts = 20;

    /// <summary>A path of <paramref name="hops"/> nodes, first hop first, or null when no walk finds one.</summary>
    public static TNode[]? Draw<TNode>(PathWalk<TNode> walk, int hops, Random random) where TNode : notnull
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(hops);
        var firstHops = FirstChoices(walk, hops);
        if (firstHops.Count == 0) return null;
        long total = firstHops.Sum(h => Weight(h.Kbps));
        var path = new List<TNode>(hops);
        for (int attempt = 0; attempt < Attempts; attempt++)
        {
            path.Clear();
            long pick = random.NextInt64(total);
            foreach (var (node, kbps, _) in firstHops)
            {
                if ((pick -= Weight(kbps)) >= 0) continue;
                path.Add(node);
                break;
            }
            while (path.Count < hops)
            {
                var next = NextChoices(walk, path, hops);
                if (next.Count == 0) break;
                path.Add(next[random.Next(next.Count)]);
            }
            if (path.Count == hops) return [.. path];
        }
        return null;
    }

    /// <summary>
    /// The chance that one walk from the client draws exactly <paramref name="path"/>: what an
    /// adversary who knows the graph weighs a suspect by. Dead ends that start a walk over are
    /// left out, so it is the chance of a first attempt.
    /// </summary>
    public static double Chance<TNode>(PathWalk<TNode> walk, IReadOnlyList<TNode> path) where TNode : notnull
    {
        var firstHops = FirstChoices(walk, path.Count);
        long total = firstHops.Sum(h => Weight(h.Kbps));
        int first = firstHops.FindIndex(h => EqualityComparer<TNode>.Default.Equals(h.Node, path[0]));
        if (first < 0) return 0;
        double chance = (double)Weight(firstHops[first].Kbps) / total;
        var walked = new List<TNode>(path.Count) { path[0] };
        for (int i = 1; i < path.Count; i++)
        {
            var next = NextChoices(walk, walked, path.Count);
            if (!next.Contains(path[i])) return 0;
            chance /= next.Count;
            walked.Add(path[i]);
        }
        return chance;
    }

    /// <summary>
    /// The first hops a walk may start from: the private ones from which some walk reaches an
    /// exit in <paramref name="hops"/>, else all from which one does. A private partner whose
    /// partners lead only into dead ends (in a small network, a donor that grants nobody) must
    /// not stop every walk while a public partner has a way through.
    /// </summary>
    private static List<(TNode Node, long Kbps, bool Private)> FirstChoices<TNode>(PathWalk<TNode> walk, int hops) where TNode : notnull
    {
        var usable = new List<(TNode Node, long Kbps, bool Private)>();
        foreach (var hop in walk.FirstHops)
            if (hops == 1 ? walk.Exits(hop.Node) : LeadsToAnExit(walk, [hop.Node], hops)) usable.Add(hop);
        var hidden = usable.FindAll(h => h.Private);
        return hidden.Count > 0 ? hidden : usable;
    }

    /// <summary>Whether some walk goes on from <paramref name="path"/> to a whole path of <paramref name="hops"/>: depth first, stopping at the first found.</summary>
    private static bool LeadsToAnExit<TNode>(PathWalk<TNode> walk, List<TNode> path, int hops) where TNode : notnull
    {
        if (path.Count == hops) return true;
        foreach (var next in NextChoices(walk, path, hops))
        {
            path.Add(next);
            bool found = LeadsToAnExit(walk, path, hops);
            path.RemoveAt(path.Count - 1);
            if (found) return true;
        }
        return false;
    }

    /// <summary>The nodes a walk at the end of <paramref name="path"/> may go on to.</summary>
    private static List<TNode> NextChoices<TNode>(PathWalk<TNode> walk, List<TNode> path, int hops) where TNode : notnull
    {
        bool last = path.Count == hops - 1;
        var comparer = EqualityComparer<TNode>.Default;
        var next = new List<TNode>();
        foreach (var node in walk.Partners(path[^1]))
        {
            if (comparer.Equals(node, walk.Client) || path.Contains(node) || !walk.MayRelay(node) || (last && !walk.Exits(node))) continue;
            next.Add(node);
        }
        return next;
    }

    /// <summary>A partner that grants nothing yet still counts a little, as the walk has nowhere else to start.</summary>
    private static long Weight(long kbps) => Math.Max(1, kbps);
}
