using System.Net;

namespace Quid.Tests.Integration;

/// <summary>The exit cache writes a body aside and indexes it only once it is whole: kill -9 in the middle leaves nothing to serve.</summary>
public sealed class ExitCacheCrashTests
{
    [Fact]
    public async Task A_node_killed_while_it_stores_a_body_starts_again_with_no_part_of_it()
    {
        string root = Directory.CreateTempSubdirectory("quid-cache-crash-").FullName;
        await using var origin = await CacheOrigin.StartAsync(IPAddress.Loopback);
        try
        {
            string exitDir = Path.Combine(root, "exit");
            string[] exitArguments = ["run", "--data-dir", exitDir, "--listen", "127.0.0.212:0", "--socks", "off", "--http-proxy", "off", "--control", "off",
                "--offer", "65536", "--request", "0", "--hops", "1", "--exit-allow-private", "--no-probes", "--cache", "64MiB", "--cache-port", $"{origin.Port}"];
            using var exit = QuidProcess.Start(exitArguments);
            var linkPort = (await exit.WaitForLineAsync(@"Accepting links on 127\.0\.0\.212:(\d+)", TimeSpan.FromSeconds(30))).Groups[1].Value;
            await exit.WaitForLineAsync("The exit cache is on, for the first time here", TimeSpan.FromSeconds(5));

            using var client = QuidProcess.Start("run", "--data-dir", Path.Combine(root, "client"), "--listen", "127.0.0.213:0", "--socks", "127.0.0.1:0",
                "--http-proxy", "off", "--control", "off", "--offer", "65536", "--request", "65536", "--hops", "1", "--no-probes", "--peer", $"127.0.0.212:{linkPort}");
            var socks = (await client.WaitForLineAsync(@"SOCKS proxy on (127\.0\.0\.1:\d+)", TimeSpan.FromSeconds(30))).Groups[1].Value;
            await client.WaitForLineAsync("(Private|Public) agreement with", TimeSpan.FromSeconds(30));

            string url = $"http://127.0.0.1:{origin.Port}/slow?size={4 << 20}";
            var (first, _, firstErrors) = await Curl.RunAsync("--silent", "--show-error", "--output", "/dev/null", "--max-time", "30", "--socks5-hostname", socks, "--proxy-user", "alice:x", url);
            Assert.True(first == 0, firstErrors);

            // The second asker's copy is stored as it trickles in; kill the exit half-way.
            var second = Curl.RunAsync("--silent", "--output", "/dev/null", "--max-time", "30", "--socks5-hostname", socks, "--proxy-user", "bob:x", url);
            string incoming = Path.Combine(exitDir, "cache", "incoming");
            await Eventually.WaitUntilAsync(() => Directory.EnumerateFiles(incoming).Any(f => new FileInfo(f).Length > 256 * 1024), TimeSpan.FromSeconds(20),
                "the exit to be storing the body");
            exit.KillHard();
            Assert.NotEqual(0, (await second).ExitCode);
            Assert.NotEmpty(Directory.EnumerateFiles(incoming));

            using var again = QuidProcess.Start(exitArguments);
            var count = (await again.WaitForLineAsync(@"Exit cache: (\d+) responses", TimeSpan.FromSeconds(30))).Groups[1].Value;
            Assert.Equal("0", count);
            Assert.Empty(Directory.EnumerateFiles(incoming));
            Assert.Empty(Directory.EnumerateFiles(Path.Combine(exitDir, "cache", "bodies")));
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }
}
