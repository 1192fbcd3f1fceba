using System.Globalization;
using System.Text;
using Quid.Crypto;
using Quid.Exchange;

namespace Quid.Sim;

/// <summary>
/// Turns a finished run into CSV tables and SVG charts. Every number is formatted the same way
/// on every machine, so the same seed gives byte-identical files.
/// </summary>
public sealed class Report
{
    /// <summary>How soon a satisfiable request should find a partner.</summary>
    public static readonly TimeSpan MatchTarget = TimeSpan.FromSeconds(3);
    /// <summary>How soon all the partners a request needs should be found.</summary>
    public static readonly TimeSpan FullyMetTarget = TimeSpan.FromSeconds(10);
    /// <summary>How soon an under-deliverer should be caught.</summary>
    public static readonly TimeSpan DetectionTarget = TimeSpan.FromSeconds(60);

    private readonly Simulation _sim;
    private readonly List<(string Key, string Value)> _summary = [];

    public Report(Simulation sim)
    {
        _sim = sim;
        Requests = RequestRows();
        Classes = ClassRows();
        Detection = DetectionRows();
        var anonymity = Sim.Anonymity.Of(sim);
        Anonymity = anonymity.Measure(sim.Options.AnonymityCircuits, new Random(Seeds.Derive(sim.Options.Seed, 5)));
        int services = sim.Options.Nodes >= 5000 ? 100 : 300;
        GuardDiscovery = [.. VanguardsThenNot.SelectMany(vanguards => GuardDiscoveryPoints.Select(points =>
            anonymity.GuardDiscovery(services, points, vanguards, GuardDiscoveryAfter, new Random(Seeds.Derive(sim.Options.Seed, 9)))))];
        Meetings = [.. VanguardsThenNot.SelectMany(vanguards => MeetingCandidates.Select(candidates =>
            anonymity.Meetings(3 * services, candidates, vanguards, new Random(Seeds.Derive(sim.Options.Seed, 10)))))];
        if (sim.Lookups is not null)
        {
            RendezvousReach = anonymity.RendezvousReach(2000, 7, candidates: 1, new Random(Seeds.Derive(sim.Options.Seed, 7)));
            RendezvousReachOfThree = anonymity.RendezvousReach(2000, 7, candidates: 3, new Random(Seeds.Derive(sim.Options.Seed, 7)));
        }
        Summarise();
    }

    public List<string[]> Requests { get; }
    public List<string[]> Classes { get; }
    public List<string[]> Detection { get; }
    public List<AnonymityRow> Anonymity { get; }
    /// <summary>Introductions through hostile rendezvous points after which guard discovery is judged.</summary>
    private static readonly int[] GuardDiscoveryAfter = [1, 3, 10, 30];
    private static readonly bool[] VanguardsThenNot = [true, false];
    /// <summary>How many nodes the adversary runs as rendezvous points.</summary>
    private static readonly int[] GuardDiscoveryPoints = [1, 5];
    /// <summary>
    /// With vanguards (the node's rule) and then without (the rule before them), for each of
    /// <see cref="GuardDiscoveryPoints"/> and each of <see cref="GuardDiscoveryAfter"/>: the share of
    /// services whose first hop the rendezvous points found, and the median count tied at the top.
    /// </summary>
    public GuardDiscoveryResult[] GuardDiscovery { get; }
    /// <summary>How many rendezvous points a client offers the service in <see cref="Meetings"/>.</summary>
    private static readonly int[] MeetingCandidates = [1, 2, 3];
    /// <summary>
    /// With vanguards and then without, for each of <see cref="MeetingCandidates"/>: the share of
    /// client and service pairs for which the service found a path to one of the client's rendezvous
    /// points by the node's rule, and the mean hops of those paths.
    /// </summary>
    public (double Reached, double MeanHops)[] Meetings { get; }
    /// <summary>With services: the share of client and service pairs whose rendezvous point the service reaches within each number of hops.</summary>
    public double[]? RendezvousReach { get; }
    /// <summary>The same, when the client names three candidate rendezvous points and the service takes the nearest it reaches.</summary>
    public double[]? RendezvousReachOfThree { get; }
    public IReadOnlyList<(string Key, string Value)> Summary => _summary;

