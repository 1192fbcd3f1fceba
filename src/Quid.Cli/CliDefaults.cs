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

    /// <summary>Completes on Ctrl-C or SIGTERM, so a node shuts down gracefully either way.</summary>
    public static Task WaitForShutdownAsync(CancellationToken cancellationToken)
    {
        var stop = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        cancellationToken.Register(() => stop.TrySetResult());
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            stop.TrySetResult();
        };
        System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c =>
        {
            c.Cancel = true;
            stop.TrySetResult();
        });
        return stop.Task;
    }
}
