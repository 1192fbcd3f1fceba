using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Quid.Crypto;
using Quid.Links;
using Quid.Node;
using Quid.Overlay;
using Quid.Wire;
using Xunit.Abstractions;

namespace Quid.Tests.Integration;

/// <summary>The overlay on real sockets: discovery, ultrapeers and search at 30 nodes, friends-only mode, restarts.</summary>
public sealed class OverlayNetworkTests(ITestOutputHelper output)
{
    /// <summary>Fast clocks for a test: a real network uses minutes where these use seconds.</summary>
    internal static NodeOptions Quick(NodeOptions options) => options with
    {
        Overlay = options.Overlay with
        {
            UltrapeerMinUptime = TimeSpan.Zero,
            PromotionDelay = TimeSpan.FromSeconds(1),
            DemotionDelay = TimeSpan.FromMinutes(5),
            PeerExchangeInterval = TimeSpan.FromSeconds(1),
            RedialAfter = TimeSpan.FromSeconds(2),
        },
    };

    [Fact]
    public async Task Thirty_nodes_from_one_bootstrap_find_peers_elect_ultrapeers_and_any_leaf_finds_the_matching_offers()
    {
        // Three big donors among 27 small traders: a search for 8192 kbps from a node that can grant
        // nothing must find exactly the three donors, wherever they sit in the overlay.
        var specs = Enumerable.Range(0, 30).Select(i => i % 10 == 9 ? new NodeSpec(16384, 0) : new NodeSpec(512, 256)).ToArray();
        await using var network = await TestNetwork.StartAsync(100, specs, configure: (_, o, _) => Quick(o));
        var donors = network.Nodes.Where((_, i) => i % 10 == 9).Select(n => n.Id).ToHashSet();

        await Eventually.WaitUntilAsync(async () =>
        {
            var statuses = await network.StatusesAsync();
            return statuses.All(s => s.Overlay.KnownPeers >= 5)
                && statuses.Any(s => s.Role == OverlayRole.Ultrapeer)
                && statuses.Where(s => s.Role == OverlayRole.Leaf).All(s => s.Neighbours.Any(n => n.Ultrapeer));
        }, TimeSpan.FromSeconds(60), "every node to know 5 peers and every leaf to reach an ultrapeer");

        var final = await network.StatusesAsync();
        int ultrapeers = final.Count(s => s.Role == OverlayRole.Ultrapeer);
        Assert.True(ultrapeers is >= 1 and <= 15, $"{ultrapeers} ultrapeers among 30"); // ultrapeers emerge, but not everyone becomes one

        output.WriteLine($"{ultrapeers} ultrapeers, known peers {string.Join(",", final.Select(s => s.Overlay.KnownPeers))}");

        var leaves = network.Nodes.Where((n, i) => final[i].Role == OverlayRole.Leaf && !donors.Contains(n.Id)).ToArray();
        Assert.NotEmpty(leaves);
        var started = DateTime.UtcNow;
        foreach (var leaf in leaves.Take(5))
        {
            // The ultrapeers may still be meshing: search again (as the seed's loop does) until the deadline.
            // Each search has time to widen through every step (dynamic querying: a step a second).
            IReadOnlyList<Descriptor> found = [];
            try {
            await Eventually.WaitUntilAsync(async () =>
            {
                found = await leaf.SearchAsync(Block.FromKbps(8192), canGrant: null, TimeSpan.FromSeconds(6));
                return found.Count >= donors.Count;
            }, TimeSpan.FromSeconds(40), "a leaf's search to find all three donors");
            } catch (TimeoutException) {
                var names = network.Nodes.Select((n, i) => (n.Id, i)).ToDictionary(p => p.Id, p => p.i);
                output.WriteLine($"searcher {names[leaf.Id]} found {string.Join(",", found.Select(d => names[d.Id]))}");
                foreach (var (n, i) in network.Nodes.Select((n, i) => (n, i))) {
                    var st = await n.StatusAsync();
                    output.WriteLine($"{i} {st.Role} donor={donors.Contains(n.Id)} free={string.Join("+", st.FreeBlocks)} nbrs={string.Join(",", st.Neighbours.Select(x => names.GetValueOrDefault(x.Id, -1) + (x.Ultrapeer ? "U" : "")))}");
                }
                throw;
            }
            Assert.Equal(donors.Order(), found.Select(d => d.Id).Order());
            Assert.All(found, d => Assert.True(Quid.Overlay.Overlay.Matches(d, Block.FromKbps(8192), null)));
        }
        output.WriteLine($"searches done {(DateTime.UtcNow - started).TotalSeconds:0.0} s after the overlay formed");
    }