    private static string F(double value, int decimals = 4) =>
        double.IsFinite(value) ? value.ToString("F" + decimals.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture) : "";

    private static string I(long value) => value.ToString(CultureInfo.InvariantCulture);

    private static double Seconds(long ticks) => TimeSpan.FromTicks(ticks).TotalSeconds;

    private IEnumerable<RequestEpisode> WindowEpisodes =>
        _sim.Metrics.Episodes.Where(e => e.Start >= _sim.WindowStart && e.Start + MatchTarget.Ticks <= _sim.Clock.Now);

    // ---- Requests ----

    private List<string[]> RequestRows()
    {
        var rows = new List<string[]>();
        foreach (var group in WindowEpisodes.GroupBy(e => e.Class).OrderBy(g => g.Key).Select(g => (Name: g.Key.ToString(), Episodes: g.ToList()))
            .Append((Name: "all", Episodes: WindowEpisodes.ToList())))
        {
            var satisfiable = Judged(group.Episodes);
            var first = satisfiable.Select(FirstPartnerSeconds).Order().ToArray();
            var full = satisfiable.Select(e => e.Met is { } m ? Seconds(m - e.Start) : double.PositiveInfinity).Order().ToArray();
            rows.Add([group.Name, I(group.Episodes.Count), I(satisfiable.Count),
                F(Share(first, MatchTarget.TotalSeconds)), F(Share(full, MatchTarget.TotalSeconds)),
                F(Share(first, double.MaxValue)), F(Stats.Quantile(first, 0.5), 2), F(Stats.Quantile(first, 0.9), 2), F(Stats.Quantile(first, 0.99), 2),
                F(Stats.Quantile(full, 0.5), 2), F(Stats.Quantile(full, 0.9), 2), F(Share(full, FullyMetTarget.TotalSeconds))]);
        }
        return rows;
    }

    /// <summary>The episodes the request figures judge: satisfiable, less those whose node left before any partner came.</summary>
    private static List<RequestEpisode> Judged(IEnumerable<RequestEpisode> episodes) =>
        episodes.Where(e => e.Satisfiable && !(e.LeftFirst && e.FirstGrant is null)).ToList();

    private static double FirstPartnerSeconds(RequestEpisode e) => e.FirstGrant is { } g ? Seconds(g - e.Start) : double.PositiveInfinity;

    /// <summary>
    /// The first-partner figure by how many nodes could have met the request when it began: a
    /// request only one node in the network can meet is found only if the search reaches that one
    /// before anyone else takes it.
    /// </summary>
    private void SummariseScarcity()
    {
        var satisfiable = Judged(WindowEpisodes);
        foreach (var (name, least, most) in new[] { ("1", 1, 1), ("2_3", 2, 3), ("4_9", 4, 9), ("10_plus", Simulation.SatisfiersCounted, int.MaxValue) })
        {
            var group = satisfiable.Where(e => e.Satisfiers >= least && e.Satisfiers <= most).ToList();
            var first = group.Select(FirstPartnerSeconds).ToArray();
            Add($"satisfiable_share_satisfiers_{name}", F(satisfiable.Count == 0 ? double.NaN : (double)group.Count / satisfiable.Count));
            Add($"first_partner_within_3s_satisfiers_{name}", F(Share(first, MatchTarget.TotalSeconds)));
        }
    }

    private static double Share(IReadOnlyCollection<double> values, double limit) => values.Count == 0 ? double.NaN : (double)values.Count(v => v <= limit) / values.Count;

    // ---- What each class gives and receives ----

    private IEnumerable<SimNode> Measured => _sim.All.Where(n => n.Stats.WindowSeconds > 0);

