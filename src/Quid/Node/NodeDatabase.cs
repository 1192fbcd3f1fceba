using System.Net;
using Microsoft.Data.Sqlite;
using Quid.Circuits;
using Quid.Crypto;
using Quid.Exchange;
using Quid.Overlay;
using Quid.Services;
using Quid.Wire;

namespace Quid.Node;

/// <summary>A row of the ledger as <c>quid ledger</c> shows it.</summary>
public sealed record LedgerEntry(
    NodeId Partner, long BytesGiven, long BytesReceived, long WeGrantKbps, long TheyGrantKbps, double? DeliveredKbps,
    Verdict Verdict, DateTimeOffset? ShunnedUntil, int ActiveAgreements, int PastAgreements, DateTimeOffset? LastProbe);

/// <summary>
/// The node's state in one SQLite file, <c>quid.db</c> in the data directory, in WAL mode so a
/// crash or kill -9 never loses a committed write: the ledger (agreements with both signatures,
/// and per partner the bytes given and received and our verdict) and the peer cache, so a
/// restarted node rejoins without its bootstrap list. The file records the node id it belongs to,
/// and is checked when it is opened: a damaged, emptied or foreign ledger is a
/// <see cref="NodeStateException"/>, never a stack trace or a silent fresh start. The file and its
/// -wal and -shm are the owner's only.
/// </summary>
public sealed partial class NodeDatabase : IDisposable
{
    public const string FileName = "quid.db";
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>Every table and its columns as this version writes them; an existing table must have these (it may have more).</summary>
    private static readonly (string Table, string[] Columns)[] Schema =
    [
        ("node", ["id BLOB NOT NULL"]),
        ("peers", ["id BLOB PRIMARY KEY", "address TEXT NOT NULL", "last_seen INTEGER NOT NULL", "failures INTEGER NOT NULL", "ultrapeer INTEGER NOT NULL"]),
        ("agreements", ["id BLOB PRIMARY KEY", "partner BLOB NOT NULL", "terms BLOB NOT NULL", "proposer_signature BLOB NOT NULL", "acceptor_signature BLOB",
            "we_grant_kbps INTEGER NOT NULL", "they_grant_kbps INTEGER NOT NULL", "state TEXT NOT NULL", "started INTEGER NOT NULL", "ended INTEGER", "end_reason TEXT"]),
        ("accounts", ["partner BLOB PRIMARY KEY", "first_seen INTEGER NOT NULL", "bytes_given INTEGER NOT NULL", "bytes_received INTEGER NOT NULL",
            "verdict TEXT NOT NULL", "failures INTEGER NOT NULL", "shunned_until INTEGER", "delivered_kbps REAL", "last_probe INTEGER", "has_history INTEGER NOT NULL"]),
        // Stable and moving services, published again at each start; a share has paths or a receive folder, a service a target.
        ("services", ["name TEXT PRIMARY KEY", "kind TEXT NOT NULL", "private INTEGER NOT NULL", "target TEXT", "paths TEXT", "receive TEXT"]),
        // Moving services followed, by the name the proxies reach them by: the secret, and the access key of a private one, as text.
        ("follows", ["name TEXT PRIMARY KEY", "secret TEXT NOT NULL", "access TEXT"]),
        // Access keys of private services this node's proxies reach, as text, by address.
        ("access", ["address TEXT PRIMARY KEY", "key TEXT NOT NULL"]),
        // The services' vanguards (PROTOCOL §9.13.4): the second hop kept after each first hop, and until when.
        ("vanguards", ["first BLOB PRIMARY KEY", "hop BLOB NOT NULL", "until INTEGER NOT NULL"]),
        // Credits (PROTOCOL §10): the seed our issuing keys derive from; the credits we hold; the
        // issuers' keys we were issued under (a change would mark our credits); what was spent at us.
        ("credit_seed", ["seed BLOB NOT NULL"]),
        ("credits", ["input BLOB PRIMARY KEY", "issuer BLOB NOT NULL", "epoch INTEGER NOT NULL", "denomination INTEGER NOT NULL", "output BLOB NOT NULL"]),
        ("credit_keys", ["issuer BLOB NOT NULL", "epoch INTEGER NOT NULL", "denomination INTEGER NOT NULL", "public BLOB NOT NULL"]),
        ("credits_spent", ["epoch INTEGER NOT NULL", "input BLOB NOT NULL"]),
        // Files we stored on others' nodes (PROTOCOL §10.7): name, seal and secret, and each copy's host, payment and audits left.
        ("stored", ["id BLOB PRIMARY KEY", "name TEXT NOT NULL", "size INTEGER NOT NULL", "cipher_size INTEGER NOT NULL", "sha256 BLOB NOT NULL", "key BLOB NOT NULL",
            "secret BLOB NOT NULL", "days INTEGER NOT NULL", "copies INTEGER NOT NULL", "created INTEGER NOT NULL"]),
        ("stored_copies", ["id BLOB NOT NULL", "host BLOB NOT NULL", "paid_until INTEGER NOT NULL", "challenges BLOB NOT NULL", "state TEXT NOT NULL"]),
        // Programs we deployed on others' nodes (PROTOCOL §11.2): where, the secret that stops them, and how each was at its last status.
        ("deployed", ["id BLOB PRIMARY KEY", "host BLOB NOT NULL", "name TEXT NOT NULL", "secret BLOB NOT NULL", "address TEXT NOT NULL", "deployed_at INTEGER NOT NULL",
            "postage INTEGER NOT NULL", "state TEXT NOT NULL", "fuel INTEGER NOT NULL", "low INTEGER NOT NULL", "delete_at INTEGER", "checked_at INTEGER NOT NULL"]),
        // Our mailboxes (docs/HOSTING.md): the program each runs in, its fetch secret, and the key mail to it is sealed to.
        ("mailboxes", ["program BLOB PRIMARY KEY", "secret BLOB NOT NULL", "private_key BLOB NOT NULL"]),
    ];
    /// <summary>Tables a ledger written before them lacks until a start adds them: reading it without them is no damage.</summary>
    private static readonly string[] AddedLater = ["node", "services", "follows", "access", "vanguards", "credit_seed", "credits", "credit_keys", "credits_spent", "stored", "stored_copies", "deployed", "mailboxes"];
    /// <summary>Separates a share's paths in their column: the one character no path holds.</summary>
    private const char PathSeparator = '\0';

