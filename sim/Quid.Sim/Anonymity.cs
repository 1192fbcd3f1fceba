using Quid.Circuits;

namespace Quid.Sim;

/// <summary>
/// Guard discovery's figures: for each number of introductions, the share of services whose first
/// hop was found and the median count tied at the top; the share of the service's draws that
/// reached the hostile rendezvous point, and their mean hops.
/// </summary>
public sealed record GuardDiscoveryResult((double Found, double MedianTied)[] After, double Reached, double MeanHops);

/// <summary>How many nodes could have built a circuit, and how evenly likely, as the adversary that sees part of it judges.</summary>
public sealed record AnonymityRow(int Hops, string View, string Basis, int Circuits, double Share, double MeanSet, double MedianSet, double P10Set, double MeanEntropy);

/// <summary>
/// The originator's anonymity on the graph of agreements at the end of a run. Circuits are drawn
/// by <see cref="PathRule"/>, the node's own rule, from clients chosen uniformly. An adversary
/// judges a suspect by <see cref="PathRule.Chance{TNode}"/>: the chance that its walk drew the
/// path, summed over the hops it did not see (a uniform prior over clients). The set is the
/// suspects, the entropy that of their weights. Two kinds of knowledge:
/// <list type="bullet">
/// <item>"descriptors": every public agreement, as the signed descriptors list them. A private
/// agreement is in no descriptor, so when a circuit starts on one, any client could have built it;
/// one that starts on a public agreement (no private one could start a path) is judged on the
/// public graph, as if its client were known to have no private partner;</item>
/// <item>"links": every agreement, private ones too, as someone who sees who holds a link to whom
/// would guess them.</item>
/// </list>
/// Views: the destination (knows the exit), any exit or any middle alone (knows its predecessor
/// and the rest of the path on), and coalitions of 5% and 10% of the nodes that pool what their
/// hops see, know their positions and the descriptors; a circuit whose first hop colludes is
/// identified, and one whose first and last hops both collude is captured (its two ends are tied
/// by timing alone, as in Tor, whatever the hops between).
/// </summary>
public sealed class Anonymity
{
    private readonly int[][] _public;
    private readonly List<int>[] _publicBy;
    private readonly List<int>[] _grantedBy;
    private readonly PathWalk<int>[] _walks;
    private readonly PathWalk<int>[] _publicWalks;
    private readonly HashSet<int>[] _private;
    private readonly bool[] _colluder;
    private readonly int[] _clients;
    private readonly bool[] _isClient;

    /// <summary>
    /// <paramref name="grantors"/>[x]: the nodes that grant x, with what each grants it and whether
    /// their agreement is private; <paramref name="colluder"/>[x]: whether x shares what it sees.
    /// </summary>
    public Anonymity(IReadOnlyList<IReadOnlyList<(int Node, double Kbps, bool Private)>> grantors, IReadOnlyList<bool> colluder)
    {
        int n = grantors.Count;
        _public = new int[n][];
        _publicBy = new List<int>[n];
        _grantedBy = new List<int>[n];
        _private = new HashSet<int>[n];
        _walks = new PathWalk<int>[n];
        _publicWalks = new PathWalk<int>[n];
        for (int x = 0; x < n; x++) (_publicBy[x], _grantedBy[x]) = ([], []);
        for (int x = 0; x < n; x++)
        {
            _public[x] = [.. grantors[x].Where(g => !g.Private).Select(g => g.Node)];
            _private[x] = [.. grantors[x].Where(g => g.Private).Select(g => g.Node)];
            foreach (var (y, _, hidden) in grantors[x])
            {
                _grantedBy[y].Add(x);
                if (!hidden) _publicBy[y].Add(x);
            }
        }
        for (int x = 0; x < n; x++)
        {
            var hops = grantors[x].Select(g => (g.Node, (long)Math.Round(g.Kbps), g.Private)).ToList();
            _walks[x] = new PathWalk<int>(x, hops, h => _public[h], _ => true, _ => true);
            _publicWalks[x] = new PathWalk<int>(x, [.. hops.Where(h => !h.Private)], h => _public[h], _ => true, _ => true);
        }
        _colluder = [.. colluder];
        _clients = [.. Enumerable.Range(0, n).Where(x => grantors[x].Count > 0)];
        _isClient = [.. grantors.Select(g => g.Count > 0)];
    }

    public int Clients => _clients.Length;

