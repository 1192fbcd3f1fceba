using System.Diagnostics.Metrics;
using Quid.Circuits;
using Quid.Exchange;
using Quid.Node.Control;

namespace Quid.Node.Metrics;

/// <summary>
/// A node's metrics as System.Diagnostics.Metrics instruments, all observable: each reads what
/// the node already counts (its status, the ledger's accounts, the links' counters) when a
/// collector asks, so nothing on the data path does any extra work for them. Every node has its
/// own <see cref="Meter"/>, so several nodes in one process keep their numbers apart.
/// </summary>
public sealed class NodeMetrics : IDisposable
{
    public const string MeterName = "Quid.Node";

    private readonly QuidNode _node;
    private readonly NodeMonitor _monitor;

    public NodeMetrics(QuidNode node, NodeMonitor monitor)
    {
        _node = node;
        _monitor = monitor;
        Meter = new Meter(MeterName);
        Meter.CreateObservableCounter("quid.ledger.given", () => _node.LedgerTotals().Given, "By", "Bytes carried for partners, over the whole ledger (kept across restarts)");
        Meter.CreateObservableCounter("quid.ledger.received", () => _node.LedgerTotals().Received, "By", "Bytes partners carried for this node, over the whole ledger (kept across restarts)");
        Meter.CreateObservableGauge("quid.throughput", () => Rates(), "By/s", "Live rate of the ledger's counters, averaged over the last seconds");
        Meter.CreateObservableCounter("quid.link.sent", () => Snapshot().Neighbours.Select(n => new Measurement<long>(n.BytesSent, Peer(n))), "By", "Bytes sent on each open link, cells and framing");
        Meter.CreateObservableCounter("quid.link.received", () => Snapshot().Neighbours.Select(n => new Measurement<long>(n.BytesReceived, Peer(n))), "By", "Bytes received on each open link");
        Meter.CreateObservableGauge("quid.link.queued", () => Snapshot().Neighbours.Sum(n => n.QueuedBytes), "By", "Bytes waiting in the links' send queues");
        Meter.CreateObservableGauge("quid.neighbours", () => Neighbours(), null, "Open links to other nodes, by the neighbour's overlay role");
        Meter.CreateObservableCounter("quid.links.refused", () => _node.RefusedLinks, null, "Links refused after the handshake: not a friend, shunned, or no room");
        Meter.CreateObservableCounter("quid.introductions.dropped", () => _node.IntroductionsDropped, null,
            "Introductions dropped as an introduction point: malformed, replayed, outbid under a flood or kept waiting too long");
        Meter.CreateObservableGauge("quid.agreements", () => Snapshot().Agreements.Count, null, "Active bandwidth agreements");
        Meter.CreateObservableGauge("quid.partners", () => Partners(), null, "Partners in the ledger, by verdict");
        Meter.CreateObservableGauge("quid.offer", () => Snapshot().Offer.Kbps, "kbit/s", "The block this node offers");
        Meter.CreateObservableGauge("quid.offer.free", () => Snapshot().FreeBlocks.Sum(b => b.Kbps), "kbit/s", "Offered capacity not granted to anyone: what the node advertises");
        Meter.CreateObservableGauge("quid.grant.given", () => Snapshot().Agreements.Sum(a => a.WeGrant?.Kbps ?? 0), "kbit/s", "What this node grants its partners, in all");
        Meter.CreateObservableGauge("quid.grant.received", () => Snapshot().ReceivedKbps, "kbit/s", "What partners grant this node, in all");
        Meter.CreateObservableGauge("quid.request", () => Snapshot().Request?.Kbps ?? 0, "kbit/s", "The block this node asks for; 0 for a donor");
        Meter.CreateObservableGauge("quid.request.met", () => Snapshot().RequestMet ? 1 : 0, null, "1 when partners grant all of the request");
        Meter.CreateObservableGauge("quid.circuits", () => Circuits(), null, "Open circuits, by this node's position in them");
        Meter.CreateObservableGauge("quid.streams", () => _node.Circuits.Circuits.Sum(c => c.StreamCount), null, "Open streams, on every circuit this node is an end of");
        Meter.CreateObservableGauge("quid.overlay.known_peers", () => Snapshot().Overlay.KnownPeers, null, "Nodes this node knows of in the overlay");
        Meter.CreateObservableCounter("quid.overlay.flow_dropped", () => FlowDropped(), null,
            "Queries and hits dropped rather than queued, their link being more than a second behind (flow control)");
        Meter.CreateObservableGauge("quid.reachability", () => ReachabilityStates(), null,
            "1 for whether others can dial this node: reachable (a link dialed in), advertised (an address, no link in yet) or not_reachable (dial-out only)");
        if (node.Cache is { } cache)
        {
            Meter.CreateObservableCounter("quid.cache.requests", () => cache.Counters.Requests, null, "Requests the exit cache could have answered: GET or HEAD, without credentials or conditions");
            Meter.CreateObservableCounter("quid.cache.hits", () => cache.Counters.Hits, null, "Of those, answered from a stored body");
            Meter.CreateObservableCounter("quid.cache.served", () => cache.Counters.BytesServed, "By", "Body bytes sent for those requests, from the store or the origin");
            Meter.CreateObservableCounter("quid.cache.saved", () => cache.Counters.BytesFromStore, "By", "Body bytes sent from the store: what origins did not send again");
            Meter.CreateObservableGauge("quid.cache.hit_ratio", () => cache.Counters.HitRatio, null, "Hits per request the cache could have answered, since the node started");
            Meter.CreateObservableGauge("quid.cache.byte_hit_ratio", () => cache.Counters.ByteHitRatio, null, "Bytes sent from the store per byte sent, since the node started");
            Meter.CreateObservableGauge("quid.cache.used", () => cache.Store.Used, "By", "Disk the exit cache takes, index included, in file-system blocks");
            Meter.CreateObservableGauge("quid.cache.entries", () => cache.Store.Count, null, "Responses in the exit cache");
        }
        Meter.CreateObservableGauge("quid.credits.held", () => node.Wallet.Held.Sum(c => c.Value), "MiBd", "Credits this node holds, over all issuers, in MiB·days");
        Meter.CreateObservableCounter("quid.credits.issued", () => node.CreditIssuer.Issued, "MiBd", "Credits issued to partners for the disk this node grants them, since it started");
        Meter.CreateObservableCounter("quid.credits.exchanged", () => node.CreditIssuer.Exchanged, "MiBd", "Credits spent at this node's desk in exchanges, since it started");
        Meter.CreateObservableGauge("quid.credits.spent", () => node.CreditIssuer.SpentCount, null, "Credits in this node's spent set: those spent here in the epochs it still takes");
        Meter.CreateObservableGauge("quid.disk.offered", () => node.Options.OfferDisk, "By", "Disk this node grants partners, over all agreements");
        if (node.Storage is { } storage)
        {
            Meter.CreateObservableGauge("quid.hosted.used", () => storage.Used, "By", "Bytes this node holds for others, sealed by their owners, uploads under way included");
            Meter.CreateObservableGauge("quid.hosted.objects", () => storage.Objects().Count, null, "Objects this node holds for others");
        }
        Meter.CreateObservableCounter("quid.credits.redeemed", () => node.CreditIssuer.Redeemed, "MiBd", "Credits taken as payment for storage and programs at this node, since it started");
        if (node.Programs is { } programs)
        {
            Meter.CreateObservableGauge("quid.programs.hosted", () => programs.Programs().Count, null, "Programs this node runs for others, paused ones included");
            Meter.CreateObservableGauge("quid.programs.fuel", () => programs.Programs().Sum(p => p.Fuel), null, "Fuel left to the programs this node runs, in all");
            Meter.CreateObservableGauge("quid.programs.memory", () => programs.Programs().Sum(p => p.MemoryBytes), "By", "Memory the programs this node runs hold");
        }
        Meter.CreateObservableGauge("quid.programs.deployed", () => node.DeployedPrograms().Count, null, "Programs this node deployed on others, as last checked");
        Meter.CreateObservableGauge("quid.uptime", () => _monitor.Uptime.TotalSeconds, "s", "Seconds since the node started");
    }

