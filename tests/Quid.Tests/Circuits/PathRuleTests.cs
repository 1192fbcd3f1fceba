using Quid.Circuits;

namespace Quid.Tests.Circuits;

/// <summary>The path rule the node and the simulator's anonymity measure share.</summary>
public sealed class PathRuleTests
{
    // Who grants whom: 0 is the client, granted by 1 (3 kbps) and 2 (1 kbps); 1 is granted by 0, 2, 3;
    // 2 by 3 and 4; 3 by 4 and 5; 4 by 5. 5 exits, and so does 4; no other node does.
    private static readonly int[][] Grants = [[1, 2], [0, 2, 3], [3, 4], [4, 5], [5], []];

    private static PathWalk<int> Walk(int client = 0, Func<int, bool>? exits = null) =>
        new(client, client == 0 ? [(1, 3, false), (2, 1, false)] : [.. Grants[client].Select(g => (g, 1L, false))], h => Grants[h], _ => true, exits ?? (x => x is 4 or 5));

    [Fact]
    public void A_path_never_holds_the_client_or_a_node_twice_and_ends_at_an_exit()
    {
        var random = new Random(1);
        for (int i = 0; i < 2000; i++)
        {
            var path = PathRule.Draw(Walk(), 3, random);
            Assert.NotNull(path);
            Assert.DoesNotContain(0, path);
            Assert.Equal(3, path.Distinct().Count());
            Assert.True(path[^1] is 4 or 5);
            for (int h = 1; h < path.Length; h++) Assert.Contains(path[h], Grants[path[h - 1]]);
        }
    }

    [Fact]
    public void The_chances_of_every_path_sum_to_one_and_match_what_the_draws_give()
    {
        var walk = Walk();
        var drawn = new Dictionary<string, int>();
        var random = new Random(2);
        const int Draws = 40_000;
        for (int i = 0; i < Draws; i++)
        {
            string key = string.Join('-', PathRule.Draw(walk, 3, random)!);
            drawn[key] = drawn.GetValueOrDefault(key) + 1;
        }
        // Every path there is, with its chance: they sum to one, as this graph has no dead end.
        double sum = 0;
        foreach (var (key, count) in drawn)
        {
            double chance = PathRule.Chance(walk, [.. key.Split('-').Select(int.Parse)]);
            sum += chance;
            Assert.InRange((double)count / Draws, chance - 0.01, chance + 0.01);
        }
        Assert.Equal(1.0, sum, 6);
        // First hop 1 grants three times what 2 does; 1 goes on to 2 or 3 (never back to the client);
        // of 2's partners 3 and 4, only 4 exits.
        Assert.Equal(0.75 * 0.5 * 1, PathRule.Chance(walk, [1, 2, 4]), 9);
        Assert.Equal(0, PathRule.Chance(walk, [1, 0, 2]));
        Assert.Equal(0, PathRule.Chance(walk, [2, 3, 1]));
    }

    [Fact]
    public void One_hop_starts_at_a_partner_that_exits_and_none_is_no_path()
    {
        Assert.Null(PathRule.Draw(Walk(), 1, new Random(3)));
        Assert.Equal([5], PathRule.Draw(Walk(client: 4), 1, new Random(3))!);
        Assert.Null(PathRule.Draw(Walk(exits: _ => false), 3, new Random(3)));
    }