    public static Anonymity Of(Simulation sim)
    {
        var nodes = sim.Online.ToList();
        var index = nodes.Select((n, i) => (n.Id, i)).ToDictionary(p => p.Id, p => p.i);
        var grantors = nodes.Select(n => (IReadOnlyList<(int, double, bool)>)[.. n.Market.Active
            .Where(a => a.TheyGrant is not null && index.ContainsKey(a.Partner))
            .Select(a => a.Partner).Distinct()
            .Select(p => (index[p], (double)n.Market.GrantedBy(p), n.Market.IsPrivatePartner(p)))]).ToList();
        return new Anonymity(grantors, [.. nodes.Select(n => n.Agent.Class == AgentClass.Colluder)]);
    }

    /// <summary>
    /// Whether a service could meet its clients at their rendezvous points (issue 19): for random
    /// pairs of a client and a service, the client draws <paramref name="candidates"/> 3-hop paths
    /// by the rule, whose last hops are the candidate rendezvous points; the result counts, for
    /// each length up to <paramref name="maxHops"/>, the pairs where some walk of at most that many
    /// hops from the service (its own grantors first, then public agreements, as the rule walks)
    /// ends at one of them. Every agreement is known here, so it is what a service could reach at best.
    /// </summary>
    public double[] RendezvousReach(int pairs, int maxHops, int candidates, Random random)
    {
        var reached = new int[maxHops + 1];
        int drawn = 0;
        if (_clients.Length < 2) return [.. reached.Select(_ => double.NaN)];
        var depth = new Dictionary<int, int>();
        var frontier = new Queue<int>();
        var points = new List<int>(candidates);
        for (int i = 0; i < pairs; i++)
        {
            int client = _clients[random.Next(_clients.Length)], service = _clients[random.Next(_clients.Length)];
            if (client == service) continue;
            points.Clear();
            for (int c = 0; c < candidates; c++)
                if (Walk(client, 3, random) is { } path) points.Add(path[^1]);
            if (points.Count == 0) continue;
            drawn++;
            // Breadth first from the service: its grantors are hop 1, a hop's public grantors the next.
            depth.Clear();
            frontier.Clear();
            foreach (var (first, _, _) in _walks[service].FirstHops)
                if (depth.TryAdd(first, 1)) frontier.Enqueue(first);
            while (frontier.TryDequeue(out int hop) && !points.Contains(hop))
            {
                if (depth[hop] == maxHops) continue;
                foreach (var next in _public[hop])
                    if (next != service && depth.TryAdd(next, depth[hop] + 1)) frontier.Enqueue(next);
            }
            // Breadth first: the first candidate dequeued is the nearest.
            int hops = points.Select(p => depth.GetValueOrDefault(p, int.MaxValue)).Min();
            for (int h = hops; h <= maxHops; h++) reached[h]++;
        }
        return [.. reached.Select(r => drawn == 0 ? double.NaN : (double)r / drawn)];
    }

    /// <summary>
    /// Whether services meet their clients by the node's own rules (issue 19): for random pairs of
    /// a client and a service, the client offers the last hops of <paramref name="candidates"/>
    /// 3-hop paths it draws as rendezvous points, and the service draws its path to one of them
    /// (<see cref="PathRule.DrawToAny"/>, 3 hops wanted, up to 7), its second hops pinned to
    /// vanguards or not. Returns the share of pairs for which it found a path, and their mean hops.
    /// </summary>
    public (double Reached, double MeanHops) Meetings(int pairs, int candidates, bool vanguards, Random random)
    {
        int drawn = 0, met = 0;
        long hops = 0;
        var points = new List<int>(candidates);
        for (int i = 0; i < pairs && _clients.Length > 1; i++)
        {
            int client = _clients[random.Next(_clients.Length)], service = _clients[random.Next(_clients.Length)];
            if (client == service) continue;
            points.Clear();
            for (int c = 0; c < candidates; c++)
                if (Walk(client, 3, random) is { } path && !points.Contains(path[^1])) points.Add(path[^1]);
            if (points.Count == 0) continue;
            drawn++;
            if (PathRule.DrawToAny(vanguards ? Pinned(service, random) : _walks[service], points, 3, 7, random) is { } found)
            {
                met++;
                hops += found.Length;
            }
        }
        return (drawn == 0 ? double.NaN : (double)met / drawn, met == 0 ? double.NaN : (double)hops / met);
    }

