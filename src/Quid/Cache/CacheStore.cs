using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using Quid.Wire.Http;

namespace Quid.Cache;

/// <summary>
/// Where the exit cache keeps what it stores: one file per body under <c>bodies/</c>, named at
/// random, and an index in SQLite (<c>index.db</c>). Everything it holds, bodies, index and the
/// writes in flight, stays within the quota counted in file-system blocks; S3-FIFO picks what
/// goes to make room. A body is written under <c>incoming/</c>, synced, moved into place, and only
/// then indexed with its SHA-256, which every use checks: a kill -9 at any point leaves either a
/// complete entry or none, and a start clears what a crash left half done. Thread-safe.
/// </summary>
public sealed class CacheStore : IDisposable
{
    /// <summary>What a file takes on disk is counted in blocks of this size, the block of ext4, XFS and tmpfs.</summary>
    public const long BlockSize = 4096;
    /// <summary>Room kept for the index to grow between two measurements of it (a checkpoint of its log included).</summary>
    public const long IndexHeadroom = 512 * 1024;
    /// <summary>Less than this cannot hold the index and a few pages: refused as a setting.</summary>
    public const long MinimumQuota = 4 * 1024 * 1024;
    /// <summary>The largest body kept: a few large downloads must not push out everything else.</summary>
    public const long MaxObjectCeiling = 64 * 1024 * 1024;
    /// <summary>The largest head kept: real ones are well under a kilobyte; a head near the parser's 32 KiB is an origin's doing.</summary>
    public const int MaxHeadSize = 16 * 1024;
    /// <summary>Memory the index of entries may take, whatever the quota: heads are kept in memory to answer from.</summary>
    public const long MaxIndexMemoryCeiling = 64 * 1024 * 1024;
    /// <summary>What an entry costs in memory besides its head's text: its record, keys and the eviction order's node.</summary>
    private const int EntryOverhead = 512;

    private const string IndexName = "index.db";
    private const UnixFileMode OwnerOnlyDirectory = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    private readonly Lock _lock = new();
    private readonly string _bodies;
    private readonly string _incoming;
    private readonly string _index;
    private readonly SqliteConnection _connection;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Dictionary<string, StoredResponse> _entries = [];
    private readonly Dictionary<string, List<string>> _byUrl = [];
    private readonly S3Fifo<string> _eviction;
    private long _reserved;
    private long _memory;

    private CacheStore(string directory, long quota, SqliteConnection connection, TimeProvider time, ILogger logger)
    {
        Directory = directory;
        Quota = quota;
        _bodies = Path.Combine(directory, "bodies");
        _incoming = Path.Combine(directory, "incoming");
        _index = Path.Combine(directory, IndexName);
        _connection = connection;
        _time = time;
        _logger = logger;
        _eviction = new S3Fifo<string>(quota);
    }

    public string Directory { get; }
    public long Quota { get; }
    public long MaxObjectSize => Math.Min(MaxObjectCeiling, Quota / 4);

    /// <summary>
    /// The memory the entries' index may take: a thirty-second of the quota, at most 64 MiB. A
    /// quota's worth of tiny bodies with large heads would otherwise hold gigabytes in memory;
    /// beyond this, entries are evicted as if the disk were full.
    /// </summary>
    public long MaxIndexMemory => Math.Min(MaxIndexMemoryCeiling, Quota / 32);

    /// <summary>What the entries' index takes in memory now, as <see cref="MaxIndexMemory"/> counts it.</summary>
    public long IndexMemory
    {
        get { lock (_lock) return _memory; }
    }

    /// <summary>Bytes on disk now, counted as the quota counts them: bodies, writes in flight, the index and its headroom.</summary>
    public long Used
    {
        get { lock (_lock) return UsedLocked(); }
    }

    public int Count
    {
        get { lock (_lock) return _entries.Count; }
    }

    /// <summary>The blocks a file of <paramref name="bytes"/> takes.</summary>
    public static long Blocks(long bytes) => (bytes + BlockSize - 1) / BlockSize * BlockSize;

    /// <summary>Whether a data directory has held a cache: the first start with one says what it will hold.</summary>
    public static bool Exists(string directory) => File.Exists(Path.Combine(directory, IndexName));

