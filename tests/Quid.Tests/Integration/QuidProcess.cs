using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace Quid.Tests.Integration;

/// <summary>
/// A real <c>quid</c> process, started from the CLI built beside the tests, with its output
/// kept line by line so a test can wait for what it logs.
/// </summary>
internal sealed class QuidProcess : IDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _lines = new();

    private QuidProcess(Process process)
    {
        _process = process;
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) _lines.Enqueue(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) _lines.Enqueue(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public static string Executable => Path.Combine(AppContext.BaseDirectory, OperatingSystem.IsWindows() ? "Quid.Cli.exe" : "Quid.Cli");

    public static QuidProcess Start(params string[] arguments) => Start(new Dictionary<string, string>(), arguments);

    /// <summary>Starts quid with <paramref name="environment"/> added to this process's environment.</summary>
    public static QuidProcess Start(IReadOnlyDictionary<string, string> environment, params string[] arguments)
    {
        var start = new ProcessStartInfo(Executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["NO_COLOR"] = "1";
        foreach (var (name, value) in environment) start.Environment[name] = value;
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        return new QuidProcess(Process.Start(start)!);
    }

    /// <summary>
    /// Starts quid with at most <paramref name="limit"/> open descriptors (soft and hard, as
    /// <c>prlimit --nofile</c> sets them): the limit is the child's alone, never the test host's.
    /// prlimit execs quid, so the process is quid itself.
    /// </summary>
    public static QuidProcess StartWithDescriptorLimit(int limit, params string[] arguments)
    {
        var start = new ProcessStartInfo("prlimit")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["NO_COLOR"] = "1";
        start.ArgumentList.Add(string.Create(CultureInfo.InvariantCulture, $"--nofile={limit}:{limit}"));
        start.ArgumentList.Add(Executable);
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        return new QuidProcess(Process.Start(start)!);
    }

    /// <summary>The process id, for reading /proc or setting limits with prlimit.</summary>
    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>Runs a short command to completion and returns its exit code and output.</summary>
    /// <summary>Runs a short command with <paramref name="input"/> on its standard input, to completion.</summary>
    public static async Task<(int ExitCode, string Output)> RunWithInputAsync(byte[] input, params string[] arguments)
    {
        var start = new ProcessStartInfo(Executable) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        start.Environment["NO_COLOR"] = "1";
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        using var process = new QuidProcess(Process.Start(start)!);
        await process._process.StandardInput.BaseStream.WriteAsync(input);
        process._process.StandardInput.Close();
        int exitCode = await process.WaitForExitAsync(TimeSpan.FromSeconds(60));
        return (exitCode, process.Output);
    }

    public static async Task<(int ExitCode, string Output)> RunAsync(params string[] arguments)
    {
        using var process = Start(arguments);
        int exitCode = await process.WaitForExitAsync(TimeSpan.FromSeconds(60));
        return (exitCode, process.Output);
    }

    /// <summary>Waits for the process to exit by itself; returns its exit code.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(deadline.Token);
        _process.WaitForExit(); // flush the asynchronous output readers
        return _process.ExitCode;
    }

    /// <summary>Sends a signal, as kill -<paramref name="signal"/> would: TERM is systemd's stop, INT is Ctrl-C.</summary>
    public void Signal(string signal)
    {
        using var kill = Process.Start("kill", [$"-{signal}", _process.Id.ToString(CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
        Assert.Equal(0, kill.ExitCode);
    }

    /// <summary>
    /// Ctrl-C: SIGINT. Where the tests run with SIGINT ignored (started with a shell's '&amp;' and no
    /// job control), quid inherits that and .NET keeps it ignored; then SIGTERM, which quid's
    /// commands handle the same way, stands in.
    /// </summary>
    public void Interrupt()
    {
        string? ignored = File.ReadLines($"/proc/{_process.Id}/status").FirstOrDefault(l => l.StartsWith("SigIgn:", StringComparison.Ordinal));
        bool sigintIgnored = ignored is not null && (ulong.Parse(ignored[7..].Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture) & (1 << (2 - 1))) != 0;
        Signal(sigintIgnored ? "TERM" : "INT");
    }

    public string Output => string.Join('\n', _lines);

    /// <summary>Waits for a line matching <paramref name="pattern"/>; returns its match.</summary>
    public async Task<Match> WaitForLineAsync(string pattern, TimeSpan timeout)
    {
        var regex = new Regex(pattern);
        Match? found = null;
        await Eventually.WaitUntilAsync(() =>
        {
            if (_process.HasExited && found is null)
                throw new InvalidOperationException($"quid exited ({_process.ExitCode}) before logging /{pattern}/:\n{Output}");
            found = _lines.Select(l => regex.Match(l)).FirstOrDefault(m => m.Success);
            return found is not null;
        }, timeout, $"quid to log /{pattern}/");
        return found!;
    }

    /// <summary>kill -9: no shutdown code runs, nothing is flushed.</summary>
    public void KillHard()
    {
        _process.Kill(entireProcessTree: true);
        _process.WaitForExit();
    }

    public void Dispose()
    {
        if (!_process.HasExited) KillHard();
        _process.Dispose();
    }
}
