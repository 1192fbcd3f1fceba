using System.Security.Cryptography;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using Quid.Credits;
using Quid.Wire;

namespace Quid.Storage;

/// <summary>An object held for someone, as its host sees it: an id, a size and dates, never a name or an owner.</summary>
public sealed record HostedObject(byte[] Id, long Size, DateTimeOffset PaidUntil, DateTimeOffset StoredAt, DateTimeOffset? WarnedAt)
{
    public string Key => Convert.ToHexStringLower(Id);
}

/// <summary>
/// The host side of storage (PROTOCOL §10.7): objects others pay for with this node's credits,
/// sealed by their owners, in files under <c>hosted/</c> with an index in SQLite, within the disk
/// offered. An object is kept while paid, and a day of grace after, in which anyone holding its id
/// may renew it; audits answered in the last day before it runs out tell its owner so. Then it is
/// deleted, file and row, and nothing of it remains.
/// </summary>
public sealed class StorageHost : IDisposable
{
    public static readonly TimeSpan Grace = TimeSpan.FromDays(1);
    /// <summary>An audit answered this close to the end of what was paid carries the warning to its owner.</summary>
    public static readonly TimeSpan WarnAhead = TimeSpan.FromDays(1);
    /// <summary>How long an upload may stall before the host gives up on it.</summary>
    private static readonly TimeSpan UploadPatience = TimeSpan.FromSeconds(30);

    private readonly string _directory;
    private readonly SqliteConnection _connection;
    private readonly CreditIssuer _issuer;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private long _reserved;
    /// <summary>Ids whose upload is under way: a second Put of one is refused before it is paid for.</summary>
    private readonly HashSet<string> _uploading = [];

    private StorageHost(string directory, long quota, SqliteConnection connection, CreditIssuer issuer, TimeProvider time, ILogger logger)
    {
        _directory = directory;
        Quota = quota;
        _connection = connection;
        _issuer = issuer;
        _time = time;
        _logger = logger;
    }

    public long Quota { get; }

    /// <summary>Bytes held, and those of uploads under way.</summary>
    public long Used
    {
        get
        {
            lock (_lock) return HeldBytes() + _reserved;
        }
    }

    /// <summary>
    /// Whether an object paid until <paramref name="paidUntil"/>, for <paramref name="paidFor"/>,
    /// is close enough to its end that its owner is warned: within a day, or a quarter of what was
    /// paid for when that is shorter (an object kept a day is not expiring from its first audit).
    /// </summary>
    public static bool Expiring(DateTimeOffset paidUntil, TimeSpan paidFor, DateTimeOffset now) =>
        paidUntil - now <= (paidFor / 4 < WarnAhead ? paidFor / 4 : WarnAhead);

    /// <summary>The price of keeping <paramref name="size"/> bytes for <paramref name="days"/>: MiB·days, a started MiB counted whole.</summary>
    public static long Price(long size, int days) => Math.Max(1, (size + DiskBlock.BaseBytes - 1) / DiskBlock.BaseBytes) * days;

    public static StorageHost Open(string directory, long quota, CreditIssuer issuer, TimeProvider time, ILogger logger)
    {
        foreach (var folder in new[] { directory, Path.Combine(directory, "objects"), Path.Combine(directory, "incoming") })
        {
            if (OperatingSystem.IsWindows()) Directory.CreateDirectory(folder);
            else Directory.CreateDirectory(folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
        // An upload a crash cut short was never stored: its bytes go.
        foreach (var leftover in Directory.EnumerateFiles(Path.Combine(directory, "incoming"))) File.Delete(leftover);
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Path.Combine(directory, "index.db"), Pooling = false }.ToString());
        connection.Open();
        var host = new StorageHost(directory, quota, connection, issuer, time, logger);
        host.Execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;");
        host.Execute("CREATE TABLE IF NOT EXISTS objects (id BLOB PRIMARY KEY, size INTEGER NOT NULL, paid_until INTEGER NOT NULL, stored_at INTEGER NOT NULL, owner_hash BLOB NOT NULL, warned_at INTEGER)");
        // A row whose file is gone (a disk that lost it) is no object: its audits fail, as they should; a file without a row goes.
        var known = host.Objects().Select(o => o.Key).ToHashSet();
        foreach (var file in Directory.EnumerateFiles(Path.Combine(directory, "objects")))
            if (!known.Contains(Path.GetFileName(file))) File.Delete(file);
        return host;
    }

    public IReadOnlyList<HostedObject> Objects()
    {
        lock (_lock) return ReadObjects("ORDER BY paid_until");
    }

    /// <summary>Deletes the objects whose payment and grace have run out; returns how many.</summary>
    public int Sweep()
    {
        var now = _time.GetUtcNow();
        var gone = Objects().Where(o => o.PaidUntil + Grace <= now).ToList();
        foreach (var o in gone)
        {
            Delete(o.Id);
            _logger.LogInformation("Deleted hosted object {Key} ({Size} bytes): paid until {PaidUntil:u}, its day of grace is over{Warned}",
                o.Key[..12], o.Size, o.PaidUntil, o.WarnedAt is { } warned ? $"; its owner was warned {warned:u}" : "; its owner never audited it in its last day");
        }
        return gone.Count;
    }

