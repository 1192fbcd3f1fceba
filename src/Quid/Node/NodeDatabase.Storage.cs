using Microsoft.Data.Sqlite;
using Quid.Crypto;

namespace Quid.Node;

/// <summary>
/// A copy of one of our stored files on a host: until when it is paid, the audits left, and how
/// the last one went. <see cref="Challenges"/> holds 64 bytes per audit (nonce, expected digest),
/// each zeroed once asked.
/// </summary>
public sealed record StoredCopy(NodeId Host, DateTimeOffset PaidUntil, byte[] Challenges, CopyState State)
{
    public const int ChallengeSize = 64;

    /// <summary>The first challenge not yet asked, or -1 when all were.</summary>
    public int NextChallenge()
    {
        for (int i = 0; i < Challenges.Length / ChallengeSize; i++)
            if (Challenges.AsSpan(i * ChallengeSize, ChallengeSize).ContainsAnyExcept((byte)0)) return i;
        return -1;
    }

    public int AuditsLeft => NextChallenge() is var next and >= 0 ? Challenges.Length / ChallengeSize - next : 0;
}

/// <summary>Held: its last audit passed. Expiring: passed, but paid for less than a day more and not renewed. Unreachable: its host did not answer the last audit (asked again at the next). Lost: its host failed an audit.</summary>
public enum CopyState { Held, Expiring, Unreachable, Lost }

/// <summary>A file we stored on others' nodes: what it was, how it is sealed and removed, and where its copies are.</summary>
public sealed record StoredFile(byte[] Id, string Name, long Size, long CipherSize, byte[] Sha256, byte[] Key, byte[] Secret, int Days, int CopiesWanted,
    DateTimeOffset Created, IReadOnlyList<StoredCopy> Copies)
{
    public string Key32 => Convert.ToHexStringLower(Id);
}

/// <summary>Our stored files (PROTOCOL §10.7): the only place their names, keys and hosts are kept.</summary>
public sealed partial class NodeDatabase
{
    public IReadOnlyList<StoredFile> LoadStoredFiles()
    {
        var copies = Read("SELECT id, host, paid_until, challenges, state FROM stored_copies", reader =>
            (Id: Convert.ToHexString((byte[])reader[0]), Copy: new StoredCopy(new NodeId((byte[])reader[1]), DateTimeOffset.FromUnixTimeSeconds(reader.GetInt64(2)),
                (byte[])reader[3], Enum.Parse<CopyState>(reader.GetString(4)))))
            .ToLookup(c => c.Id, c => c.Copy);
        return Read("SELECT id, name, size, cipher_size, sha256, key, secret, days, copies, created FROM stored ORDER BY created", reader =>
            new StoredFile((byte[])reader[0], reader.GetString(1), reader.GetInt64(2), reader.GetInt64(3), (byte[])reader[4], (byte[])reader[5], (byte[])reader[6],
                (int)reader.GetInt64(7), (int)reader.GetInt64(8), DateTimeOffset.FromUnixTimeSeconds(reader.GetInt64(9)), [.. copies[Convert.ToHexString((byte[])reader[0])]]));
    }

    /// <summary>Writes the file and all its copies, replacing what was kept of it, in one transaction.</summary>
    public void SaveStoredFile(StoredFile file)
    {
        lock (_lock)
        {
            using var transaction = _connection.BeginTransaction();
            Run(transaction, "DELETE FROM stored_copies WHERE id = $1", file.Id);
            Run(transaction, "INSERT OR REPLACE INTO stored (id, name, size, cipher_size, sha256, key, secret, days, copies, created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                file.Id, file.Name, file.Size, file.CipherSize, file.Sha256, file.Key, file.Secret, file.Days, file.CopiesWanted, file.Created.ToUnixTimeSeconds());
            foreach (var copy in file.Copies)
                Run(transaction, "INSERT INTO stored_copies (id, host, paid_until, challenges, state) VALUES ($1, $2, $3, $4, $5)",
                    file.Id, copy.Host.ToBytes(), copy.PaidUntil.ToUnixTimeSeconds(), copy.Challenges, copy.State.ToString());
            transaction.Commit();
        }
    }

    public void DeleteStoredFile(byte[] id)
    {
        lock (_lock)
        {
            using var transaction = _connection.BeginTransaction();
            Run(transaction, "DELETE FROM stored_copies WHERE id = $1", id);
            Run(transaction, "DELETE FROM stored WHERE id = $1", id);
            transaction.Commit();
        }
    }

    private void Run(SqliteTransaction transaction, string sql, params object[] values)
    {
        using var command = _connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        for (int i = 0; i < values.Length; i++) command.Parameters.AddWithValue($"${i + 1}", values[i]);
        command.ExecuteNonQuery();
    }
}