    /// <summary>The service's walk with a vanguard drawn for each first hop, as the node pins them (§9.13.4).</summary>
    private PathWalk<int> Pinned(int service, Random random)
    {
        var walk = _walks[service];
        var pins = new Dictionary<int, int>();
        foreach (var (first, _, _) in walk.FirstHops)
            if (PathRule.TryDrawVanguard(walk, first, random, out int vanguard)) pins[first] = vanguard;
        return walk with { MayFollow = (first, second) => pins.TryGetValue(first, out int vanguard) && vanguard == second };
    }

    /// <summary>
    /// Guard discovery against services (issue 19): a client that names a hostile rendezvous point
    /// R makes the service build a circuit to R (<see cref="PathRule.DrawTo"/>, 3 hops wanted, up
    /// to 7, as the node builds it) every time it introduces itself, and R sees the hop before it.
    /// The adversary runs <paramref name="points"/> nodes, drawn as clients' rendezvous points are
    /// (the last hop of a random client's 3-hop circuit), and names them in turn.
    /// It is granted the path's length (timing tells it, as the vanguards spec assumes of Tor's
    /// side channels) and reads the descriptors: a node could be the first hop when a walk back
    /// from the hop it saw, over public agreements, reaches it in the steps the length leaves.
    /// Each such node scores a point; the first hop is found once the one the service used most is
    /// the only node with the top score. A path of one hop shows R the service itself, and counts
    /// as found. Returns, for each number of introductions in <paramref name="after"/>, the share
    /// of services whose first hop was found by then, and the median count of nodes tied at the top.
    /// With <paramref name="vanguards"/>, the service pins the second hop after each first hop, as
    /// the node does (<see cref="PathRule.TryDrawVanguard"/>); without, the rule before it. Also
    /// the share of introductions for which the service found a path to R (one that found none
    /// shows R nothing), and the mean hops of those paths.
    /// </summary>
    public GuardDiscoveryResult GuardDiscovery(int services, int points, bool vanguards, IReadOnlyList<int> after, Random random)
    {
        int draws = 0, paths = 0;
        long hops = 0;
        var found = new int[after.Count];
        var tied = after.Select(_ => new List<double>()).ToArray();
        int measured = 0;
        int introductions = after.Max();
        var score = new Dictionary<int, int>();
        var firstHops = new Dictionary<int, int>();
        for (int i = 0; i < services && _clients.Length > 1; i++)
        {
            int service = _clients[random.Next(_clients.Length)];
            // Nodes where clients' circuits end, as a client's rendezvous point is the last hop of its own.
            var hostile = new int[points];
            for (int p = 0; p < points; p++)
                hostile[p] = Walk(_clients[random.Next(_clients.Length)], 3, random) is { } ending ? ending[^1] : service;
            if (Array.IndexOf(hostile, service) >= 0) continue;
            var walk = vanguards ? Pinned(service, random) : _walks[service];
            score.Clear();
            firstHops.Clear();
            bool exposed = false;
            int k = 0;
            for (int built = 0; built < introductions && k < after.Count; built++)
            {
                int point = hostile[built % points];
                draws++;
                // A path to R it could not find shows R nothing.
                if (PathRule.DrawTo(walk, point, 3, 7, random) is { } path)
                {
                    paths++;
                    hops += path.Length;
                    firstHops[path[0]] = firstHops.GetValueOrDefault(path[0]) + 1;
                    if (path.Length == 1) exposed = true;
                    else
                    {
                        // Back from the hop R saw, one step per hop between it and the first.
                        var back = new HashSet<int> { path[^2] };
                        for (int step = 2; step < path.Length; step++)
                        {
                            var before = new HashSet<int>();
                            foreach (var hop in back)
                                foreach (var x in _publicBy[hop])
                                    if (Array.IndexOf(hostile, x) < 0) before.Add(x);
                            back = before;
                        }
                        foreach (var f in back) score[f] = score.GetValueOrDefault(f) + 1;
                    }
                }
                if (built + 1 != after[k]) continue;
                if (firstHops.Count == 0)
                {
                    // No introduction has been met yet: nothing seen, nothing found.
                    tied[k++].Add(0);
                    continue;
                }
                int guard = firstHops.MaxBy(h => h.Value).Key;
                int top = score.Count == 0 ? 0 : score.Values.Max();
                int atTop = exposed ? 1 : score.Count(x => x.Value == top);
                if (exposed || (top > 0 && atTop == 1 && score.GetValueOrDefault(guard) == top)) found[k]++;
                tied[k++].Add(atTop);
            }
            measured++;
        }
        return new([.. after.Select((_, j) => (measured == 0 ? double.NaN : (double)found[j] / measured, Stats.Quantile([.. tied[j].Order()], 0.5)))],
            draws == 0 ? double.NaN : (double)paths / draws, paths == 0 ? double.NaN : (double)hops / paths);
    }