    [Fact]
    public void A_walk_starts_on_a_private_partner_and_on_a_public_one_only_when_no_walk_from_a_private_one_reaches_an_exit()
    {
        // 0's agreement with 2 is private, with 1 public: every walk starts on 2, whatever 1 grants.
        var hidden = new PathWalk<int>(0, [(1, 1000, false), (2, 1, true)], h => Grants[h], _ => true, x => x is 4 or 5);
        var random = new Random(4);
        for (int i = 0; i < 200; i++) Assert.Equal(2, PathRule.Draw(hidden, 3, random)![0]);
        Assert.Equal(0, PathRule.Chance(hidden, [1, 2, 4]));
        Assert.Equal(0.5 * 0.5, PathRule.Chance(hidden, [2, 3, 4]), 9);

        // A private partner from which no walk goes on (5 grants nobody) leaves the public one.
        var deadEnd = hidden with { FirstHops = [(1, 1000, false), (5, 1, true)] };
        Assert.Equal(1, PathRule.Draw(deadEnd, 3, random)![0]);
        Assert.Equal(1.0, PathRule.Chance(deadEnd, [1, 2, 4]) + PathRule.Chance(deadEnd, [1, 3, 4]) + PathRule.Chance(deadEnd, [1, 3, 5]), 9);
        // So does one whose walks go a hop and then run dead: 4's only partner 5 grants nobody, so
        // 4 starts two-hop paths (5 exits) but no three-hop one.
        var deadAfterOne = hidden with { FirstHops = [(1, 1000, false), (4, 1, true)] };
        for (int i = 0; i < 50; i++) Assert.Equal(1, PathRule.Draw(deadAfterOne, 3, random)![0]);
        Assert.Equal([4, 5], PathRule.Draw(deadAfterOne, 2, random)!);
    }

    // ---- Paths to a chosen last hop ----

    /// <summary>A walk over <paramref name="partners"/> (node → the nodes that grant it) from client 0, whose first hops are <paramref name="firstHops"/>.</summary>
    private static PathWalk<int> To(Dictionary<int, int[]> partners, params (int Node, long Kbps, bool Private)[] firstHops) =>
        new(0, firstHops, h => partners.GetValueOrDefault(h, []), _ => true, _ => false);

    /// <summary>Checks that <paramref name="path"/> is a path of the walk to <paramref name="target"/>, and returns it.</summary>
    private static int[] AssertPathTo(PathWalk<int> walk, int target, int[]? path)
    {
        Assert.NotNull(path);
        Assert.Equal(target, path[^1]);
        Assert.DoesNotContain(walk.Client, path);
        Assert.Equal(path.Length, path.Distinct().Count());
        Assert.Contains(path[0], walk.FirstHops.Select(h => h.Node));
        for (int h = 1; h < path.Length; h++) Assert.Contains(path[h], walk.Partners(path[h - 1]));
        return path;
    }

    [Fact]
    public void A_path_to_a_target_has_the_hops_asked_for_when_one_exists_even_where_a_shorter_one_does()
    {
        // 1 grants the target 9 directly, but 3 hops are asked for, and 1-3-9, 1-4-9, 2-4-9 have them.
        var walk = To(new() { [1] = [9, 3, 4], [2] = [4], [3] = [9], [4] = [9] }, (1, 1, false), (2, 1, false));
        var random = new Random(5);
        for (int i = 0; i < 200; i++)
            Assert.Equal(3, AssertPathTo(walk, 9, PathRule.DrawTo(walk, 9, 3, 7, random)).Length);
        Assert.Equal([1, 9], PathRule.DrawTo(walk, 9, 2, 7, random)!);
    }

    [Fact]
    public void A_target_reached_only_by_a_longer_path_gets_the_shortest_longer_one_and_one_beyond_the_bound_none()
    {
        // 1-2-3-4-9 has five hops, 1-5-6-7-8-9 six: the five it is, as no three or four reach 9.
        var walk = To(new() { [1] = [2, 5], [2] = [3], [3] = [4], [4] = [9], [5] = [6], [6] = [7], [7] = [8], [8] = [9] }, (1, 1, false));
        var random = new Random(6);
        for (int i = 0; i < 50; i++) Assert.Equal([1, 2, 3, 4, 9], PathRule.DrawTo(walk, 9, 3, 7, random)!);
        Assert.Null(PathRule.DrawTo(walk, 9, 3, 4, random));
        // Nothing reaches 10; the client is no target.
        Assert.Null(PathRule.DrawTo(walk, 10, 3, 7, random));
        Assert.Null(PathRule.DrawTo(walk, 0, 3, 7, random));
    }

