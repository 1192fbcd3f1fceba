using Quid.Core;
using Quid.Exchange;
using Quid.Wire;

namespace Quid.Sim;

/// <summary>One stretch during which a node's request was not met: from falling short to a new partner, and to being met again.</summary>
public readonly record struct RequestEpisode(AgentClass Class, long Start, long? FirstGrant, long? Met, int Satisfiers, bool LeftFirst)
{
    public bool Satisfiable => Satisfiers > 0;
}

/// <summary>One agreement with a cheater, seen by the partner that may catch it.</summary>
public sealed class CheaterWatch(AgentClass cls, long formed, bool promised)
{
    public AgentClass Class { get; } = cls;
    public long Formed { get; } = formed;
    /// <summary>Whether the cheater promised the prober anything: with nothing promised there is nothing to fall short of, or to probe.</summary>
    public bool Promised { get; } = promised;
    /// <summary>The first probe that fell short (a suspicion, rechecked before it counts).</summary>
    public long? Suspected { get; set; }
    /// <summary>The first confirmed shortfall: the grant shrinks.</summary>
    public long? Verdict { get; set; }
    /// <summary>Dropped and shunned.</summary>
    public long? Shunned { get; set; }
    /// <summary>The agreement ended before any verdict (churn, the link, the other side).</summary>
    public long? EndedFirst { get; set; }
}

/// <summary>A row of the time series: the network at one moment.</summary>
public sealed record SeriesRow(
    double Minutes, int Online, int Ultrapeers, double MeanLinks, int Agreements, int Requesting, double MetShare, double GrantedShare,
    int Searches, double MessagesPerNodeSecond, double GrantedOfOffered, double DeliveredOfCapacity, long UnadvertisableKbps, long UnmergedKbps,
    long StaleAdvertisedKbps);

/// <summary>Counts and timings gathered while a run goes, from hooks in <see cref="SimNode"/>.</summary>
public sealed class Metrics
{
    private readonly Simulation _sim;
    private readonly Dictionary<QueryId, SearchRecord> _searches = [];
    private readonly Queue<(QueryId Id, long Start)> _searchOrder = new();
    private readonly Dictionary<(int Prober, int Partner), CheaterWatch> _watches = [];
    private readonly HashSet<(int, int)> _honestPairsProbed = [];
    private readonly HashSet<(int, int)> _honestPairsFailed = [];
    private long _messagesAtLastRow;
    private long _lastRow;
    private int _searchesSinceRow;

    private sealed class SearchRecord(long start, bool inWindow)
    {
        public long Start { get; } = start;
        public bool InWindow { get; } = inWindow;
        public int Messages { get; set; }
    }

    internal Metrics(Simulation sim) => _sim = sim;

    public long Published { get; set; }
    public long Dials { get; set; }
    public long DialFailures { get; set; }
    public long RefusedLinks { get; set; }
    public long Dropped { get; set; }
    public long Rejected { get; set; }
    public long[] SentByType { get; } = new long[256];
    public long AgreementsFormed { get; private set; }
    public Dictionary<AgreementEndReason, long> Ends { get; } = [];
    public long HonestProbes { get; private set; }
    public long HonestFailures { get; private set; }
    public int HonestPairsProbed => _honestPairsProbed.Count;
    public int HonestPairsFailed => _honestPairsFailed.Count;
    public long CheaterProbes { get; private set; }

    /// <summary>Messages (queries and hits) caused by each search started in the measurement window.</summary>
    public List<int> SearchMessages { get; } = [];
    public List<RequestEpisode> Episodes { get; } = [];
    public IEnumerable<CheaterWatch> Watches => _watches.Values;
    public List<SeriesRow> Series { get; } = [];

    private long Now => _sim.Clock.Now;
    private bool InWindow => Now >= _sim.WindowStart;

    // ---- Searches ----

    internal void SearchStarted(SimNode node, QueryId query)
    {
        _searches[query] = new SearchRecord(Now, InWindow);
        _searchOrder.Enqueue((query, Now));
        _searchesSinceRow++;
    }

    internal void Sent(ControlMessage message)
    {
        SentByType[(byte)message.Type]++;
        _sim.Lookups?.Sent(message);
        var query = message switch
        {
            QueryMessage q => q.Id,
            QueryHitMessage h => h.Query,
            _ => (QueryId?)null,
        };
        if (query is { } id && _searches.TryGetValue(id, out var search)) search.Messages++;
    }