    /// <summary>Answers one storage request on <paramref name="stream"/>; false when the stream must end (an upload cut short).</summary>
    public async Task<bool> ServeAsync(Stream stream, DeskMessage request, CancellationToken cancellationToken)
    {
        switch (request)
        {
            case DeskPut put:
                return await PutAsync(stream, put, cancellationToken).ConfigureAwait(false);
            case DeskGet get when Find(get.Id) is { } found:
                await CreditDesk.WriteAsync(stream, new DeskData(found.Size), cancellationToken).ConfigureAwait(false);
                await using (var file = File.OpenRead(ObjectPath(get.Id)))
                    await file.CopyToAsync(stream, cancellationToken).ConfigureAwait(false);
                await stream.FlushAsync(cancellationToken).ConfigureAwait(false);
                return true;
            case DeskAudit audit when Find(audit.Id) is { } found:
                await CreditDesk.WriteAsync(stream, new DeskAudited(await DigestAsync(audit.Id, audit.Nonce, cancellationToken).ConfigureAwait(false), Unix(found.PaidUntil)),
                    cancellationToken).ConfigureAwait(false);
                if (found.WarnedAt is null && Expiring(found.PaidUntil, found.PaidUntil - found.StoredAt, _time.GetUtcNow()))
                {
                    Write("UPDATE objects SET warned_at = $2 WHERE id = $1", audit.Id, _time.GetUtcNow().ToUnixTimeSeconds());
                    _logger.LogInformation("Told the owner of hosted object {Key} that it is paid only until {PaidUntil:u}", Convert.ToHexStringLower(audit.Id)[..12], found.PaidUntil);
                }
                return true;
            case DeskRenew renew when Find(renew.Id) is { } found:
                var paid = _issuer.Redeem(renew.Payment, Price(found.Size, renew.Days));
                if (paid.Refusal is { } refused)
                {
                    await CreditDesk.WriteAsync(stream, new DeskRefused(refused, paid.Text), cancellationToken).ConfigureAwait(false);
                    return true;
                }
                var until = (found.PaidUntil > _time.GetUtcNow() ? found.PaidUntil : _time.GetUtcNow()) + TimeSpan.FromDays(renew.Days);
                // The period paid for now starts here: its warning comes within its own last quarter or day.
                Write("UPDATE objects SET paid_until = $2, stored_at = $3, warned_at = NULL WHERE id = $1", renew.Id, until.ToUnixTimeSeconds(), _time.GetUtcNow().ToUnixTimeSeconds());
                await CreditDesk.WriteAsync(stream, new DeskStored(Unix(until)), cancellationToken).ConfigureAwait(false);
                return true;
            case DeskRemove remove when Find(remove.Id) is not null:
                if (!OwnerMatches(remove.Id, remove.OwnerSecret))
                {
                    await CreditDesk.WriteAsync(stream, new DeskRefused(CreditRefusal.NotOwner, "That secret does not remove this object."), cancellationToken).ConfigureAwait(false);
                    return true;
                }
                Delete(remove.Id);
                await CreditDesk.WriteAsync(stream, new DeskStored(0), cancellationToken).ConfigureAwait(false);
                return true;
            default:
                await CreditDesk.WriteAsync(stream, new DeskRefused(CreditRefusal.NotFound, "This node holds no object of that id."), cancellationToken).ConfigureAwait(false);
                return true;
        }
    }

