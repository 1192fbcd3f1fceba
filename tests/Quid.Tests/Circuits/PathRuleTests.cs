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
}
