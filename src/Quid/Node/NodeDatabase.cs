using System.Net;
using Microsoft.Data.Sqlite;
using Quid.Crypto;
using Quid.Exchange;
using Quid.Overlay;
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
/// restarted node rejoins without its bootstrap list.
/// </summary>
public sealed class NodeDatabase : IDisposable
{
    public const string FileName = "quid.db";
    private readonly SqliteConnection _connection;
    private readonly Lock _lock = new();

    public NodeDatabase(string dataDirectory, bool readOnly = false)
    {
        _connection = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = Path.Combine(dataDirectory, FileName),
            Pooling = false,
            Mode = readOnly ? SqliteOpenMode.ReadOnly : SqliteOpenMode.ReadWriteCreate,
        }.ToString());
        _connection.Open();
        if (readOnly) return;
        Execute("""
            PRAGMA journal_mode = WAL;
            PRAGMA synchronous = NORMAL;
            CREATE TABLE IF NOT EXISTS peers (
                id BLOB PRIMARY KEY,
                address TEXT NOT NULL,
                last_seen INTEGER NOT NULL,
                failures INTEGER NOT NULL,
                ultrapeer INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS agreements (
                id BLOB PRIMARY KEY,
                partner BLOB NOT NULL,
                terms BLOB NOT NULL,
                proposer_signature BLOB NOT NULL,
                acceptor_signature BLOB,
                we_grant_kbps INTEGER NOT NULL,
                they_grant_kbps INTEGER NOT NULL,
                state TEXT NOT NULL,
                started INTEGER NOT NULL,
                ended INTEGER,
                end_reason TEXT);
            CREATE TABLE IF NOT EXISTS accounts (
                partner BLOB PRIMARY KEY,
                first_seen INTEGER NOT NULL,
                bytes_given INTEGER NOT NULL,
                bytes_received INTEGER NOT NULL,
                verdict TEXT NOT NULL,
                failures INTEGER NOT NULL,
                shunned_until INTEGER,
                delivered_kbps REAL,
                last_probe INTEGER,
                has_history INTEGER NOT NULL);
            """);
        // Agreements live only as long as their links: after a restart, none is active.
        Execute("UPDATE agreements SET state = 'Ended', ended = unixepoch(), end_reason = 'Restart' WHERE state = 'Active'");
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
                var id = (byte[])reader[0];
                if (id.Length != NodeId.Size) continue;
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
                var id = (byte[])reader[0];
                if (id.Length != NodeId.Size) continue;
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
                var id = (byte[])reader[0];
                if (id.Length != NodeId.Size || !IPEndPoint.TryParse(reader.GetString(1), out var address)) continue;
                peers.Add(new CachedPeer(new NodeId(id), address, DateTimeOffset.FromUnixTimeSeconds(reader.GetInt64(2)), reader.GetInt32(3), reader.GetBoolean(4)));
            }
            return peers;
        }
    }

    /// <summary>Replaces the cache with <paramref name="peers"/>, in one transaction.</summary>
    public void SavePeers(IReadOnlyList<CachedPeer> peers)
    {
        lock (_lock)
        {
            using var transaction = _connection.BeginTransaction();
            using (var clear = _connection.CreateCommand())
            {
                clear.Transaction = transaction;
                clear.CommandText = "DELETE FROM peers";
                clear.ExecuteNonQuery();
            }
            using var insert = _connection.CreateCommand();
            insert.Transaction = transaction;
            insert.CommandText = "INSERT INTO peers (id, address, last_seen, failures, ultrapeer) VALUES ($id, $address, $seen, $failures, $ultrapeer)";
            var id = insert.Parameters.Add("$id", SqliteType.Blob);
            var address = insert.Parameters.Add("$address", SqliteType.Text);
            var seen = insert.Parameters.Add("$seen", SqliteType.Integer);
            var failures = insert.Parameters.Add("$failures", SqliteType.Integer);
            var ultrapeer = insert.Parameters.Add("$ultrapeer", SqliteType.Integer);
            foreach (var peer in peers)
            {
                id.Value = peer.Id.ToBytes();
                address.Value = peer.Address.ToString();
                seen.Value = peer.LastSeen.ToUnixTimeSeconds();
                failures.Value = peer.Failures;
                ultrapeer.Value = peer.Ultrapeer;
                insert.ExecuteNonQuery();
            }
            transaction.Commit();
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
