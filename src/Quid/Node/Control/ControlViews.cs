using Quid.Circuits;
using Quid.Crypto;
using Quid.Exchange;
using Quid.Services;
using Quid.Wire;

namespace Quid.Node.Control;

/// <summary>Builds the control API's answers from a running node.</summary>
public static class ControlViews
{
    public static IdReport Id(QuidNode node) => new(node.Id.ToString(), node.Id.Brief);

    public static async Task<StatusReport> StatusAsync(QuidNode node, NodeMonitor monitor)
    {
        var status = await node.StatusAsync().ConfigureAwait(false);
        var circuits = node.Circuits.Circuits.Where(c => c.State != CircuitState.Closed).ToList();
        var phase = NodeMonitor.PhaseOf(status, status.SocksEndPoint is not null);
        return new StatusReport(
            status.Id.ToString(),
            status.Role.ToString(),
            phase,
            NodeMonitor.Describe(phase, status, node.Options.Request),
            monitor.Started,
            monitor.Uptime.TotalSeconds,
            status.LinkEndPoint.ToString(),
            status.SocksEndPoint?.ToString(),
            node.Pool.Hops,
            status.Offer.Kbps,
            node.Options.Request?.Kbps,
            status.RequestMet,
            status.ReceivedKbps,
            status.Agreements.Sum(a => a.WeGrant?.Kbps ?? 0),
            status.FreeBlocks.Sum(b => b.Kbps),
            OfferBlocks(status.Offer, await node.GrantedBlocksAsync().ConfigureAwait(false), status.FreeBlocks),
            monitor.Rates,
            status.Neighbours.Count,
            status.Agreements.Count,
            status.Circuits,
            circuits.Count(c => c.Role != CircuitRole.Origin),
            circuits.Sum(c => c.StreamCount),
            status.Overlay.KnownPeers,
            Reachable(status.Reachability));
    }

    /// <summary>
    /// Whether others can dial us, in words that claim no more than is known: an address is only
    /// "reachable" once another node's link has arrived through it.
    /// </summary>
    internal static ReachabilityReport Reachable(ReachabilityStatus r)
    {
        var mapping = r.PortMapping;
        string protocol = mapping.Protocol == Links.PortMapping.MappingProtocol.Pcp ? "PCP" : "NAT-PMP";
        string mappingText = mapping.State switch
        {
            "mapped" => $"mapped by {protocol} on gateway {mapping.Gateway}",
            "asking" => $"asking gateway {mapping.Gateway}",
            "failed" => $"gateway {mapping.Gateway}: {mapping.Reason}",
            _ => mapping.Reason ?? "off",
        };
        string origin = r.Origin switch
        {
            AddressOrigin.PortMapping => mappingText,
            AddressOrigin.Advertise => "set by advertise",
            _ => "the listen address",
        };
        string dialedIn = r.LinksDialedIn == 1 ? "1 link dialed in" : $"{r.LinksDialedIn} links dialed in";
        var (state, text) = r.Advertised switch
        {
            null => (Reachability.NotReachable, $"not reachable: no public address, dial-out only (port mapping: {mappingText})"
                + (r.LinksDialedIn > 0 ? $"; {dialedIn} all the same, from nodes that know this address" : "")),
            { } address when r.LinksDialedIn > 0 => (Reachability.Reachable, $"reachable at {address} ({origin}; {dialedIn})"),
            { } address => (Reachability.Advertised, $"advertised at {address} ({origin}), no link dialed in yet"),
        };
        return new ReachabilityReport(state, r.Advertised?.ToString(), r.Origin.ToString(), r.LinksDialedIn, mapping.State, mapping.Gateway?.ToString(),
            mapping.Protocol is null ? null : protocol, mappingText, text);
    }

    /// <summary>
    /// The offer as the buddy allocator holds it, block by block in order: each grant where it
    /// sits, and the rest cut into the aligned blocks that the allocator keeps free. A piece that
    /// is neither granted nor among the free blocks is set aside for a proposal awaiting its answer.
    /// </summary>
    internal static IReadOnlyList<OfferBlockReport> OfferBlocks(Block offer, IReadOnlyList<(NodeId Partner, Allocation Block)> granted, IReadOnlyList<Block> free)
    {
        var blocks = new List<OfferBlockReport>();
        var freeCount = free.GroupBy(b => b.Order).ToDictionary(g => g.Key, g => g.Count());
        Walk(0, offer.Order);
        return [.. blocks.OrderBy(b => b.OffsetKbps)];

        void Walk(int offset, int order)
        {
            int size = 1 << order;
            var holder = granted.Where(g => g.Block.Offset == offset && g.Block.Size.Order == order).Select(g => (NodeId?)g.Partner).FirstOrDefault();
            if (holder is { } partner)
            {
                blocks.Add(new OfferBlockReport(offset * (long)Block.BaseKbps, new Block((byte)order).Kbps, OfferBlockState.Granted, partner.ToString()));
                return;
            }
            bool overlapsGrant = granted.Any(g => g.Block.Offset < offset + size && offset < g.Block.Offset + (1 << g.Block.Size.Order));
            if (!overlapsGrant && freeCount.GetValueOrDefault((byte)order) > 0)
            {
                freeCount[(byte)order]--;
                blocks.Add(new OfferBlockReport(offset * (long)Block.BaseKbps, new Block((byte)order).Kbps, OfferBlockState.Free, null));
                return;
            }
            if (order == 0)
            {
                blocks.Add(new OfferBlockReport(offset * (long)Block.BaseKbps, Block.BaseKbps, OfferBlockState.Reserved, null));
                return;
            }
            // The allocator splits a block keeping the lower half for the grant, so free halves are the upper ones.
            Walk(offset + size / 2, order - 1);
            Walk(offset, order - 1);
        }
    }

