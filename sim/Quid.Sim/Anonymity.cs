namespace Quid.Sim;

/// <summary>How many nodes could have built a circuit, and how evenly likely, as the adversary that sees part of it judges.</summary>
public sealed record AnonymityRow(int Hops, string View, string Basis, int Circuits, double Share, double MeanSet, double MedianSet, double P10Set, double MeanEntropy);

/// <summary>
/// The originator's anonymity on the graph of agreements at the end of a run. Paths are drawn
/// as CircuitPool.ChoosePath draws them: a first hop among the partners that grant the client,
/// weighted by what each grants, then at each hop one of that hop's partners (as its signed
/// descriptor lists them) at random, no node twice. A colluding hop sees its predecessor and
/// successor; the colluders pool what they see, and know their positions. From the first
/// colluding hop's predecessor back, every client that could have walked there is a suspect,
/// weighted by how likely its walk was (a uniform prior over clients); the set is the suspects,
/// the entropy that of their weights.
/// </summary>
public sealed class Anonymity
{
    private const int PathAttempts = 20;

    private readonly int[][] _grants;
    private readonly double[][] _weights;
    private readonly double[] _weightTotal;
    private readonly List<int>[] _grantedBy;
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
        _weights = new double[n][];
        _weightTotal = new double[n];
        _grantedBy = new List<int>[n];
        for (int x = 0; x < n; x++) _grantedBy[x] = [];
        for (int x = 0; x < n; x++)
        {
            _grants[x] = [.. partners[x].Select(p => p.Node)];
            _weights[x] = [.. partners[x].Select(p => Math.Max(1, p.Kbps))];
            _weightTotal[x] = _weights[x].Sum();
            foreach (var y in _grants[x]) _grantedBy[y].Add(x);
        }
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

    /// <summary>A path of <paramref name="hops"/> from <paramref name="client"/>, or null when the walk finds none.</summary>
    internal int[]? Walk(int client, int hops, Random random)
    {
        for (int attempt = 0; attempt < PathAttempts; attempt++)
        {
            var path = new List<int> { First(client, random) };
            while (path.Count < hops)
            {
                var next = _grants[path[^1]].Where(y => y != client && !path.Contains(y)).ToArray();
                if (next.Length == 0) break;
                path.Add(next[random.Next(next.Length)]);
            }
            if (path.Count == hops) return [.. path];
        }
        return null;
    }

    private int First(int client, Random random)
    {
        double pick = random.NextDouble() * _weightTotal[client];
        for (int i = 0; i < _grants[client].Length; i++)
            if ((pick -= _weights[client][i]) < 0) return _grants[client][i];
        return _grants[client][^1];
    }

    private double FirstChance(int client, int hop)
    {
        int i = Array.IndexOf(_grants[client], hop);
        return i < 0 ? 0 : _weights[client][i] / _weightTotal[client];
    }

    /// <summary>How many partners of <paramref name="hop"/> a walk may continue to, leaving out the client and the hop before.</summary>
    private int Choices(int hop, int client, int before = -1) =>
        _grants[hop].Length - (_grants[hop].Contains(client) ? 1 : 0) - (before >= 0 && _grants[hop].Contains(before) ? 1 : 0);

    /// <summary>
    /// The suspects' weights when the adversary knows the path from position <paramref name="known"/>
    /// (0-based) on: it saw that hop as the predecessor of the first colluding hop.
    /// </summary>
    internal Dictionary<int, double> Suspects(int[] path, int known)
    {
        var suspects = new Dictionary<int, double>();
        var seen = path.Skip(known).ToHashSet();
        void Add(int client, double weight)
        {
            if (weight <= 0 || seen.Contains(client)) return;
            suspects[client] = suspects.GetValueOrDefault(client) + weight;
        }
        int h = path[known];
        if (known == 0)
        {
            // The first hop is known: the client is one it grants, and chose it first.
            foreach (var c in _grantedBy[h])
            {
                double w = FirstChance(c, h);
                if (path.Length > 1) w /= Math.Max(1, Choices(h, c));
                if (path.Length > 2) w /= Math.Max(1, Choices(path[1], c, h));
                Add(c, w);
            }
            return suspects;
        }
        // The second hop is known (the exit of three saw it): any first hop it grants, any client that hop grants.
        foreach (var h1 in _grantedBy[h])
        {
            if (seen.Contains(h1)) continue;
            foreach (var c in _grantedBy[h1])
            {
                if (c == h) continue;
                double w = FirstChance(c, h1) / Math.Max(1, Choices(h1, c));
                if (path.Length > 2) w /= Math.Max(1, Choices(h, c, h1));
                Add(c, w);
            }
        }
        return suspects;
    }

    public static double Entropy(IReadOnlyDictionary<int, double> weights)
    {
        double total = weights.Values.Sum();
        return weights.Values.Where(w => w > 0).Sum(w => -(w / total) * Math.Log2(w / total));
    }

    /// <summary>Draws circuits of 1, 2 and 3 hops and reports what the colluders see of them, and what any exit or middle would.</summary>
    public List<AnonymityRow> Measure(int circuits, Random random)
    {
        var rows = new List<AnonymityRow>();
        if (_clients.Length == 0) return rows;
        double everyone = _clients.Length;
        for (int hops = 1; hops <= 3; hops++)
        {
            var paths = new List<int[]>();
            for (int i = 0; i < circuits; i++)
                if (Walk(_clients[random.Next(_clients.Length)], hops, random) is { } path) paths.Add(path);
            if (paths.Count == 0) continue;
            // What the colluders see: everything from their first hop's predecessor on.
            var byView = new Dictionary<string, List<(double Set, double Entropy)>>();
            foreach (var path in paths)
            {
                int first = Array.FindIndex(path, x => _colluder[x]);
                string view = first < 0 ? "no colluder" : first == 0 ? "first hop" : first == hops - 1 ? "exit" : "middle";
                var result = first < 0 ? (everyone, Math.Log2(everyone))
                    : first == 0 ? (1.0, 0.0)
                    : Judge(path, first - 1);
                if (!byView.TryGetValue(view, out var list)) byView[view] = list = [];
                list.Add(result);
            }
            foreach (var view in new[] { "first hop", "middle", "exit", "no colluder" })
                if (byView.TryGetValue(view, out var list)) rows.Add(Row(hops, view, "colluders (5%)", list, paths.Count));
            // Any exit, and any middle, as if it were hostile: the same judgement on every path.
            if (hops >= 2) rows.Add(Row(hops, "exit", "any hop", [.. paths.Select(p => Judge(p, hops - 2))], paths.Count));
            else rows.Add(Row(hops, "exit", "any hop", [.. paths.Select(_ => (1.0, 0.0))], paths.Count));
            if (hops == 3) rows.Add(Row(hops, "middle", "any hop", [.. paths.Select(p => Judge(p, 0))], paths.Count));
        }
        return rows;
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
