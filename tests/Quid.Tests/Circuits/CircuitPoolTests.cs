using Microsoft.Extensions.Logging.Abstractions;
using Quid.Circuits;
using Quid.Crypto;
using Quid.Tests.Integration;
using Quid.Tests.Wire;
using Quid.Wire;

namespace Quid.Tests.Circuits;

/// <summary>Choosing paths over a snapshot of the agreement graph, and building them ahead.</summary>
public sealed class CircuitPoolTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);

    /// <summary>A descriptor of <paramref name="node"/> that lists <paramref name="partners"/> and exits by <paramref name="policy"/>.</summary>
    private static Descriptor Describe(CircuitHarness net, CircuitNode node, ExitPolicy? policy = null, params CircuitNode[] partners) =>
        TestDescriptors.Make(node.Identity, Block.FromKbps(1024), null, policy: policy ?? ExitPolicy.AcceptAll,
            partners: [.. partners.Select(p => p.Id)], published: net.Time.GetUtcNow());

    private static CircuitPool Pool(CircuitHarness net, CircuitNode origin, Func<int, CancellationToken, ValueTask<PathGraph>> graph, int hops = 3) =>
        new(origin.Builder, new PathOptions { Hops = hops, Random = new Random(7) }, new PathSource(origin.Id, graph, "default"), net.Time, NullLogger.Instance);

    /// <summary>
    /// A two-hop pool whose paths go through <paramref name="first"/> to whichever exits
    /// <paramref name="exits"/> lists when it asks, once it has built a circuit ahead.
    /// </summary>
    private static async Task<CircuitPool> PoolThroughAsync(CircuitHarness net, CircuitNode origin, CircuitNode first, Func<CircuitNode[]> exits)
    {
        var pool = Pool(net, origin, (_, _) => ValueTask.FromResult(new PathGraph(
            [new FirstHop(origin.PortTo(first), Describe(net, first, null, exits()), 1024)],
            exits().ToDictionary(e => e.Id, e => Describe(net, e)))), hops: 2);
        pool.Maintain();
        await Eventually.WaitUntilAsync(() => pool.Circuits.Count == 1, Deadline, "a circuit built ahead");
        return pool;
    }

    [Fact]
    public void Paths_are_chosen_with_a_cryptographic_random_source_unless_a_test_injects_one() =>
        Assert.Same(SecureRandom.Instance, new PathOptions().Random);

    [Fact]
    public async Task A_circuit_built_ahead_walks_from_a_first_hop_through_partners_of_partners_to_an_exit_that_allows_the_ports()
    {
        using var net = new CircuitHarness();
        var (origin, first, middle, closed, open) = (net.AddNode(), net.AddNode(), net.AddNode(), net.AddNode(), net.AddNode());
        net.Partners(origin, first);
        net.Partners(first, middle);
        net.Partners(middle, closed);
        net.Partners(middle, open);
        // The middle lists the first hop and us as partners too: neither may come twice, nor we at all.
        var graph = new PathGraph(
            [new FirstHop(origin.PortTo(first), Describe(net, first, null, middle), 1024)],
            new Dictionary<NodeId, Descriptor>
            {
                [middle.Id] = Describe(net, middle, null, first, origin, closed, open),
                [closed.Id] = Describe(net, closed, ExitPolicy.RejectAll),
                [open.Id] = Describe(net, open),
            });
        var pool = Pool(net, origin, (_, _) => ValueTask.FromResult(graph));

        pool.Maintain();

        await Eventually.WaitUntilAsync(() => pool.Circuits.Count == 1, Deadline, "a circuit built ahead");
        var circuit = Assert.Single(pool.Circuits);
        Assert.Equal([first.Id, middle.Id, open.Id], circuit.Hops.Select(h => h.Id));
        Assert.Equal("default", circuit.Isolation);
        Assert.Equal(open.Id, circuit.ExitDescriptor!.Id);
    }

    [Fact]
    public async Task A_build_with_no_path_yet_waits_for_one_and_gives_up_only_after_its_patience()
    {
        using var net = new CircuitHarness();
        var (origin, first, middle, last) = (net.AddNode(), net.AddNode(), net.AddNode(), net.AddNode());
        net.Partners(origin, first);
        net.Partners(first, middle);
        net.Partners(middle, last);
        var joined = new PathGraph(
            [new FirstHop(origin.PortTo(first), Describe(net, first, null, middle), 1024)],
            new Dictionary<NodeId, Descriptor> { [middle.Id] = Describe(net, middle, null, last), [last.Id] = Describe(net, last) });
        var alone = new PathGraph([], new Dictionary<NodeId, Descriptor>());
        bool partnered = false;
        var pool = Pool(net, origin, (_, _) => ValueTask.FromResult(partnered ? joined : alone));
        var patience = new PathOptions().PathPatience;
        var start = net.Time.GetUtcNow();

        // A node that has just started has no partner yet: the build waits for one, on the node's clock.
        var building = pool.BuildDedicatedAsync("early", default);
        await AdvanceUntilAsync(net, () => net.Time.GetUtcNow() - start >= patience / 2);
        Assert.False(building.IsCompleted);
        partnered = true;
        await AdvanceUntilAsync(net, () => building.IsCompleted);
        Assert.Equal([first.Id, middle.Id, last.Id], (await building).Hops.Select(h => h.Id));
        Assert.True(net.Time.GetUtcNow() - start < patience);

        // With no path ever, it fails as it did at once before, but only once its patience is spent.
        partnered = false;
        start = net.Time.GetUtcNow();
        var hopeless = pool.BuildDedicatedAsync("alone", default);
        await AdvanceUntilAsync(net, () => hopeless.IsCompleted);
        Assert.True(net.Time.GetUtcNow() - start >= patience);
        var failed = await Assert.ThrowsAsync<StreamException>(() => hopeless);
        Assert.Equal(EndReason.Unreachable, failed.Reason);
        Assert.Contains("No partner grants us bandwidth yet", failed.Message);
    }

    /// <summary>Moves the node's clock on in small steps, letting what waits on it run, until <paramref name="done"/> (or a real-time deadline).</summary>
    private static async Task AdvanceUntilAsync(CircuitHarness net, Func<bool> done)
    {
        var deadline = DateTime.UtcNow + Deadline;
        while (!done())
        {
            Assert.True(DateTime.UtcNow < deadline, "the clock moved on for too long");
            net.Time.Advance(TimeSpan.FromMilliseconds(50));
            await Task.Delay(1);
        }
    }

    [Fact]
    public async Task An_exit_that_cannot_be_reached_is_avoided_and_the_same_middle_carries_the_next_try()
    {
        using var net = new CircuitHarness();
        var (origin, first, middle, open) = (net.AddNode(), net.AddNode(), net.AddNode(), net.AddNode());
        var (gone, goneToo) = (net.AddNode(), net.AddNode());
        net.Partners(origin, first);
        net.Partners(first, middle);
        net.Partners(middle, open);
        // The middle's descriptor still lists two partners it no longer has: extending there fails
        // with "not a partner". Only they are to blame; the middle is the only way on.
        var graph = new PathGraph(
            [new FirstHop(origin.PortTo(first), Describe(net, first, null, middle), 1024, Private: true)],
            new Dictionary<NodeId, Descriptor>
            {
                [middle.Id] = Describe(net, middle, null, gone, goneToo, open),
                [gone.Id] = Describe(net, gone),
                [goneToo.Id] = Describe(net, goneToo),
                [open.Id] = Describe(net, open),
            });
        for (int seed = 0; seed < 8; seed++)
        {
            var pool = new CircuitPool(origin.Builder, new PathOptions { Hops = 3, Random = new Random(seed) }, new PathSource(origin.Id, (_, _) => ValueTask.FromResult(graph), "default"),
                net.Time, NullLogger.Instance);
            pool.Maintain();
            await Eventually.WaitUntilAsync(() => pool.Circuits.Count == 1, Deadline, $"a circuit through the middle (seed {seed})");
            Assert.Equal([first.Id, middle.Id, open.Id], Assert.Single(pool.Circuits).Hops.Select(h => h.Id));
        }
    }

    [Fact]
    public async Task Upkeep_asks_for_one_graph_snapshot_and_does_not_wait_for_it()
    {
        using var net = new CircuitHarness();
        var (origin, hops) = net.Line(1);
        var snapshot = new TaskCompletionSource<PathGraph>(TaskCreationOptions.RunContinuationsAsynchronously);
        int asked = 0;
        var pool = Pool(net, origin, (_, _) =>
        {
            Interlocked.Increment(ref asked);
            return new ValueTask<PathGraph>(snapshot.Task);
        }, hops: 1);

        pool.Maintain();
        pool.Maintain();
        await Eventually.WaitUntilAsync(() => Volatile.Read(ref asked) == 1, Deadline, "the pool to ask for the graph");
        Assert.Empty(pool.Circuits);

        snapshot.SetResult(new PathGraph([new FirstHop(origin.PortTo(hops[0]), hops[0].Descriptor, 1024)], new Dictionary<NodeId, Descriptor>()));

        await Eventually.WaitUntilAsync(() => pool.Circuits.Count == 1, Deadline, "a circuit built ahead on the snapshot");
        Assert.Equal(1, Volatile.Read(ref asked));
        Assert.Equal([hops[0].Id], Assert.Single(pool.Circuits).Hops.Select(h => h.Id));
    }

    [Fact]
    public async Task A_burst_of_streams_fills_circuits_one_at_a_time_building_each_once()
    {
        using var net = new CircuitHarness { Options = new CircuitOptions { MaxStreamsPerCircuit = 3 } };
        var (origin, hops) = net.Line(1);
        int asked = 0;
        var graph = new PathGraph([new FirstHop(origin.PortTo(hops[0]), hops[0].Descriptor, 1024)], new Dictionary<NodeId, Descriptor>());
        var pool = Pool(net, origin, (_, _) =>
        {
            Interlocked.Increment(ref asked);
            return ValueTask.FromResult(graph);
        }, hops: 1);

        var streams = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => pool.OpenStreamAsync(net.Destination.Target, "alice", default)));

        Assert.Equal(8, streams.Distinct().Count());
        Assert.Equal([3, 3, 2], pool.Circuits.Select(c => c.StreamCount).OrderDescending());
        Assert.Equal(3, Volatile.Read(ref asked)); // one graph, one build, per circuit
        foreach (var stream in streams) await stream.DisposeAsync();
    }

    [Fact]
    public async Task A_stream_whose_exit_does_not_answer_within_the_first_timeout_moves_to_a_circuit_around_it()
    {
        using var net = new CircuitHarness();
        var (origin, first, slow, quick) = (net.AddNode(), net.AddNode(), net.AddNode(), net.AddNode());
        net.Partners(origin, first);
        net.Partners(first, slow);
        net.Partners(first, quick);
        CircuitNode[] exits = [slow];
        var pool = await PoolThroughAsync(net, origin, first, () => exits);

        // The slow exit connects, but its answers never come back; both exits are listed from now on.
        exits = [slow, quick];
        slow.PortTo(first).Stall();
        var opening = pool.OpenStreamAsync(net.Destination.Target, "default", default);
        await Eventually.WaitUntilAsync(() => slow.PortTo(first).Held > 0, Deadline, "the slow exit's Connected, held");
        Assert.False(opening.IsCompleted);
        net.Time.Advance(TimeSpan.FromSeconds(5));

        await using var stream = await opening.WaitAsync(Deadline);
        Assert.Equal([first.Id, quick.Id], Assert.Single(pool.Circuits).Hops.Select(h => h.Id));
        // For a while every new path goes around the slow exit (drawn evenly, ten would all miss it
        // once in a thousand runs).
        for (int i = 0; i < 10; i++)
        {
            await using var other = await pool.OpenStreamAsync(net.Destination.Target, $"isolation {i}", default).WaitAsync(Deadline);
            using var accepted = await net.Destination.AcceptAsync();
        }
        Assert.All(pool.Circuits, c => Assert.Equal(quick.Id, c.Hops[^1].Id));
    }

    [Fact]
    public async Task A_stream_its_application_gives_up_on_after_the_first_timeout_leaves_its_circuit_to_no_next_stream()
    {
        using var net = new CircuitHarness();
        var (origin, first, slow, slower, quick) = (net.AddNode(), net.AddNode(), net.AddNode(), net.AddNode(), net.AddNode());
        net.Partners(origin, first);
        foreach (var exit in new[] { slow, slower, quick }) net.Partners(first, exit);
        CircuitNode[] exits = [slow];
        var pool = await PoolThroughAsync(net, origin, first, () => exits);

        // The first try times out on the slow exit and moves to a new circuit, through an exit as slow.
        slow.PortTo(first).Stall();
        // Its Created goes through, so the circuit is built; its Connected is held.
        slower.PortTo(first).Stall(passing: 1);
        exits = [slower];
        using var application = new CancellationTokenSource();
        var opening = pool.OpenStreamAsync(net.Destination.Target, "default", application.Token);
        await Eventually.WaitUntilAsync(() => slow.PortTo(first).Held > 0, Deadline, "the slow exit's Connected, held");
        net.Time.Advance(TimeSpan.FromSeconds(5));
        await Eventually.WaitUntilAsync(() => slower.PortTo(first).Held > 0, Deadline, "the second try's Connected, held");
        var second = Assert.Single(pool.Circuits);
        Assert.Equal(slower.Id, second.Hops[^1].Id);

        // The application gives up 5 s into the second try, which would wait 30: that circuit takes no next stream.
        net.Time.Advance(TimeSpan.FromSeconds(5));
        application.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => opening.WaitAsync(Deadline));
        Assert.DoesNotContain(second, pool.Circuits);

        // Its next try goes around both.
        exits = [slow, slower, quick];
        await using var stream = await pool.OpenStreamAsync(net.Destination.Target, "default", default).WaitAsync(Deadline);
        using var accepted = await net.Destination.AcceptAsync();
        Assert.Equal(quick.Id, Assert.Single(pool.Circuits).Hops[^1].Id);
    }

    [Fact]
    public async Task A_dedicated_circuit_may_end_where_nothing_exits_and_is_not_the_pools()
    {
        using var net = new CircuitHarness();
        var (origin, first, middle, closed) = (net.AddNode(), net.AddNode(), net.AddNode(), net.AddNode());
        net.Partners(origin, first);
        net.Partners(first, middle);
        net.Partners(middle, closed);
        var graph = new PathGraph(
            [new FirstHop(origin.PortTo(first), Describe(net, first, null, middle), 1024)],
            new Dictionary<NodeId, Descriptor>
            {
                [middle.Id] = Describe(net, middle, null, closed),
                [closed.Id] = Describe(net, closed, ExitPolicy.RejectAll),
            });
        int depth = 0;
        var pool = Pool(net, origin, (hops, _) =>
        {
            depth = hops;
            return ValueTask.FromResult(graph);
        });

        var circuit = await pool.BuildDedicatedAsync("alice", default).WaitAsync(Deadline);

        Assert.Equal([first.Id, middle.Id, closed.Id], circuit.Hops.Select(h => h.Id));
        Assert.Equal(3, depth);
        Assert.Equal("alice", circuit.Isolation);
        Assert.Empty(pool.Circuits);
        circuit.Destroy(DestroyReason.Finished);
    }

    [Fact]
    public async Task A_stream_of_the_same_isolation_never_goes_on_a_dedicated_circuit_and_upkeep_leaves_it_to_its_owner()
    {
        using var net = new CircuitHarness();
        var (origin, hops) = net.Line(1);
        var graph = new PathGraph([new FirstHop(origin.PortTo(hops[0]), hops[0].Descriptor, 1024)], new Dictionary<NodeId, Descriptor>());
        var pool = Pool(net, origin, (_, _) => ValueTask.FromResult(graph), hops: 1);
        var dedicated = await pool.BuildDedicatedAsync("alice", default).WaitAsync(Deadline);

        await using var stream = await pool.OpenStreamAsync(net.Destination.Target, "alice", default).WaitAsync(Deadline);

        var pooled = Assert.Single(pool.Circuits);
        Assert.NotSame(dedicated, pooled);
        Assert.Equal(1, pooled.StreamCount);
        Assert.Equal(0, dedicated.StreamCount);
        // Upkeep closes the pool's old idle circuits, not the caller's.
        net.Time.Advance(new PathOptions().MaxCircuitAge);
        pool.Maintain();
        Assert.Equal(CircuitState.Open, dedicated.State);
        // Upkeep also builds one ahead for applications without credentials, in the background:
        // wait for it, or the harness would put the hops' keys away under its cells.
        await Eventually.WaitUntilAsync(() => pool.Circuits.Any(c => Equals(c.Isolation, "default")), Deadline, "the circuit built ahead");
        Assert.DoesNotContain(dedicated, pool.Circuits);
        dedicated.Destroy(DestroyReason.Finished);
    }

    [Fact]
    public async Task A_circuit_to_a_chosen_node_ends_there_along_a_path_as_deep_as_a_rendezvous_allows()
    {
        using var net = new CircuitHarness();
        var (origin, first, middle, other, point) = (net.AddNode(), net.AddNode(), net.AddNode(), net.AddNode(), net.AddNode());
        net.Partners(origin, first);
        net.Partners(first, middle);
        net.Partners(first, point);
        net.Partners(middle, other);
        net.Partners(middle, point);
        // The point grants the first hop too, but three hops are asked for: first, middle, point.
        var graph = new PathGraph(
            [new FirstHop(origin.PortTo(first), Describe(net, first, null, middle, point), 1024)],
            new Dictionary<NodeId, Descriptor>
            {
                [middle.Id] = Describe(net, middle, null, other, point),
                [other.Id] = Describe(net, other),
                [point.Id] = Describe(net, point, ExitPolicy.RejectAll),
            });
        int depth = 0;
        var pool = Pool(net, origin, (hops, _) =>
        {
            depth = hops;
            return ValueTask.FromResult(graph);
        });

        var circuit = await pool.BuildToAsync([point.Id], "service", default).WaitAsync(Deadline);

        Assert.Equal([first.Id, middle.Id, point.Id], circuit.Hops.Select(h => h.Id));
        Assert.Equal(Circuit.MaxHopsToRendezvous, depth);
        Assert.Empty(pool.Circuits);
        circuit.Destroy(DestroyReason.Finished);

        // Of the points a client offers, the one a path reaches: the stranger is reached by none.
        var stranger = net.AddNode();
        circuit = await pool.BuildToAsync([stranger.Id, point.Id], "service", default).WaitAsync(Deadline);
        Assert.Equal(point.Id, circuit.Hops[^1].Id);
        circuit.Destroy(DestroyReason.Finished);
        var unreachable = await Assert.ThrowsAsync<StreamException>(() => pool.BuildToAsync([stranger.Id], "service", default).WaitAsync(Deadline));
        Assert.Equal(EndReason.Unreachable, unreachable.Reason);
        Assert.Contains(stranger.Id.Brief, unreachable.Message);
    }

    /// <summary>An origin whose one first hop goes on to left or right, each a partner of the point.</summary>
    private static (CircuitNode Origin, CircuitNode First, CircuitNode Left, CircuitNode Right, CircuitNode Point) TwoWaysToAPoint(CircuitHarness net)
    {
        var (origin, first, left, right, point) = (net.AddNode(), net.AddNode(), net.AddNode(), net.AddNode(), net.AddNode());
        net.Partners(origin, first);
        net.Partners(first, left);
        net.Partners(first, right);
        net.Partners(left, point);
        net.Partners(right, point);
        return (origin, first, left, right, point);
    }

    [Fact]
    public async Task A_services_circuits_go_on_from_their_first_hop_through_one_vanguard_until_the_first_hop_drops_it()
    {
        using var net = new CircuitHarness();
        var (origin, first, left, right, point) = TwoWaysToAPoint(net);
        // Both middles reach the point: without a vanguard the second hop is either, with one always the same.
        PathGraph Graph(params CircuitNode[] firstsPartners) => new(
            [new FirstHop(origin.PortTo(first), Describe(net, first, null, firstsPartners), 1024)],
            new Dictionary<NodeId, Descriptor>
            {
                [left.Id] = Describe(net, left, null, point),
                [right.Id] = Describe(net, right, null, point),
                [point.Id] = Describe(net, point),
            });
        var graph = Graph(left, right);
        var pool = Pool(net, origin, (_, _) => ValueTask.FromResult(graph));

        async Task<NodeId> SecondHop(Task<Circuit> building)
        {
            var circuit = await building.WaitAsync(Deadline);
            circuit.Destroy(DestroyReason.Finished);
            return circuit.Hops[1].Id;
        }
        var plain = new HashSet<NodeId>();
        for (int i = 0; i < 20; i++) plain.Add(await SecondHop(pool.BuildDedicatedAsync("client", default)));
        Assert.Equal(2, plain.Count);

        var pinned = new HashSet<NodeId>();
        for (int i = 0; i < 10; i++)
        {
            pinned.Add(await SecondHop(pool.BuildToAsync([point.Id], "service", default)));
            pinned.Add(await SecondHop(pool.BuildDedicatedAsync("service", default, vanguard: true)));
        }
        var vanguard = Assert.Single(pinned);

        // The first hop no longer lists it: another is drawn, and kept.
        var other = vanguard == left.Id ? right : left;
        graph = Graph(other);
        Assert.Equal(other.Id, await SecondHop(pool.BuildToAsync([point.Id], "service", default)));
        graph = Graph(left, right);
        for (int i = 0; i < 5; i++) Assert.Equal(other.Id, await SecondHop(pool.BuildToAsync([point.Id], "service", default)));
    }

    [Fact]
    public async Task Vanguards_a_pool_restores_are_its_own_and_one_whose_descriptor_is_missing_is_kept_not_replaced()
    {
        using var net = new CircuitHarness();
        var (origin, first, left, right, point) = TwoWaysToAPoint(net);
        PathGraph Graph(bool knowRight) => new(
            [new FirstHop(origin.PortTo(first), Describe(net, first, null, left, right), 1024)],
            new Dictionary<NodeId, Descriptor>(knowRight ? [new(right.Id, Describe(net, right, null, point))] : [])
            {
                [left.Id] = Describe(net, left, null, point),
                [point.Id] = Describe(net, point),
            });
        var graph = Graph(knowRight: true);
        var pool = Pool(net, origin, (_, _) => ValueTask.FromResult(graph));
        // What an earlier run kept: right after first, for a day more. One whose lifetime ended is not taken back.
        var until = net.Time.GetUtcNow().AddDays(1);
        pool.RestoreVanguards([new Vanguard(first.Id, right.Id, until), new Vanguard(left.Id, point.Id, net.Time.GetUtcNow().AddMinutes(-1))]);
        Assert.Equal([new Vanguard(first.Id, right.Id, until)], pool.Vanguards);

        for (int i = 0; i < 5; i++)
        {
            var circuit = await pool.BuildToAsync([point.Id], "service", default).WaitAsync(Deadline);
            circuit.Destroy(DestroyReason.Finished);
            Assert.Equal(right.Id, circuit.Hops[1].Id);
        }

        // Its descriptor gone for a while (as just after a restart): no service circuit goes through
        // the first hop meanwhile, and the vanguard stays.
        graph = Graph(knowRight: false);
        await Assert.ThrowsAsync<StreamException>(() => pool.BuildToAsync([point.Id], "service", default).WaitAsync(Deadline));
        graph = Graph(knowRight: true);
        var again = await pool.BuildToAsync([point.Id], "service", default).WaitAsync(Deadline);
        again.Destroy(DestroyReason.Finished);
        Assert.Equal(right.Id, again.Hops[1].Id);
        Assert.Equal([new Vanguard(first.Id, right.Id, until)], pool.Vanguards);
    }

    [Fact]
    public async Task A_chosen_node_that_cannot_be_reached_fails_the_build_after_a_few_tries()
    {
        using var net = new CircuitHarness();
        var (origin, first, point) = (net.AddNode(), net.AddNode(), net.AddNode());
        net.Partners(origin, first);
        // The first hop's descriptor lists the point, but they are no partners: each try fails at the point.
        var graph = new PathGraph(
            [new FirstHop(origin.PortTo(first), Describe(net, first, null, point), 1024)],
            new Dictionary<NodeId, Descriptor> { [point.Id] = Describe(net, point) });
        int asked = 0;
        var pool = Pool(net, origin, (_, _) =>
        {
            Interlocked.Increment(ref asked);
            return ValueTask.FromResult(graph);
        });

        var failed = await Assert.ThrowsAsync<StreamException>(() => pool.BuildToAsync([point.Id], "service", default).WaitAsync(Deadline));

        Assert.Equal(point.Id, failed.FailedHop);
        Assert.Equal(3, Volatile.Read(ref asked));
        Assert.Empty(pool.Circuits);
    }

    /// <summary>
    /// An origin, its private first hop, and two exits after it, the first of them already carrying a
    /// circuit in use for another client of the hop, which fills its 256 kbps grant to the hop.
    /// </summary>
    private static async Task<(CircuitNode Origin, CircuitNode First, CircuitNode Full, CircuitNode Free)> OneExitFullAsync(CircuitHarness net)
    {
        var (origin, other, first, full, free) = (net.AddNode(), net.AddNode(), net.AddNode(), net.AddNode(), net.AddNode());
        net.Partners(origin, first);
        net.Partners(other, first);
        net.Partners(first, full);
        net.Partners(first, free);
        first.Kbps[origin.Id] = first.Kbps[other.Id] = (256, 256);
        first.Kbps[full.Id] = first.Kbps[free.Id] = (256, 256);
        await other.BuildAsync(first, full);
        return (origin, first, full, free);
    }

    [Fact]
    public async Task A_next_hop_whose_grant_is_full_is_passed_over_for_another_and_only_while_it_is_in_use()
    {
        for (int seed = 0; seed < 6; seed++)
        {
            using var net = new CircuitHarness();
            var (origin, first, full, free) = await OneExitFullAsync(net);
            var graph = new PathGraph([new FirstHop(origin.PortTo(first), Describe(net, first, null, full, free), 256, Private: true)],
                new Dictionary<NodeId, Descriptor> { [full.Id] = Describe(net, full), [free.Id] = Describe(net, free) });
            var pool = new CircuitPool(origin.Builder, new PathOptions { Hops = 2, Random = new Random(seed) }, new PathSource(origin.Id, (_, _) => ValueTask.FromResult(graph), "default"),
                net.Time, NullLogger.Instance);

            var circuit = await pool.BuildDedicatedAsync("a", default).WaitAsync(Deadline);
            Assert.Equal([first.Id, free.Id], circuit.Hops.Select(h => h.Id));
            // Passed over by that build only: it was busy, not broken. Once the other client's
            // circuit has been idle for the window, the hop has room again, and later builds draw it.
            circuit.Destroy(DestroyReason.Finished);
            await net.Wire.SettleAsync();
            net.Time.Advance(CircuitTable.InUseWindow);
            var drawn = new HashSet<NodeId>();
            for (int i = 0; i < 6; i++)
            {
                var again = await pool.BuildDedicatedAsync("a", default).WaitAsync(Deadline);
                drawn.Add(again.Hops[^1].Id);
                again.Destroy(DestroyReason.Finished);
                await net.Wire.SettleAsync();
                net.Time.Advance(CircuitTable.InUseWindow);
            }
            Assert.Contains(full.Id, drawn);
        }
    }

    [Fact]
    public async Task Refusals_as_full_cost_no_try_so_a_build_passes_over_several_full_hops_to_the_one_with_room()
    {
        for (int seed = 0; seed < 6; seed++)
        {
            using var net = new CircuitHarness();
            var (origin, other, first, free) = (net.AddNode(), net.AddNode(), net.AddNode(), net.AddNode());
            var full = new[] { net.AddNode(), net.AddNode(), net.AddNode() };
            net.Partners(origin, first);
            net.Partners(other, first);
            net.Partners(first, free);
            first.Kbps[origin.Id] = first.Kbps[other.Id] = first.Kbps[free.Id] = (256, 256);
            foreach (var hop in full)
            {
                net.Partners(first, hop);
                first.Kbps[hop.Id] = (256, 256);
                // Another client's circuits in use, one to each: a third of its 256 kbps each, which
                // with ours comes to more than each hop's 256.
                await other.BuildAsync(first, hop);
            }
            var graph = new PathGraph([new FirstHop(origin.PortTo(first), Describe(net, first, null, [.. full, free]), 256, Private: true)],
                new[] { free }.Concat(full).ToDictionary(n => n.Id, n => Describe(net, n)));
            var pool = new CircuitPool(origin.Builder, new PathOptions { Hops = 2, Random = new Random(seed) }, new PathSource(origin.Id, (_, _) => ValueTask.FromResult(graph), "default"),
                net.Time, NullLogger.Instance);

            var circuit = await pool.BuildDedicatedAsync("a", default).WaitAsync(Deadline);

            Assert.Equal([first.Id, free.Id], circuit.Hops.Select(h => h.Id));
        }
    }

    [Fact]
    public async Task A_private_first_hop_that_refuses_two_next_hops_as_full_is_passed_over_for_another_partner()
    {
        for (int seed = 0; seed < 6; seed++)
        {
            using var net = new CircuitHarness();
            var (origin, other, busyFirst, publicFirst, free) = (net.AddNode(), net.AddNode(), net.AddNode(), net.AddNode(), net.AddNode());
            // More full next hops than a build passes over before it insists on one.
            var full = Enumerable.Range(0, 6).Select(_ => net.AddNode()).ToArray();
            net.Partners(origin, busyFirst);
            net.Partners(origin, publicFirst);
            net.Partners(other, busyFirst);
            net.Partners(publicFirst, free);
            busyFirst.Kbps[origin.Id] = busyFirst.Kbps[other.Id] = (256, 256);
            publicFirst.Kbps[origin.Id] = publicFirst.Kbps[free.Id] = (256, 256);
            foreach (var hop in full)
            {
                net.Partners(busyFirst, hop);
                busyFirst.Kbps[hop.Id] = (256, 256);
                await other.BuildAsync(busyFirst, hop);
            }
            // The private partner is preferred, and every next hop it lists is full; the public one has room.
            var graph = new PathGraph(
                [new FirstHop(origin.PortTo(busyFirst), Describe(net, busyFirst, null, full), 256, Private: true),
                 new FirstHop(origin.PortTo(publicFirst), Describe(net, publicFirst, null, free), 256, Private: false)],
                new[] { free }.Concat(full).ToDictionary(n => n.Id, n => Describe(net, n)));
            var pool = new CircuitPool(origin.Builder, new PathOptions { Hops = 2, Random = new Random(seed) }, new PathSource(origin.Id, (_, _) => ValueTask.FromResult(graph), "default"),
                net.Time, NullLogger.Instance);

            var circuit = await pool.BuildDedicatedAsync("a", default).WaitAsync(Deadline);

            // Two refusals, then the other partner: not four and an insistence on a full pair.
            Assert.Equal([publicFirst.Id, free.Id], circuit.Hops.Select(h => h.Id));
            Assert.Equal(full.Length, busyFirst.OpenCircuits.Count(c => c.Outward is not null));
        }
    }

    [Fact]
    public async Task A_first_hop_that_does_not_answer_is_passed_over_for_another_partner_and_set_aside_for_a_while()
    {
        using var net = new CircuitHarness();
        var (origin, slowFirst, otherFirst, exit) = (net.AddNode(), net.AddNode(), net.AddNode(), net.AddNode());
        net.Partners(origin, slowFirst);
        net.Partners(origin, otherFirst);
        net.Partners(slowFirst, exit);
        net.Partners(otherFirst, exit);
        // The private partner is preferred, but its link is full: its answers never come back.
        var graph = new PathGraph(
            [new FirstHop(origin.PortTo(slowFirst), Describe(net, slowFirst, null, exit), 256, Private: true),
             new FirstHop(origin.PortTo(otherFirst), Describe(net, otherFirst, null, exit), 256, Private: false)],
            new Dictionary<NodeId, Descriptor> { [exit.Id] = Describe(net, exit) });
        var pool = Pool(net, origin, (_, _) => ValueTask.FromResult(graph), hops: 2);
        slowFirst.PortTo(origin).Stall();

        var building = pool.BuildDedicatedAsync("a", default);
        await Eventually.WaitUntilAsync(() => slowFirst.PortTo(origin).Held > 0, Deadline, "the private first hop's answer, held");
        net.Time.Advance(net.Options.BuildTimeout);
        var circuit = await building.WaitAsync(Deadline);

        Assert.Equal([otherFirst.Id, exit.Id], circuit.Hops.Select(h => h.Id));
        // Not only by that build: for a while the next ones go through the other partner too.
        for (int i = 0; i < 4; i++)
        {
            var again = await pool.BuildDedicatedAsync("a", default).WaitAsync(Deadline);
            Assert.Equal(otherFirst.Id, again.Hops[0].Id);
        }
    }

    [Fact]
    public async Task A_first_hop_that_refuses_the_circuit_is_passed_over_for_another_partner_within_the_build()
    {
        using var net = new CircuitHarness();
        var (origin, refusing, otherFirst, exit) = (net.AddNode(), net.AddNode(), net.AddNode(), net.AddNode());
        net.Partners(origin, refusing);
        net.Partners(origin, otherFirst);
        net.Partners(refusing, exit);
        net.Partners(otherFirst, exit);
        // The private partner is preferred, but its grant to us has ended on its side: it refuses our CREATE.
        refusing.Grants.TryRemove(origin.Id, out _);
        var graph = new PathGraph(
            [new FirstHop(origin.PortTo(refusing), Describe(net, refusing, null, exit), 256, Private: true),
             new FirstHop(origin.PortTo(otherFirst), Describe(net, otherFirst, null, exit), 256, Private: false)],
            new Dictionary<NodeId, Descriptor> { [exit.Id] = Describe(net, exit) });
        var pool = Pool(net, origin, (_, _) => ValueTask.FromResult(graph), hops: 2);

        var circuit = await pool.BuildDedicatedAsync("a", default).WaitAsync(Deadline);

        Assert.Equal([otherFirst.Id, exit.Id], circuit.Hops.Select(h => h.Id));
        Assert.Single(origin.PortTo(refusing).SentCells(CellCommand.Create));
    }

    [Fact]
    public async Task A_chosen_last_hop_refused_as_full_again_and_again_is_insisted_on_after_a_few_refusals()
    {
        using var net = new CircuitHarness();
        var (origin, first, point, _) = await OneExitFullAsync(net);
        var graph = new PathGraph([new FirstHop(origin.PortTo(first), Describe(net, first, null, point), 256, Private: true)],
            new Dictionary<NodeId, Descriptor> { [point.Id] = Describe(net, point) });
        int asked = 0;
        var pool = Pool(net, origin, (_, _) =>
        {
            Interlocked.Increment(ref asked);
            return ValueTask.FromResult(graph);
        }, hops: 2);

        // The point is never passed over (it is the one asked for), so only the count of refusals ends the tries.
        var circuit = await pool.BuildToAsync([point.Id], "service", default).WaitAsync(Deadline);

        Assert.Equal([first.Id, point.Id], circuit.Hops.Select(h => h.Id));
        Assert.Equal(5, Volatile.Read(ref asked));
    }

    [Fact]
    public async Task When_every_next_hop_is_full_the_last_try_takes_one_anyway()
    {
        using var net = new CircuitHarness();
        var (origin, first, full, _) = await OneExitFullAsync(net);
        var graph = new PathGraph([new FirstHop(origin.PortTo(first), Describe(net, first, null, full), 256, Private: true)],
            new Dictionary<NodeId, Descriptor> { [full.Id] = Describe(net, full) });
        var pool = Pool(net, origin, (_, _) => ValueTask.FromResult(graph), hops: 2);

        var circuit = await pool.BuildDedicatedAsync("a", default).WaitAsync(Deadline);

        Assert.Equal([first.Id, full.Id], circuit.Hops.Select(h => h.Id));
        Assert.Equal(2, first.OpenCircuits.Count(c => c.Outward?.PeerId == full.Id));
    }
}