    private double HonestReceivedKbps => Rate(Measured.Where(n => n.Agent.Class == AgentClass.Honest), s => s.ReceivedKbit);

    private static double Rate(IEnumerable<SimNode> nodes, Func<NodeStats, double> kbit)
    {
        double seconds = nodes.Sum(n => n.Stats.WindowSeconds);
        return seconds == 0 ? double.NaN : nodes.Sum(n => kbit(n.Stats)) / seconds;
    }

    private List<string[]> ClassRows()
    {
        double honest = HonestReceivedKbps;
        var rows = new List<string[]>();
        foreach (var cls in Enum.GetValues<AgentClass>())
        {
            var nodes = Measured.Where(n => n.Agent.Class == cls).ToList();
            if (nodes.Count == 0) continue;
            double received = Rate(nodes, s => s.ReceivedKbit), given = Rate(nodes, s => s.GivenKbit), wanted = Rate(nodes, s => s.WantedKbit);
            rows.Add([cls.ToString(), I(nodes.Count), F(nodes.Sum(n => n.Stats.WindowSeconds) / 3600, 2), F(nodes.Average(n => n.Agent.Offer.Kbps), 0),
                F(nodes.Average(n => n.Agent.CapacityKbps), 0), F(wanted, 1), F(received, 1), F(given, 1), F(received / honest)]);
        }
        return rows;
    }

    // ---- Cheaters caught ----

    private List<string[]> DetectionRows()
    {
        var rows = new List<string[]>();
        foreach (var group in _sim.Metrics.Watches.GroupBy(w => w.Class).OrderBy(g => g.Key))
        {
            var watches = group.ToList();
            var detected = watches.Where(w => w.Verdict is not null).Select(w => Seconds(w.Verdict!.Value - w.Formed)).Order().ToArray();
            var suspected = watches.Where(w => w.Suspected is not null).Select(w => Seconds(w.Suspected!.Value - w.Formed)).Order().ToArray();
            // Of the agreements that lasted long enough to be judged in time, the share caught in time;
            // and the same over those in which the cheater promised something (a donor's grant to
            // it asks nothing back, so there is nothing it could be caught falling short of).
            var judgeable = watches.Where(w => w.Verdict is not null || (w.EndedFirst ?? _sim.Clock.Now) - w.Formed >= DetectionTarget.Ticks).ToList();
            var promised = judgeable.Where(w => w.Promised).ToList();
            rows.Add([group.Key.ToString(), I(watches.Count), I(suspected.Length), I(detected.Length), I(watches.Count(w => w.Shunned is not null)),
                I(watches.Count(w => w.EndedFirst is not null)), F(Stats.Quantile(suspected, 0.5), 1), F(Stats.Quantile(detected, 0.5), 1),
                F(Stats.Quantile(detected, 0.9), 1),
                F(judgeable.Count == 0 ? double.NaN : (double)judgeable.Count(w => w.Verdict is { } v && v - w.Formed <= DetectionTarget.Ticks) / judgeable.Count),
                F(promised.Count == 0 ? double.NaN : (double)promised.Count(w => w.Verdict is { } v && v - w.Formed <= DetectionTarget.Ticks) / promised.Count)]);
        }
        return rows;
    }

    // ---- Summary ----

    private void Add(string key, string value) => _summary.Add((key, value));

