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

    /// <summary>
    /// How to run this same quid from a shell, for commands the CLI prints: <c>quid</c> when that is
    /// what the shell finds, else the full path of the quid beside this program (a build run with
    /// <c>dotnet run</c>, say), else of this program.
    /// </summary>
    public static string CommandName()
    {
        if (Environment.ProcessPath is not { } program || Path.GetFileNameWithoutExtension(program) == "dotnet") return "quid";
        string beside = Path.Combine(Path.GetDirectoryName(program)!, OperatingSystem.IsWindows() ? "quid.exe" : "quid");
        string us = File.Exists(beside) ? beside : program;
        var onPath = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, Path.GetFileName(beside)))
            .FirstOrDefault(File.Exists);
        return onPath is not null && RealPath(onPath) == RealPath(us) ? "quid" : ShellWord(us);

        static string RealPath(string path) => File.ResolveLinkTarget(path, returnFinalTarget: true)?.FullName ?? Path.GetFullPath(path);
    }

    /// <summary><paramref name="text"/> as one word for a POSIX shell: as it is when it is safe, else in single quotes.</summary>
    public static string ShellWord(string text) =>
        text.Length > 0 && text.All(c => char.IsAsciiLetterOrDigit(c) || "/._-+:=@%,".Contains(c, StringComparison.Ordinal))
            ? text
            : "'" + text.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
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