    private readonly SqliteConnection _connection;
    private readonly Lock _lock = new();

    private NodeDatabase(SqliteConnection connection) => _connection = connection;

    /// <summary>
    /// Opens the ledger of node <paramref name="owner"/>, creating it owner-only when there is none.
    /// A ledger from before ledgers named their node is taken to belong to the key beside it.
    /// </summary>
    public static NodeDatabase Open(string dataDirectory, NodeId owner)
    {
        string path = Path.Combine(dataDirectory, FileName);
        if (File.Exists(path)) RefuseEmpty(path);
        else CreateOwnerOnly(path);
        // SQLite gives the -wal and -shm it creates the database's own mode; older versions made all three 0644.
        if (!OperatingSystem.IsWindows())
            foreach (var file in new[] { path, path + "-wal", path + "-shm" })
                if (File.Exists(file) && (File.GetUnixFileMode(file) & ~OwnerOnly) != 0) File.SetUnixFileMode(file, OwnerOnly);
        return Checked(path, SqliteOpenMode.ReadWrite, database =>
        {
            database.Check();
            database.Execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;");
            foreach (var (table, columns) in Schema) database.Execute($"CREATE TABLE IF NOT EXISTS {table} ({string.Join(", ", columns)})");
            database.Execute("CREATE UNIQUE INDEX IF NOT EXISTS credit_keys_key ON credit_keys (issuer, epoch, denomination)");
            database.Execute("CREATE UNIQUE INDEX IF NOT EXISTS credits_spent_key ON credits_spent (epoch, input)");
            database.CheckSchema();
            var bound = database.Owner();
            if (bound is null) database.Execute($"INSERT INTO node (id) VALUES (x'{Convert.ToHexString(owner.ToBytes())}')");
            else if (bound.Value != owner)
                throw new NodeStateException($"{path} holds the ledger of node {bound}, but {IdentityStore.PathIn(dataDirectory)} is node {owner}: " +
                    $"put back node {bound}'s key, or {DataDirectory.NewIdentityFix}.");
            // Agreements live only as long as their links: after a restart, none is active.
            database.Execute("UPDATE agreements SET state = 'Ended', ended = unixepoch(), end_reason = 'Restart' WHERE state = 'Active'");
        });
    }

