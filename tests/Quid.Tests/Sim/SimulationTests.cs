using Quid.Sim;

namespace Quid.Tests.Sim;

public sealed class SimulationTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "quid-sim-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, recursive: true);
    }

    private static SimOptions Small(int seed) => new()
    {
        Nodes = 150,
        Duration = TimeSpan.FromMinutes(4),
        MeasureFrom = TimeSpan.FromMinutes(1),
        Seed = seed,
        // Short sessions, so that leaving, crashing and rejoining happen within the run.
        MeanSession = TimeSpan.FromMinutes(20),
        // Every message that crosses the virtual network goes through the codec now and then.
        WireCheckEvery = 50,
        AnonymityCircuits = 2000,
    };

    private Dictionary<string, byte[]> RunAndRead(SimOptions options, string name)
    {
        var sim = new Simulation(options);
        sim.Run();
        var directory = Path.Combine(_root, name);
        new Report(sim).Write(directory);
        return Directory.GetFiles(directory).Order(StringComparer.Ordinal).ToDictionary(f => Path.GetFileName(f), File.ReadAllBytes);
    }

    [Fact]
    public void TheSameSeedGivesByteIdenticalResults()
    {
        var first = RunAndRead(Small(7), "first");
        var second = RunAndRead(Small(7), "second");
        Assert.Contains("summary.csv", first.Keys);
        Assert.Contains("series.csv", first.Keys);
        Assert.Equal(first.Keys, second.Keys);
        foreach (var (name, bytes) in first) Assert.True(bytes.AsSpan().SequenceEqual(second[name]), $"{name} differs between two runs of the same seed");

        // And the run did something worth comparing: nodes traded and messages crossed the wire check.
        var summary = System.Text.Encoding.UTF8.GetString(first["summary.csv"]);
        Assert.Matches(@"agreements_formed,[1-9]\d*", summary);
        Assert.Matches(@"wire_round_trips_checked,[1-9]\d*", summary);
        Assert.Contains("unadvertisable_kbps_max,0\n", summary, StringComparison.Ordinal);
    }

    [Fact]
    public void ADifferentSeedGivesADifferentNetwork()
    {
        var a = RunAndRead(Small(7) with { Duration = TimeSpan.FromMinutes(2), MeanSession = TimeSpan.Zero }, "a");
        var b = RunAndRead(Small(8) with { Duration = TimeSpan.FromMinutes(2), MeanSession = TimeSpan.Zero }, "b");
        Assert.False(a["series.csv"].AsSpan().SequenceEqual(b["series.csv"]));
    }

    [Fact]
    public void AnExitThreeHopsOnSuspectsTheClientsOfEveryFirstHopItsPredecessorGrants()
    {
        // 0 and 1 are clients of 2; 2 and 3 are granted by 4; 4 is granted by 5 (the exit).
        // A path 0 → 2 → 4 → 5 seen from the exit (it knows 4): first hops granted by 4 are 2 and 3;
        // clients granted by 2 are 0 and 1, and 3 grants nobody, so the suspects are 0 and 1.
        var anonymity = new Anonymity(Grantors(zeroIsPrivate: false), [false, false, false, false, false, true]);
        var suspects = anonymity.Suspects([2, 4, 5], known: 1, links: false);
        Assert.Equal([0, 1], suspects.Keys.Order());
        Assert.Equal(1.0, Anonymity.Entropy(suspects), 6);
    }

    [Fact]
    public void APrivateAgreementIsInNoDescriptorSoOnlyWhoSeesLinksSuspectsItsClient()
    {
        // The same graph, with 0's agreement with 2 private: the descriptors show 2 granting 1 only.
        var anonymity = new Anonymity(Grantors(zeroIsPrivate: true), [false, false, false, false, false, true]);
        Assert.Equal([1], anonymity.Suspects([2, 4, 5], known: 1, links: false).Keys);
        Assert.Equal([0, 1], anonymity.Suspects([2, 4, 5], known: 1, links: true).Keys.Order());
    }

    [Fact]
    public void ACoalitionsOwnCircuitsAreCountedAmongCapturesOfEveryCircuitButNotOfOthers()
    {
        // 0, 2 and 5 collude. 0's own circuit through 2 and 5 hides nobody from them; 1's does.
        bool[] colluder = [true, false, true, false, false, true];
        var anonymity = new Anonymity(Grantors(zeroIsPrivate: false), colluder);
        var rows = anonymity.Colluding(2, [(0, [2, 5]), (1, [2, 5]), (1, [3, 4])], "colluders", colluder).ToList();
        Assert.Equal(2.0 / 3, rows.Single(r => r.View == "captured").Share, 9);
        Assert.Equal(0.5, rows.Single(r => r.View == "captured of others").Share, 9);
    }

    private static List<IReadOnlyList<(int, double, bool)>> Grantors(bool zeroIsPrivate) =>
    [
        new[] { (2, 64.0, zeroIsPrivate) }, new[] { (2, 64.0, false) }, new[] { (4, 64.0, false) }, new[] { (4, 64.0, false) }, new[] { (5, 64.0, false) },
        Array.Empty<(int, double, bool)>(),
    ];

    [Fact]
    public void JainIsOneForEqualSharesAndOneOverNForOneTakingAll()
    {
        Assert.Equal(1.0, Stats.Jain([2.0, 2.0, 2.0, 2.0]), 9);
        Assert.Equal(0.25, Stats.Jain([5.0, 0, 0, 0]), 9);
    }
}
