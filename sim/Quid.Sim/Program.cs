using System.Diagnostics;
using System.Globalization;

namespace Quid.Sim;

/// <summary>
/// <c>run</c> simulates one network and writes its tables and charts; <c>plot</c> draws how
/// several runs of different sizes compare.
/// </summary>
public static class Program
{
    private const string Usage = """
        usage:
          Quid.Sim run [--nodes 1000] [--minutes 60] [--seed 1] [--out sim-out/n1000] [options]
          Quid.Sim plot --out docs/sim RUN_DIR...

        run options (defaults are the real protocol's and the doc's population):
          --measure-from MIN     minute from which measurements count (default: a third of the run)
          --session-hours H      mean online session, 0 for no churn (3)
          --crash-share X        of those who leave, the share that crash (0.3)
          --nat-share X          hosts nobody can dial (0.2)
          --loss X               packet loss (0.005)
          --honest-only          no adversaries
          --hiccup X             chance a probe of an honest node hits a transient shortfall (0.02)
          --partners K           partners each node wants (the real node: 4 when hops > 1)
          --probe-min S --probe-max S   first and later probes this many seconds apart (60, 180)
          --promotion-delay S    ultrapeer promotion delay (30)
          --ultrapeer-uptime MIN uptime before a node may become an ultrapeer (10)
          --circuits N           circuits drawn per hop count for the anonymity measure (20000)
          --services N           session-addressed services whose lookups are measured (0)
          --lookups-per-minute R lookups of them from random nodes (60)
          --economy-days D       then play D days of the credit economy on the agreements the run
                                 ended with (nodes offer and ask for disk only then; 0)
          --credit-ask-minutes M how often a holder asks its issuers for credits (1, the node's)
          --quiet                no progress lines
        """;

    public static int Main(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help")
        {
            Console.WriteLine(Usage);
            return args.Length == 0 ? 2 : 0;
        }
        try
        {
            return args[0] switch
            {
                "run" => Run(args[1..]),
                "plot" => Plot(args[1..]),
                _ => throw new ArgumentException($"Unknown command '{args[0]}'."),
            };
        }
        catch (Exception e) when (e is ArgumentException or FormatException)
        {
            Console.Error.WriteLine(e.Message);
            Console.Error.WriteLine(Usage);
            return 2;
        }
    }

    private static int Run(string[] args)
    {
        var options = new SimOptions();
        string output = "";
        bool quiet = false;
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.");
            double Number() => double.Parse(Next(), CultureInfo.InvariantCulture);
            switch (args[i])
            {
                case "--nodes": options = options with { Nodes = (int)Number() }; break;
                case "--minutes": options = options with { Duration = TimeSpan.FromMinutes(Number()) }; break;
                case "--seed": options = options with { Seed = (int)Number() }; break;
                case "--out": output = Next(); break;
                case "--measure-from": options = options with { MeasureFrom = TimeSpan.FromMinutes(Number()) }; break;
                case "--session-hours": options = options with { MeanSession = TimeSpan.FromHours(Number()) }; break;
                case "--crash-share": options = options with { CrashShare = Number() }; break;
                case "--nat-share": options = options with { NatShare = Number() }; break;
                case "--loss": options = options with { Network = options.Network with { Loss = Number() } }; break;
                case "--honest-only": options = options with { Mix = AgentMix.HonestOnly }; break;
                case "--hiccup": options = options with { HiccupChance = Number() }; break;
                case "--partners": options = options with { PartnersWanted = (int)Number() }; break;
                case "--probe-min": options = options with { Market = options.Market with { ProbeIntervalMin = TimeSpan.FromSeconds(Number()) } }; break;
                case "--probe-max": options = options with { Market = options.Market with { ProbeIntervalMax = TimeSpan.FromSeconds(Number()) } }; break;
                case "--promotion-delay": options = options with { Overlay = options.Overlay with { PromotionDelay = TimeSpan.FromSeconds(Number()) } }; break;
                case "--ultrapeer-uptime": options = options with { Overlay = options.Overlay with { UltrapeerMinUptime = TimeSpan.FromMinutes(Number()) } }; break;
                case "--circuits": options = options with { AnonymityCircuits = (int)Number() }; break;
                case "--services": options = options with { Services = (int)Number() }; break;
                case "--lookups-per-minute": options = options with { LookupsPerMinute = Number() }; break;
                case "--economy-days": options = options with { EconomyDays = (int)Number() }; break;
                case "--credit-ask-minutes": options = options with { CreditAskInterval = TimeSpan.FromMinutes(Number()) }; break;
                case "--quiet": quiet = true; break;
                default: throw new ArgumentException($"Unknown option '{args[i]}'.");
            }
        }
        if (output.Length == 0) output = Path.Combine("sim-out", $"n{options.Nodes}");
        if (!EnoughMappings(options.Nodes)) return 1;

