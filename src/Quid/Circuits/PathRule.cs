namespace Quid.Circuits;

/// <summary>
/// What the path rule walks over, as one client sees it. <paramref name="FirstHops"/>: the
/// partners that grant the client, with what each grants (kbps) and whether the agreement is
/// private; <paramref name="Partners"/>: the nodes that grant a hop in public agreements, as its
/// signed descriptor lists them (empty when it is unknown); <paramref name="MayRelay"/>: whether a
/// node may be a hop after the first (its descriptor is known and current, it has not just
/// failed); <paramref name="Exits"/>: whether it may be the last; <paramref name="MayFollow"/>,
/// when given: whether a node may be the second hop after a first (a service pins it, §9.13.4).
/// </summary>
public sealed record PathWalk<TNode>(
    TNode Client,
    IReadOnlyList<(TNode Node, long Kbps, bool Private)> FirstHops,
    Func<TNode, IReadOnlyList<TNode>> Partners,
    Func<TNode, bool> MayRelay,
    Func<TNode, bool> Exits,
    Func<TNode, TNode, bool>? MayFollow = null) where TNode : notnull
{
    /// <summary>Whether <paramref name="second"/> may follow <paramref name="first"/>: only its pinned one, where a first hop has one.</summary>
    internal bool MayGoOn(TNode first, TNode second) => MayFollow is null || MayFollow(first, second);

    /// <summary>Whether <paramref name="next"/> may go on from <paramref name="path"/>: only the pinned second hop after a first.</summary>
    internal bool Allows(List<TNode> path, TNode next) => path.Count != 1 || MayGoOn(path[0], next);
}