    /// <summary>A path of <paramref name="hops"/> from <paramref name="client"/> by the node's rule, or null when the walk finds none.</summary>
    internal int[]? Walk(int client, int hops, Random random) => PathRule.Draw(_walks[client], hops, random);

    /// <summary>
    /// The suspects' weights when the adversary knows the path from position <paramref name="known"/>
    /// (0-based) on and every agreement (<paramref name="links"/>) or only the public ones: every
    /// client, with every way of walking to that hop, weighted by its chance.
    /// </summary>
    internal Dictionary<int, double> Suspects(int[] path, int known, bool links)
    {
        var suspects = new Dictionary<int, double>();
        var candidate = (int[])path.Clone();
        void Prefix(int position)
        {
            if (position < 0)
            {
                // The client is one the first hop grants, and on the path nowhere.
                foreach (var c in links ? _grantedBy[candidate[0]] : _publicBy[candidate[0]])
                {
                    if (Array.IndexOf(candidate, c) >= 0) continue;
                    double chance = PathRule.Chance(links ? _walks[c] : _publicWalks[c], candidate);
                    if (chance > 0) suspects[c] = suspects.GetValueOrDefault(c) + chance;
                }
                return;
            }
            // The hop before is one the hop after it grants publicly (its traffic onward rides that grant).
            foreach (var hop in _publicBy[candidate[position + 1]])
            {
                if (Array.IndexOf(candidate, hop, position + 1) >= 0) continue;
                candidate[position] = hop;
                Prefix(position - 1);
            }
        }
        Prefix(known - 1);
        return suspects;
    }

    public static double Entropy(IReadOnlyDictionary<int, double> weights)
    {
        double total = weights.Values.Sum();
        return weights.Values.Where(w => w > 0).Sum(w => -(w / total) * Math.Log2(w / total));
    }

    /// <summary>
    /// Draws circuits of 1, 2 and 3 hops and reports what each adversary sees of them: the
    /// destination, any exit, any middle (with the descriptors, and with every agreement), and
    /// coalitions of 5% and 10% of the nodes (with the descriptors).
    /// </summary>
    public List<AnonymityRow> Measure(int circuits, Random random)
    {
        var rows = new List<AnonymityRow>();
        if (_clients.Length == 0) return rows;
        var coalitions = Coalitions(random);
        for (int hops = 1; hops <= 3; hops++)
        {
            var drawn = new List<(int Client, int[] Path)>();
            for (int i = 0; i < circuits; i++)
            {
                int client = _clients[random.Next(_clients.Length)];
                if (Walk(client, hops, random) is { } path) drawn.Add((client, path));
            }
            if (drawn.Count == 0) continue;
            int hidden = drawn.Count(d => _private[d.Client].Contains(d.Path[0]));
            rows.Add(new AnonymityRow(hops, "private first hop", "rule", hidden, (double)hidden / drawn.Count, double.NaN, double.NaN, double.NaN, double.NaN));
            foreach (var links in new[] { false, true })
            {
                string basis = links ? "links" : "descriptors";
                if (hops >= 2) rows.Add(Row(hops, "exit", basis, [.. drawn.Select(d => Judge(d, hops - 2, links))], drawn.Count));
                else rows.Add(Row(hops, "exit", basis, [.. drawn.Select(_ => (1.0, 0.0))], drawn.Count));
                if (hops == 3) rows.Add(Row(hops, "middle", basis, [.. drawn.Select(d => Judge(d, 0, links))], drawn.Count));
                rows.Add(Row(hops, "destination", basis, [.. drawn.Select(d => Judge(d, hops - 1, links))], drawn.Count));
            }
            foreach (var (basis, colluder) in coalitions) rows.AddRange(Colluding(hops, drawn, basis, colluder));
        }
        return rows;
    }