    /// <summary>
    /// Opens the ledger to read, as <c>quid ledger</c> does with no node running. <paramref name="check"/>
    /// reads every page first, as a start does; a running node's own reads skip it, since the node checked it at start.
    /// </summary>
    public static NodeDatabase OpenReadOnly(string dataDirectory, bool check = true)
    {
        string path = Path.Combine(dataDirectory, FileName);
        RefuseEmpty(path);
        return Checked(path, SqliteOpenMode.ReadOnly, database =>
        {
            if (check) database.Check();
            database.CheckSchema();
        });
    }

    /// <summary>The node a ledger belongs to, or null when it does not say (or cannot be read): for messages about a missing key.</summary>
    internal static NodeId? ReadOwner(string dataDirectory)
    {
        try
        {
            using var database = OpenReadOnly(dataDirectory, check: false);
            return database.Owner();
        }
        catch (NodeStateException)
        {
            return null;
        }
    }

    private static NodeDatabase Checked(string path, SqliteOpenMode mode, Action<NodeDatabase> check)
    {
        var database = new NodeDatabase(new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false, Mode = mode }.ToString()));
        try
        {
            database._connection.Open();
            check(database);
            return database;
        }
        catch (SqliteException e)
        {
            database.Dispose();
            throw Damaged(path, e.Message.TrimEnd('.'), e);
        }
        catch
        {
            database.Dispose();
            throw;
        }
    }

    private static NodeStateException Damaged(string path, string what, Exception? inner = null) =>
        new($"{path} is damaged ({what}): restore it from a backup, or {DataDirectory.NewIdentityFix}.", inner);

    /// <summary>SQLite takes an empty file for an empty database; beside a node's key it means its ledger was lost.</summary>
    private static void RefuseEmpty(string path)
    {
        if (new FileInfo(path).Length == 0)
            throw new NodeStateException($"{path} is empty (0 bytes): this node's ledger was lost. Restore it from a backup; or delete the empty file to keep this identity with an empty ledger; or {DataDirectory.NewIdentityFix}.");
    }

    private static void CreateOwnerOnly(string path)
    {
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = OwnerOnly;
        new FileStream(path, options).Dispose();
    }

    /// <summary>Reads every page: SQLite's own check of the file's structure and of NOT NULL columns.</summary>
    private void Check()
    {
        using var command = _connection.CreateCommand();
        command.CommandText = "PRAGMA quick_check(1)";
        var result = command.ExecuteScalar();
        if (result is not "ok") throw Damaged(_connection.DataSource, $"SQLite's check: {result}");
    }

    /// <summary>Each table this version uses has the columns it writes and reads, of the same types.</summary>
    private void CheckSchema()
    {
        foreach (var (table, columns) in Schema)
        {
            var actual = new Dictionary<string, (string Type, bool NotNull)>(StringComparer.OrdinalIgnoreCase);
            using (var command = _connection.CreateCommand())
            {
                command.CommandText = $"PRAGMA table_info({table})";
                using var reader = command.ExecuteReader();
                while (reader.Read()) actual[reader.GetString(1)] = (reader.GetString(2), reader.GetBoolean(3));
            }
            // A ledger from before the table, read before a start has added it.
            if (actual.Count == 0 && AddedLater.Contains(table)) continue;
            if (actual.Count == 0) throw Damaged(_connection.DataSource, $"it has no table {table}");
            foreach (var column in columns)
            {
                var words = column.Split(' ');
                bool notNull = column.EndsWith("NOT NULL", StringComparison.Ordinal);
                if (!actual.TryGetValue(words[0], out var found) || !found.Type.Equals(words[1], StringComparison.OrdinalIgnoreCase) || found.NotNull != notNull)
                    throw Damaged(_connection.DataSource, $"its table {table} has no column '{column}'");
            }
        }
    }

    private NodeId? Owner()
    {
        using var command = _connection.CreateCommand();
        command.CommandText = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'node'";
        if (Convert.ToInt64(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture) == 0) return null;
        command.CommandText = "SELECT id FROM node LIMIT 1";
        return command.ExecuteScalar() switch
        {
            null => null,
            byte[] { Length: NodeId.Size } id => new NodeId(id),
            _ => throw Damaged(_connection.DataSource, "the node id it records is not one"),
        };
    }

    /// <summary>Records an agreement as it is now: formed, changed or ended.</summary>
    public void SaveAgreement(Agreement agreement, AgreementEndReason? endReason = null)
    {
        lock (_lock)
        {
            using var command = _connection.CreateCommand();
            command.CommandText = """
                INSERT INTO agreements (id, partner, terms, proposer_signature, acceptor_signature, we_grant_kbps, they_grant_kbps, state, started, ended, end_reason)
                VALUES ($id, $partner, $terms, $ps, $as, $we, $they, $state, $started, $ended, $reason)
                ON CONFLICT (id) DO UPDATE SET acceptor_signature = $as, we_grant_kbps = $we, they_grant_kbps = $they,
                    state = $state, ended = $ended, end_reason = $reason
                """;
            var id = new byte[AgreementTerms.IdSize];
            agreement.Id.WriteTo(id);
            command.Parameters.AddWithValue("$id", id);
            command.Parameters.AddWithValue("$partner", agreement.Partner.ToBytes());
            command.Parameters.AddWithValue("$terms", agreement.Terms.Encode());
            command.Parameters.AddWithValue("$ps", agreement.ProposerSignature);
            command.Parameters.AddWithValue("$as", (object?)agreement.AcceptorSignature ?? DBNull.Value);
            command.Parameters.AddWithValue("$we", agreement.WeGrant?.Kbps ?? 0);
            command.Parameters.AddWithValue("$they", agreement.TheyGrant?.Kbps ?? 0);
            command.Parameters.AddWithValue("$state", agreement.State.ToString());
            command.Parameters.AddWithValue("$started", agreement.Created.ToUnixTimeSeconds());
            command.Parameters.AddWithValue("$ended", agreement.Ended is { } ended ? ended.ToUnixTimeSeconds() : DBNull.Value);
            command.Parameters.AddWithValue("$reason", endReason is { } r ? r.ToString() : DBNull.Value);
            command.ExecuteNonQuery();
        }
    }

    /// <summary>Writes every account's counters and verdict, in one transaction.</summary>
    public void SaveAccounts(IEnumerable<PartnerAccount> accounts)
    {
        lock (_lock)
        {
            using var transaction = _connection.BeginTransaction();
            using var command = _connection.CreateCommand();
            command.Transaction = transaction;
            command.CommandText = """
                INSERT INTO accounts (partner, first_seen, bytes_given, bytes_received, verdict, failures, shunned_until, delivered_kbps, last_probe, has_history)
                VALUES ($partner, $first, $given, $received, $verdict, $failures, $shunned, $delivered, $probe, $history)
                ON CONFLICT (partner) DO UPDATE SET bytes_given = $given, bytes_received = $received, verdict = $verdict, failures = $failures,
                    shunned_until = $shunned, delivered_kbps = $delivered, last_probe = $probe, has_history = $history
                """;
            var partner = command.Parameters.Add("$partner", SqliteType.Blob);
            var first = command.Parameters.Add("$first", SqliteType.Integer);
            var given = command.Parameters.Add("$given", SqliteType.Integer);
            var received = command.Parameters.Add("$received", SqliteType.Integer);
            var verdict = command.Parameters.Add("$verdict", SqliteType.Text);
            var failures = command.Parameters.Add("$failures", SqliteType.Integer);
            var shunned = command.Parameters.Add("$shunned", SqliteType.Integer);
            var delivered = command.Parameters.Add("$delivered", SqliteType.Real);
            var probe = command.Parameters.Add("$probe", SqliteType.Integer);
            var history = command.Parameters.Add("$history", SqliteType.Integer);
            foreach (var account in accounts)
            {
                partner.Value = account.Partner.ToBytes();
                first.Value = account.FirstSeen.ToUnixTimeSeconds();
                given.Value = account.BytesGiven;
                received.Value = account.BytesReceived;
                verdict.Value = account.Verdict.ToString();
                failures.Value = account.Failures;
                shunned.Value = account.ShunnedUntil is { } s ? s.ToUnixTimeSeconds() : DBNull.Value;
                delivered.Value = account.DeliveredKbps is { } d ? d : DBNull.Value;
                probe.Value = account.LastProbe is { } p ? p.ToUnixTimeSeconds() : DBNull.Value;
                history.Value = account.HasHistory;
                command.ExecuteNonQuery();
            }
            transaction.Commit();
        }
    }

    /// <summary>The accounts as they were last saved, for a starting node's ledger.</summary>
    public IReadOnlyList<PartnerAccount> LoadAccounts()
    {
        lock (_lock)
        {
            using var command = _connection.CreateCommand();
            command.CommandText = "SELECT partner, first_seen, bytes_given, bytes_received, verdict, failures, shunned_until, delivered_kbps, last_probe, has_history FROM accounts";
            using var reader = command.ExecuteReader();
            var accounts = new List<PartnerAccount>();
            while (reader.Read())
            {
                if (reader[0] is not byte[] { Length: NodeId.Size } id) continue;
                var account = new PartnerAccount(new NodeId(id), DateTimeOffset.FromUnixTimeSeconds(reader.GetInt64(1)));
                account.Restore(reader.GetInt64(2), reader.GetInt64(3),
                    Enum.TryParse<Verdict>(reader.GetString(4), out var verdict) ? verdict : Verdict.Good,
                    reader.GetInt32(5),
                    reader.IsDBNull(6) ? null : DateTimeOffset.FromUnixTimeSeconds(reader.GetInt64(6)),
                    reader.IsDBNull(7) ? null : reader.GetDouble(7),
                    reader.IsDBNull(8) ? null : DateTimeOffset.FromUnixTimeSeconds(reader.GetInt64(8)),
                    reader.GetBoolean(9));
                accounts.Add(account);
            }
            return accounts;
        }
    }

    /// <summary>The ledger as <c>quid ledger</c> shows it: one row per partner, the most recently active first.</summary>
    public IReadOnlyList<LedgerEntry> ReadLedger()
    {
        lock (_lock)
        {
            using var command = _connection.CreateCommand();
            command.CommandText = """
                SELECT a.partner, a.bytes_given, a.bytes_received,
                       COALESCE((SELECT SUM(we_grant_kbps) FROM agreements g WHERE g.partner = a.partner AND g.state = 'Active'), 0),
                       COALESCE((SELECT SUM(they_grant_kbps) FROM agreements g WHERE g.partner = a.partner AND g.state = 'Active'), 0),
                       a.delivered_kbps, a.verdict, a.shunned_until,
                       (SELECT COUNT(*) FROM agreements g WHERE g.partner = a.partner AND g.state = 'Active'),
                       (SELECT COUNT(*) FROM agreements g WHERE g.partner = a.partner AND g.state = 'Ended'),
                       a.last_probe
                FROM accounts a
                ORDER BY 9 DESC, a.bytes_given + a.bytes_received DESC
                """;
            using var reader = command.ExecuteReader();
            var entries = new List<LedgerEntry>();
            while (reader.Read())
            {
                if (reader[0] is not byte[] { Length: NodeId.Size } id) continue;
                entries.Add(new LedgerEntry(new NodeId(id), reader.GetInt64(1), reader.GetInt64(2), reader.GetInt64(3), reader.GetInt64(4),
                    reader.IsDBNull(5) ? null : reader.GetDouble(5),
                    Enum.TryParse<Verdict>(reader.GetString(6), out var verdict) ? verdict : Verdict.Good,
                    reader.IsDBNull(7) ? null : DateTimeOffset.FromUnixTimeSeconds(reader.GetInt64(7)),
                    reader.GetInt32(8), reader.GetInt32(9),
                    reader.IsDBNull(10) ? null : DateTimeOffset.FromUnixTimeSeconds(reader.GetInt64(10))));
            }
            return entries;
        }
    }

    public IReadOnlyList<CachedPeer> LoadPeers()
    {
        lock (_lock)
        {
            using var command = _connection.CreateCommand();
            command.CommandText = "SELECT id, address, last_seen, failures, ultrapeer FROM peers";
            using var reader = command.ExecuteReader();
            var peers = new List<CachedPeer>();
            while (reader.Read())
            {
                if (reader[0] is not byte[] { Length: NodeId.Size } id || !IPEndPoint.TryParse(reader.GetString(1), out var address)) continue;
                peers.Add(new CachedPeer(new NodeId(id), address, DateTimeOffset.FromUnixTimeSeconds(reader.GetInt64(2)), reader.GetInt32(3), reader.GetBoolean(4)));
            }
            return peers;
        }
    }

    /// <summary>Replaces the cache with <paramref name="peers"/>, in one transaction.</summary>
    public void SavePeers(IReadOnlyList<CachedPeer> peers) =>
        ReplaceRows("peers", ["id", "address", "last_seen", "failures", "ultrapeer"],
            peers.Select(p => new object[] { p.Id.ToBytes(), p.Address.ToString(), p.LastSeen.ToUnixTimeSeconds(), p.Failures, p.Ultrapeer }));

    /// <summary>Remembers a stable or moving service or share, to publish again at each start (replacing one of the same name).</summary>
    public void SaveService(PublishSpec spec)
    {
        var (target, paths, receive) = spec switch
        {
            ServiceSpec service => (service.Target.ToString(), null, null),
            ShareSpec { ReceiveDirectory: { } inbox } => (null, null, inbox),
            ShareSpec share => ((string?)null, (string?)string.Join(PathSeparator, share.Paths), (string?)null),
            _ => throw new ArgumentException($"Not a service or a share: {spec}", nameof(spec)),
        };
        Write("INSERT OR REPLACE INTO services (name, kind, private, target, paths, receive) VALUES ($1, $2, $3, $4, $5, $6)",
            spec.Name, spec.Kind.ToString(), spec.Private, target, paths, receive);
    }

    /// <summary>Forgets the service named <paramref name="name"/>: it is not published at the next start.</summary>
    public void ForgetService(string name) => Write("DELETE FROM services WHERE name = $1", name);

    /// <summary>The services and shares to publish again; rows this version cannot read are skipped.</summary>
    public IReadOnlyList<PublishSpec> LoadServices() => [.. Read("SELECT name, kind, private, target, paths, receive FROM services ORDER BY name", PublishSpec? (reader) =>
    {
        string name = reader.GetString(0);
        if (!Enum.TryParse<AddressKind>(reader.GetString(1), out var kind) || kind == AddressKind.Ephemeral) return null;
        bool isPrivate = reader.GetBoolean(2);
        if (!reader.IsDBNull(3)) return IPEndPoint.TryParse(reader.GetString(3), out var target) ? new ServiceSpec(name, target, kind, isPrivate) : null;
        if (!reader.IsDBNull(5)) return new ShareSpec(name, [], reader.GetString(5), kind, isPrivate);
        return reader.IsDBNull(4) ? null : new ShareSpec(name, reader.GetString(4).Split(PathSeparator), null, kind, isPrivate);
    }).OfType<PublishSpec>()];

    /// <summary>Remembers a moving service followed under <paramref name="name"/>, to follow again at each start.</summary>
    public void SaveFollow(string name, string secret, string? access) =>
        Write("INSERT OR REPLACE INTO follows (name, secret, access) VALUES ($1, $2, $3)", name, secret, access);

    public void ForgetFollow(string name) => Write("DELETE FROM follows WHERE name = $1", name);

    /// <summary>The moving services followed: name, secret and access key, as saved.</summary>
    public IReadOnlyList<(string Name, string Secret, string? Access)> LoadFollows() =>
        Read("SELECT name, secret, access FROM follows ORDER BY name", reader => (reader.GetString(0), reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2)));

    /// <summary>Remembers the access key of the private service at <paramref name="address"/>, to use again at each start.</summary>
    public void SaveAccess(string address, string key) => Write("INSERT OR REPLACE INTO access (address, key) VALUES ($1, $2)", address, key);

    public void ForgetAccess(string address) => Write("DELETE FROM access WHERE address = $1", address);

    /// <summary>The access keys kept: address and key, as saved.</summary>
    public IReadOnlyList<(string Address, string Key)> LoadAccess() =>
        Read("SELECT address, key FROM access ORDER BY address", reader => (reader.GetString(0), reader.GetString(1)));

    /// <summary>The vanguards kept at the last save.</summary>
    public IReadOnlyList<Vanguard> LoadVanguards() =>
        [.. Read("SELECT first, hop, until FROM vanguards", reader =>
                reader[0] is byte[] { Length: NodeId.Size } first && reader[1] is byte[] { Length: NodeId.Size } hop
                    ? new Vanguard(new NodeId(first), new NodeId(hop), DateTimeOffset.FromUnixTimeSeconds(reader.GetInt64(2)))
                    : (Vanguard?)null)
            .OfType<Vanguard>()];

    /// <summary>Replaces the vanguards kept with <paramref name="vanguards"/>, in one transaction.</summary>
    public void SaveVanguards(IReadOnlyList<Vanguard> vanguards) =>
        ReplaceRows("vanguards", ["first", "hop", "until"],
            vanguards.Select(v => new object[] { v.First.ToBytes(), v.Hop.ToBytes(), v.Until.ToUnixTimeSeconds() }));

    /// <summary>Replaces every row of <paramref name="table"/> with <paramref name="rows"/> (values in the order of <paramref name="columns"/>), in one transaction.</summary>
    private void ReplaceRows(string table, string[] columns, IEnumerable<object[]> rows)
    {
        lock (_lock)
        {
            using var transaction = _connection.BeginTransaction();
            using (var clear = _connection.CreateCommand())
            {
                clear.Transaction = transaction;
                clear.CommandText = $"DELETE FROM {table}";
                clear.ExecuteNonQuery();
            }
            using var insert = _connection.CreateCommand();
            insert.Transaction = transaction;
            insert.CommandText = $"INSERT INTO {table} ({string.Join(", ", columns)}) VALUES ({string.Join(", ", columns.Select((_, i) => $"${i + 1}"))})";
            var parameters = columns.Select((_, i) => insert.Parameters.Add(new SqliteParameter { ParameterName = $"${i + 1}" })).ToArray();
            foreach (var row in rows)
            {
                for (int i = 0; i < parameters.Length; i++) parameters[i].Value = row[i];
                insert.ExecuteNonQuery();
            }
            transaction.Commit();
        }
    }

    /// <summary>Runs a statement whose parameters are <c>$1</c>, <c>$2</c> … in order; null is SQL's NULL.</summary>
    private void Write(string sql, params object?[] values)
    {
        lock (_lock)
        {
            using var command = _connection.CreateCommand();
            command.CommandText = sql;
            for (int i = 0; i < values.Length; i++) command.Parameters.AddWithValue($"${i + 1}", values[i] ?? DBNull.Value);
            command.ExecuteNonQuery();
        }
    }

    /// <summary>Each row of a query, as <paramref name="row"/> reads it.</summary>
    private List<T> Read<T>(string sql, Func<SqliteDataReader, T> row)
    {
        lock (_lock)
        {
            using var command = _connection.CreateCommand();
            command.CommandText = sql;
            using var reader = command.ExecuteReader();
            var rows = new List<T>();
            while (reader.Read()) rows.Add(row(reader));
            return rows;
        }
    }

    private void Execute(string sql)
    {
        using var command = _connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    public void Dispose()
    {
        lock (_lock) _connection.Dispose();
    }
}
