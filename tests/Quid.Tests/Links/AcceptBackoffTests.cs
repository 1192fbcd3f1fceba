using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using Quid.Links;
using Quid.Tests.Integration;

namespace Quid.Tests.Links;

/// <summary>An accept loop out of descriptors waits, longer each time, and says so once an interval.</summary>
public sealed class AcceptBackoffTests
{
    private static readonly SocketException OutOfDescriptors = new((int)SocketError.TooManyOpenSockets);

    [Fact]
    public async Task Out_of_descriptors_each_wait_doubles_from_10_ms_to_1_s_and_a_success_starts_again()
    {
        var time = new FakeTimeProvider();
        var backoff = new AcceptBackoff("link listener", "Raise the limit.", time, new LogCapture(LogLevel.Warning).CreateLogger("test"));
        using var pair = await AcceptedPair.OpenAsync();
        int[] expected = [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 10];
        for (int i = 0; i < expected.Length; i++)
        {
            if (i == expected.Length - 1) backoff.Accepted(pair.Accepted);
            var waiting = backoff.AfterFailureAsync(OutOfDescriptors, default).AsTask();
            time.Advance(TimeSpan.FromMilliseconds(expected[i] - 1));
            Assert.False(waiting.IsCompleted, $"failure {i + 1} waited less than {expected[i]} ms");
            time.Advance(TimeSpan.FromMilliseconds(1));
            await waiting.WaitAsync(TimeSpan.FromSeconds(10));
        }
    }

    [Fact]
    public async Task A_flood_of_failures_is_one_warning_an_interval_with_the_count_and_the_fix()
    {
        var time = new FakeTimeProvider();
        var logs = new LogCapture(LogLevel.Debug);
        var backoff = new AcceptBackoff("SOCKS proxy", "Raise the limit.", time, logs.CreateLogger("test"));
        for (int i = 0; i < 100; i++)
        {
            var waiting = backoff.AfterFailureAsync(OutOfDescriptors, default).AsTask();
            time.Advance(AcceptBackoff.LastDelay);
            await waiting.WaitAsync(TimeSpan.FromSeconds(10));
        }
        // 100 failures a second apart: the first is told at once, then one warning every 30 s.
        var warnings = logs.Lines.Where(l => l.Level == LogLevel.Warning).Select(l => l.Text).ToList();
        Assert.Equal(4, warnings.Count);
        Assert.All(warnings, w => Assert.Contains("SOCKS proxy cannot accept connections", w));
        Assert.All(warnings, w => Assert.Contains("Raise the limit.", w));
        Assert.Contains("(30 failed tries", warnings[1]);
    }

    [Fact]
    public async Task A_client_that_gave_up_in_the_backlog_costs_no_wait_and_no_warning()
    {
        var time = new FakeTimeProvider();
        var logs = new LogCapture(LogLevel.Information);
        var backoff = new AcceptBackoff("HTTP proxy", "Raise the limit.", time, logs.CreateLogger("test"));
        await backoff.AfterFailureAsync(new SocketException((int)SocketError.ConnectionAborted), default).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Empty(logs.Lines);
    }
}
