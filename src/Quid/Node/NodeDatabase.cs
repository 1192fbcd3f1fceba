using System.Net;
using Microsoft.Data.Sqlite;
using Quid.Crypto;
using Quid.Overlay;

namespace Quid.Node;

/// <summary>
/// The node's state in one SQLite file, <c>quid.db</c> in the data directory, in WAL mode so a
/// crash or kill -9 never loses a committed write. For now: the peer cache, so a restarted node
/// rejoins without its bootstrap list.
/// </summary>
public sealed class NodeDatabase : IDisposable
{
    public const string FileName = "quid.db";
    private readonly SqliteConnection _connection;
    private readonly Lock _lock = new();

    public NodeDatabase(string dataDirectory)
    {
        _connection = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = Path.Combine(dataDirectory, FileName),
            Pooling = false,
        }.ToString());
        _connection.Open();
        Execute("""
            PRAGMA journal_mode = WAL;
            PRAGMA synchronous = NORMAL;
            CREATE TABLE IF NOT EXISTS peers (
                id BLOB PRIMARY KEY,
                address TEXT NOT NULL,
                last_seen INTEGER NOT NULL,
                failures INTEGER NOT NULL,
                ultrapeer INTEGER NOT NULL);
            """);
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
