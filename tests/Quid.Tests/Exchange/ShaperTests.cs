using Microsoft.Extensions.Time.Testing;
using Quid.Exchange;

namespace Quid.Tests.Exchange;

/// <summary>
/// The shaper under a fake clock: pushers that always have data waiting take turns by the
/// time each is next allowed to send, exactly as the data path awaits <see cref="Shaper.Share.Reserve"/>.
/// </summary>
public sealed class ShaperTests
{
    private const int Chunk = 8 * 1024;
    private static readonly TimeSpan Run = TimeSpan.FromSeconds(20);

    /// <summary>Runs greedy pushers over <see cref="Run"/>; returns each one's bytes per second.</summary>
    private static double[] Push(FakeTimeProvider time, params Shaper.Share[] shares)
    {
        var start = time.GetUtcNow();
        var next = shares.Select(_ => start).ToArray();
        var sent = new long[shares.Length];
        while (true)
        {
            int i = Array.IndexOf(next, next.Min());
            if (next[i] - start >= Run) break;
            if (next[i] > time.GetUtcNow()) time.SetUtcNow(next[i]);
            var delay = shares[i].Reserve(Chunk);
            sent[i] += Chunk;
            next[i] = time.GetUtcNow() + delay;
        }
        return [.. sent.Select(b => b / Run.TotalSeconds)];
    }

    [Fact]
    public void A_share_alone_under_a_parent_of_its_size_gets_its_rate()
    {
        var time = new FakeTimeProvider();
        var shaper = new Shaper(100_000, time);
        var rate = Assert.Single(Push(time, shaper.NewShare(100_000)));
        Assert.InRange(rate, 95_000, 105_000);
    }

    [Fact]
    public void Idle_capacity_is_lent_to_the_one_share_that_wants_it()
    {
        var time = new FakeTimeProvider();
        var shaper = new Shaper(200_000, time);
        var rate = Assert.Single(Push(time, shaper.NewShare(50_000)));
        Assert.InRange(rate, 180_000, 210_000);
    }

    [Fact]
    public void Under_load_each_share_gets_its_guarantee_and_the_total_stays_within_the_ceiling()
    {
        var time = new FakeTimeProvider();
        var shaper = new Shaper(200_000, time);
        var rates = Push(time, shaper.NewShare(100_000), shaper.NewShare(50_000), shaper.NewShare(50_000));
        Assert.InRange(rates[0], 90_000, 130_000);
        Assert.InRange(rates[1], 45_000, 75_000);
        Assert.InRange(rates[2], 45_000, 75_000);
        Assert.InRange(rates.Sum(), 190_000, 215_000);
    }

    [Fact]
    public void A_share_cut_to_a_lower_rate_is_held_to_it()
    {
        var time = new FakeTimeProvider();
        var shaper = new Shaper(100_000, time);
        var cut = shaper.NewShare(100_000);
        var other = shaper.NewShare(0.001);
        cut.GuaranteedBytesPerSecond = 25_000;
        // With another share keeping the parent busy, nothing is lent: the cut share gets what it is now granted.
        var rates = Push(time, cut, shaper.NewShare(75_000));
        Assert.InRange(rates[0], 22_500, 30_000);
        Assert.Equal(0.001, other.GuaranteedBytesPerSecond);
    }
}