    [Fact]
    public void A_path_to_a_target_never_holds_the_client_or_a_node_twice_and_is_shorter_only_when_nothing_else_reaches_it()
    {
        // A walk of four hops to 3 exists only by coming back (1-2-1-3) or through the client
        // (1-0-2-3): four are asked for, no path has four or more, so the longest shorter one, 1-2-3.
        var walk = To(new() { [1] = [0, 2, 3], [2] = [0, 1, 3], [0] = [2] }, (1, 1, false));
        var random = new Random(7);
        for (int i = 0; i < 100; i++) Assert.Equal([1, 2, 3], AssertPathTo(walk, 3, PathRule.DrawTo(walk, 3, 4, 7, random)));
        // One that may not relay is no hop: through 2 no more, 1-3 is left.
        var noRelay = walk with { MayRelay = n => n != 2 };
        Assert.Equal([1, 3], PathRule.DrawTo(noRelay, 3, 4, 7, random)!);
    }

    [Fact]
    public void A_partner_that_is_the_target_is_a_one_hop_path_only_when_no_longer_one_reaches_it()
    {
        // The target 9 is our own partner; 1-4-9 and 9's partner 4 also lead there, so 9 is never a first hop of a longer path.
        var walk = To(new() { [1] = [4], [4] = [9], [9] = [4] }, (1, 1, false), (9, 100, true));
        var random = new Random(8);
        for (int i = 0; i < 50; i++) Assert.Equal([1, 4, 9], PathRule.DrawTo(walk, 9, 3, 7, random)!);
        var alone = To(new() { [9] = [4] }, (1, 1, false), (9, 1, false));
        Assert.Equal([9], PathRule.DrawTo(alone, 9, 3, 7, random)!);
        Assert.Equal([9], PathRule.DrawTo(alone, 9, 1, 7, random)!);
    }

    [Fact]
    public void A_path_to_a_target_starts_on_a_private_partner_when_a_walk_from_one_reaches_it()
    {
        // Public 1 reaches 9 in three hops, private 2 only in five: the private one, at five.
        var partners = new Dictionary<int, int[]> { [1] = [3], [3] = [9], [2] = [4], [4] = [5], [5] = [6], [6] = [9] };
        var walk = To(partners, (1, 1000, false), (2, 1, true));
        var random = new Random(9);
        for (int i = 0; i < 50; i++) Assert.Equal([2, 4, 5, 6, 9], PathRule.DrawTo(walk, 9, 3, 7, random)!);
        // A private partner from which no walk reaches the target leaves the public one; so does
        // one whose walks reach it only beyond the bound.
        var noWay = To(new() { [1] = [3], [3] = [9] }, (1, 1, false), (7, 1000, true));
        for (int i = 0; i < 50; i++) Assert.Equal([1, 3, 9], PathRule.DrawTo(noWay, 9, 3, 7, random)!);
        Assert.Equal([1, 3, 9], PathRule.DrawTo(walk, 9, 3, 4, random)!);
    }

    [Fact]
    public void Of_several_targets_the_path_goes_to_one_reachable_in_the_length_asked_for()
    {
        // 9 is five hops away, 8 three and 7 nowhere: 8, whatever the order the targets come in.
        var walk = To(new() { [1] = [2, 5], [2] = [3], [3] = [4], [4] = [9], [5] = [8] }, (1, 1, false));
        var random = new Random(11);
        foreach (int[] targets in new[] { new[] { 9, 8, 7 }, [7, 9, 8], [8, 9] })
            for (int i = 0; i < 20; i++) Assert.Equal([1, 5, 8], PathRule.DrawToAny(walk, targets, 3, 7, random)!);
        // Only 9 within reach: the longer path to it rather than none; none when no target is reachable.
        Assert.Equal([1, 2, 3, 4, 9], PathRule.DrawToAny(walk, [7, 9], 3, 7, random)!);
        Assert.Null(PathRule.DrawToAny(walk, [7, 0], 3, 7, random));
    }

