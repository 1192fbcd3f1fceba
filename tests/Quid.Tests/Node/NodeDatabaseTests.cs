using Microsoft.Data.Sqlite;
using Quid.Circuits;
using Quid.Crypto;
using Quid.Node;
using Quid.Services;

namespace Quid.Tests.Node;

/// <summary>quid.db names the node it belongs to; a ledger written before it did is taken to belong to the key beside it.</summary>
public sealed class NodeDatabaseTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("quid-db-").FullName;
    private readonly NodeId _owner = NodeId.FromSigningKey(new byte[32]);
    private readonly NodeId _other = NodeId.FromSigningKey(Enumerable.Repeat((byte)7, 32).ToArray());

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void A_ledger_from_before_ledgers_named_their_node_keeps_its_accounts_and_is_bound_to_the_first_key_that_opens_it()
    {
        // The tables as the previous version made them: no node table.
        using (var connection = new SqliteConnection($"Data Source={Path.Combine(_directory, NodeDatabase.FileName)};Pooling=False"))
        {
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = """
                PRAGMA journal_mode = WAL;
                CREATE TABLE peers (id BLOB PRIMARY KEY, address TEXT NOT NULL, last_seen INTEGER NOT NULL, failures INTEGER NOT NULL, ultrapeer INTEGER NOT NULL);
                CREATE TABLE agreements (id BLOB PRIMARY KEY, partner BLOB NOT NULL, terms BLOB NOT NULL, proposer_signature BLOB NOT NULL, acceptor_signature BLOB,
                    we_grant_kbps INTEGER NOT NULL, they_grant_kbps INTEGER NOT NULL, state TEXT NOT NULL, started INTEGER NOT NULL, ended INTEGER, end_reason TEXT);
                CREATE TABLE accounts (partner BLOB PRIMARY KEY, first_seen INTEGER NOT NULL, bytes_given INTEGER NOT NULL, bytes_received INTEGER NOT NULL,
                    verdict TEXT NOT NULL, failures INTEGER NOT NULL, shunned_until INTEGER, delivered_kbps REAL, last_probe INTEGER, has_history INTEGER NOT NULL);
                INSERT INTO accounts VALUES (zeroblob(20), 0, 1000, 2000, 'Good', 0, NULL, NULL, NULL, 1);
                """;
            command.ExecuteNonQuery();
        }
        using (var readOnly = NodeDatabase.OpenReadOnly(_directory))
            Assert.Equal(2000, Assert.Single(readOnly.ReadLedger()).BytesReceived);

        using (var database = NodeDatabase.Open(_directory, _owner))
            Assert.Equal(1000, Assert.Single(database.LoadAccounts()).BytesGiven);
        using (var again = NodeDatabase.Open(_directory, _owner))
            Assert.Single(again.LoadAccounts());

        var error = Assert.Throws<NodeStateException>(() => NodeDatabase.Open(_directory, _other));
        Assert.Contains($"holds the ledger of node {_owner}", error.Message, StringComparison.Ordinal);
        Assert.Contains($"is node {_other}", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Stable_and_moving_services_and_shares_are_kept_until_forgotten_and_ephemeral_ones_never_come_back()
    {
        var web = new ServiceSpec("web", System.Net.IPEndPoint.Parse("127.0.0.1:8080"), AddressKind.Stable);
        var files = new ShareSpec("files", ["/srv/a b.txt", "/srv/folder"], Kind: AddressKind.Moving, Private: true);
        var inbox = new ShareSpec("inbox", [], "/srv/inbox", AddressKind.Stable);
        using (var database = NodeDatabase.Open(_directory, _owner))
        {
            database.SaveService(web);
            database.SaveService(files);
            database.SaveService(inbox);
            database.SaveService(new ServiceSpec("gone", System.Net.IPEndPoint.Parse("127.0.0.1:1"), AddressKind.Stable));
            database.ForgetService("gone");
            // Saved again under its name, a service replaces what was kept.
            database.SaveService(web with { Private = true });
        }
        using (var reopened = NodeDatabase.Open(_directory, _owner))
        {
            var kept = reopened.LoadServices();
            Assert.Equal(3, kept.Count);
            Assert.Equal(web with { Private = true }, Assert.IsType<ServiceSpec>(kept.Single(s => s is ServiceSpec)));
            var shares = kept.OfType<ShareSpec>().ToDictionary(s => s.Name);
            Assert.Equal(files.Paths, shares["files"].Paths);
            Assert.Equal((AddressKind.Moving, true, (string?)null), (shares["files"].Kind, shares["files"].Private, shares["files"].ReceiveDirectory));
            Assert.Equal("/srv/inbox", shares["inbox"].ReceiveDirectory);
            Assert.Empty(shares["inbox"].Paths);
        }
    }

    [Fact]
    public void Vanguards_are_kept_across_a_reopening_and_each_save_replaces_the_last()
    {
        var until = DateTimeOffset.FromUnixTimeSeconds(1_800_000_000);
        Vanguard[] kept = [new(_owner, _other, until), new(_other, _owner, until.AddDays(3))];
        using (var database = NodeDatabase.Open(_directory, _owner))
        {
            Assert.Empty(database.LoadVanguards());
            database.SaveVanguards([new(_owner, _owner, until)]);
            database.SaveVanguards(kept);
        }
        using var reopened = NodeDatabase.Open(_directory, _owner);
        Assert.Equal(kept, reopened.LoadVanguards().OrderBy(v => v.First == _owner ? 0 : 1));
    }

    [Fact]
    public void Follows_and_access_keys_are_kept_until_forgotten()
    {
        using (var database = NodeDatabase.Open(_directory, _owner))
        {
            database.SaveFollow("blog", "quid-secret-a", null);
            database.SaveFollow("friend", "quid-secret-b", "quid-secret-c");
            database.SaveFollow("blog", "quid-secret-d", null);
            database.SaveAccess("x.quid", "quid-secret-e");
            database.SaveAccess("y.quid", "quid-secret-f");
            database.ForgetAccess("y.quid");
        }
        using var reopened = NodeDatabase.Open(_directory, _owner);
        Assert.Equal([("blog", "quid-secret-d", null), ("friend", "quid-secret-b", "quid-secret-c")], reopened.LoadFollows());
        Assert.Equal([("x.quid", "quid-secret-e")], reopened.LoadAccess());
        reopened.ForgetFollow("blog");
        Assert.Equal("friend", Assert.Single(reopened.LoadFollows()).Name);
    }

    [Fact]
    public void A_new_ledger_is_created_owner_only_with_its_write_ahead_log()
    {
        if (OperatingSystem.IsWindows()) return;
        using var database = NodeDatabase.Open(_directory, _owner);
        database.SavePeers([]);
        string path = Path.Combine(_directory, NodeDatabase.FileName);
        foreach (var file in new[] { path, path + "-wal", path + "-shm" })
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
    }

    [Fact]
    public void An_existing_ledger_left_readable_by_others_is_made_owner_only_when_opened()
    {
        if (OperatingSystem.IsWindows()) return;
        string path = Path.Combine(_directory, NodeDatabase.FileName);
        NodeDatabase.Open(_directory, _owner).Dispose();
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

        using var database = NodeDatabase.Open(_directory, _owner);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
    }
}