    /// <summary>Lookups started in the window with time to finish: found, introduced, both; their cost in messages and their time.</summary>
    private void SummariseLookups(Lookups lookups)
    {
        var overlay = _sim.Options.Overlay;
        // A lookup's steps (two rings, then one per ultrapeer link at most) and its wait after the last.
        long settle = (overlay.LookupStepInterval * (2 + overlay.UltrapeerLinks) + overlay.LookupTimeout).Ticks;
        var runs = lookups.Runs.Where(r => r.InWindow && r.Started + settle <= _sim.Clock.Now).ToList();
        double Of(Func<Lookups.LookupRun, bool> which) => runs.Count == 0 ? double.NaN : (double)runs.Count(which) / runs.Count;
        Add("services", I(_sim.Options.Services));
        Add("lookups", I(runs.Count));
        Add("lookups_found", F(Of(r => r.Found is not null)));
        Add("lookups_introduced", F(Of(r => r.Introduced is not null)));
        Add("lookups_found_and_introduced", F(Of(r => r.Found is not null && r.Introduced is not null)));
        // Lookups the asker was told failed after their last step, "no such service" to its user.
        Add("lookups_reported_failed", F(Of(r => r.Failed)));
        // Why lookups miss: started where no ultrapeer was linked, or for a record few ultrapeers held.
        var missed = runs.Where(r => r.Found is null || r.Introduced is null).ToList();
        Add("lookups_missed_from_nodes_without_ultrapeer", I(missed.Count(r => !r.FromUltrapeer)));
        Add("lookups_from_nodes_without_ultrapeer", I(runs.Count(r => !r.FromUltrapeer)));
        Add("lookups_missed_record_held_by_median", F(Stats.Quantile([.. missed.Select(r => r.HeldBy).Order()], 0.5), 3));
        Add("lookup_record_held_by_median", F(Stats.Quantile([.. runs.Select(r => r.HeldBy).Order()], 0.5), 3));
        var messages = runs.Select(r => (double)r.Messages).Order().ToArray();
        Add("messages_per_lookup_mean", F(messages.Length == 0 ? double.NaN : messages.Average(), 2));
        Add("messages_per_lookup_p50", F(Stats.Quantile(messages, 0.5), 0));
        Add("messages_per_lookup_p99", F(Stats.Quantile(messages, 0.99), 0));
        Add("messages_per_lookup_max", F(messages.Length == 0 ? double.NaN : messages[^1], 0));
        var found = runs.Where(r => r.Found is not null).Select(r => Seconds(r.Found!.Value - r.Started)).Order().ToArray();
        Add("lookup_found_p50_s", F(Stats.Quantile(found, 0.5), 3));
        Add("lookup_found_p99_s", F(Stats.Quantile(found, 0.99), 3));
        var introduced = runs.Where(r => r.Introduced is not null).Select(r => Seconds(r.Introduced!.Value - r.Started)).Order().ToArray();
        Add("lookup_introduced_p50_s", F(Stats.Quantile(introduced, 0.5), 3));
        Add("lookup_introduced_p99_s", F(Stats.Quantile(introduced, 0.99), 3));
        if (RendezvousReach is { } reach)
            foreach (int hops in new[] { 3, 4, 5, 7 }) Add($"rendezvous_point_reached_within_{hops}_hops", F(reach[hops]));
        if (RendezvousReachOfThree is { } three)
            foreach (int hops in new[] { 3, 4, 5, 7 }) Add($"one_of_3_rendezvous_points_reached_within_{hops}_hops", F(three[hops]));
        Add("records_stored_per_ultrapeer", F(_sim.Online.Where(n => n.Overlay.Role == Overlay.OverlayRole.Ultrapeer).Select(n => (double)n.Overlay.StoredRecordCount).DefaultIfEmpty(double.NaN).Average(), 1));
    }

    /// <summary>
    /// The connected parts of the graph of links between online ultrapeers, at the end: floods
    /// among ultrapeers never cross from one to another, so a lookup or search started in one
    /// misses whatever only the others hold.
    /// </summary>
    private (int Count, double LargestShare) UltrapeerComponents()
    {
        var ultrapeers = _sim.Online.Where(n => n.Overlay.Role == Overlay.OverlayRole.Ultrapeer).ToDictionary(n => n.Id);
        var seen = new HashSet<NodeId>();
        int count = 0, largest = 0;
        foreach (var start in ultrapeers.Keys)
        {
            if (!seen.Add(start)) continue;
            count++;
            int size = 0;
            var stack = new Stack<NodeId>([start]);
            while (stack.TryPop(out var id))
            {
                size++;
                foreach (var next in ultrapeers[id].Overlay.Neighbours)
                    if (ultrapeers.ContainsKey(next) && seen.Add(next)) stack.Push(next);
            }
            largest = Math.Max(largest, size);
        }
        return (count, ultrapeers.Count == 0 ? double.NaN : (double)largest / ultrapeers.Count);
    }