    public Meter Meter { get; }

    /// <summary>The status the monitor sampled last (within a second): a collection never waits for the node.</summary>
    private NodeStatus Snapshot() => _monitor.Latest;

    private static KeyValuePair<string, object?> Peer(NeighbourStatus neighbour) => new("peer", neighbour.Id.Brief);

    private IEnumerable<Measurement<double>> Rates()
    {
        var rates = _monitor.Rates;
        return [new(rates.GivenBytesPerSecond, new KeyValuePair<string, object?>("direction", "given")),
            new(rates.ReceivedBytesPerSecond, new KeyValuePair<string, object?>("direction", "received"))];
    }

    private IEnumerable<Measurement<long>> FlowDropped()
    {
        var overlay = Snapshot().Overlay;
        return [new(overlay.QueriesDropped, new KeyValuePair<string, object?>("message", "query")),
            new(overlay.HitsDropped, new KeyValuePair<string, object?>("message", "hit"))];
    }

    private IEnumerable<Measurement<int>> Neighbours()
    {
        var neighbours = Snapshot().Neighbours;
        int ultrapeers = neighbours.Count(n => n.Ultrapeer);
        return [new(ultrapeers, new KeyValuePair<string, object?>("role", "ultrapeer")),
            new(neighbours.Count - ultrapeers, new KeyValuePair<string, object?>("role", "leaf"))];
    }

    private IEnumerable<Measurement<int>> Partners()
    {
        var partners = Snapshot().Partners;
        return Enum.GetValues<Verdict>().Select(v => new Measurement<int>(partners.Count(p => p.Verdict == v), new KeyValuePair<string, object?>("verdict", v.ToString().ToLowerInvariant())));
    }

    private IEnumerable<Measurement<int>> Circuits()
    {
        var circuits = _node.Circuits.Circuits.Where(c => c.State != CircuitState.Closed).ToList();
        return Enum.GetValues<CircuitRole>().Select(r => new Measurement<int>(circuits.Count(c => c.Role == r), new KeyValuePair<string, object?>("role", r.ToString().ToLowerInvariant())));
    }

    private IEnumerable<Measurement<int>> ReachabilityStates()
    {
        var state = ControlViews.Reachable(Snapshot().Reachability).State;
        return Enum.GetValues<Reachability>().Select(r => new Measurement<int>(r == state ? 1 : 0,
            new KeyValuePair<string, object?>("state", r == Control.Reachability.NotReachable ? "not_reachable" : r.ToString().ToLowerInvariant())));
    }

    public void Dispose() => Meter.Dispose();
}
