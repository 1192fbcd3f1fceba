using Quid.Circuits;
using Xunit;
using Xunit.Abstractions;

namespace Quid.Tests.Circuits;

/// <summary>
/// The congestion window against a bottleneck modelled cell by cell: a path that passes
/// <c>rate</c> cells a second, first in first out, with a round trip of <c>baseRtt</c> when
/// empty, and a receiver that returns a Sendme for every <see cref="CircuitFlow.Increment"/> cells.
/// </summary>
public sealed class CongestionWindowTests(ITestOutputHelper output)
{
    private static double CellsPerSecond(double bitsPerSecond) => bitsPerSecond / 8 / Quid.Wire.Cell.Size;

    /// <summary>
    /// Sends as the window allows until <paramref name="sendmes"/> Sendmes came back; returns how
    /// long the bottleneck's queue is then, and the cells a second acknowledged in the second half.
    /// </summary>
    private static (TimeSpan Queued, double Throughput) Run(CongestionWindow window, double rate, TimeSpan baseRtt, int sendmes)
    {
        double now = 0, free = 0, half = baseRtt.TotalSeconds / 2, halfway = 0;
        int inFlight = 0;
        long sent = 0;
        var due = new Queue<(double At, double SentAt)>();
        for (int i = 0; i < sendmes; i++)
        {
            while (inFlight < window.Cells)
            {
                window.Sent(++inFlight);
                free = Math.Max(now + half, free) + 1 / rate;
                if (++sent % CircuitFlow.Increment == 0) due.Enqueue((free + half, now));
            }
            var (at, sentAt) = due.Dequeue();
            now = at;
            if (i == sendmes / 2) halfway = now;
            inFlight -= CircuitFlow.Increment;
            window.Acknowledged(TimeSpan.FromSeconds(now - sentAt));
        }
        return (TimeSpan.FromSeconds(Math.Max(0, free - now)), (sendmes - sendmes / 2) * CircuitFlow.Increment / (now - halfway));
    }

    [Fact]
    public void On_a_420_kbit_path_a_download_keeps_seconds_queued_not_the_40_a_fixed_window_would()
    {
        var window = new CongestionWindow();
        double rate = CellsPerSecond(420_000);
        var (delay, throughput) = Run(window, rate, TimeSpan.FromMilliseconds(10), 400);

        // A Sendme's round trip includes sending its 32 cells, 1.2 s here, so the least of them
        // counts 32 cells as the path's own: up to Beta more stand queued, some 2.5 s.
        Assert.False(window.SlowStart);
        Assert.InRange(window.Cells, CongestionWindow.Min, CongestionWindow.Delta + CircuitFlow.Increment);
        Assert.True(delay < TimeSpan.FromSeconds(3.5), $"{delay.TotalSeconds:F1} s queued with a window of {window.Cells}");
        Assert.True(throughput > 0.99 * rate, $"{throughput:F1} of {rate:F1} cells a second");
        output.WriteLine($"420 kbit/s: a window of {window.Cells} cells, {delay.TotalSeconds:F1} s queued, {throughput:F1} of {rate:F1} cells a second");
        Assert.True(TimeSpan.FromSeconds(CircuitFlow.Window / rate) > TimeSpan.FromSeconds(35), "the fixed window's queue, for comparison");
    }

    [Fact]
    public void On_a_fast_path_whose_queue_drains_in_milliseconds_it_opens_to_the_whole_window()
    {
        var window = new CongestionWindow();
        // Loopback: about 90,000 cells a second, a third of a millisecond around three hops.
        var (delay, throughput) = Run(window, 90_000, TimeSpan.FromMilliseconds(0.3), 400);

        Assert.Equal(CongestionWindow.Max, window.Cells);
        Assert.True(delay < CongestionWindow.QueueFloor);
        Assert.True(throughput > 0.99 * 90_000);
    }

    [Fact]
    public void A_path_that_gets_slower_keeps_its_queue_short_and_one_that_gets_faster_is_filled_again()
    {
        var window = new CongestionWindow();
        double fast = CellsPerSecond(50_000_000), slow = CellsPerSecond(1_000_000);
        var baseRtt = TimeSpan.FromMilliseconds(5);
        Assert.True(Run(window, fast, baseRtt, 1000).Throughput > 0.99 * fast);

        var (delay, throughput) = Run(window, slow, baseRtt, 400);
        Assert.True(delay < TimeSpan.FromSeconds(1.5), $"{delay.TotalSeconds:F1} s queued at 1 Mbit/s with a window of {window.Cells}");
        output.WriteLine($"1 Mbit/s after 50: a window of {window.Cells} cells, {delay.TotalSeconds:F2} s queued");
        Assert.True(throughput > 0.99 * slow);

        throughput = Run(window, fast, baseRtt, 2000).Throughput;
        Assert.True(throughput > 0.95 * fast, $"{throughput:F0} of {fast:F0} cells a second, with a window of {window.Cells}");
    }

    [Fact]
    public void A_sender_that_does_not_fill_its_window_does_not_grow_it()
    {
        var window = new CongestionWindow();
        for (int i = 0; i < 100; i++)
        {
            window.Sent(1);
            window.Acknowledged(TimeSpan.FromMilliseconds(1));
        }
        Assert.Equal(CongestionWindow.Initial, window.Cells);
        Assert.True(window.SlowStart);
    }

    [Fact]
    public void A_queue_that_keeps_growing_holds_the_window_to_what_it_may_keep_queued()
    {
        var window = new CongestionWindow();
        // Others' traffic fills the path more and more: every round trip longer than the one before.
        for (int i = 0; i < 2000; i++)
        {
            window.Sent(window.Cells);
            window.Acknowledged(TimeSpan.FromMilliseconds(10 + 100 * i));
            // Past slow start's first Sendmes it never again holds more than Delta.
            Assert.InRange(window.Cells, CongestionWindow.Min, i < 10 ? CongestionWindow.Max : CongestionWindow.Delta);
        }
        Assert.True(window.Cells <= CongestionWindow.Beta);
        Assert.True(window.Rtt > 100 * window.MinRtt);
    }
}