    private async Task<bool> PutAsync(Stream stream, DeskPut put, CancellationToken cancellationToken)
    {
        string? refusal = null;
        var reason = CreditRefusal.NoRoom;
        lock (_lock)
        {
            if (FindLocked(put.Id) is not null || _uploading.Contains(Convert.ToHexString(put.Id)))
                (reason, refusal) = (CreditRefusal.NotOwner, "An object of that id is held already, or is being uploaded.");
            else if (HeldBytes() + _reserved + put.Size > Quota) refusal = $"No room: {Quota - HeldBytes() - _reserved} bytes of the {Quota} offered are free, {put.Size} asked.";
            else
            {
                _reserved += put.Size;
                _uploading.Add(Convert.ToHexString(put.Id));
            }
        }
        if (refusal is null)
        {
            var paid = _issuer.Redeem(put.Payment, Price(put.Size, put.Days));
            if (paid.Refusal is { } refused)
            {
                (reason, refusal) = (refused, paid.Text);
                lock (_lock)
                {
                    _reserved -= put.Size;
                    _uploading.Remove(Convert.ToHexString(put.Id));
                }
            }
        }
        if (refusal is not null)
        {
            await CreditDesk.WriteAsync(stream, new DeskRefused(reason, refusal), cancellationToken).ConfigureAwait(false);
            return true;
        }
        string incoming = Path.Combine(_directory, "incoming", Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16)));
        try
        {
            await CreditDesk.WriteAsync(stream, new DeskReady(), cancellationToken).ConfigureAwait(false);
            await using (var file = new FileStream(incoming, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous))
            {
                var buffer = new byte[1 << 16];
                for (long left = put.Size; left > 0;)
                {
                    using var patience = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                    patience.CancelAfter(UploadPatience);
                    int read = await stream.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, left)), patience.Token).ConfigureAwait(false);
                    if (read == 0) throw new IOException("The upload ended early.");
                    await file.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
                    left -= read;
                }
                file.Flush(flushToDisk: true);
            }
            File.Move(incoming, ObjectPath(put.Id));
            var until = _time.GetUtcNow() + TimeSpan.FromDays(put.Days);
            Write("INSERT INTO objects (id, size, paid_until, stored_at, owner_hash) VALUES ($1, $2, $3, $4, $5)",
                put.Id, put.Size, until.ToUnixTimeSeconds(), _time.GetUtcNow().ToUnixTimeSeconds(), put.OwnerHash);
            await CreditDesk.WriteAsync(stream, new DeskStored(Unix(until)), cancellationToken).ConfigureAwait(false);
            _logger.LogInformation("Holding a new object of {Size} bytes for {Days} day(s)", put.Size, put.Days);
            return true;
        }
        catch (Exception e) when (e is IOException or OperationCanceledException)
        {
            // Paid for and not delivered: the payer's loss, and nothing of it stays here.
            File.Delete(incoming);
            _logger.LogDebug("An upload of {Size} bytes ended early: {Reason}", put.Size, e.Message);
            return false;
        }
        finally
        {
            lock (_lock)
            {
                _reserved -= put.Size;
                _uploading.Remove(Convert.ToHexString(put.Id));
            }
        }
    }

    private async Task<byte[]> DigestAsync(byte[] id, byte[] nonce, CancellationToken cancellationToken)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(nonce);
        await using var file = File.OpenRead(ObjectPath(id));
        var buffer = new byte[1 << 16];
        int read;
        while ((read = await file.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0) hash.AppendData(buffer, 0, read);
        return hash.GetHashAndReset();
    }

    private bool OwnerMatches(byte[] id, byte[] secret)
    {
        lock (_lock)
        {
            using var command = _connection.CreateCommand();
            command.CommandText = "SELECT owner_hash FROM objects WHERE id = $1";
            command.Parameters.AddWithValue("$1", id);
            return command.ExecuteScalar() is byte[] hash && CryptographicOperations.FixedTimeEquals(hash, SHA256.HashData(secret));
        }
    }

    private HostedObject? Find(byte[] id)
    {
        lock (_lock) return FindLocked(id);
    }

    private HostedObject? FindLocked(byte[] id) => ReadObjects("WHERE id = $1", id).SingleOrDefault();

    /// <summary>The objects the index holds that <paramref name="clause"/> (its $1 … bound to <paramref name="values"/>) selects; the caller holds the lock.</summary>
    private List<HostedObject> ReadObjects(string clause, params object[] values)
    {
        using var command = _connection.CreateCommand();
        command.CommandText = $"SELECT id, size, paid_until, stored_at, warned_at FROM objects {clause}";
        for (int i = 0; i < values.Length; i++) command.Parameters.AddWithValue($"${i + 1}", values[i]);
        using var reader = command.ExecuteReader();
        var objects = new List<HostedObject>();
        while (reader.Read())
            objects.Add(new HostedObject((byte[])reader[0], reader.GetInt64(1), DateTimeOffset.FromUnixTimeSeconds(reader.GetInt64(2)),
                DateTimeOffset.FromUnixTimeSeconds(reader.GetInt64(3)), reader.IsDBNull(4) ? null : DateTimeOffset.FromUnixTimeSeconds(reader.GetInt64(4))));
        return objects;
    }

    private long HeldBytes()
    {
        using var command = _connection.CreateCommand();
        command.CommandText = "SELECT coalesce(sum(size), 0) FROM objects";
        return Convert.ToInt64(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    }

    private void Delete(byte[] id)
    {
        // The row first: a crash between leaves a file without a row, which the next start deletes.
        Write("DELETE FROM objects WHERE id = $1", id);
        File.Delete(ObjectPath(id));
    }

    private string ObjectPath(byte[] id) => Path.Combine(_directory, "objects", Convert.ToHexStringLower(id));

    private static ulong Unix(DateTimeOffset time) => (ulong)Math.Max(0, time.ToUnixTimeSeconds());

    private void Write(string sql, params object[] values)
    {
        lock (_lock)
        {
            using var command = _connection.CreateCommand();
            command.CommandText = sql;
            for (int i = 0; i < values.Length; i++) command.Parameters.AddWithValue($"${i + 1}", values[i]);
            command.ExecuteNonQuery();
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
