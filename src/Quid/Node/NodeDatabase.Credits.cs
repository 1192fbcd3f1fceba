using Microsoft.Data.Sqlite;
using Quid.Credits;
using Quid.Crypto;

namespace Quid.Node;

/// <summary>The credit tables (PROTOCOL §10): our issuing seed, the credits we hold, the issuers' keys, our spent set.</summary>
public sealed partial class NodeDatabase
{
    /// <summary>The seed our issuing keys derive from, made on first use: the keys outlive restarts, so the credits we issued stay good.</summary>
    public byte[] CreditSeed()
    {
        lock (_lock)
        {
            using var command = _connection.CreateCommand();
            command.CommandText = "SELECT seed FROM credit_seed LIMIT 1";
            if (command.ExecuteScalar() is byte[] { Length: Voprf.SeedSize } seed) return seed;
            seed = System.Security.Cryptography.RandomNumberGenerator.GetBytes(Voprf.SeedSize);
            command.CommandText = "DELETE FROM credit_seed; INSERT INTO credit_seed (seed) VALUES ($seed)";
            command.Parameters.AddWithValue("$seed", seed);
            command.ExecuteNonQuery();
            return seed;
        }
    }

    public IReadOnlyList<Credit> LoadCredits() =>
        Read("SELECT issuer, epoch, denomination, input, output FROM credits", reader =>
            new Credit(new NodeId((byte[])reader[0]), (ulong)reader.GetInt64(1), (byte)reader.GetInt64(2), (byte[])reader[3], (byte[])reader[4]));

    /// <summary>Adds <paramref name="added"/> and removes <paramref name="removed"/> in one transaction: an exchange never leaves both, or neither.</summary>
    public void ChangeCredits(IReadOnlyList<Credit> added, IReadOnlyList<Credit> removed)
    {
        lock (_lock)
        {
            using var transaction = _connection.BeginTransaction();
            using (var delete = _connection.CreateCommand())
            {
                delete.Transaction = transaction;
                delete.CommandText = "DELETE FROM credits WHERE input = $input";
                var input = delete.Parameters.Add(new SqliteParameter { ParameterName = "$input" });
                foreach (var credit in removed)
                {
                    input.Value = credit.Input;
                    delete.ExecuteNonQuery();
                }
            }
            using (var insert = _connection.CreateCommand())
            {
                insert.Transaction = transaction;
                insert.CommandText = "INSERT OR IGNORE INTO credits (issuer, epoch, denomination, input, output) VALUES ($1, $2, $3, $4, $5)";
                var parameters = Enumerable.Range(1, 5).Select(i => insert.Parameters.Add(new SqliteParameter { ParameterName = $"${i}" })).ToArray();
                foreach (var credit in added)
                {
                    parameters[0].Value = credit.Issuer.ToBytes();
                    parameters[1].Value = (long)credit.Epoch;
                    parameters[2].Value = (long)credit.Order;
                    parameters[3].Value = credit.Input;
                    parameters[4].Value = credit.Output;
                    insert.ExecuteNonQuery();
                }
            }
            transaction.Commit();
        }
    }

    /// <summary>The public key <paramref name="issuer"/> issued us credits under for an epoch and denomination, if any yet.</summary>
    public byte[]? CreditKey(NodeId issuer, ulong epoch, byte order)
    {
        lock (_lock)
        {
            using var command = _connection.CreateCommand();
            command.CommandText = "SELECT public FROM credit_keys WHERE issuer = $1 AND epoch = $2 AND denomination = $3";
            command.Parameters.AddWithValue("$1", issuer.ToBytes());
            command.Parameters.AddWithValue("$2", (long)epoch);
            command.Parameters.AddWithValue("$3", (long)order);
            return command.ExecuteScalar() as byte[];
        }
    }

    public void RememberCreditKey(NodeId issuer, ulong epoch, byte order, byte[] key) =>
        Write("INSERT OR IGNORE INTO credit_keys (issuer, epoch, denomination, public) VALUES ($1, $2, $3, $4)", issuer.ToBytes(), (long)epoch, (long)order, key);

    /// <summary>Drops held credits and remembered keys of epochs before <paramref name="oldest"/>: they are worth nothing now.</summary>
    public void DropCreditsBefore(ulong oldest)
    {
        Write("DELETE FROM credits WHERE epoch < $1", (long)oldest);
        Write("DELETE FROM credit_keys WHERE epoch < $1", (long)oldest);
    }

    /// <summary>Our spent set, as an issuer's, kept here so that a restart forgets no spent credit.</summary>
    public ISpentCredits SpentCredits() => new Spent(this);

    private sealed class Spent(NodeDatabase database) : ISpentCredits
    {
        public long Count => database.Read("SELECT count(*) FROM credits_spent", reader => reader.GetInt64(0))[0];

        public bool Contains(ulong epoch, ReadOnlySpan<byte> input)
        {
            lock (database._lock)
            {
                using var command = database._connection.CreateCommand();
                command.CommandText = "SELECT 1 FROM credits_spent WHERE epoch = $1 AND input = $2";
                command.Parameters.AddWithValue("$1", (long)epoch);
                command.Parameters.AddWithValue("$2", input.ToArray());
                return command.ExecuteScalar() is not null;
            }
        }

        public void Add(ulong epoch, IReadOnlyList<byte[]> inputs)
        {
            lock (database._lock)
            {
                using var transaction = database._connection.BeginTransaction();
                using var insert = database._connection.CreateCommand();
                insert.Transaction = transaction;
                insert.CommandText = "INSERT INTO credits_spent (epoch, input) VALUES ($1, $2)";
                insert.Parameters.AddWithValue("$1", (long)epoch);
                var input = insert.Parameters.Add(new SqliteParameter { ParameterName = "$2" });
                foreach (var i in inputs)
                {
                    input.Value = i;
                    insert.ExecuteNonQuery();
                }
                transaction.Commit();
            }
        }

        public void DropBefore(ulong oldest) => database.Write("DELETE FROM credits_spent WHERE epoch < $1", (long)oldest);
    }
}