    [Fact]
    public async Task A_friends_only_node_links_only_to_friends_and_still_gets_its_request_met()
    {
        // Nodes 0 and 1 are the friends; node 2 is friends-only; nodes 3 and 4 are strangers who
        // even bootstrap through the friends-only node.
        var specs = new[] { new NodeSpec(1024, 512), new NodeSpec(1024, 512), new NodeSpec(512, 256), new NodeSpec(1024, 256), new NodeSpec(1024, 256) };
        await using var network = await TestNetwork.StartAsync(140, specs, configure: (i, o, started) => Quick(i switch
        {
            2 => o with { Peers = [], Friends = [.. started.Take(2).Select(n => $"{n.Id}@{n.LinkEndPoint}")] },
            3 or 4 => o with { Peers = [started[2].LinkEndPoint.ToString(), started[0].LinkEndPoint.ToString()] },
            _ => o,
        }));
        var loner = network.Nodes[2];
        var friends = network.Nodes.Take(2).Select(n => n.Id).ToHashSet();

        async Task AssertOnlyFriendsAsync()
        {
            var status = await loner.StatusAsync();
            Assert.All(status.Neighbours, n => Assert.Contains(n.Id, friends));
            Assert.All(status.Agreements, a => Assert.Contains(a.Partner, friends));
        }

        await Eventually.WaitUntilAsync(async () =>
        {
            await AssertOnlyFriendsAsync();
            var statuses = await network.StatusesAsync();
            return statuses[2].RequestMet && statuses.Skip(3).All(s => s.RequestMet) && loner.RefusedLinks > 0;
        }, TimeSpan.FromSeconds(30), "the friends-only node's request to be met, and strangers to have been refused");
        await AssertOnlyFriendsAsync();
    }

    [Fact]
    public async Task A_restarted_node_rejoins_from_its_peer_cache_without_a_bootstrap_list()
    {
        var specs = new[] { new NodeSpec(1024, 512), new NodeSpec(1024, 512), new NodeSpec(1024, 512) };
        await using var network = await TestNetwork.StartAsync(150, specs, configure: (_, o, _) => Quick(o));
        await Eventually.WaitUntilAsync(async () => (await network.Nodes[2].StatusAsync()).Neighbours.Count >= 2, TimeSpan.FromSeconds(20), "node 2 to link both others");

        var address = network.Nodes[2].LinkEndPoint;
        await network.StopAsync(2);
        var restarted = await network.RestartAsync(2, Quick(new NodeOptions
        {
            DataDirectory = network.DataDirectory(2),
            Listen = address,
            Socks = null,
            HttpProxy = null,
            Offer = Block.FromKbps(1024),
            Request = Block.FromKbps(512),
            Peers = [], // nothing to bootstrap from but what it remembers
            ExitPolicy = ExitPolicy.AcceptAll,
            TickInterval = TimeSpan.FromMilliseconds(100),
            Hops = 1,
        }));
        await Eventually.WaitUntilAsync(async () => await restarted.StatusAsync() is { Neighbours.Count: >= 1, RequestMet: true }, TimeSpan.FromSeconds(20),
            "the restarted node to link a remembered peer and meet its request");
    }
}

/// <summary>Memory is measured with a quiet heap, so this class runs alone.</summary>
[CollectionDefinition(nameof(SerialTests), DisableParallelization = true)]
public sealed class SerialTests;

[Collection(nameof(SerialTests))]
public sealed class OverlayFloodTests
{
    [Fact]
    public async Task A_neighbour_flooding_queries_at_100_times_the_limit_is_throttled_then_dropped_and_memory_stays_bounded()
    {
        var specs = new[] { new NodeSpec(1024, 512), new NodeSpec(1024, 512) };
        await using var network = await TestNetwork.StartAsync(160, specs, configure: (_, o, _) => OverlayNetworkTests.Quick(o));
        var victim = network.Nodes[1];
        await Eventually.WaitUntilAsync(async () => (await victim.StatusAsync()).Neighbours.Count >= 1, TimeSpan.FromSeconds(20), "the victim to join");

        GC.Collect();
        GC.WaitForPendingFinalizers();
        long before = GC.GetTotalMemory(forceFullCollection: true);

        using var identity = NodeIdentity.Generate(out _);
        await using var attacker = await Link.ConnectAsync(victim.LinkEndPoint, IPAddress.Loopback, identity, victim.Id, new LinkOptions(), TimeProvider.System, NullLogger.Instance, default);
        Ignore.Start(attacker);
        // A leaf may send 2 queries a second; this sends 200 a second, each with a fresh id.
        var limit = new OverlayOptions().LeafQueryRate.PerSecond;
        int sent = 0;
        var started = DateTime.UtcNow;
        while (attacker.State == LinkState.Open && DateTime.UtcNow - started < TimeSpan.FromSeconds(20))
        {
            attacker.SendControl(new QueryMessage(QueryId.New(), 4, 0, Block.FromKbps(16), null, 8));
            sent++;
            if (sent % 20 == 0) await Task.Delay(TimeSpan.FromSeconds(20 / (limit * 100)));
        }
        await attacker.Closed.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(sent < 2000, $"The flooder was dropped only after {sent} queries.");

        var status = await victim.StatusAsync();
        Assert.True(status.Overlay.QueryRoutes <= 40, $"{status.Overlay.QueryRoutes} query routes kept for a flood that was refused.");
        GC.Collect();
        GC.WaitForPendingFinalizers();
        long after = GC.GetTotalMemory(forceFullCollection: true);
        Assert.True(after - before < 16 * 1024 * 1024, $"Managed memory grew by {(after - before) >> 20} MiB during the flood.");

        // Shunned: it cannot simply come back.
        await using var again = await Link.ConnectAsync(victim.LinkEndPoint, IPAddress.Loopback, identity, victim.Id, new LinkOptions(), TimeProvider.System, NullLogger.Instance, default);
        Ignore.Start(again);
        await again.Closed.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(victim.RefusedLinks >= 1);
    }
}