    /// <summary>
    /// Opens the cache in <paramref name="directory"/> (created owner-only), clears what a crash
    /// left (writes in flight, bodies without an entry, entries without their whole body) and
    /// evicts down to <paramref name="quota"/> when it was made smaller.
    /// </summary>
    public static CacheStore Open(string directory, long quota, TimeProvider time, ILogger logger)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(quota, MinimumQuota);
        foreach (var folder in new[] { directory, Path.Combine(directory, "bodies"), Path.Combine(directory, "incoming") })
        {
            if (OperatingSystem.IsWindows()) System.IO.Directory.CreateDirectory(folder);
            else System.IO.Directory.CreateDirectory(folder, OwnerOnlyDirectory);
        }
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = Path.Combine(directory, IndexName),
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = false,
        }.ToString());
        connection.Open();
        var store = new CacheStore(directory, quota, connection, time, logger);
        try
        {
            // NORMAL: a row is written only after its body is synced, so a row lost with the last
            // commits of a power cut leaves a body without a row, which the next start deletes; never
            // the reverse. A sync per hit or eviction would cost more than such a loss. A short log,
            // checkpointed often, keeps the index's size close to what it holds.
            store.Execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 32; PRAGMA journal_size_limit = 131072; PRAGMA busy_timeout = 2000;");
            store.Execute("CREATE TABLE IF NOT EXISTS entries (id TEXT PRIMARY KEY, url TEXT NOT NULL, vary TEXT NOT NULL, head BLOB NOT NULL, " +
                "body_size INTEGER NOT NULL, sha256 BLOB NOT NULL, request_time INTEGER NOT NULL, response_time INTEGER NOT NULL, " +
                "first_byte_ms INTEGER NOT NULL, transfer_ms INTEGER NOT NULL, stored_at INTEGER NOT NULL, hits INTEGER NOT NULL)");
            store.Recover();
        }
        catch
        {
            store.Dispose();
            throw;
        }
        return store;
    }

    /// <summary>Opens an existing cache to read its listing, as <c>quid cache</c> does when no node runs; null when there is none.</summary>
    public static IReadOnlyList<StoredResponse>? ReadListing(string directory)
    {
        string path = Path.Combine(directory, IndexName);
        if (!File.Exists(path)) return null;
        using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
        connection.Open();
        return [.. ReadRows(connection).Select(r => r.Entry).OfType<StoredResponse>()];
    }

    private void Recover()
    {
        foreach (var file in System.IO.Directory.EnumerateFiles(_incoming)) File.Delete(file);
        var rows = ReadRows(_connection);
        foreach (var (id, entry) in rows.OrderBy(r => r.Entry?.StoredAt ?? default))
        {
            var body = new FileInfo(BodyPath(id));
            if (entry is null || !body.Exists || body.Length != entry.BodySize)
            {
                _logger.LogWarning("Exit cache: entry {Id} was not whole after the last stop, and is dropped", id);
                Execute("DELETE FROM entries WHERE id = $id", ("$id", id));
                if (body.Exists) body.Delete();
                continue;
            }
            Add(entry);
        }
        foreach (var file in System.IO.Directory.EnumerateFiles(_bodies))
            if (!_entries.ContainsKey(Path.GetFileName(file))) File.Delete(file);
        lock (_lock) MakeRoomLocked(0);
    }

    private static List<(string Id, StoredResponse? Entry)> ReadRows(SqliteConnection connection)
    {
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT id, url, vary, head, body_size, sha256, request_time, response_time, first_byte_ms, transfer_ms, stored_at, hits FROM entries";
        using var reader = command.ExecuteReader();
        var rows = new List<(string, StoredResponse?)>();
        while (reader.Read())
        {
            string id = reader.GetString(0);
            var head = ParseHead((byte[])reader[3]);
            rows.Add((id, head is null ? null : new StoredResponse(id, reader.GetString(1), reader.GetString(2), head, reader.GetInt64(4), (byte[])reader[5],
                FromMs(reader.GetInt64(6)), FromMs(reader.GetInt64(7)), TimeSpan.FromMilliseconds(reader.GetInt64(8)), TimeSpan.FromMilliseconds(reader.GetInt64(9)),
                FromMs(reader.GetInt64(10)), reader.GetInt64(11))));
        }
        return rows;
    }

    /// <summary>Every stored variant of <paramref name="url"/>.</summary>
    public IReadOnlyList<StoredResponse> Variants(string url)
    {
        lock (_lock) return _byUrl.TryGetValue(url, out var ids) ? [.. ids.Select(id => _entries[id])] : [];
    }

    /// <summary>Every entry, for the owner's listing.</summary>
    public IReadOnlyList<StoredResponse> Entries()
    {
        lock (_lock) return [.. _entries.Values];
    }

    /// <summary>
    /// Starts storing a body, with room for <paramref name="expectedLength"/> bytes made now when
    /// the length is known; null when it could never fit (over the object limit, or no room even
    /// with everything else evicted), and the response then only passes through.
    /// </summary>
    public CacheWrite? BeginWrite(long? expectedLength)
    {
        if (expectedLength > MaxObjectSize) return null;
        long reserve = Blocks(expectedLength ?? 0);
        lock (_lock)
        {
            if (!MakeRoomLocked(reserve)) return null;
            _reserved += reserve;
        }
        string id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        try
        {
            var file = new FileStream(Path.Combine(_incoming, id), new FileStreamOptions
            {
                // The folder is the owner's only, so the file's own mode need not say so.
                Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None, BufferSize = 0,
            });
            return new CacheWrite(this, id, file, reserve);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Release(reserve);
            _logger.LogWarning("Exit cache: cannot write in {Directory}: {Message}; responses pass through uncached", _incoming, e.Message);
            return null;
        }
    }

    /// <summary>
    /// The body of <paramref name="entry"/> to read from the start, after checking it is whole
    /// against its SHA-256; null (and the entry dropped) when it is not, or is gone.
    /// </summary>
    public FileStream? OpenBody(StoredResponse entry)
    {
        FileStream? body = null;
        try
        {
            body = new FileStream(BodyPath(entry.Id), FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 64 * 1024);
            if (body.Length == entry.BodySize && SHA256.HashData(body).AsSpan().SequenceEqual(entry.Sha256))
            {
                body.Position = 0;
                return body;
            }
            _logger.LogWarning("Exit cache: the body of {Url} does not match its checksum, and is dropped", entry.Url);
        }
        catch (IOException e)
        {
            _logger.LogWarning("Exit cache: the body of {Url} cannot be read ({Message}), and is dropped", entry.Url, e.Message);
        }
        body?.Dispose();
        Remove(entry.Id);
        return null;
    }

    /// <summary>A client was answered from <paramref name="id"/>: it counts toward staying.</summary>
    public void RecordHit(string id)
    {
        lock (_lock)
        {
            if (!_entries.TryGetValue(id, out var entry)) return;
            _entries[id] = entry with { Hits = entry.Hits + 1 };
            _eviction.Hit(id);
            TryExecute("UPDATE entries SET hits = hits + 1 WHERE id = $id", ("$id", id));
        }
    }

    /// <summary>The origin said 304 to a revalidation: the stored head takes its fields and its times (RFC 9111 §4.3.4).</summary>
    public StoredResponse? Freshen(string id, HttpResponseHead head, DateTimeOffset requestTime, DateTimeOffset responseTime)
    {
        lock (_lock)
        {
            if (!_entries.TryGetValue(id, out var entry)) return null;
            var freshened = entry with { Head = head, RequestTime = requestTime, ResponseTime = responseTime };
            _entries[id] = freshened;
            _memory += Memory(freshened) - Memory(entry);
            TryExecute("UPDATE entries SET head = $head, request_time = $request, response_time = $response WHERE id = $id",
                ("$id", id), ("$head", HeadBytes(head)), ("$request", requestTime.ToUnixTimeMilliseconds()), ("$response", responseTime.ToUnixTimeMilliseconds()));
            return freshened;
        }
    }

    public bool Remove(string id)
    {
        lock (_lock) return RemoveLocked(id);
    }

    /// <summary>Removes every entry <paramref name="match"/> picks; how many went.</summary>
    public int Purge(Func<StoredResponse, bool> match)
    {
        lock (_lock)
        {
            var doomed = _entries.Values.Where(match).Select(e => e.Id).ToList();
            foreach (var id in doomed) RemoveLocked(id);
            return doomed.Count;
        }
    }

    private long UsedLocked() => _eviction.Used + _reserved + IndexBytes();

    private long IndexBytes() =>
        new[] { _index, _index + "-wal", _index + "-shm" }.Sum(f => File.Exists(f) ? Blocks(new FileInfo(f).Length) : 0) + IndexHeadroom;

    /// <summary>Evicts until <paramref name="bytes"/> more fit in the quota and the index in its memory; false when even an empty cache has no room for them.</summary>
    private bool MakeRoomLocked(long bytes)
    {
        while (UsedLocked() + bytes > Quota || _memory > MaxIndexMemory)
        {
            if (!_eviction.TryEvict(out var victim)) return false;
            Drop(victim);
        }
        return true;
    }

    private bool RemoveLocked(string id)
    {
        if (!_eviction.Remove(id)) return false;
        Drop(id);
        return true;
    }

    /// <summary>Forgets an entry the eviction order no longer holds: its row, then its body.</summary>
    private void Drop(string id)
    {
        var entry = _entries[id];
        _entries.Remove(id);
        _memory -= Memory(entry);
        var ids = _byUrl[entry.Url];
        ids.Remove(id);
        if (ids.Count == 0) _byUrl.Remove(entry.Url);
        TryExecute("DELETE FROM entries WHERE id = $id", ("$id", id));
        try
        {
            File.Delete(BodyPath(id));
        }
        catch (IOException e)
        {
            _logger.LogWarning("Exit cache: cannot delete {Id}: {Message}", id, e.Message);
        }
    }

    private void Add(StoredResponse entry)
    {
        _entries.Add(entry.Id, entry);
        _memory += Memory(entry);
        if (!_byUrl.TryGetValue(entry.Url, out var ids)) _byUrl.Add(entry.Url, ids = []);
        ids.Add(entry.Id);
        _eviction.Insert(entry.Id, Blocks(entry.BodySize));
    }

    private bool Grow(long blocks)
    {
        lock (_lock)
        {
            if (!MakeRoomLocked(blocks)) return false;
            _reserved += blocks;
            return true;
        }
    }

    private void Release(long reserved)
    {
        lock (_lock) _reserved -= reserved;
    }

    /// <summary>A synced body moved into place becomes an entry, replacing the variant it updates.</summary>
    private StoredResponse? Commit(CacheWrite write, StoredResponse entry, string written)
    {
        lock (_lock)
        {
            _reserved -= write.Reserved;
            if (HeadBytes(entry.Head).Length > MaxHeadSize)
            {
                File.Delete(written);
                return null;
            }
            try
            {
                File.Move(written, BodyPath(entry.Id));
                Execute("INSERT INTO entries (id, url, vary, head, body_size, sha256, request_time, response_time, first_byte_ms, transfer_ms, stored_at, hits) " +
                    "VALUES ($id, $url, $vary, $head, $size, $sha, $request, $response, $first, $transfer, $stored, 0)",
                    ("$id", entry.Id), ("$url", entry.Url), ("$vary", entry.VaryKey), ("$head", HeadBytes(entry.Head)), ("$size", entry.BodySize),
                    ("$sha", entry.Sha256), ("$request", entry.RequestTime.ToUnixTimeMilliseconds()), ("$response", entry.ResponseTime.ToUnixTimeMilliseconds()),
                    ("$first", (long)entry.FirstByte.TotalMilliseconds), ("$transfer", (long)entry.Transfer.TotalMilliseconds), ("$stored", entry.StoredAt.ToUnixTimeMilliseconds()));
            }
            catch (Exception e) when (e is IOException or SqliteException)
            {
                _logger.LogWarning("Exit cache: cannot store {Url}: {Message}; it passed through uncached", entry.Url, e.Message);
                File.Delete(written);
                File.Delete(BodyPath(entry.Id));
                return null;
            }
            if (_byUrl.TryGetValue(entry.Url, out var ids))
                foreach (var old in ids.Where(i => _entries[i].VaryKey == entry.VaryKey).ToList()) RemoveLocked(old);
            Add(entry);
            // The index grew: what it took now comes out of the bodies' room.
            MakeRoomLocked(0);
            return _entries.GetValueOrDefault(entry.Id);
        }
    }

    private string BodyPath(string id) => Path.Combine(_bodies, id);

    /// <summary>An entry's memory: its head's text (two bytes a character), its URL and vary key, and the rest.</summary>
    private static long Memory(StoredResponse entry) =>
        2L * (entry.Url.Length + entry.VaryKey.Length + entry.Head.Reason.Length + entry.Head.Fields.Sum(f => f.Name.Length + f.Value.Length)) + EntryOverhead;

    private static byte[] HeadBytes(HttpResponseHead head)
    {
        var text = new StringBuilder(256);
        text.Append(CultureInfo.InvariantCulture, $"HTTP/1.{head.MinorVersion} {head.Status} {head.Reason}\r\n");
        foreach (var field in head.Fields) text.Append(field.Name).Append(": ").Append(field.Value).Append("\r\n");
        return Encoding.Latin1.GetBytes(text.Append("\r\n").ToString());
    }

    private static HttpResponseHead? ParseHead(byte[] bytes)
    {
        var parse = new HttpHeadParser().ParseResponse(bytes);
        return parse.Status == HttpParseStatus.Complete ? parse.Head : null;
    }

    private static DateTimeOffset FromMs(long ms) => DateTimeOffset.FromUnixTimeMilliseconds(ms);

    private void Execute(string sql, params (string Name, object Value)[] parameters)
    {
        using var command = _connection.CreateCommand();
        command.CommandText = sql;
        foreach (var (name, value) in parameters) command.Parameters.AddWithValue(name, value);
        command.ExecuteNonQuery();
    }

    /// <summary>A write the cache can do without (a hit's count, a removed row the next start cleans up): a failure is logged, not thrown.</summary>
    private void TryExecute(string sql, params (string Name, object Value)[] parameters)
    {
        try
        {
            Execute(sql, parameters);
        }
        catch (SqliteException e)
        {
            _logger.LogWarning("Exit cache: the index refused a write: {Message}", e.Message);
        }
    }

    public void Dispose()
    {
        lock (_lock) _connection.Dispose();
    }

    /// <summary>
    /// A body being stored as it passes through. <see cref="Append"/> returns false once the write
    /// is given up (over the object limit, no room left, a disk error); the response still passes
    /// through whole. Disposed without <see cref="Commit"/>, it leaves nothing behind.
    /// </summary>
    public sealed class CacheWrite : IDisposable
    {
        private readonly CacheStore _store;
        private readonly FileStream _file;
        private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private long _written;
        // Committed, or given up: either way nothing more is written.
        private bool _done;

        internal CacheWrite(CacheStore store, string id, FileStream file, long reserved)
        {
            _store = store;
            Id = id;
            _file = file;
            Reserved = reserved;
        }

        public string Id { get; }
        public long Written => _written;
        internal long Reserved { get; private set; }

        public bool Append(ReadOnlySpan<byte> data)
        {
            if (_done) return false;
            long total = _written + data.Length;
            if (total > _store.MaxObjectSize) return Fail();
            long blocks = Blocks(total);
            if (blocks > Reserved)
            {
                // Grow by at least a quarter, so a long body does not take the lock for every block.
                long more = Math.Max(blocks - Reserved, Blocks(Reserved / 4));
                if (!_store.Grow(more)) return Fail();
                Reserved += more;
            }
            try
            {
                _file.Write(data);
            }
            catch (IOException)
            {
                // A full disk among others: the response goes on passing through.
                return Fail();
            }
            _hash.AppendData(data);
            _written = total;
            return true;
        }

        /// <summary>Syncs the body, moves it into place and indexes it; null when it could not be kept.</summary>
        public StoredResponse? Commit(string url, string varyKey, HttpResponseHead head, DateTimeOffset requestTime, DateTimeOffset responseTime, TimeSpan firstByte, TimeSpan transfer)
        {
            if (_done) return null;
            _done = true;
            string written = _file.Name;
            try
            {
                _file.Flush(flushToDisk: true);
                _file.Dispose();
            }
            catch (IOException)
            {
                _file.Dispose();
                File.Delete(written);
                _store.Release(Reserved);
                return null;
            }
            var entry = new StoredResponse(Id, url, varyKey, head, _written, _hash.GetHashAndReset(), requestTime, responseTime, firstByte, transfer,
                _store._time.GetUtcNow(), 0);
            return _store.Commit(this, entry, written);
        }

        /// <summary>Gives the write up at once, so its room goes back while the response goes on passing through.</summary>
        private bool Fail()
        {
            Abandon();
            return false;
        }

        public void Dispose()
        {
            _hash.Dispose();
            Abandon();
        }

        private void Abandon()
        {
            if (_done) return;
            _done = true;
            _file.Dispose();
            try
            {
                File.Delete(_file.Name);
            }
            catch (IOException)
            {
                // The next start clears incoming/.
            }
            _store.Release(Reserved);
        }
    }
}
