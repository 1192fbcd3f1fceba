using System.Diagnostics;

namespace Quid.Tests.Integration;

/// <summary>Runs the real curl (installed by .ci/run) and returns its exit code and output.</summary>
internal static class Curl
{
    public static async Task<(int ExitCode, string Output, string Errors)> RunAsync(params string[] arguments)
    {
        var start = new ProcessStartInfo("curl") { RedirectStandardOutput = true, RedirectStandardError = true };
        // Never let a proxy from the environment change what the test exercises.
        start.Environment.Remove("http_proxy");
        start.Environment.Remove("https_proxy");
        start.Environment.Remove("ALL_PROXY");
        start.Environment.Remove("all_proxy");
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        Process process;
        try
        {
            process = Process.Start(start)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException("curl is not installed: run .ci/run, or 'apt-get install -y curl'.", e);
        }
        using var _ = process;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await output, await errors);
    }
}