    [Fact]
    public void Targets_reachable_in_the_same_length_are_each_drawn()
    {
        // 1-3-8 and 1-4-9 are both three hops: each target about half the time.
        var walk = To(new() { [1] = [3, 4], [3] = [8], [4] = [9] }, (1, 1, false));
        var random = new Random(12);
        int toNine = Enumerable.Range(0, 400).Count(_ => PathRule.DrawToAny(walk, [8, 9], 3, 7, random)![^1] == 9);
        Assert.InRange(toNine, 150, 250);
    }

    [Fact]
    public void Paths_to_a_target_are_drawn_at_random_with_first_hops_in_proportion_to_what_they_grant()
    {
        // Six three-hop paths to 9: 1 or 2, then 3, 4 or 5. 1 grants three times what 2 does.
        var walk = To(new() { [1] = [3, 4, 5], [2] = [3, 4, 5], [3] = [9], [4] = [9], [5] = [9] }, (1, 3, false), (2, 1, false));
        var random = new Random(10);
        var drawn = new Dictionary<string, int>();
        const int Draws = 4000;
        for (int i = 0; i < Draws; i++)
        {
            string key = string.Join('-', AssertPathTo(walk, 9, PathRule.DrawTo(walk, 9, 3, 7, random)));
            drawn[key] = drawn.GetValueOrDefault(key) + 1;
        }
        Assert.Equal(6, drawn.Count);
        Assert.InRange((double)drawn.Where(d => d.Key.StartsWith('1')).Sum(d => d.Value) / Draws, 0.72, 0.78);
        Assert.True(Enumerable.Range(0, 200).Select(_ => string.Join('-', PathRule.DrawTo(walk, 9, 3, 7, random)!)).Distinct().Count() > 1);
    }

    [Fact]
    public void A_path_to_a_target_has_the_length_the_rule_asks_for_in_random_graphs()
    {
        var random = new Random(11);
        for (int graph = 0; graph < 300; graph++)
        {
            const int Nodes = 12;
            var partners = new Dictionary<int, int[]>();
            for (int n = 0; n < Nodes; n++)
                partners[n] = [.. Enumerable.Range(0, random.Next(4)).Select(_ => random.Next(Nodes)).Distinct()];
            var walk = To(partners, [.. Enumerable.Range(1, 1 + random.Next(3)).Select(n => (n, 1L, false))]);
            int target = 1 + random.Next(Nodes - 1), hops = 1 + random.Next(4), maxHops = hops + random.Next(4);
            // Every simple path from a first hop to the target, by brute force.
            var lengths = new HashSet<int>();
            void Extend(List<int> path)
            {
                if (path[^1] == target) { lengths.Add(path.Count); return; }
                if (path.Count == maxHops) return;
                foreach (var next in partners[path[^1]].Where(x => x != 0 && !path.Contains(x)))
                {
                    path.Add(next);
                    Extend(path);
                    path.RemoveAt(path.Count - 1);
                }
            }
            foreach (var (first, _, _) in walk.FirstHops) Extend([first]);
            int? expected = lengths.Where(l => l >= hops).Order().Cast<int?>().FirstOrDefault() ?? lengths.Where(l => l < hops).OrderDescending().Cast<int?>().FirstOrDefault();

            var path = PathRule.DrawTo(walk, target, hops, maxHops, random);

            Assert.Equal(expected, path?.Length);
            if (path is not null) AssertPathTo(walk, target, path);
        }
    }

