using Quid.Circuits;

namespace Quid.Sim;

/// <summary>How many nodes could have built a circuit, and how evenly likely, as the adversary that sees part of it judges.</summary>
public sealed record AnonymityRow(int Hops, string View, string Basis, int Circuits, double Share, double MeanSet, double MedianSet, double P10Set, double MeanEntropy);

/// <summary>
/// The originator's anonymity on the graph of agreements at the end of a run. Circuits are drawn
/// by <see cref="PathRule"/>, the node's own rule, from clients chosen uniformly. Every adversary
/// here knows the whole graph of agreements, as the signed descriptors publish it, and judges a
/// suspect by <see cref="PathRule.Chance{TNode}"/>: the chance that its walk drew the path,
/// summed over the hops it did not see (a uniform prior over clients). The set is the suspects,
/// the entropy that of their weights. The adversaries:
/// <list type="bullet">
/// <item>the graph alone, with the destination's view: it knows the exit only;</item>
/// <item>any exit, any middle, alone: it knows its predecessor, and the rest of the path on;</item>
/// <item>colluders, 5% and 10% of the nodes: they pool what their hops see and know their
/// positions, so from the first colluding hop's predecessor on; a circuit whose first hop colludes
/// is identified, and one whose first and last hops both collude is captured (its end can be tied
/// to its start by timing alone, as in Tor, whatever the hops between).</item>
/// </list>
/// </summary>
public sealed class Anonymity
{
    private readonly int[][] _grants;
    private readonly List<int>[] _grantedBy;
    private readonly PathWalk<int>[] _walks;
    private readonly bool[] _colluder;
    private readonly int[] _clients;

    /// <summary>
    /// <paramref name="partners"/>[x]: the nodes that grant x (its descriptor's partners), with
    /// what each grants it; <paramref name="colluder"/>[x]: whether x shares what it sees.
    /// </summary>
    public Anonymity(IReadOnlyList<IReadOnlyList<(int Node, double Kbps)>> partners, IReadOnlyList<bool> colluder)
    {
        int n = partners.Count;
        _grants = new int[n][];
        _grantedBy = new List<int>[n];
        _walks = new PathWalk<int>[n];
        for (int x = 0; x < n; x++) _grantedBy[x] = [];
        for (int x = 0; x < n; x++)
        {
            _grants[x] = [.. partners[x].Select(p => p.Node)];
            foreach (var y in _grants[x]) _grantedBy[y].Add(x);
        }
        for (int x = 0; x < n; x++)
            _walks[x] = new PathWalk<int>(x, [.. partners[x].Select(p => (p.Node, (long)Math.Round(p.Kbps)))], h => _grants[h], _ => true, _ => true);
        _colluder = [.. colluder];
        _clients = [.. Enumerable.Range(0, n).Where(x => _grants[x].Length > 0)];
    }

    public int Clients => _clients.Length;

    public static Anonymity Of(Simulation sim)
    {
        var nodes = sim.Online.Where(n => n.Overlay.Own is not null).ToList();
        var index = nodes.Select((n, i) => (n.Id, i)).ToDictionary(p => p.Id, p => p.i);
        var partners = nodes.Select(n => (IReadOnlyList<(int, double)>)[.. n.Overlay.Own!.Partners
            .Where(index.ContainsKey)
            .Select(p => (index[p], (double)n.Market.GrantedBy(p)))]).ToList();
        return new Anonymity(partners, [.. nodes.Select(n => n.Agent.Class == AgentClass.Colluder)]);
    }

    /// <summary>A path of <paramref name="hops"/> from <paramref name="client"/> by the node's rule, or null when the walk finds none.</summary>
    internal int[]? Walk(int client, int hops, Random random) => PathRule.Draw(_walks[client], hops, random);

    /// <summary>
    /// The suspects' weights when the adversary knows the path from position <paramref name="known"/>
    /// (0-based) on: every client, with every way of walking to that hop, weighted by its chance.
    /// </summary>
    internal Dictionary<int, double> Suspects(int[] path, int known)
    {
        var suspects = new Dictionary<int, double>();
        var candidate = (int[])path.Clone();
        void Prefix(int position)
        {
            if (position < 0)
            {
                // The client is one the first hop grants, and on the path nowhere.
                foreach (var c in _grantedBy[candidate[0]])
                {
                    if (Array.IndexOf(candidate, c) >= 0) continue;
                    double chance = PathRule.Chance(_walks[c], candidate);
                    if (chance > 0) suspects[c] = suspects.GetValueOrDefault(c) + chance;
                }
                return;
            }
            // The hop before is one the hop after it grants (its traffic onward rides that grant).
            foreach (var hop in _grantedBy[candidate[position + 1]])
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
    /// Draws circuits of 1, 2 and 3 hops and reports what each adversary sees of them: the graph
    /// with the destination, any exit, any middle, and coalitions of 5% and 10% of the nodes.
    /// </summary>
    public List<AnonymityRow> Measure(int circuits, Random random)
    {
        var rows = new List<AnonymityRow>();
        if (_clients.Length == 0) return rows;
        var coalitions = Coalitions(random);
        for (int hops = 1; hops <= 3; hops++)
        {
            var paths = new List<int[]>();
            for (int i = 0; i < circuits; i++)
                if (Walk(_clients[random.Next(_clients.Length)], hops, random) is { } path) paths.Add(path);
            if (paths.Count == 0) continue;
            // Any exit, any middle, and the destination with the graph: the same judgement on every path.
            if (hops >= 2) rows.Add(Row(hops, "exit", "any hop", [.. paths.Select(p => Judge(p, hops - 2))], paths.Count));
            else rows.Add(Row(hops, "exit", "any hop", [.. paths.Select(_ => (1.0, 0.0))], paths.Count));
            if (hops == 3) rows.Add(Row(hops, "middle", "any hop", [.. paths.Select(p => Judge(p, 0))], paths.Count));
            rows.Add(Row(hops, "destination", "graph", [.. paths.Select(p => Judge(p, hops - 1))], paths.Count));
            foreach (var (basis, colluder) in coalitions) rows.AddRange(Colluding(hops, paths, basis, colluder));
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

    /// <summary>What a coalition sees: everything from its first hop's predecessor on; "captured" when the first and last hops collude.</summary>
    private IEnumerable<AnonymityRow> Colluding(int hops, List<int[]> paths, string basis, bool[] colluder)
    {
        double everyone = _clients.Length;
        var byView = new Dictionary<string, List<(double Set, double Entropy)>>();
        int captured = 0;
        foreach (var path in paths)
        {
            int first = Array.FindIndex(path, x => colluder[x]);
            string view = first < 0 ? "no colluder" : first == 0 ? "first hop" : first == hops - 1 ? "exit" : "middle";
            var result = first < 0 ? (everyone, Math.Log2(everyone))
                : first == 0 ? (1.0, 0.0)
                : Judge(path, first - 1);
            if (!byView.TryGetValue(view, out var list)) byView[view] = list = [];
            list.Add(result);
            if (hops >= 2 && colluder[path[0]] && colluder[path[^1]]) captured++;
        }
        foreach (var view in new[] { "first hop", "middle", "exit", "no colluder" })
            if (byView.TryGetValue(view, out var list)) yield return Row(hops, view, basis, list, paths.Count);
        if (hops >= 2)
            yield return new AnonymityRow(hops, "captured", basis, captured, (double)captured / paths.Count, 1, 1, 1, 0);
    }

    private (double Set, double Entropy) Judge(int[] path, int known)
    {
        var suspects = Suspects(path, known);
        return (suspects.Count, Entropy(suspects));
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
