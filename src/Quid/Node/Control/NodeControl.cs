using System.Net;
using Microsoft.Extensions.Logging;
using Quid.Node.Metrics;

namespace Quid.Node.Control;

/// <summary>
/// What watches a running node and answers for it, as <c>quid run</c> has it: the monitor that
/// samples its rates and logs each step of bootstrapping, and, unless the control API is off, its
/// metrics and the control API, which writes its cookie and address into the data directory where
/// <c>quid status</c> and <c>quid dashboard</c> find them. The node stays the caller's: start this
/// after it, and dispose of this before it.
/// </summary>
public sealed class NodeControl : IAsyncDisposable
{
    private NodeControl(NodeMonitor monitor, NodeMetrics? metrics, ControlServer? server)
    {
        Monitor = monitor;
        Metrics = metrics;
        Server = server;
    }

    public NodeMonitor Monitor { get; }
    /// <summary>Null when the control API is off.</summary>
    public NodeMetrics? Metrics { get; }
    /// <summary>Null when the control API is off.</summary>
    public ControlServer? Server { get; }

    /// <param name="node">The running node.</param>
    /// <param name="endPoint">Where the control API listens, on loopback (port 0: any free port); null for none, the monitor alone.</param>
    /// <param name="anyPortIfTaken">When that port is taken, take any free one instead (the CLI finds it in the data directory) rather than fail.</param>
    /// <param name="dataDirectory">The node's data directory, for the cookie and the address.</param>
    /// <param name="loggers">Loggers for the control API; the monitor logs as "Quid".</param>
    /// <param name="time">The monitor's clock.</param>
    /// <param name="options">The control API's limits; null for the defaults.</param>
    /// <param name="cancellationToken">Cancels starting the control API.</param>
    /// <exception cref="IOException">The control API cannot listen on <paramref name="endPoint"/>.</exception>
    public static async Task<NodeControl> StartAsync(QuidNode node, IPEndPoint? endPoint, bool anyPortIfTaken, string dataDirectory,
        ILoggerFactory loggers, TimeProvider time, ControlOptions? options = null, CancellationToken cancellationToken = default)
    {
        var logger = loggers.CreateLogger("Quid");
        var monitor = new NodeMonitor(node, time, logger);
        await monitor.StartAsync().ConfigureAwait(false);
        if (endPoint is null) return new NodeControl(monitor, null, null);
        var metrics = new NodeMetrics(node, monitor);
        try
        {
            ControlServer server;
            try
            {
                server = await ControlServer.StartAsync(node, monitor, metrics, endPoint, dataDirectory, loggers, options, cancellationToken).ConfigureAwait(false);
            }
            catch (IOException) when (anyPortIfTaken)
            {
                logger.LogWarning("The control API's usual port {EndPoint} is taken, perhaps by another node: it takes a free port instead, which 'quid status' finds in the data directory", endPoint);
                server = await ControlServer.StartAsync(node, monitor, metrics, new IPEndPoint(endPoint.Address, 0), dataDirectory, loggers, options, cancellationToken).ConfigureAwait(false);
            }
            return new NodeControl(monitor, metrics, server);
        }
        catch
        {
            metrics.Dispose();
            await monitor.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Server is not null) await Server.DisposeAsync().ConfigureAwait(false);
        Metrics?.Dispose();
        await Monitor.DisposeAsync().ConfigureAwait(false);
    }
}