    private void Summarise()
    {
        var o = _sim.Options;
        var m = _sim.Metrics;
        Add("nodes", I(o.Nodes));
        Add("simulated_minutes", F(o.Duration.TotalMinutes, 1));
        Add("seed", I(o.Seed));
        Add("measured_from_minute", F(o.MeasurementStart.TotalMinutes, 1));
        Add("identities", I(_sim.All.Count));
        Add("online_at_end", I(_sim.Online.Count));
        Add("events", I(_sim.Scheduler.Executed));
        Add("control_messages", I(_sim.Network.MessagesSent));
        Add("control_bytes", I(_sim.Network.BytesSent));
        // Queries that reached a node on a link it had already closed, while the close was still on its way to the sender (measured from the window).
        Add("queries_on_closed_links_share", F(_sim.Network.QueriesArrived == 0 ? double.NaN : (double)_sim.Network.QueriesOnClosedLinks / _sim.Network.QueriesArrived, 5));
        // Gnutella's flow control: queries and hits not sent because their link was more than a second behind (the whole run, every identity).
        Add("queries_dropped_behind", I(_sim.All.Sum(n => n.Overlay.QueriesDropped)));
        Add("hits_dropped_behind", I(_sim.All.Sum(n => n.Overlay.HitsDropped)));
        Add("wire_round_trips_checked", I(_sim.WireCheck.Checked));
        Add("descriptors_signed", I(m.Published));
        Add("agreements_formed", I(m.AgreementsFormed));
        foreach (var (reason, count) in m.Ends.OrderBy(e => e.Key)) Add($"agreements_ended_{reason}", I(count));
        Add("ultrapeers_at_end", I(_sim.Online.Count(n => n.Overlay.Role == Overlay.OverlayRole.Ultrapeer)));
        var (components, largest) = UltrapeerComponents();
        Add("ultrapeer_components_at_end", I(components));
        Add("largest_ultrapeer_component_share", F(largest));

        var all = Requests[^1];
        Add("request_episodes", all[1]);
        Add("satisfiable_episodes", all[2]);
        Add("first_partner_within_3s", all[3]);
        Add("fully_met_within_3s", all[4]);
        Add("fully_met_within_10s", all[11]);
        Add("first_partner_eventually", all[5]);
        Add("first_partner_median_s", all[6]);
        Add("first_partner_p99_s", all[8]);
        Add("fully_met_median_s", all[9]);
        SummariseScarcity();

        if (_sim.Lookups is { } lookups) SummariseLookups(lookups);

        var searches = m.SearchMessages.Select(x => (double)x).Order().ToArray();
        Add("searches", I(searches.Length));
        Add("messages_per_search_mean", F(searches.Length == 0 ? double.NaN : searches.Average(), 2));
        Add("messages_per_search_p50", F(Stats.Quantile(searches, 0.5), 0));
        Add("messages_per_search_p95", F(Stats.Quantile(searches, 0.95), 0));
        Add("messages_per_search_max", F(searches.Length == 0 ? double.NaN : searches[^1], 0));

        var honest = Measured.Where(n => n.Agent.Class == AgentClass.Honest && n.Stats.WindowSeconds >= (o.Duration - o.MeasurementStart).TotalSeconds / 2).ToList();
        Add("jain_received_over_given_honest", F(Stats.Jain([.. honest.Where(n => n.Stats.GivenKbit > 0).Select(n => n.Stats.ReceivedKbit / n.Stats.GivenKbit)])));
        Add("jain_received_over_requested_honest", F(Stats.Jain([.. honest.Where(n => n.Stats.WantedKbit > 0).Select(n => n.Stats.ReceivedKbit / n.Stats.WantedKbit)])));
        var window = m.Series.Where(r => r.Minutes * 60 >= o.MeasurementStart.TotalSeconds).ToList();
        Add("granted_of_offered", F(window.Count == 0 ? double.NaN : window.Average(r => r.GrantedOfOffered)));
        Add("delivered_of_capacity", F(window.Count == 0 ? double.NaN : window.Average(r => r.DeliveredOfCapacity)));
        Add("unadvertisable_kbps_max", I(m.Series.Count == 0 ? 0 : m.Series.Max(r => r.UnadvertisableKbps)));
        Add("unmerged_buddies_kbps_max", I(m.Series.Count == 0 ? 0 : m.Series.Max(r => r.UnmergedKbps)));
        Add("stale_advertised_kbps_max", I(m.Series.Count == 0 ? 0 : m.Series.Max(r => r.StaleAdvertisedKbps)));

        double honestKbps = HonestReceivedKbps;
        AgentClass[] cheaters = [AgentClass.FreeRider, AgentClass.Whitewasher, AgentClass.UnderDeliverer, AgentClass.OverClaimer, AgentClass.Sybil,
            AgentClass.HiddenLinkOverClaimer, AgentClass.RotatingFreeRider];
        foreach (var cls in cheaters)
            Add($"received_{cls}_of_honest", F(Rate(Measured.Where(n => n.Agent.Class == cls), s => s.ReceivedKbit) / honestKbps));
        // What a class gets for what it gives, of what an honest node gets for what it gives: an
        // over-claimer gives all its capacity and more while an honest node offers half to all of
        // its own, so what each receives alone does not say whether lying paid.
        double honestPerGiven = HonestReceivedKbps / Rate(Measured.Where(n => n.Agent.Class == AgentClass.Honest), s => s.GivenKbit);
        foreach (var cls in new[] { AgentClass.OverClaimer, AgentClass.HiddenLinkOverClaimer, AgentClass.Sybil })
        {
            var nodes = Measured.Where(n => n.Agent.Class == cls).ToList();
            Add($"received_per_given_{cls}_of_honest", F(Rate(nodes, s => s.ReceivedKbit) / Rate(nodes, s => s.GivenKbit) / honestPerGiven));
        }
        var under = Detection.FirstOrDefault(r => r[0] == nameof(AgentClass.UnderDeliverer));
        Add("underdeliverer_caught_within_60s", under?[9] ?? "");
        Add("underdeliverer_caught_within_60s_of_promising", under?[10] ?? "");
        Add("underdeliverer_detection_median_s", under?[7] ?? "");
        Add("honest_probes", I(m.HonestProbes));
        Add("false_positive_per_probe", F(m.HonestProbes == 0 ? double.NaN : (double)m.HonestFailures / m.HonestProbes, 5));
        Add("false_positive_per_partner_pair", F(m.HonestPairsProbed == 0 ? double.NaN : (double)m.HonestPairsFailed / m.HonestPairsProbed, 5));
        foreach (var row in Anonymity.Where(r => r.Basis is "descriptors" or "links"))
        {
            Add($"anonymity_{row.Hops}hop_{row.View}_{row.Basis}_median_set", F(row.MedianSet, 1));
            Add($"anonymity_{row.Hops}hop_{row.View}_{row.Basis}_entropy_bits", F(row.MeanEntropy, 2));
        }
        foreach (var row in Anonymity.Where(r => r.View == "private first hop"))
            Add($"anonymity_{row.Hops}hop_private_first_hop_share", F(row.Share));
        // Circuits whose first and last hops both collude, against 2f², what paths drawn at random from everyone would give:
        // of every circuit, and of those whose client is not in the coalition.
        foreach (var row in Anonymity.Where(r => r.View is "captured" or "captured of others"))
            Add($"anonymity_{row.Hops}hop_{row.View.Replace(' ', '_')}_by_{row.Basis.Replace(' ', '_').Replace("%", "pct", StringComparison.Ordinal)}", F(row.Share, 5));
        for (int v = 0; v < VanguardsThenNot.Length; v++)
            for (int p = 0; p < GuardDiscoveryPoints.Length; p++)
            {
                var result = GuardDiscovery[v * GuardDiscoveryPoints.Length + p];
                string of = $"{(VanguardsThenNot[v] ? "" : "unpinned_")}{GuardDiscoveryPoints[p]}_points";
                for (int i = 0; i < GuardDiscoveryAfter.Length; i++)
                {
                    string at = $"{of}_{GuardDiscoveryAfter[i]}_introductions";
                    Add($"guard_discovery_found_{at}", F(result.After[i].Found));
                    Add($"guard_discovery_tied_{at}_median", F(result.After[i].MedianTied, 1));
                }
                Add($"guard_discovery_{of}_reached", F(result.Reached));
                Add($"guard_discovery_{of}_mean_hops", F(result.MeanHops, 2));
            }
        for (int v = 0; v < VanguardsThenNot.Length; v++)
            for (int c = 0; c < MeetingCandidates.Length; c++)
            {
                var (reached, hops) = Meetings[v * MeetingCandidates.Length + c];
                string of = $"{(VanguardsThenNot[v] ? "" : "unpinned_")}{MeetingCandidates[c]}_points";
                Add($"meetings_{of}_reached", F(reached));
                Add($"meetings_{of}_mean_hops", F(hops, 2));
            }
    }