    /// <summary>A search is over once its hits have expired at the searcher: count it then.</summary>
    private void CloseSearches()
    {
        var lifetime = _sim.Options.Overlay.SearchResultLifetime.Ticks;
        while (_searchOrder.TryPeek(out var oldest) && oldest.Start + lifetime <= Now)
        {
            _searchOrder.Dequeue();
            if (_searches.Remove(oldest.Id, out var search) && search.InWindow) SearchMessages.Add(search.Messages);
        }
    }

    // ---- Requests ----

    /// <summary>Opens a request episode when a node falls short, and closes it when the request is met again.</summary>
    internal void RequestChanged(SimNode node)
    {
        if (node.Market.Request is null || !node.Online) return;
        var stats = node.Stats;
        bool met = node.Market.RequestMet;
        if (!met && stats.UnmetSince is null)
        {
            stats.UnmetSince = Now;
            stats.FirstGrant = null;
            // A scan of every node online, for a figure only episodes begun in the window report.
            stats.Satisfiers = InWindow ? _sim.Satisfiers(node) : 0;
        }
        else if (met && stats.UnmetSince is { } since)
        {
            Episodes.Add(new RequestEpisode(node.Agent.Class, since, stats.FirstGrant ?? Now, Now, stats.Satisfiers, false));
            stats.UnmetSince = null;
        }
    }

    internal void NodeLeft(SimNode node)
    {
        if (node.Stats.UnmetSince is { } since)
            Episodes.Add(new RequestEpisode(node.Agent.Class, since, node.Stats.FirstGrant, null, node.Stats.Satisfiers, true));
        node.Stats.UnmetSince = null;
    }

    /// <summary>At the end, episodes still open count as not (yet) met.</summary>
    internal void CloseEpisodes(IEnumerable<SimNode> nodes)
    {
        foreach (var node in nodes)
            if (node.Online && node.Stats.UnmetSince is { } since)
                Episodes.Add(new RequestEpisode(node.Agent.Class, since, node.Stats.FirstGrant, null, node.Stats.Satisfiers, false));
    }

    // ---- Agreements, probes, verdicts ----

    internal void AgreementFormed(SimNode node, Agreement agreement)
    {
        AgreementsFormed++;
        if (agreement.TheyGrant is not null && node.Stats.UnmetSince is not null && node.Stats.FirstGrant is null) node.Stats.FirstGrant = Now;
        if (_sim.Find(agreement.Partner) is { Agent.IsCheater: true } partner && agreement.WeGrant is not null)
            _watches.TryAdd((node.Index, partner.Index), new CheaterWatch(partner.Agent.Class, Now, agreement.TheyGrant is not null));
    }

    internal void AgreementEnded(SimNode node, Agreement agreement, AgreementEndReason reason)
    {
        Ends[reason] = Ends.GetValueOrDefault(reason) + 1;
        // Ended by our own verdict, the watch is caught (Probed sees it). Ended as under-delivered by
        // the cheater, which judged *us*, it ended before our verdict as surely as by churn.
        bool ourVerdict = reason == AgreementEndReason.Underdelivered && node.Market.Ledger.Find(agreement.Partner) is { Verdict: Verdict.Shunned };
        if (_sim.Find(agreement.Partner) is { } partner && _watches.TryGetValue((node.Index, partner.Index), out var watch)
            && watch.Verdict is null && watch.EndedFirst is null && !ourVerdict)
            watch.EndedFirst = Now;
    }

    internal void Probed(SimNode prober, SimNode partner, double delivered, long promised, IReadOnlyList<NodeEffect> effects)
    {
        var verdict = effects.OfType<NodeEffect.VerdictReached>().Select(v => (Verdict?)v.Verdict).FirstOrDefault();
        bool failed = verdict is Verdict.Underdelivering or Verdict.Shunned;
        var pair = (prober.Index, partner.Index);
        if (partner.Agent.Serves && partner.Online)
        {
            HonestProbes++;
            _honestPairsProbed.Add(pair);
            if (failed)
            {
                HonestFailures++;
                _honestPairsFailed.Add(pair);
            }
        }
        if (!_watches.TryGetValue(pair, out var watch)) return;
        CheaterProbes++;
        if (watch.Suspected is null && prober.Market.Ledger.Find(partner.Id) is { Suspected: true }) watch.Suspected = Now;
        if (failed)
        {
            watch.Suspected ??= Now;
            watch.Verdict ??= Now;
        }
        if (verdict == Verdict.Shunned) watch.Shunned ??= Now;
    }

    // ---- Rates and the time series ----