/// <summary>
/// The path rule, one copy for the node's circuits and the simulator's anonymity measure. The
/// first hop is a private partner (one that no descriptor names), drawn in proportion to what it
/// grants the client, since the client's traffic is carried on that grant; a public partner
/// only when no walk from a private one reaches an exit. Each next hop is drawn uniformly from the nodes
/// that grant the hop before in public agreements (its traffic onward is carried on their
/// grants), never the client, never a node twice; the last must exit. A service's walks take the
/// second hop its first hop is pinned to (<see cref="PathWalk{TNode}.MayFollow"/>, its vanguard,
/// drawn by <see cref="TryDrawVanguard"/>). A walk that runs into a
/// dead end starts over, up to <see cref="Attempts"/> times. <see cref="DrawTo"/> walks the same
/// way to a last hop the caller names (a rendezvous point). The node draws with
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

    /// <summary>Node visits one search for a path to a chosen last hop may make, so that a large graph cannot make it run long.</summary>
    public const int SearchBudget = 20_000;

    /// <summary>
    /// A path that ends at <paramref name="target"/>, first hop first, or null when none is found:
    /// the same walk as <see cref="Draw"/> (first hops from the client's partners weighted by what
    /// they grant, a private one preferred when a walk from one reaches the target; each next hop
    /// one of the previous hop's partners that may relay; never the client, never a node twice),
    /// but its last hop chosen by the caller, whatever its exit policy (<see cref="PathWalk{TNode}.Exits"/>
    /// is not asked). It has <paramref name="hops"/> nodes if such a path exists, else as few more
    /// as need be, up to <paramref name="maxHops"/>; only when no such path exists, fewer than
    /// <paramref name="hops"/>, as many as can be.
    /// </summary>
    /// <remarks>
    /// Each node's exact walk lengths to the target are worked out backwards first (a walk of
    /// length l goes on to a node with a walk of length l − 1), so the forward walk only ever
    /// chooses a next hop from which the target is still reachable in the steps left; a walk that
    /// still runs dead (where reaching the target in time would mean revisiting a node) backs up
    /// and tries another. Each search makes at most <see cref="SearchBudget"/> node visits.
    /// </remarks>
    public static TNode[]? DrawTo<TNode>(PathWalk<TNode> walk, TNode target, int hops, int maxHops, Random random) where TNode : notnull =>
        DrawToAny(walk, [target], hops, maxHops, random);

    /// <summary>
    /// A path that ends at one of <paramref name="targets"/> (the rendezvous points a client
    /// offers, §9.12), drawn as <see cref="DrawTo"/> draws one: the first length in its order of
    /// preference that some target can be reached in wins, and among the targets reachable in it,
    /// the order is random. Null when no target is reachable.
    /// </summary>
    public static TNode[]? DrawToAny<TNode>(PathWalk<TNode> walk, IReadOnlyList<TNode> targets, int hops, int maxHops, Random random) where TNode : notnull
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(hops);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(hops, maxHops);
        var comparer = EqualityComparer<TNode>.Default;
        var reachable = targets.Distinct(comparer).Where(t => !comparer.Equals(t, walk.Client))
            .Select(t => (Target: t, Lengths: WalkLengthsTo(walk, t, maxHops))).ToArray();
        random.Shuffle(reachable);
        // The wanted length, else longer ones, shortest first; then, as the last resort, shorter
        // ones, longest first. The shortest is one hop: a partner of ours that is the target itself
        // would see our own link, so whoever meets us there (a rendezvous point) learns who we are
        // (with two, it sees our partner). It serves only when no longer path reaches the target.
        int[][] tiers = [[.. Enumerable.Range(hops, maxHops - hops + 1)], [.. Enumerable.Range(1, hops - 1).Reverse()]];
        foreach (var tier in tiers)
            foreach (bool privateOnly in new[] { true, false })
                foreach (int length in tier)
                    foreach (var (target, lengths) in reachable)
                    {
                        var firstHops = new List<(TNode Node, long Kbps, bool Private)>();
                        foreach (var hop in walk.FirstHops)
                            if ((hop.Private || !privateOnly) && !comparer.Equals(hop.Node, walk.Client)
                                && (length == 1 ? comparer.Equals(hop.Node, target) : !comparer.Equals(hop.Node, target) && HasWalk(lengths, hop.Node, length - 1))
                                && (length != 2 || walk.MayGoOn(hop.Node, target)))
                                firstHops.Add(hop);
                        // First hops in proportion to what they grant, without putting one back: one
                        // whose walks all run dead is dropped, and the draw goes on among the others.
                        while (firstHops.Count > 0)
                        {
                            long pick = random.NextInt64(firstHops.Sum(h => Weight(h.Kbps)));
                            int chosen = 0;
                            while ((pick -= Weight(firstHops[chosen].Kbps)) >= 0) chosen++;
                            var path = new List<TNode>(length) { firstHops[chosen].Node };
                            int budget = SearchBudget;
                            if (WalkTo(walk, lengths, path, length, random, ref budget)) return [.. path];
                            firstHops.RemoveAt(chosen);
                        }
                    }
        return null;
    }

    /// <summary>
    /// For each node that a walk from the client's first hops reaches in fewer than
    /// <paramref name="maxHops"/> steps, the lengths of the walks from it to the target, as bits:
    /// bit l is set when one goes on to the target in exactly l steps, through nodes that may
    /// relay and are not the client, and meets the target only at its end. Nodes may repeat in
    /// such a walk; <see cref="WalkTo"/> makes sure they do not in a path.
    /// </summary>
    private static Dictionary<TNode, int> WalkLengthsTo<TNode>(PathWalk<TNode> walk, TNode target, int maxHops) where TNode : notnull
    {
        var comparer = EqualityComparer<TNode>.Default;
        // Forward, breadth first: the nodes a path may hold, and who may go on to whom among them.
        var before = new Dictionary<TNode, List<TNode>>();
        var seen = new HashSet<TNode>();
        var layer = new List<TNode>();
        foreach (var hop in walk.FirstHops)
            if (!comparer.Equals(hop.Node, walk.Client) && seen.Add(hop.Node)) layer.Add(hop.Node);
        for (int depth = 1; depth < maxHops && layer.Count > 0; depth++)
        {
            var next = new List<TNode>();
            foreach (var node in layer)
            {
                // Nothing goes on from the target: it is the end of every path that holds it.
                if (comparer.Equals(node, target)) continue;
                foreach (var partner in walk.Partners(node))
                {
                    if (comparer.Equals(partner, walk.Client) || !walk.MayRelay(partner)) continue;
                    if (!before.TryGetValue(partner, out var list)) before[partner] = list = [];
                    list.Add(node);
                    if (seen.Add(partner)) next.Add(partner);
                }
            }
            layer = next;
        }
        // Backward from the target, one step per length.
        var lengths = new Dictionary<TNode, int> { [target] = 1 };
        var reached = new List<TNode> { target };
        for (int length = 1; length < maxHops && reached.Count > 0; length++)
        {
            var next = new List<TNode>();
            foreach (var node in reached)
            {
                if (!before.TryGetValue(node, out var list)) continue;
                foreach (var previous in list)
                {
                    if (comparer.Equals(previous, target)) continue;
                    int bits = lengths.GetValueOrDefault(previous);
                    if ((bits & (1 << length)) != 0) continue;
                    lengths[previous] = bits | (1 << length);
                    next.Add(previous);
                }
            }
            reached = next;
        }
        return lengths;
    }

    private static bool HasWalk<TNode>(Dictionary<TNode, int> lengths, TNode node, int length) where TNode : notnull =>
        (lengths.GetValueOrDefault(node) & (1 << length)) != 0;

    /// <summary>
    /// Goes on from <paramref name="path"/> to a path of <paramref name="hops"/> nodes that ends at
    /// the target (the only node with a walk of length 0), each next hop drawn uniformly from those
    /// that may still reach it in the steps left, backing up from dead ends; false when none is
    /// found within the budget.
    /// </summary>
    private static bool WalkTo<TNode>(PathWalk<TNode> walk, Dictionary<TNode, int> lengths, List<TNode> path, int hops, Random random, ref int budget) where TNode : notnull
    {
        if (path.Count == hops) return true;
        if (--budget < 0) return false;
        int left = hops - path.Count - 1;
        var comparer = EqualityComparer<TNode>.Default;
        var next = new List<TNode>();
        foreach (var node in walk.Partners(path[^1]))
            if (HasWalk(lengths, node, left) && !comparer.Equals(node, walk.Client) && !path.Contains(node) && walk.MayRelay(node) && walk.Allows(path, node) && !next.Contains(node))
                next.Add(node);
        while (next.Count > 0)
        {
            int i = random.Next(next.Count);
            path.Add(next[i]);
            if (WalkTo(walk, lengths, path, hops, random, ref budget)) return true;
            path.RemoveAt(path.Count - 1);
            if (budget < 0) return false;
            next[i] = next[^1];
            next.RemoveAt(next.Count - 1);
        }
        return false;
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
            if (comparer.Equals(node, walk.Client) || path.Contains(node) || !walk.MayRelay(node) || (last && !walk.Exits(node)) || !walk.Allows(path, node)) continue;
            next.Add(node);
        }
        return next;
    }

    /// <summary>
    /// A service's second hop after <paramref name="first"/> (its vanguard, §9.13.4): one of the
    /// nodes the first hop may go on to, drawn uniformly; false when there is none.
    /// </summary>
    public static bool TryDrawVanguard<TNode>(PathWalk<TNode> walk, TNode first, Random random, out TNode vanguard) where TNode : notnull
    {
        var comparer = EqualityComparer<TNode>.Default;
        var choices = walk.Partners(first).Where(n => !comparer.Equals(n, walk.Client) && !comparer.Equals(n, first) && walk.MayRelay(n)).Distinct().ToList();
        vanguard = choices.Count == 0 ? default! : choices[random.Next(choices.Count)];
        return choices.Count > 0;
    }

    /// <summary>A partner that grants nothing yet still counts a little, as the walk has nowhere else to start.</summary>
    private static long Weight(long kbps) => Math.Max(1, kbps);
}