    [Fact]
    public void A_path_to_a_target_in_ten_thousand_nodes_is_found_or_given_up_within_the_search_budget()
    {
        var random = new Random(12);
        const int Nodes = 10_000;
        var partners = new Dictionary<int, int[]>();
        for (int n = 0; n < Nodes; n++) partners[n] = [.. Enumerable.Range(0, 5).Select(_ => random.Next(1, Nodes)).Distinct()];
        var walk = To(partners, [.. Enumerable.Range(1, 4).Select(n => (n, 256L, n % 2 == 0))]);
        var found = new List<int>();
        for (int i = 0; i < 5; i++)
        {
            int target = random.Next(5, Nodes);
            if (PathRule.DrawTo(walk, target, 3, 7, random) is { } path) found.Add(AssertPathTo(walk, target, path).Length);
        }
        // Five partners each reach most of 10,000 nodes in five to seven hops.
        Assert.Equal(5, found.Count);
        // A graph where walks of seven hops reach the target only by coming back (Y, Y2, Y again),
        // behind 40,000 two-hop beginnings that each look promising: the search gives up within
        // its budget and settles for the longest shorter path, F-A-B-Y-T.
        const int F = 1, Y = 1001, Y2 = 1002, T = 1003;
        int[] layerA = [.. Enumerable.Range(10, 200)], layerB = [.. Enumerable.Range(300, 200)];
        var tangle = new Dictionary<int, int[]> { [F] = layerA, [Y] = [Y2, T], [Y2] = [Y] };
        foreach (int a in layerA) tangle[a] = layerB;
        foreach (int b in layerB) tangle[b] = [Y];
        var tangled = To(tangle, (F, 1, false));
        Assert.Equal(5, AssertPathTo(tangled, T, PathRule.DrawTo(tangled, T, 7, 7, random)).Length);
    }

    // ---- A service's vanguards ----

    [Fact]
    public void A_pinned_second_hop_follows_its_first_hop_in_every_path_and_in_the_chances()
    {
        // 1 may go on to 2 or 3; pinned to 3, every walk from 1 takes 3; 2's walks are free.
        var pinned = Walk() with { MayFollow = (first, second) => first != 1 || second == 3 };
        var random = new Random(13);
        for (int i = 0; i < 500; i++)
        {
            var path = PathRule.Draw(pinned, 3, random)!;
            if (path[0] == 1) Assert.Equal(3, path[1]);
        }
        Assert.Equal(0, PathRule.Chance(pinned, [1, 2, 4]));
        Assert.Equal(0.75 * 1 * 0.5, PathRule.Chance(pinned, [1, 3, 4]), 9);
    }

    [Fact]
    public void A_path_to_a_target_goes_through_the_pinned_second_hop_or_not_through_that_first_hop_at_all()
    {
        // 1 reaches 9 through 3 or 4; pinned to 4, always 1-4-…-9, the longer way when need be.
        var partners = new Dictionary<int, int[]> { [1] = [3, 4, 9], [3] = [9], [4] = [5], [5] = [9] };
        var walk = To(partners, (1, 1, false)) with { MayFollow = (_, second) => second == 4 };
        var random = new Random(14);
        for (int i = 0; i < 100; i++) Assert.Equal([1, 4, 5, 9], AssertPathTo(walk, 9, PathRule.DrawTo(walk, 9, 3, 7, random)));
        // The two-hop way 1-9 is a second hop too: not the pinned one, so it is no way at all.
        Assert.Null(PathRule.DrawTo(walk with { MayFollow = (_, second) => second == 3, Partners = h => h == 3 ? [] : partners.GetValueOrDefault(h, []) }, 9, 3, 7, random));
        // With the target as the vanguard, the two hops serve.
        Assert.Equal([1, 9], PathRule.DrawTo(To(new() { [1] = [9] }, (1, 1, false)) with { MayFollow = (_, second) => second == 9 }, 9, 3, 7, random)!);
    }

    [Fact]
    public void A_vanguard_is_drawn_among_the_first_hops_partners_that_may_relay_never_the_client()
    {
        // 1 is granted by 0 (the client), 2 and 3; 2 may not relay.
        var walk = Walk() with { MayRelay = x => x != 2 };
        var random = new Random(15);
        for (int i = 0; i < 50; i++)
        {
            Assert.True(PathRule.TryDrawVanguard(walk, 1, random, out int vanguard));
            Assert.Equal(3, vanguard);
        }
        Assert.False(PathRule.TryDrawVanguard(walk, 5, random, out _));
    }
}
