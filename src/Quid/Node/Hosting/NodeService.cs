using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Quid.Node.Configuration;
using Quid.Node.Control;

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
    private NodeControl? _control;

    public QuidNode? Node => _node;
    public ControlServer? Control => _control?.Server;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        foreach (var warning in settings.Warnings) _logger.LogWarning("{Warning}", warning);
        if (settings.ConfigFileExists) _logger.LogInformation("Configuration from {File}, the environment and flags", settings.ConfigFile);
        else _logger.LogInformation("No {File}: configuration from the environment, flags and defaults", settings.ConfigFile);
        _node = await QuidNode.StartAsync(settings.Node, loggers, time).ConfigureAwait(false);
        // When the control port is only the default and another node has it already (two nodes for
        // one user, or a test network), any free loopback port will do. A port that was asked for
        // is kept to, or start fails.
        bool asked = settings.Values.Single(v => v.Key == "control").Origin.Source != SettingSource.Default;
        try
        {
            _control = await NodeControl.StartAsync(_node, settings.Control, anyPortIfTaken: !asked, settings.DataDirectory, loggers, time, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            await DisposeAsync().ConfigureAwait(false);
            throw new IOException($"The control API cannot listen on {settings.Control} ({e.Message}); another node may be running there: set control to another loopback port, or off.", e);
        }
        if (_control.Server is { } server)
            _logger.LogInformation("Control API, dashboard and metrics on http://{EndPoint}/ ('quid dashboard' prints a link that signs in)", server.EndPoint);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _logger.LogInformation("Shutting down: letting open streams finish, then ending agreements and closing links");
        await DisposeAsync().ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        if (_control is not null) await _control.DisposeAsync().ConfigureAwait(false);
        if (_node is not null) await _node.DisposeAsync().ConfigureAwait(false);
        (_control, _node) = (null, null);
    }
}