    /// <summary>Integrates what every node delivers to each partner over the last interval (all grants in use).</summary>
    internal void SampleTraffic(IReadOnlyList<SimNode> online, double seconds)
    {
        if (!InWindow) return;
        foreach (var node in online)
        {
            node.Stats.WindowSeconds += seconds;
            if (node.Market.Request is { } request) node.Stats.WantedKbit += request.Kbps * node.Core.PartnersWanted * seconds;
            double share = node.DeliveredShare();
            if (share <= 0) continue;
            foreach (var agreement in node.Market.Active)
            {
                if (agreement.WeGrant is not { } grant || _sim.Find(agreement.Partner) is not { Online: true } partner) continue;
                double kbit = grant.Kbps * share * seconds;
                node.Stats.GivenKbit += kbit;
                partner.Stats.ReceivedKbit += kbit;
            }
        }
    }

    internal void SampleSeries(IReadOnlyList<SimNode> online)
    {
        CloseSearches();
        int ultrapeers = 0, requesting = 0, met = 0, granted = 0, agreements = 0;
        long links = 0, offered = 0, grantedKbps = 0, capacity = 0;
        double delivered = 0;
        long unadvertisable = 0, unmerged = 0, stale = 0;
        foreach (var node in online)
        {
            if (node.Overlay.Role == Overlay.OverlayRole.Ultrapeer) ultrapeers++;
            links += node.Core.LinkCount;
            var market = node.Market;
            if (market.Request is not null)
            {
                requesting++;
                if (market.RequestMet) met++;
                if (market.ReceivedKbps > 0) granted++;
            }
            agreements += market.Active.Count();
            offered += market.Offer.Kbps;
            grantedKbps += market.Capacity.GrantedKbps;
            capacity += node.Agent.CapacityKbps;
            delivered += market.Capacity.GrantedKbps * node.DeliveredShare();
            var fragments = Fragmentation.Of(node);
            unadvertisable += fragments.UnadvertisableKbps;
            unmerged += fragments.UnmergedKbps;
            stale += fragments.StaleKbps;
        }
        double seconds = Math.Max(1e-9, TimeSpan.FromTicks(Now - _lastRow).TotalSeconds);
        long messages = _sim.Network.MessagesSent;
        Series.Add(new SeriesRow(
            TimeSpan.FromTicks(Now).TotalMinutes, online.Count, ultrapeers, online.Count == 0 ? 0 : (double)links / online.Count, agreements / 2,
            requesting, requesting == 0 ? 0 : (double)met / requesting, requesting == 0 ? 0 : (double)granted / requesting,
            _searchesSinceRow, online.Count == 0 ? 0 : (messages - _messagesAtLastRow) / seconds / online.Count,
            offered == 0 ? 0 : (double)grantedKbps / offered, capacity == 0 ? 0 : delivered / capacity, unadvertisable, unmerged, stale));
        _messagesAtLastRow = messages;
        _lastRow = Now;
        _searchesSinceRow = 0;
    }
}

/// <summary>
/// Free capacity that cannot be searched for, from the buddy allocator's invariants: grants,
/// reservations and free blocks must tile the offer exactly, no two free buddies may stay
/// unmerged, and the descriptor must advertise exactly the free blocks.
/// </summary>
public readonly record struct Fragmentation(long UnadvertisableKbps, long UnmergedKbps, long StaleKbps)
{
    public static Fragmentation Of(SimNode node)
    {
        var market = node.Market;
        var capacity = market.Capacity;
        var held = market.Active.Concat(market.Proposed).Select(a => a.OurAllocation).OfType<Allocation>().ToList();
        var free = capacity.FreeAllocations.ToList();
        // Tiling: every unit of the offer is in exactly one held or free block; gaps and overlaps are lost capacity.
        long units = 1L << market.Offer.Order, reached = 0, lost = 0;
        foreach (var block in held.Concat(free).OrderBy(b => b.Offset))
        {
            long end = block.Offset + (1L << block.Size.Order);
            lost += block.Offset > reached ? block.Offset - reached : Math.Min(reached, end) - block.Offset;
            reached = Math.Max(reached, end);
        }
        lost += Math.Max(0, units - reached);
        long unadvertisable = lost * Block.BaseKbps;
        var freeSet = free.Select(f => (f.Offset, f.Size.Order)).ToHashSet();
        long unmerged = free.Where(f => f.Size.Order < market.Offer.Order && freeSet.Contains((f.Offset ^ (1 << f.Size.Order), f.Size.Order))).Sum(f => f.Size.Kbps);
        long advertised = node.Overlay.Own?.FreeBlocks.Sum(b => b.Kbps) ?? 0;
        return new Fragmentation(unadvertisable, unmerged, Math.Abs(advertised - capacity.FreeKbps));
    }
}