        var watch = Stopwatch.StartNew();
        var sim = new Simulation(options);
        sim.Run(quiet ? null : s =>
        {
            var row = s.Metrics.Series[^1];
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"minute {row.Minutes,5:0} online {row.Online,6} ultrapeers {row.Ultrapeers,4} met {row.MetShare,6:P1} granted {row.GrantedShare,6:P1} msgs/node/s {row.MessagesPerNodeSecond,6:0.00}  [{watch.Elapsed.TotalSeconds,6:0}s wall]"));
        });
        var simulated = watch.Elapsed;
        var report = new Report(sim);
        report.Write(output);
        var summary = report.Summary.ToList();
        if (options.EconomyDays > 0)
        {
            // After the report: the economy moves the clock on by days, past the run it measured.
            var economy = Economy.Run(sim, options.EconomyDays, options.CreditAskInterval);
            economy.Write(output);
            summary.AddRange(economy.Summary());
            Report.Csv(output, "summary.csv", ["metric", "value"], summary.Select(s => new[] { s.Key, s.Value }));
        }
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{options.Nodes} nodes, {options.Duration.TotalMinutes:0} simulated minutes: {simulated.TotalSeconds:0} s to simulate, {watch.Elapsed.TotalSeconds:0} s with the report; {sim.Scheduler.Executed:N0} events; written to {output}"));
        // Not part of the results (it varies with the machine): how much of the wall time the GC took.
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"GC: {GC.CollectionCount(0):N0} collections ({GC.CollectionCount(1):N0} of gen 1, {GC.CollectionCount(2):N0} of gen 2), {GC.GetTotalPauseDuration().TotalSeconds:0} s paused, {GC.GetTotalAllocatedBytes() / 1e9:0} GB allocated"));
        foreach (var (key, value) in summary) Console.WriteLine($"  {key} = {value}");
        return 0;
    }

    /// <summary>
    /// Each identity holds two libsodium keys in guarded memory, a few memory mappings each: a
    /// large network needs more mappings than Linux allows a process by default.
    /// </summary>
    private static bool EnoughMappings(int nodes)
    {
        const string path = "/proc/sys/vm/max_map_count";
        if (!File.Exists(path)) return true;
        long limit = long.Parse(File.ReadAllText(path).Trim(), CultureInfo.InvariantCulture);
        long needed = 8L * (nodes + nodes / 2) + 30_000;
        if (limit >= needed) return true;
        Console.Error.WriteLine($"{nodes} nodes need about {needed:N0} memory mappings (two guarded libsodium keys per identity); this system allows {limit:N0}.");
        Console.Error.WriteLine($"Raise it first, as root: sysctl -w vm.max_map_count={Math.Max(262_144, needed)}");
        return false;
    }

    private static int Plot(string[] args)
    {
        string output = "";
        var runs = new List<string>();
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--out") output = i + 1 < args.Length ? args[++i] : throw new ArgumentException("--out needs a value.");
            else runs.Add(args[i]);
        }
        if (output.Length == 0 || runs.Count == 0) throw new ArgumentException("plot needs --out and at least one run directory.");
        Directory.CreateDirectory(output);
        var summaries = runs.Select(r => File.ReadAllLines(Path.Combine(r, "summary.csv")).Skip(1).Select(l => l.Split(',', 2))
            .ToDictionary(p => p[0], p => p[1])).OrderBy(s => double.Parse(s["nodes"], CultureInfo.InvariantCulture)).ToList();
        double Value(Dictionary<string, string> s, string key) =>
            s.TryGetValue(key, out var v) && v.Length > 0 ? double.Parse(v, CultureInfo.InvariantCulture) : double.NaN;
        Series Line(string name, string key, double scale = 1) => new(name, [.. summaries.Select(s => (Value(s, "nodes"), Value(s, key) * scale))]);
        File.WriteAllText(Path.Combine(output, "messages-per-search.svg"), Svg.Lines("Messages per search against network size", "nodes (log)", "messages (queries and hits)",
            [Line("mean", "messages_per_search_mean"), Line("median", "messages_per_search_p50"), Line("95th percentile", "messages_per_search_p95"),
             Line("max", "messages_per_search_max")],
            logX: true, targets: [(200, "target 200")]));
        File.WriteAllText(Path.Combine(output, "scaling.svg"), Svg.Lines("Targets against network size", "nodes (log)", "share",
            [Line("first partner ≤ 3 s", "first_partner_within_3s"), Line("fully met ≤ 3 s", "fully_met_within_3s"),
             Line("honest Jain (recv/given)", "jain_received_over_given_honest"), Line("under-deliverers caught ≤ 60 s", "underdeliverer_caught_within_60s"),
             Line("free-riders' take / honest", "received_FreeRider_of_honest"), Line("queries lost on closed links", "queries_on_closed_links_share")],
            logX: true, yMax: 1, targets: [(0.99, "99%"), (0.9, "0.9"), (0.1, "10%")]));
        File.WriteAllText(Path.Combine(output, "match-time-scaling.svg"), Svg.Lines("Time to match against network size", "nodes (log)", "seconds (median)",
            [Line("first partner", "first_partner_median_s"), Line("fully met", "fully_met_median_s")],
            logX: true, targets: [(3, "3 s"), (10, "10 s")]));
        var keys = summaries.SelectMany(s => s.Keys).Distinct().ToList();
        Report.Csv(output, "scaling.csv", ["metric", .. summaries.Select(s => s["nodes"])],
            keys.Select(k => (string[])[k, .. summaries.Select(s => s.GetValueOrDefault(k, ""))]));
        Console.WriteLine($"Wrote messages-per-search.svg, scaling.svg, match-time-scaling.svg and scaling.csv to {output}");
        return 0;
    }
}
