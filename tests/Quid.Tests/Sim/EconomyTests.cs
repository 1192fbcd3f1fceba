using Quid.Sim;

namespace Quid.Tests.Sim;

/// <summary>
/// The credit economy played on a small network's agreements for three weeks (PROTOCOL §10.2):
/// credits exist only as disk is granted, what is not spent expires with its epoch, and the
/// issuers' spent sets shrink again as epochs pass.
/// </summary>
public sealed class EconomyTests
{
    private const int Days = 22;

    private static Economy Play()
    {
        var sim = new Simulation(new SimOptions
        {
            Nodes = 80,
            Duration = TimeSpan.FromMinutes(4),
            MeasureFrom = TimeSpan.FromMinutes(1),
            Seed = 3,
            MeanSession = TimeSpan.Zero,
            AnonymityCircuits = 200,
            EconomyDays = Days,
            // Hourly asks keep the test quick; the issued totals are the same, the tokens fewer.
            CreditAskInterval = TimeSpan.FromHours(1),
        });
        sim.Run();
        return Economy.Run(sim, Days, sim.Options.CreditAskInterval);
    }

    [Fact]
    public void Credits_follow_the_disk_granted_expire_unspent_and_leave_bounded_spent_sets()
    {
        var economy = Play();
        Assert.True(economy.GrantedMiB > 0, "the network traded disk");
        Assert.Equal(Days + 1, economy.Days.Count);
        var last = economy.Days[^1];

        // No minting from nothing: never more than a day ahead of the disk granted.
        foreach (var day in economy.Days) Assert.InRange(day.Issued, 0, economy.GrantedMiB * (day.Day + 1) + economy.GrantedMiB / 100);
        Assert.True(last.Issued > economy.GrantedMiB * (Days - 1), $"issued {last.Issued} over {Days} days of {economy.GrantedMiB} MiB granted");
        // Every credit issued is held, spent or expired.
        Assert.Equal(last.Issued, last.Held + last.Spent + last.Expired);
        // Not piling up: a holder keeps at most the two weeks a credit lives (and the day ahead).
        Assert.All(economy.Days, d => Assert.True(d.Held <= economy.GrantedMiB * 16, $"day {d.Day}: {d.Held} held"));
        Assert.True(last.Expired > 0, "credits nobody used expired");
        Assert.True(last.Spent > last.Issued / 3, $"spent {last.Spent} of {last.Issued}");
        Assert.True(last.Given > 0, "credits about to expire were handed on as cards");

        // Spent sets are dropped with their epochs: they shrink on the days an epoch stops being taken.
        Assert.Contains(economy.Days.Skip(1), d => d.SpentSet < economy.Days[d.Day - 1].SpentSet);
    }
}