    public static async Task<IReadOnlyList<PeerReport>> PeersAsync(QuidNode node)
    {
        var status = await node.StatusAsync().ConfigureAwait(false);
        var verdicts = status.Partners.ToDictionary(p => p.Id, p => p.Verdict);
        return [.. status.Neighbours
            .OrderByDescending(n => n.Ultrapeer).ThenBy(n => n.Since)
            .Select(n =>
            {
                var agreements = status.Agreements.Where(a => a.Partner == n.Id).ToList();
                return new PeerReport(n.Id.ToString(), n.Ultrapeer, n.Remote.ToString(), n.Outbound, n.Since, n.BytesSent, n.BytesReceived, n.QueuedBytes,
                    agreements.Sum(a => a.WeGrant?.Kbps ?? 0), agreements.Sum(a => a.TheyGrant?.Kbps ?? 0),
                    agreements.Count > 0 && verdicts.TryGetValue(n.Id, out var verdict) ? verdict.ToString() : null,
                    agreements.Count > 0 && agreements.All(a => a.Private));
            })];
    }

    public static CircuitsReport Circuits(QuidNode node)
    {
        var carried = node.Circuits.Circuits.Where(c => c.State != CircuitState.Closed && c.Role != CircuitRole.Origin).ToList();
        return new CircuitsReport(
            node.Pool.Hops,
            [.. node.Pool.Circuits.OrderBy(c => c.CreatedAt).Select(c => new CircuitReport([.. c.Hops.Select(h => h.Id.ToString())], c.CreatedAt, c.StreamCount))],
            carried.Count(c => c.Role == CircuitRole.Relay),
            carried.Count(c => c.Role == CircuitRole.Exit),
            carried.Sum(c => c.StreamCount));
    }

    /// <summary>
    /// The ledger as the database holds it (every partner ever, with past agreements), brought up
    /// to the second with the running node's counters, grants and verdicts.
    /// </summary>
    public static async Task<IReadOnlyList<LedgerRow>> LedgerAsync(QuidNode node, string dataDirectory)
    {
        IReadOnlyList<LedgerEntry> stored;
        using (var database = NodeDatabase.OpenReadOnly(dataDirectory, check: false)) stored = database.ReadLedger();
        var status = await node.StatusAsync().ConfigureAwait(false);
        var rows = stored.ToDictionary(e => e.Partner, LedgerRow.From);
        foreach (var partner in status.Partners)
        {
            var agreements = status.Agreements.Where(a => a.Partner == partner.Id).ToList();
            var row = rows.GetValueOrDefault(partner.Id) ?? new LedgerRow(partner.Id.ToString(), "", 0, 0, null, 0, 0, 0, 0, null, null);
            rows[partner.Id] = row with
            {
                Verdict = partner.Verdict.ToString(),
                WeGrantKbps = agreements.Sum(a => a.WeGrant?.Kbps ?? 0),
                PromisedKbps = agreements.Sum(a => a.TheyGrant?.Kbps ?? 0),
                DeliveredKbps = partner.DeliveredKbps,
                BytesGiven = partner.BytesGiven,
                BytesReceived = partner.BytesReceived,
                ActiveAgreements = agreements.Count,
                ShunnedUntil = partner.ShunnedUntil,
            };
        }
        return [.. rows.Values.OrderByDescending(r => r.ActiveAgreements).ThenByDescending(r => r.BytesGiven + r.BytesReceived)];
    }

    /// <summary>The services the node publishes, by name.</summary>
    public static IReadOnlyList<ServiceReport> Services(QuidNode node) =>
        [.. node.Services.Select(Service).OfType<ServiceReport>().OrderBy(s => s.Name, StringComparer.Ordinal)];

    /// <summary>The moving services the node follows, by name, each with its address now.</summary>
    public static IReadOnlyList<FollowReport> Follows(QuidNode node) =>
        [.. node.ServiceClient.Follows.Select(f => new FollowReport(f.Name, f.Name + SessionAddress.Suffix, f.Address.ToString(), f.Until))];

    /// <summary>One service as the API reports it; null if it was removed while it was being read.</summary>
    public static ServiceReport? Service(HostedService service)
    {
        try
        {
            return new ServiceReport(service.Name, service.Kind, service.Address.ToString(), service.Published.IsCompletedSuccessfully, service.Started,
                service.IntroductionPointsUp, service.OpenMeetings, service.Introduced, service.Met, service.Dropped, service.FollowSecret, service.AddressUntil, service.AccessKey);
        }
        catch (ObjectDisposedException)
        {
            return null;
        }
    }
}