    // ---- Files ----

    public void Write(string directory)
    {
        Directory.CreateDirectory(directory);
        Csv(directory, "summary.csv", ["metric", "value"], _summary.Select(s => new[] { s.Key, s.Value }));
        Csv(directory, "series.csv",
            ["minute", "online", "ultrapeers", "mean_links", "agreements", "requesting", "met_share", "granted_share", "searches", "messages_per_node_s",
                "granted_of_offered", "delivered_of_capacity", "unadvertisable_kbps", "unmerged_kbps", "stale_advertised_kbps"],
            _sim.Metrics.Series.Select(r => new[] { F(r.Minutes, 1), I(r.Online), I(r.Ultrapeers), F(r.MeanLinks, 2), I(r.Agreements), I(r.Requesting),
                F(r.MetShare), F(r.GrantedShare), I(r.Searches), F(r.MessagesPerNodeSecond, 3), F(r.GrantedOfOffered), F(r.DeliveredOfCapacity),
                I(r.UnadvertisableKbps), I(r.UnmergedKbps), I(r.StaleAdvertisedKbps) }));
        Csv(directory, "requests.csv",
            ["class", "episodes", "satisfiable", "first_partner_within_3s", "fully_met_within_3s", "first_partner_eventually", "first_partner_p50_s",
                "first_partner_p90_s", "first_partner_p99_s", "fully_met_p50_s", "fully_met_p90_s", "fully_met_within_10s"], Requests);
        Csv(directory, "classes.csv",
            ["class", "identities", "node_hours", "mean_offer_kbps", "mean_capacity_kbps", "requested_kbps", "received_kbps", "given_kbps", "received_of_honest"], Classes);
        Csv(directory, "detection.csv",
            ["class", "agreements", "suspected", "caught", "shunned", "ended_before_verdict", "suspected_p50_s", "caught_p50_s", "caught_p90_s", "caught_within_60s", "caught_within_60s_of_promising"], Detection);
        Csv(directory, "anonymity.csv", ["hops", "view", "basis", "circuits", "share", "mean_set", "median_set", "p10_set", "mean_entropy_bits"],
            Anonymity.Select(r => new[] { I(r.Hops), r.View, r.Basis, I(r.Circuits), F(r.Share), F(r.MeanSet, 1), F(r.MedianSet, 1), F(r.P10Set, 1), F(r.MeanEntropy, 3) }));
        var histogram = _sim.Metrics.SearchMessages.GroupBy(x => x).OrderBy(g => g.Key);
        Csv(directory, "search-messages.csv", ["messages", "searches"], histogram.Select(g => new[] { I(g.Key), I(g.Count()) }));
        Plots(directory);
    }

