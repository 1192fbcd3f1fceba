using System.Text.RegularExpressions;
using Microsoft.Data.Sqlite;

namespace Quid.Tests.Integration;

/// <summary>
/// The data directory as the real <c>quid</c> finds it after accidents: a damaged or missing key,
/// a key from another node, a damaged or emptied ledger, a shared directory. Each stops the node
/// with exit code 78 and one line naming the file and the fix, never a new identity or a stack trace.
/// </summary>
[Collection(nameof(SerialTests))]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class DataDirectoryTests : IDisposable
{
    private const int BadConfiguration = 78;
    private readonly string _root = Directory.CreateTempSubdirectory("quid-data-").FullName;

    [Fact]
    public async Task A_damaged_identity_key_stops_quid_run_and_quid_id_naming_the_file_and_the_fix()
    {
        string dir = Path.Combine(_root, "node");
        await RunOnceAsync(dir);
        string key = Path.Combine(dir, "identity.key");
        var lines = File.ReadAllLines(key);
        // One character of the seed changed, still valid base64: before, this was another node with the old ledger.
        lines[1] = (lines[1][5] == 'A' ? "B" : "A") is var c ? lines[1][..5] + c + lines[1][6..] : lines[1];
        File.WriteAllLines(key, lines);
        string damaged = File.ReadAllText(key);

        var (code, output) = await RunAsync("run", "--data-dir", dir, "--listen", "127.0.0.231:0", "--socks", "off", "--http-proxy", "off", "--control", "off");
        AssertStopsWithOneLine(code, output, "quid run", key, "--new-identity");
        var (idCode, idOutput) = await RunAsync("id", "--data-dir", dir, "--control", "off");
        AssertStopsWithOneLine(idCode, idOutput, "quid id", key);
        Assert.Equal(damaged, File.ReadAllText(key));
    }

    [Fact]
    public async Task A_missing_or_foreign_key_beside_a_ledger_stops_the_node_and_new_identity_archives_both()
    {
        string dir = Path.Combine(_root, "node"), other = Path.Combine(_root, "other");
        string oldId = await RunOnceAsync(dir);
        string key = Path.Combine(dir, "identity.key"), db = Path.Combine(dir, "quid.db");

        File.Delete(key);
        var (code, output) = await RunAsync("run", "--data-dir", dir, "--listen", "127.0.0.231:0", "--socks", "off", "--http-proxy", "off", "--control", "off");
        AssertStopsWithOneLine(code, output, "quid run", key, db, oldId, "--new-identity");
        var (idCode, idOutput) = await RunAsync("id", "--data-dir", dir, "--control", "off");
        AssertStopsWithOneLine(idCode, idOutput, "quid id", key, "--new-identity");
        Assert.False(File.Exists(key), "quid id must not make a new identity beside a ledger");

        // Another node's key, restored by mistake: its id is not the one the ledger belongs to.
        var (made, foreignId) = await RunAsync("id", "--data-dir", other, "--control", "off");
        Assert.True(made == 0, foreignId);
        File.Copy(Path.Combine(other, "identity.key"), key);
        (code, output) = await RunAsync("run", "--data-dir", dir, "--listen", "127.0.0.231:0", "--socks", "off", "--http-proxy", "off", "--control", "off");
        AssertStopsWithOneLine(code, output, "quid run", oldId, foreignId.Trim(), "--new-identity");

        // The explicit way out: the old state is moved into a dated folder, not deleted, and a new node starts.
        byte[] oldKey = File.ReadAllBytes(key);
        using (var fresh = Start(dir, "--new-identity"))
        {
            string newId = (await fresh.WaitForLineAsync(@"Node ([a-z2-7]{32}) \(new identity\)", TimeSpan.FromSeconds(30))).Groups[1].Value;
            Assert.NotEqual(oldId, newId);
            Assert.NotEqual(foreignId.Trim(), newId);
            Assert.Contains("archive", fresh.Output, StringComparison.Ordinal);
            await StopAsync(fresh);
        }
        string archived = Assert.Single(Directory.GetDirectories(Path.Combine(dir, "archive")));
        Assert.Equal(oldKey, File.ReadAllBytes(Path.Combine(archived, "identity.key")));
        Assert.True(new FileInfo(Path.Combine(archived, "quid.db")).Length > 0);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(archived));
        using var again = Start(dir);
        await again.WaitForLineAsync("identity loaded", TimeSpan.FromSeconds(30));
        await StopAsync(again);
    }

    public static TheoryData<string> Damage() => new("garbage", "empty", "nulls", "page");

    [Theory]
    [MemberData(nameof(Damage))]
    public async Task A_damaged_or_emptied_ledger_stops_run_and_ledger_with_one_line(string damage)
    {
        string dir = Path.Combine(_root, "node");
        await RunOnceAsync(dir);
        string db = Path.Combine(dir, "quid.db");
        foreach (var leftover in new[] { db + "-wal", db + "-shm" }) File.Delete(leftover);
        switch (damage)
        {
            case "garbage":
                using (var file = File.OpenWrite(db)) file.Write(new byte[100].Select(_ => (byte)'x').ToArray());
                break;
            case "empty":
                File.WriteAllBytes(db, []);
                break;
            case "nulls":
                // A table of the right name and the wrong shape, holding a NULL where the node expects a number.
                using (var connection = new SqliteConnection($"Data Source={db};Pooling=False"))
                {
                    connection.Open();
                    using var command = connection.CreateCommand();
                    command.CommandText = "DROP TABLE accounts; CREATE TABLE accounts (partner, first_seen, bytes_given, bytes_received, verdict, failures, shunned_until, delivered_kbps, last_probe, has_history);"
                        + "INSERT INTO accounts VALUES (zeroblob(20), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);";
                    command.ExecuteNonQuery();
                }
                break;
            case "page":
                // Past the header, a page of the b-tree overwritten.
                byte[] bytes = File.ReadAllBytes(db);
                Assert.True(bytes.Length >= 3 * 4096, $"quid.db is {bytes.Length} bytes");
                for (int i = 4096; i < 2 * 4096; i++) bytes[i] = 0xA5;
                File.WriteAllBytes(db, bytes);
                break;
        }

        var (code, output) = await RunAsync("run", "--data-dir", dir, "--listen", "127.0.0.231:0", "--socks", "off", "--http-proxy", "off", "--control", "off");
        AssertStopsWithOneLine(code, output, "quid run", db);
        var (ledgerCode, ledgerOutput) = await RunAsync("ledger", "--data-dir", dir, "--control", "off");
        AssertStopsWithOneLine(ledgerCode, ledgerOutput, "quid ledger", db);
        if (damage == "empty") Assert.Contains("empty", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_ledger_files_are_owner_only_and_a_shared_data_dir_keeps_its_mode_and_sticky_bit()
    {
        // A directory like /tmp: everyone may write, the sticky bit keeps them from each other's files.
        string shared = Path.Combine(_root, "shared");
        Directory.CreateDirectory(shared);
        var tmpLike = (UnixFileMode)Convert.ToInt32("1777", 8);
        File.SetUnixFileMode(shared, tmpLike);

        using (var node = Start(shared))
        {
            await node.WaitForLineAsync("Accepting links on", TimeSpan.FromSeconds(30));
            Assert.Equal(tmpLike, File.GetUnixFileMode(shared));
            Assert.Contains("writable by other users", node.Output, StringComparison.Ordinal);
            foreach (var name in new[] { "identity.key", "quid.db", "quid.db-wal", "quid.db-shm" })
                Assert.True(File.GetUnixFileMode(Path.Combine(shared, name)) == (UnixFileMode.UserRead | UnixFileMode.UserWrite), $"{name} is {File.GetUnixFileMode(Path.Combine(shared, name))}");
            await StopAsync(node);
        }
        Assert.Equal(tmpLike, File.GetUnixFileMode(shared));

        // A data directory quid creates is its own: owner-only.
        string made = Path.Combine(_root, "made", "quid");
        using var fresh = Start(made);
        await fresh.WaitForLineAsync("Accepting links on", TimeSpan.FromSeconds(30));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(made));
        Assert.DoesNotContain("writable by other users", fresh.Output, StringComparison.Ordinal);
        await StopAsync(fresh);
    }

    private static void AssertStopsWithOneLine(int code, string output, string command, params string[] mentions)
    {
        Assert.True(code == BadConfiguration, $"exit code {code}:\n{output}");
        var errors = output.Split('\n').Where(l => l.StartsWith($"{command}:", StringComparison.Ordinal)).ToList();
        var line = Assert.Single(errors);
        foreach (var mention in mentions) Assert.Contains(mention, line, StringComparison.Ordinal);
        Assert.DoesNotMatch(new Regex(@"(?m)^\s+at |Exception"), output);
    }

    private static QuidProcess Start(string dataDir, params string[] more) =>
        QuidProcess.Start(["run", "--data-dir", dataDir, "--listen", "127.0.0.231:0", "--socks", "off", "--http-proxy", "off", "--control", "off",
            "--offer", "256", "--request", "0", .. more]);

    /// <summary>Starts a node in <paramref name="dataDir"/> until it is up, stops it, and returns its id: a data directory with a key and a ledger.</summary>
    private static async Task<string> RunOnceAsync(string dataDir)
    {
        using var node = Start(dataDir);
        string id = (await node.WaitForLineAsync(@"Node ([a-z2-7]{32}) ", TimeSpan.FromSeconds(30))).Groups[1].Value;
        await node.WaitForLineAsync("Accepting links on", TimeSpan.FromSeconds(30));
        await StopAsync(node);
        return id;
    }

    private static async Task StopAsync(QuidProcess node)
    {
        node.Signal("TERM");
        Assert.Equal(0, await node.WaitForExitAsync(TimeSpan.FromSeconds(30)));
    }

    /// <summary>A command that should stop by itself soon; one that runs on (a node that started after all) is killed and fails the test.</summary>
    private static async Task<(int ExitCode, string Output)> RunAsync(params string[] arguments)
    {
        using var process = QuidProcess.Start(arguments);
        try
        {
            return (await process.WaitForExitAsync(TimeSpan.FromSeconds(20)), process.Output);
        }
        catch (OperationCanceledException)
        {
            throw new Xunit.Sdk.XunitException($"quid {arguments[0]} did not stop:\n{process.Output}");
        }
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
            // Leftovers in a temporary directory are harmless.
        }
    }
}
