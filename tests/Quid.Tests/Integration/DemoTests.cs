using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace Quid.Tests.Integration;

/// <summary><c>quid demo</c> as a newcomer runs it: what it prints to try and to watch must work while it runs.</summary>
public sealed class DemoTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Quid_demo_prints_an_HTTP_proxy_and_a_quid_status_command_that_work_and_Ctrl_C_stops_it_and_deletes_its_directory()
    {
        using var demo = QuidProcess.Start("demo");
        await demo.WaitForLineAsync("Press Ctrl-C", TimeSpan.FromSeconds(90));
        string printed = demo.Output;
        output.WriteLine(printed);
        Match Printed(string pattern)
        {
            var match = Regex.Match(printed, pattern, RegexOptions.Multiline);
            Assert.True(match.Success, $"the demo printed no line /{pattern}/");
            return match;
        }

        // The status command exactly as printed: this very program, and the client node's data directory.
        var statusCommand = Printed(@"^  (\S+) status --data-dir (\S+)");
        Assert.Equal(QuidProcess.Executable, statusCommand.Groups[1].Value);
        string dataDirectory = statusCommand.Groups[2].Value;
        var (code, status) = await QuidProcess.RunAsync("status", "--data-dir", dataDirectory);
        output.WriteLine(status);
        Assert.True(code == 0, status);
        Assert.Contains("Ready: a circuit is waiting", status, StringComparison.Ordinal);
        string socks = Printed(@"curl --socks5-hostname (127\.0\.0\.1:\d+) ").Groups[1].Value;
        Assert.Contains($"SOCKS {socks}", status, StringComparison.Ordinal);

        // quid dashboard finds the same node, and prints the link the demo printed.
        Assert.Equal($"{QuidProcess.Executable} dashboard --data-dir {dataDirectory}", Printed(@"^  (\S+ dashboard --data-dir \S+)").Groups[1].Value);
        var (dashboardCode, dashboard) = await QuidProcess.RunAsync("dashboard", "--data-dir", dataDirectory);
        Assert.True(dashboardCode == 0, dashboard);
        Assert.Equal(Printed(@"^  (http://127\.0\.0\.1:\d+/#token=[0-9a-f]{64})$").Groups[1].Value, dashboard.Trim());

        // The HTTP proxy line, through curl: the web server sees another node's address, not yours (127.0.0.2).
        var proxyCommand = Printed(@"^  curl --proxy (http://127\.0\.0\.1:\d+) (http://127\.0\.0\.1:\d+/) ");
        var (curlCode, page, errors) = await Curl.RunAsync("--silent", "--show-error", "--max-time", "30", "--proxy", proxyCommand.Groups[1].Value, proxyCommand.Groups[2].Value);
        Assert.True(curlCode == 0, errors);
        Assert.Contains("Hello through Quid", page, StringComparison.Ordinal);
        string seen = Regex.Match(page, "id=\"remote\">([0-9.]+)<").Groups[1].Value;
        Assert.Matches(@"^127\.0\.0\.[3-9]$", seen);

        demo.Interrupt();
        Assert.Equal(0, await demo.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.False(Directory.Exists(Path.GetDirectoryName(dataDirectory)), $"the demo left {Path.GetDirectoryName(dataDirectory)} behind");
    }
}
