using System.Diagnostics;
using Xunit.Abstractions;

namespace Quid.Tests.Testbed;

/// <summary>
/// Runs on a machine where the testbed can run (root, Mininet, network namespaces), and is skipped
/// with the reason everywhere else: the reason is printed by the test runner.
/// </summary>
public sealed class TestbedFactAttribute : FactAttribute
{
    public TestbedFactAttribute()
    {
        Skip = Environment.GetEnvironmentVariable("QUID_TESTBED") == "off" ? "QUID_TESTBED=off"
            : !OperatingSystem.IsLinux() ? "the testbed needs Linux (network namespaces, tc)"
            : !Environment.IsPrivilegedProcess ? "the testbed needs root (network namespaces, bridges, tc); run the tests as root, as .ci/run does"
            : !Succeeds("/usr/bin/python3", "-c \"import mininet\"") ? "Mininet is not installed for /usr/bin/python3 (apt-get install mininet; .ci/run does)"
            : !Succeeds("unshare", "-n true") ? "this machine refuses new network namespaces (unshare -n)"
            : null;
    }

    private static bool Succeeds(string command, string arguments)
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo(command, arguments) { RedirectStandardOutput = true, RedirectStandardError = true });
            if (process is null) return false;
            process.WaitForExit(10_000);
            return process.HasExited && process.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }
}

/// <summary>The testbed owns both cores while it runs: nothing else runs beside it.</summary>
[CollectionDefinition(nameof(TestbedCollection), DisableParallelization = true)]
public sealed class TestbedCollection;

/// <summary>
/// The testbed of tests/testbed: real quid processes (Native AOT) on 30 emulated hosts with htb-capped
/// links, probes on, and the market's promises asserted (docs/TESTBED.md). Its table goes to the
/// test output and to artifacts/testbed.md, which .ci/run prints.
/// </summary>
[Collection(nameof(TestbedCollection))]
public sealed class TestbedTests(ITestOutputHelper output)
{
    [TestbedFact]
    public async Task The_market_keeps_its_promises_on_real_links_with_real_limits()
    {
        string root = RepositoryRoot();
        string result = Path.Combine(root, "artifacts", "testbed.md");
        Directory.CreateDirectory(Path.GetDirectoryName(result)!);
        File.Delete(result);
        var start = new ProcessStartInfo(Path.Combine(root, "tests", "testbed", "run.sh"))
        {
            WorkingDirectory = root,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["TESTBED_RESULT"] = result;
        using var process = Process.Start(start)!;
        var lines = new List<string>();
        var reading = Task.WhenAll(Pump(process.StandardOutput), Pump(process.StandardError));
        using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(12));
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException("The testbed ran past 12 minutes.");
        }
        await reading;
        foreach (var line in lines) output.WriteLine(line);
        // It exits 0 when every assertion passed or is a known gap (shown as FAIL, with what is missing).
        Assert.True(process.ExitCode == 0, $"The testbed exited with {process.ExitCode}: {string.Join('\n', lines.TakeLast(30))}");
        Assert.Matches(@"^\d+ passed, \d+ failed$", lines.LastOrDefault(l => l.Length > 0) ?? "");

        async Task Pump(StreamReader reader)
        {
            while (await reader.ReadLineAsync() is { } line)
            {
                // htb's note about its quantum, once per capped link, says nothing about the run.
                if (line.Contains("quantum of class", StringComparison.Ordinal)) continue;
                lock (lines) lines.Add(line);
            }
        }
    }

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
            if (File.Exists(Path.Combine(directory.FullName, "Quid.sln"))) return directory.FullName;
        throw new InvalidOperationException("The tests run outside the repository: no Quid.sln above " + AppContext.BaseDirectory);
    }
}
