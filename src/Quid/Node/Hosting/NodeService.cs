using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Quid.Node.Configuration;
using Quid.Node.Control;
using Quid.Node.Metrics;

namespace Quid.Node.Hosting;

/// <summary>
/// A node as a generic-host service, which is how <c>quid run</c> runs it: the host turns Ctrl-C
/// and SIGTERM (systemd's stop) into a graceful stop, and tells systemd when the node is up.
/// Starting brings up the node, the monitor that logs its progress, and the control API;
/// stopping takes them down in the reverse order, the node last, so it can drain its streams
/// and end its agreements politely.
/// </summary>
public sealed class NodeService(NodeSettings settings, ILoggerFactory loggers, TimeProvider time) : IHostedService, IAsyncDisposable
{
    private readonly ILogger _logger = loggers.CreateLogger("Quid");
    private QuidNode? _node;
    private NodeMonitor? _monitor;
    private NodeMetrics? _metrics;
    private ControlServer? _control;

    public QuidNode? Node => _node;
    public ControlServer? Control => _control;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        foreach (var warning in settings.Warnings) _logger.LogWarning("{Warning}", warning);
        if (settings.ConfigFileExists) _logger.LogInformation("Configuration from {File}, the environment and flags", settings.ConfigFile);
        else _logger.LogInformation("No {File}: configuration from the environment, flags and defaults", settings.ConfigFile);
        _node = await QuidNode.StartAsync(settings.Node, loggers, time).ConfigureAwait(false);
        _monitor = new NodeMonitor(_node, time, _logger);
        await _monitor.StartAsync().ConfigureAwait(false);
        if (settings.Control is not { } endPoint) return;
        _metrics = new NodeMetrics(_node, _monitor);
        try
        {
            _control = await StartControlAsync(endPoint, cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            await DisposeAsync().ConfigureAwait(false);
            throw new IOException($"The control API cannot listen on {endPoint} ({e.Message}); another node may be running there: set control to another loopback port, or off.", e);
        }
        _logger.LogInformation("Control API, dashboard and metrics on http://{EndPoint}/ ('quid dashboard' prints a link that signs in)", _control.EndPoint);
    }

    /// <summary>
    /// Starts the control API on its port. When that is only the default and another node has it
    /// already (two nodes for one user, or a test network), any free loopback port will do: the
    /// CLI finds it in the data directory. A port that was asked for is kept to, or start fails.
    /// </summary>
    private async Task<ControlServer> StartControlAsync(System.Net.IPEndPoint endPoint, CancellationToken cancellationToken)
    {
        bool asked = settings.Values.Single(v => v.Key == "control").Origin.Source != SettingSource.Default;
        try
        {
            return await ControlServer.StartAsync(_node!, _monitor!, _metrics!, endPoint, settings.DataDirectory, loggers, cancellationToken).ConfigureAwait(false);
        }
        catch (IOException) when (!asked)
        {
            _logger.LogWarning("The control API's usual port {EndPoint} is taken, perhaps by another node: it takes a free port instead, which 'quid status' finds in the data directory", endPoint);
            return await ControlServer.StartAsync(_node!, _monitor!, _metrics!, new System.Net.IPEndPoint(endPoint.Address, 0), settings.DataDirectory, loggers, cancellationToken).ConfigureAwait(false);
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _logger.LogInformation("Shutting down: letting open streams finish, then ending agreements and closing links");
        await DisposeAsync().ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        if (_control is not null) await _control.DisposeAsync().ConfigureAwait(false);
        _metrics?.Dispose();
        if (_monitor is not null) await _monitor.DisposeAsync().ConfigureAwait(false);
        if (_node is not null) await _node.DisposeAsync().ConfigureAwait(false);
        (_control, _metrics, _monitor, _node) = (null, null, null, null);
    }
}
