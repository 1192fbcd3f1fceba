using Microsoft.Extensions.Logging;
using Quid.Wire;

namespace Quid.Node.Control;

/// <summary>
/// Watches a running node once a second: samples the ledger's byte counters into live rates and a
/// few minutes of history (for <c>quid status</c>, the dashboard's chart and the metrics), keeps
/// the node's latest status for the metrics, and logs each step of bootstrapping as the node
/// reaches it.
/// </summary>
public sealed class NodeMonitor : IAsyncDisposable
{
    /// <summary>Ten minutes of one-second samples.</summary>
    public const int HistoryLength = 600;
    /// <summary>Rates are averaged over this many samples, so one bursty second does not read as the rate.</summary>
    private const int RateWindow = 3;

    private readonly QuidNode _node;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly TimeSpan _interval;
    private readonly Lock _lock = new();
    private readonly Queue<(long Timestamp, DateTimeOffset Time, long Given, long Received)> _totals = new();
    private readonly Queue<ThroughputSample> _history = new();
    private readonly CancellationTokenSource _stopping = new();
    private Task _loop = Task.CompletedTask;
    private NodePhase? _phase;
    private NodeStatus? _latest;

    public NodeMonitor(QuidNode node, TimeProvider time, ILogger logger, TimeSpan? interval = null)
    {
        _node = node;
        _time = time;
        _logger = logger;
        _interval = interval ?? TimeSpan.FromSeconds(1);
        Started = time.GetUtcNow();
    }

    public DateTimeOffset Started { get; }
    public TimeSpan Uptime => _time.GetUtcNow() - Started;

    /// <summary>Takes the first sample, then one every interval.</summary>
    public async Task StartAsync()
    {
        await SampleAsync().ConfigureAwait(false);
        _loop = Task.Run(LoopAsync);
    }

    private async Task LoopAsync()
    {
        using var timer = new PeriodicTimer(_interval, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(_stopping.Token).ConfigureAwait(false)) await SampleAsync().ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }
    }

    /// <summary>The current rates in bytes per second, and the totals they come from.</summary>
    public RatesReport Rates
    {
        get
        {
            lock (_lock)
            {
                if (_totals.Count == 0) return new RatesReport(0, 0, 0, 0);
                var first = _totals.Peek();
                var last = _totals.Last();
                double seconds = _time.GetElapsedTime(first.Timestamp, last.Timestamp).TotalSeconds;
                return seconds <= 0
                    ? new RatesReport(0, 0, last.Given, last.Received)
                    : new RatesReport((last.Given - first.Given) / seconds, (last.Received - first.Received) / seconds, last.Given, last.Received);
            }
        }
    }

    /// <summary>Rates second by second, oldest first.</summary>
    public IReadOnlyList<ThroughputSample> History
    {
        get { lock (_lock) return [.. _history]; }
    }

    public NodePhase Phase
    {
        get { lock (_lock) return _phase ?? NodePhase.Joining; }
    }

    /// <summary>The node's status at the last sample: what the metrics report, so a scrape never waits for the node.</summary>
    public NodeStatus Latest
    {
        get { lock (_lock) return _latest ?? throw new InvalidOperationException("The monitor has not started."); }
    }

    private async Task SampleAsync()
    {
        try
        {
            var (given, received) = _node.LedgerTotals();
            long now = _time.GetTimestamp();
            var time = _time.GetUtcNow();
            lock (_lock)
            {
                if (_totals.Count > 0)
                {
                    var previous = _totals.Last();
                    double seconds = _time.GetElapsedTime(previous.Timestamp, now).TotalSeconds;
                    if (seconds > 0)
                        _history.Enqueue(new ThroughputSample(time, (given - previous.Given) / seconds, (received - previous.Received) / seconds));
                    if (_history.Count > HistoryLength) _history.Dequeue();
                }
                _totals.Enqueue((now, time, given, received));
                if (_totals.Count > RateWindow + 1) _totals.Dequeue();
            }
            var status = await _node.StatusAsync().ConfigureAwait(false);
            var phase = PhaseOf(status, _node.SocksEndPoint is not null);
            NodePhase? before;
            lock (_lock) (before, _phase, _latest) = (_phase, phase, status);
            if (before != phase) _logger.LogInformation("{Phase}", Describe(phase, status, _node.Options.Request));
        }
        catch (ObjectDisposedException)
        {
            // The node stopped under us; the monitor is about to stop too.
        }
    }

    /// <summary>Where a node stands in bootstrapping, from what it reports of itself.</summary>
    public static NodePhase PhaseOf(NodeStatus status, bool servesSocks)
    {
        if (status.Neighbours.Count == 0) return NodePhase.Joining;
        if (!status.RequestMet) return NodePhase.Searching;
        if (servesSocks && status.Request is not null && status.Circuits == 0) return NodePhase.Building;
        return NodePhase.Ready;
    }

    /// <summary>The phase in words; <paramref name="request"/> is the request as configured, before it is split among partners.</summary>
    public static string Describe(NodePhase phase, NodeStatus status, Block? request) => phase switch
    {
        NodePhase.Joining => "Joining the network: dialing peers, no neighbour yet",
        NodePhase.Searching => $"Searching for partners: {status.Neighbours.Count} neighbours, {status.ReceivedKbps} of {request?.Kbps ?? 0} kbps granted so far",
        NodePhase.Building => "Building circuits: partners found, the first circuit is on its way",
        _ => status.SocksEndPoint is { } socks && status.Request is not null
            ? $"Ready: a circuit is waiting; point applications at the SOCKS proxy on {socks}"
            : "Ready: linked, and carrying partners' traffic",
    };

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        _stopping.Dispose();
    }
}
