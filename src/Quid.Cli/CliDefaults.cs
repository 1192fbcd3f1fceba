using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;

namespace Quid.Cli;

internal static class CliDefaults
{
    public static ILoggerFactory Loggers(LogLevel level) => LoggerFactory.Create(builder => builder
        .SetMinimumLevel(level)
        .AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss ";
            o.ColorBehavior = LoggerColorBehavior.Default;
        }));
}

/// <summary>
/// Cancelled on Ctrl-C (SIGINT) or SIGTERM, so a command can stop gracefully either way; a second
/// Ctrl-C ends the process at once. Hold on to it until the command ends: disposing of it (or
/// letting the collector have it) gives the signals back their default, which ends the process
/// with nothing cleaned up.
/// </summary>
internal sealed class ShutdownSignal : IDisposable
{
    private readonly CancellationTokenSource _stop;
    private readonly PosixSignalRegistration[] _registrations;

    public ShutdownSignal(CancellationToken cancellationToken)
    {
        _stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _registrations = [PosixSignalRegistration.Create(PosixSignal.SIGINT, Handle), PosixSignalRegistration.Create(PosixSignal.SIGTERM, Handle)];
    }

    public CancellationToken Token => _stop.Token;
    public bool Requested => _stop.IsCancellationRequested;

    /// <summary>Completes when a stop is asked for.</summary>
    public Task WaitAsync()
    {
        var stopped = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _stop.Token.Register(() => stopped.TrySetResult());
        return stopped.Task;
    }

    private void Handle(PosixSignalContext context)
    {
        context.Cancel = context.Signal != PosixSignal.SIGINT || !_stop.IsCancellationRequested;
        _stop.Cancel();
    }

    public void Dispose()
    {
        foreach (var registration in _registrations) registration.Dispose();
        _stop.Dispose();
    }
}