    /// <summary>
    /// Coalitions of 5% and 10% of the nodes: the simulation's colluders (who prefer each other as
    /// partners), and as many more drawn at random from the rest as it takes; fewer than the
    /// simulation's own when they alone are more.
    /// </summary>
    private List<(string Basis, bool[] Colluder)> Coalitions(Random random)
    {
        int n = _colluder.Length;
        var own = Enumerable.Range(0, n).Where(x => _colluder[x]).ToList();
        var others = Enumerable.Range(0, n).Where(x => !_colluder[x]).OrderBy(_ => random.Next()).ToList();
        var list = new List<(string, bool[])>();
        foreach (int percent in new[] { 5, 10 })
        {
            int wanted = (int)Math.Round(percent / 100.0 * n);
            var coalition = new bool[n];
            foreach (var x in own.Take(wanted).Concat(others.Take(Math.Max(0, wanted - own.Count)))) coalition[x] = true;
            list.Add(($"colluders {percent}%", coalition));
        }
        return list;
    }

    /// <summary>
    /// What a coalition sees: everything from its first hop's predecessor on; "captured" when the
    /// first and last hops collude. Captures are counted twice: of every circuit drawn, and of
    /// others' circuits only ("captured of others"): a circuit whose client is in the coalition
    /// hides nobody from it, so its capture tells the coalition nothing it did not know.
    /// </summary>
    internal IEnumerable<AnonymityRow> Colluding(int hops, List<(int Client, int[] Path)> drawn, string basis, bool[] colluder)
    {
        var byView = new Dictionary<string, List<(double Set, double Entropy)>>();
        int captured = 0, others = 0, capturedOfOthers = 0;
        foreach (var circuit in drawn)
        {
            var path = circuit.Path;
            int first = Array.FindIndex(path, x => colluder[x]);
            string view = first < 0 ? "no colluder" : first == 0 ? "first hop" : first == hops - 1 ? "exit" : "middle";
            var result = first < 0 ? Everyone(path)
                : first == 0 ? (1.0, 0.0)
                : Judge(circuit, first - 1, links: false);
            if (!byView.TryGetValue(view, out var list)) byView[view] = list = [];
            list.Add(result);
            bool capture = hops >= 2 && colluder[path[0]] && colluder[path[^1]];
            if (capture) captured++;
            if (colluder[circuit.Client]) continue;
            others++;
            if (capture) capturedOfOthers++;
        }
        foreach (var view in new[] { "first hop", "middle", "exit", "no colluder" })
            if (byView.TryGetValue(view, out var list)) yield return Row(hops, view, basis, list, drawn.Count);
        if (hops >= 2)
        {
            yield return new AnonymityRow(hops, "captured", basis, captured, (double)captured / drawn.Count, 1, 1, 1, 0);
            yield return new AnonymityRow(hops, "captured of others", basis, capturedOfOthers, others == 0 ? double.NaN : (double)capturedOfOthers / others, 1, 1, 1, 0);
        }
    }

    /// <summary>
    /// What the adversary makes of a circuit it knows from <paramref name="known"/> on. Knowing
    /// only the descriptors, a circuit that starts on a private agreement could be any client's.
    /// </summary>
    private (double Set, double Entropy) Judge((int Client, int[] Path) circuit, int known, bool links)
    {
        if (!links && _private[circuit.Client].Contains(circuit.Path[0])) return Everyone(circuit.Path);
        var suspects = Suspects(circuit.Path, known, links);
        return (suspects.Count, Entropy(suspects));
    }

    /// <summary>Every client but the hops, equally likely.</summary>
    private (double Set, double Entropy) Everyone(int[] path)
    {
        double set = _clients.Length - path.Count(x => _isClient[x]);
        return (set, Math.Log2(set));
    }

    private static AnonymityRow Row(int hops, string view, string basis, List<(double Set, double Entropy)> list, int total)
    {
        var sets = list.Select(r => r.Set).Order().ToArray();
        return new AnonymityRow(hops, view, basis, list.Count, (double)list.Count / total, sets.Average(), Stats.Quantile(sets, 0.5), Stats.Quantile(sets, 0.1),
            list.Average(r => r.Entropy));
    }
}

/// <summary>Small statistics the reports need.</summary>
public static class Stats
{
    /// <summary>The q-quantile of sorted values, by the nearest rank; NaN when there are none.</summary>
    public static double Quantile(IReadOnlyList<double> sorted, double q) =>
        sorted.Count == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Count) - 1, 0, sorted.Count - 1)];

    /// <summary>Jain's fairness index: 1 when all are equal, 1/n when one has everything.</summary>
    public static double Jain(IReadOnlyCollection<double> values)
    {
        double sum = values.Sum(), squares = values.Sum(v => v * v);
        return values.Count == 0 || squares == 0 ? double.NaN : sum * sum / (values.Count * squares);
    }
}