    private void Plots(string directory)
    {
        var series = _sim.Metrics.Series;
        string n = string.Create(CultureInfo.InvariantCulture, $"{_sim.Options.Nodes:N0} nodes");
        File.WriteAllText(Path.Combine(directory, "series.svg"), Svg.Lines($"Requests met over time ({n})", "simulated minute", "share of requesting nodes",
            [new Series("request fully met", [.. series.Select(r => (r.Minutes, r.MetShare))]),
             new Series("granted something", [.. series.Select(r => (r.Minutes, r.GrantedShare))]),
             new Series("offer granted", [.. series.Select(r => (r.Minutes, r.GrantedOfOffered))]),
             new Series("ultrapeers / 1%", [.. series.Select(r => (r.Minutes, r.Online == 0 ? 0 : r.Ultrapeers * 1.0 / r.Online))])], yMax: 1));
        var episodes = WindowEpisodes.Where(e => e.Satisfiable).ToList();
        File.WriteAllText(Path.Combine(directory, "match-time.svg"), Svg.Lines($"Time to match a satisfiable request ({n})", "seconds (log)", "share of requests",
            [Svg.Cdf("first new partner", episodes.Select(e => e.FirstGrant is { } g ? Math.Max(0.01, Seconds(g - e.Start)) : double.PositiveInfinity)),
             Svg.Cdf("request fully met", episodes.Select(e => e.Met is { } m ? Math.Max(0.01, Seconds(m - e.Start)) : double.PositiveInfinity))],
            logX: true, yMax: 1, targets: [(0.99, "99%")]));
        File.WriteAllText(Path.Combine(directory, "classes.svg"), Svg.Bars($"Bandwidth received, relative to honest nodes ({n})", "received / honest",
            [.. Classes.Select(r => (r[0], double.Parse(r[8], CultureInfo.InvariantCulture)))], [(0.1, "10%"), (1, "honest")]));
        File.WriteAllText(Path.Combine(directory, "detection.svg"), Svg.Lines($"Time to catch a cheating partner ({n})", "seconds after the agreement", "share caught",
            [.. _sim.Metrics.Watches.GroupBy(w => w.Class).OrderBy(g => g.Key).Select(g =>
                Svg.Cdf(g.Key.ToString(), g.Select(w => w.Verdict is { } v ? Seconds(v - w.Formed) : double.PositiveInfinity)))], yMax: 1,
            targets: [(1, "60 s target at x = 60")]));
        File.WriteAllText(Path.Combine(directory, "anonymity.svg"), Svg.Bars($"Originator anonymity set, median ({n})", "nodes that could have built the circuit",
            [.. AnonymityBars()], [(100, "target 100")]));
    }

    /// <summary>The views the targets name, with what descriptors reveal, and the two an observer of every link narrows most.</summary>
    private IEnumerable<(string Label, double Median)> AnonymityBars()
    {
        foreach (var (hops, view, basis, label) in new[]
        {
            (2, "exit", "descriptors", "2-hop exit"), (3, "exit", "descriptors", "3-hop exit"), (3, "middle", "descriptors", "3-hop middle"),
            (3, "destination", "descriptors", "destination"), (3, "exit", "links", "exit, links"), (3, "middle", "links", "middle, links"),
        })
        {
            if (Anonymity.FirstOrDefault(r => r.Hops == hops && r.View == view && r.Basis == basis) is { } row) yield return (label, row.MedianSet);
        }
    }

    internal static void Csv(string directory, string name, IReadOnlyList<string> header, IEnumerable<string[]> rows)
    {
        var text = new StringBuilder();
        text.Append(string.Join(',', header)).Append('\n');
        foreach (var row in rows) text.Append(string.Join(',', row)).Append('\n');
        File.WriteAllText(Path.Combine(directory, name), text.ToString());
    }
}
