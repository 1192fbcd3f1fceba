using System.Text.Json;

namespace Quid.Tests.Integration;

/// <summary>The ledger is in SQLite's write-ahead log: a node killed with kill -9 mid-transfer keeps it.</summary>
public sealed class LedgerCrashTests
{
    [Fact]
    public async Task The_ledger_survives_kill_9_of_a_node_in_the_middle_of_a_transfer()
    {
        string root = Directory.CreateTempSubdirectory("quid-crash-").FullName;
        await using var web = new Quid.Cli.Demo.LocalWebServer(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
        web.Start();
        try
        {
            using var exit = QuidProcess.Start("run", "--data-dir", Path.Combine(root, "exit"), "--listen", "127.0.0.210:0", "--socks", "off", "--http-proxy", "off",
                "--offer", "2048", "--request", "0", "--hops", "1", "--exit-allow-private");
            var linkPort = (await exit.WaitForLineAsync(@"Accepting links on 127\.0\.0\.210:(\d+)", TimeSpan.FromSeconds(30))).Groups[1].Value;

            string clientDir = Path.Combine(root, "client");
            using var client = QuidProcess.Start("run", "--data-dir", clientDir, "--listen", "127.0.0.211:0", "--socks", "127.0.0.1:0", "--http-proxy", "off",
                "--offer", "256", "--request", "2048", "--hops", "1", "--peer", $"127.0.0.210:{linkPort}");
            var socks = (await client.WaitForLineAsync(@"SOCKS proxy on (127\.0\.0\.1:\d+)", TimeSpan.FromSeconds(30))).Groups[1].Value;
            await client.WaitForLineAsync("(Private|Public) agreement with", TimeSpan.FromSeconds(30));

            // A download shaped to 2048 kbps: it is still running when the node dies.
            var download = Curl.RunAsync("--silent", "--output", "/dev/null", "--max-time", "30", "--socks5-hostname", socks, $"{web.BaseUrl}/bytes/{64 << 20}");
            await Eventually.WaitUntilAsync(() => LedgerReceived(clientDir) > 512 * 1024, TimeSpan.FromSeconds(20), "the ledger to count half a MiB received");
            client.KillHard();
            var (curlExit, _, _) = await download;
            Assert.NotEqual(0, curlExit); // the transfer was cut, as intended

            // The database opens, is intact, and still holds the partner and what it carried for us.
            var (code, text) = await QuidProcess.RunAsync("ledger", "--data-dir", clientDir, "--json");
            Assert.True(code == 0, text);
            var entry = Assert.Single(JsonDocument.Parse(text).RootElement.EnumerateArray());
            Assert.True(entry.GetProperty("bytesReceived").GetInt64() > 512 * 1024);
            Assert.Equal("Good", entry.GetProperty("verdict").GetString());

            // And the node starts again on it, with its history.
            using var again = QuidProcess.Start("run", "--data-dir", clientDir, "--listen", "127.0.0.211:0", "--socks", "off", "--http-proxy", "off", "--offer", "256", "--request", "2048", "--hops", "1");
            await again.WaitForLineAsync("identity loaded", TimeSpan.FromSeconds(30));
            await again.WaitForLineAsync("peers remembered", TimeSpan.FromSeconds(30));
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    /// <summary>What the ledger on disk says the partner carried for us, read as `quid ledger` does (the node keeps running).</summary>
    private static long LedgerReceived(string dataDirectory)
    {
        // The node creates the file empty, then SQLite writes it: an empty file is not yet a ledger.
        var file = new FileInfo(Path.Combine(dataDirectory, Quid.Node.NodeDatabase.FileName));
        if (!file.Exists || file.Length == 0) return 0;
        using var database = Quid.Node.NodeDatabase.OpenReadOnly(dataDirectory, check: false);
        return database.ReadLedger().Sum(e => e.BytesReceived);
    }
}
