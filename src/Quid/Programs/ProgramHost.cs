using System.Security.Cryptography;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using Quid.Credits;
using Quid.Wire;

namespace Quid.Programs;

/// <summary>A program as its host lists it: never who deployed it.</summary>
public sealed record HostedProgramInfo(byte[] Id, ProgramState State, long Fuel, long MemoryBytes, long StoredBytes, long Postage,
    DateTimeOffset Deployed, DateTimeOffset? PausedAt, DateTimeOffset? WarnedAt, bool Low, byte[] AddressKey)
{
    public string Key => Convert.ToHexStringLower(Id);
    /// <summary>When it is deleted unless someone tops it up: its grace after it ran out of fuel; null while it runs.</summary>
    public DateTimeOffset? DeleteAt => PausedAt + ProgramHost.Grace;
}

/// <summary>What became of a post: the program's replies to whoever posted, or why the host did not hand it over.</summary>
public sealed record PostResult(IReadOnlyList<byte[]> Replies, string? Refusal);

/// <summary>
/// The host's side of hosted programs (seed 003, PROTOCOL §11.2): programs deployed and topped up
/// over the desk, paid with this node's credits at <see cref="CpuBlock.FuelPerCredit"/> fuel each;
/// messages handed to them, with the postage each one asks; the timers they set; what they hold,
/// memory and key-value store, charged by the byte and the day; and their end. A program runs while its fuel lasts,
/// is paused with everything kept when it runs out, and is deleted, module, store and row, when
/// <see cref="Grace"/> has passed without a top-up, or when its owner stops it. Its rows live in
/// SQLite under <c>programs/</c>, with secure_delete on so that nothing of a deleted program is
/// left in the file. It never learns who deployed a program: the desk and the program's session
/// address are both reached through circuits.
/// </summary>
public sealed class ProgramHost : IDisposable
{
    public static readonly TimeSpan Grace = TimeSpan.FromDays(1);
    /// <summary>Programs one host runs at once: each may grow to <see cref="ProgramLimits.MemoryBytes"/>.</summary>
    public const int MaxPrograms = 32;
    /// <summary>The least a deploy pays: a Gfuel, for loading the module and its first messages.</summary>
    public const long MinimumDeployCredits = CpuBlock.FuelPerGfuel / CpuBlock.FuelPerCredit;
    /// <summary>The address a program sends to when it answers whoever posted the message it is handling.</summary>
    public static ReadOnlySpan<byte> ReplyAddress => [0];
    /// <summary>What a MiB held a day, of memory or store, costs in fuel: a credit's worth, as disk costs.</summary>
    private const double FuelPerByteDay = (double)CpuBlock.FuelPerCredit / (1 << 20);

    private sealed class Entry(byte[] id, HostedProgram program, byte[] ownerHash, byte[] addressSeed, byte[] addressKey, long postage, DateTimeOffset deployed)
    {
        public byte[] Id { get; } = id;
        public HostedProgram Program { get; } = program;
        public byte[] OwnerHash { get; } = ownerHash;
        public byte[] AddressSeed { get; } = addressSeed;
        public byte[] AddressKey { get; } = addressKey;
        public long Postage { get; } = postage;
        public DateTimeOffset Deployed { get; } = deployed;
        public DateTimeOffset? PausedAt { get; set; }
        public DateTimeOffset? WarnedAt { get; set; }
        /// <summary>Fuel just after its last deploy or top-up: it is low under a quarter of that.</summary>
        public long Topped { get; set; }
        public DateTimeOffset ChargedAt { get; set; }
        /// <summary>Fuel owed for its store and not yet taken: less than one unit.</summary>
        public double Owed { get; set; }
        public ITimer? Timer { get; set; }
        public bool Deleted { get; set; }
        public bool Low => Fuel < Topped / 4;
        // What it had after its last call, charge or top-up, read under its lock: a Wasmtime store
        // is not to be touched from another thread while a call runs on it.
        public long Fuel { get; private set; }
        public long Memory { get; private set; }
        public long Stored { get; private set; }

        public void Measure()
        {
            Fuel = Program.Fuel;
            Memory = Program.MemoryBytes;
            Stored = Program.StoredBytes;
        }
    }

    private readonly string _directory;
    private readonly ProgramEngine _engine;
    private readonly ProgramLimits _limits;
    private readonly CreditIssuer _issuer;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly SqliteConnection _db;
    private readonly Dictionary<string, Entry> _programs = [];
    private readonly Lock _lock = new();
    private int _deploying;

    private ProgramHost(string directory, ProgramLimits limits, CreditIssuer issuer, TimeProvider time, ILogger logger)
    {
        _directory = directory;
        _limits = limits;
        _issuer = issuer;
        _time = time;
        _logger = logger;
        // A call's deadline is the machine's real time, whatever clock the host keeps: a shifted or
        // test clock must neither stop a runaway call nor fire every one of its ticks at once.
        _engine = new ProgramEngine(TimeProvider.System);
        _db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Path.Combine(directory, "programs.db"), Pooling = false }.ToString());
    }

    /// <summary>
    /// Where a program's messages to others go: the host routes them to the session address they
    /// name. Set before the first program runs; a program's sends are dropped without it.
    /// </summary>
    public Func<HostedProgramInfo, ProgramMessage, Task>? Route { get; set; }
    /// <summary>A program began (deployed, or loaded again at start): its address is to be published from its seed.</summary>
    public Action<HostedProgramInfo, byte[]>? Started { get; set; }
    /// <summary>A program is gone: its address is to be withdrawn.</summary>
    public Action<HostedProgramInfo>? Deleted { get; set; }

    public ProgramLimits Limits => _limits;

    /// <summary>Opens the programs kept under <paramref name="directory"/>; <see cref="Resume"/> runs them again.</summary>
    public static ProgramHost Open(string directory, ProgramLimits limits, CreditIssuer issuer, TimeProvider time, ILogger logger)
    {
        Directory.CreateDirectory(directory);
        var host = new ProgramHost(directory, limits, issuer, time, logger);
        try
        {
            host._db.Open();
            host.Write("PRAGMA journal_mode = WAL; PRAGMA secure_delete = ON;");
            host.Write("CREATE TABLE IF NOT EXISTS programs (id BLOB PRIMARY KEY, module BLOB NOT NULL, owner_hash BLOB NOT NULL, address_seed BLOB NOT NULL, postage INTEGER NOT NULL, "
                + "fuel INTEGER NOT NULL, topped INTEGER NOT NULL, deployed_at INTEGER NOT NULL, paused_at INTEGER, warned_at INTEGER, charged_at INTEGER NOT NULL)");
            host.Write("CREATE TABLE IF NOT EXISTS store (program BLOB NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (program, key))");
        }
        catch
        {
            host.Dispose();
            throw;
        }
        return host;
    }

    /// <summary>
    /// Loads every kept program again, each from its module and its store (its memory starts
    /// afresh, as a process's does after a restart), and tells <see cref="Started"/> of each.
    /// </summary>
    public void Resume()
    {
        var rows = new List<(byte[] Id, byte[] Module, byte[] OwnerHash, byte[] Seed, long Postage, long Fuel, long Topped, long Deployed, long? Paused, long? Warned, long Charged)>();
        using (var command = _db.CreateCommand())
        {
            command.CommandText = "SELECT id, module, owner_hash, address_seed, postage, fuel, topped, deployed_at, paused_at, warned_at, charged_at FROM programs";
            using var reader = command.ExecuteReader();
            while (reader.Read())
                rows.Add(((byte[])reader[0], (byte[])reader[1], (byte[])reader[2], (byte[])reader[3], reader.GetInt64(4), reader.GetInt64(5), reader.GetInt64(6), reader.GetInt64(7),
                    reader.IsDBNull(8) ? null : reader.GetInt64(8), reader.IsDBNull(9) ? null : reader.GetInt64(9), reader.GetInt64(10)));
        }
        foreach (var row in rows)
        {
            HostedProgram program;
            try
            {
                // A paused program is loaded with the one unit of fuel its start needs at least, which it then owes.
                program = HostedProgram.Load(_engine, row.Module, _limits, Math.Max(row.Fuel, 1), StoreOf(row.Id));
            }
            catch (ProgramException e)
            {
                _logger.LogWarning("Hosted program {Key} could not be loaded again ({Reason}); it is deleted", Convert.ToHexStringLower(row.Id)[..12], e.Message);
                DeleteRows(row.Id);
                continue;
            }
            if (row.Fuel == 0) program.Charge(program.Fuel);
            var entry = new Entry(row.Id, program, row.OwnerHash, row.Seed, AddressKey(row.Seed), row.Postage, DateTimeOffset.FromUnixTimeSeconds(row.Deployed))
            {
                Topped = row.Topped,
                PausedAt = row.Paused is { } p ? DateTimeOffset.FromUnixTimeSeconds(p) : null,
                WarnedAt = row.Warned is { } w ? DateTimeOffset.FromUnixTimeSeconds(w) : null,
                ChargedAt = DateTimeOffset.FromUnixTimeSeconds(row.Charged),
            };
            program.TakeStoreChanges();
            entry.Measure();
            // Its memory, and any timer it had set, did not survive: it is woken once, to pick up what its store holds.
            program.TakeWake();
            Arm(entry, TimeSpan.Zero);
            lock (_lock) _programs[Convert.ToHexString(row.Id)] = entry;
            Started?.Invoke(Info(entry), entry.AddressSeed);
        }
        if (rows.Count > 0) _logger.LogInformation("Resumed {Count} hosted programs", rows.Count);
    }

    public IReadOnlyList<HostedProgramInfo> Programs()
    {
        lock (_lock) return [.. _programs.Values.Select(Info).OrderBy(p => p.Deployed)];
    }

    public HostedProgramInfo? Find(byte[] id) => FindEntry(id) is { } entry ? Info(entry) : null;

    /// <summary>Answers one program request from the desk on <paramref name="stream"/>; false when the stream must end (a module cut short).</summary>
    public async Task<bool> ServeAsync(Stream stream, DeskMessage request, CancellationToken cancellationToken)
    {
        DeskMessage? answer = request switch
        {
            DeskDeploy deploy => await DeployAsync(stream, deploy, cancellationToken).ConfigureAwait(false),
            DeskTopup topup => TopUp(topup),
            DeskQuery query => Query(query.Id),
            DeskStop stop => Stop(stop),
            _ => new DeskRefused(CreditRefusal.Invalid, $"Not a program request: {request.Type}."),
        };
        if (answer is null) return false;
        await CreditDesk.WriteAsync(stream, answer, cancellationToken).ConfigureAwait(false);
        return true;
    }

    /// <summary>Takes a module and its payment; null when the stream ended before the module did.</summary>
    private async Task<DeskMessage?> DeployAsync(Stream stream, DeskDeploy deploy, CancellationToken cancellationToken)
    {
        if (deploy.ModuleSize > _limits.ModuleBytes)
            return new DeskRefused(CreditRefusal.ModuleRefused, $"A module of {deploy.ModuleSize:N0} bytes; this host takes at most {_limits.ModuleBytes:N0}.");
        lock (_lock)
        {
            if (_programs.Count + _deploying >= MaxPrograms) return new DeskRefused(CreditRefusal.NoRoom, $"This host runs {MaxPrograms} programs already.");
            _deploying++;
        }
        try
        {
            await CreditDesk.WriteAsync(stream, new DeskReady(), cancellationToken).ConfigureAwait(false);
            var wasm = new byte[deploy.ModuleSize];
            using (var patience = new CancellationTokenSource(CreditDesk.Patience, _time))
            using (var either = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, patience.Token))
            {
                try
                {
                    if (await stream.ReadAtLeastAsync(wasm, wasm.Length, throwOnEndOfStream: false, either.Token).ConfigureAwait(false) < wasm.Length) return null;
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    return null;
                }
            }
            // Checked before it is paid for: a module this host refuses costs its deployer nothing.
            try
            {
                HostedProgram.Check(_engine, wasm, _limits);
            }
            catch (ProgramException e)
            {
                return new DeskRefused(CreditRefusal.ModuleRefused, e.Message);
            }
            var paid = _issuer.Redeem(deploy.Payment, MinimumDeployCredits);
            if (paid.Refusal is { } refused) return new DeskRefused(refused, paid.Text);
            long fuel = FuelOf(deploy.Payment);
            HostedProgram program;
            try
            {
                program = HostedProgram.Load(_engine, wasm, _limits, fuel);
            }
            catch (ProgramException e)
            {
                // Its start ran out of fuel or trapped: it was paid for, and is gone.
                _logger.LogInformation("A program deployed here failed as it started: {Reason}", e.Message);
                return new DeskRefused(CreditRefusal.StartFailed, $"It failed as it started, and its payment is spent: {e.Message}");
            }
            var now = _time.GetUtcNow();
            byte[] id = RandomNumberGenerator.GetBytes(DeskCodec.ObjectSize), seed = RandomNumberGenerator.GetBytes(32);
            var entry = new Entry(id, program, deploy.OwnerHash, seed, AddressKey(seed), deploy.Postage, now) { Topped = program.Fuel, ChargedAt = now };
            entry.Measure();
            Write("INSERT INTO programs (id, module, owner_hash, address_seed, postage, fuel, topped, deployed_at, charged_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                id, wasm, deploy.OwnerHash, seed, (long)deploy.Postage, program.Fuel, entry.Topped, now.ToUnixTimeSeconds(), now.ToUnixTimeSeconds());
            Keep(entry);
            Arm(entry);
            lock (_lock) _programs[Convert.ToHexString(id)] = entry;
            _logger.LogInformation("Running hosted program {Key}: {Size:N0} bytes of module, {Fuel:N0} fuel", Key(entry), wasm.Length, program.Fuel);
            Started?.Invoke(Info(entry), seed);
            return Answer(entry);
        }
        finally
        {
            lock (_lock) _deploying--;
        }
    }

    private DeskMessage TopUp(DeskTopup topup)
    {
        if (FindEntry(topup.Id) is not { } entry) return NotFound();
        var paid = _issuer.Redeem(topup.Payment, 1);
        if (paid.Refusal is { } refused) return new DeskRefused(refused, paid.Text);
        lock (entry)
        {
            if (entry.Deleted) return NotFound();
            entry.Program.AddFuel(FuelOf(topup.Payment));
            entry.Measure();
            entry.Topped = entry.Fuel;
            entry.WarnedAt = null;
            if (entry.PausedAt is not null)
            {
                entry.PausedAt = null;
                // Its timer was dropped when it paused: it is woken once, and asks again if it still wants to be.
                Arm(entry, TimeSpan.Zero);
                _logger.LogInformation("Hosted program {Key} was topped up and runs again", Key(entry));
            }
            Save(entry);
        }
        return Answer(entry);
    }

    /// <summary>How a program is; a low one's answer is the warning to its owner, who asks (PROTOCOL §11.2).</summary>
    private DeskMessage Query(byte[] id)
    {
        if (FindEntry(id) is not { } entry) return NotFound();
        lock (entry)
        {
            if ((entry.Low || entry.PausedAt is not null) && entry.WarnedAt is null)
            {
                entry.WarnedAt = _time.GetUtcNow();
                Save(entry);
                _logger.LogInformation("Told the owner of hosted program {Key} that its fuel is low: {Fuel:N0} left", Key(entry), entry.Program.Fuel);
            }
            return Answer(entry);
        }
    }

    private DeskMessage Stop(DeskStop stop)
    {
        if (FindEntry(stop.Id) is not { } entry) return NotFound();
        if (!CryptographicOperations.FixedTimeEquals(SHA256.HashData(stop.OwnerSecret), entry.OwnerHash))
            return new DeskRefused(CreditRefusal.NotOwner, "That secret does not stop this program.");
        Delete(entry, "its owner stopped it");
        return Answer(entry);
    }

    /// <summary>
    /// Hands <paramref name="message"/> to the program of <paramref name="id"/>, once its postage is
    /// paid (and added to its fuel); its replies come back, what it sends elsewhere goes to <see cref="Route"/>.
    /// </summary>
    public PostResult Post(byte[] id, IReadOnlyList<EpochCredit> payment, byte[] message)
    {
        if (FindEntry(id) is not { } entry) return new PostResult([], "No program of that id runs here.");
        if (entry.PausedAt is { } paused) return new PostResult([], $"It is paused, out of fuel, and is deleted at {paused + Grace:u} unless topped up.");
        long fuel = 0;
        if (entry.Postage > 0)
        {
            var paid = _issuer.Redeem(payment, entry.Postage);
            if (paid.Refusal is not null) return new PostResult([], $"Its postage is {entry.Postage} credits of this host: {paid.Text}");
            fuel = FuelOf(payment);
        }
        lock (entry)
        {
            if (entry.Deleted) return new PostResult([], "No program of that id runs here.");
            if (fuel > 0) entry.Program.AddFuel(fuel);
            return new PostResult(Run(entry, p => p.Deliver(message)), null);
        }
    }

    /// <summary>Charges each program for what it held since the last sweep, memory and store, and deletes those whose grace is over. Called about once a minute.</summary>
    public void Sweep()
    {
        var now = _time.GetUtcNow();
        List<Entry> entries;
        lock (_lock) entries = [.. _programs.Values];
        foreach (var entry in entries)
        {
            lock (entry)
            {
                if (entry.Deleted) continue;
                if (entry.PausedAt is { } paused)
                {
                    if (now >= paused + Grace) Delete(entry, $"it ran out of fuel {paused:u} and its grace is over{(entry.WarnedAt is { } w ? $"; its owner was warned {w:u}" : "")}");
                    continue;
                }
                double owed = entry.Owed + Math.Max(0, (now - entry.ChargedAt).TotalDays) * (entry.Program.StoredBytes + entry.Program.MemoryBytes) * FuelPerByteDay;
                entry.ChargedAt = now;
                long whole = (long)owed;
                entry.Owed = owed - whole;
                if (!entry.Program.Charge(whole)) Pause(entry, "what it holds used up its fuel");
                entry.Measure();
                Save(entry);
            }
        }
    }

    /// <summary>Runs a call into the program under its lock, keeps what it changed, and sorts what it sent: replies back, the rest to <see cref="Route"/>.</summary>
    private List<byte[]> Run(Entry entry, Action<HostedProgram> call)
    {
        try
        {
            call(entry.Program);
        }
        catch (ProgramException e) when (e.Error == ProgramError.OutOfFuel)
        {
            Pause(entry, "it ran out of fuel");
        }
        catch (ProgramException e)
        {
            // A trap or a deadline ends the call, not the program: the next message finds it as the trap left it.
            _logger.LogDebug("Hosted program {Key} stopped in a call: {Reason}", Key(entry), e.Message);
        }
        entry.Measure();
        Keep(entry);
        Save(entry);
        Arm(entry);
        var replies = new List<byte[]>();
        var info = Info(entry);
        foreach (var sent in entry.Program.TakeOutbox())
        {
            if (sent.To.AsSpan().SequenceEqual(ReplyAddress)) replies.Add(sent.Body);
            else if (Route is { } route) _ = route(info, sent);
        }
        return replies;
    }

    private void Pause(Entry entry, string why)
    {
        if (entry.PausedAt is not null) return;
        entry.PausedAt = _time.GetUtcNow();
        entry.Timer?.Dispose();
        entry.Timer = null;
        _logger.LogInformation("Paused hosted program {Key}: {Why}; deleted at {DeleteAt:u} unless topped up", Key(entry), why, entry.PausedAt + Grace);
    }

    /// <summary>Sets the program's timer when it asked for one since the last time (<paramref name="after"/> instead, when given), if it runs.</summary>
    private void Arm(Entry entry, TimeSpan? after = null)
    {
        if ((after ?? entry.Program.TakeWake()) is not { } wait || entry.PausedAt is not null || entry.Deleted) return;
        entry.Timer?.Dispose();
        entry.Timer = _time.CreateTimer(_ => Wake(entry), null, wait, Timeout.InfiniteTimeSpan);
    }

    private void Wake(Entry entry)
    {
        lock (entry)
        {
            if (entry.Deleted || entry.PausedAt is not null) return;
            // Replies to nobody: a wake-up has no one who posted.
            Run(entry, p => p.Wake());
        }
    }

    private void Delete(Entry entry, string why)
    {
        lock (entry)
        {
            if (entry.Deleted) return;
            entry.Deleted = true;
            entry.Timer?.Dispose();
            entry.Program.Dispose();
        }
        DeleteRows(entry.Id);
        // Listed until its rows are gone, so that a program no longer listed has left nothing behind.
        lock (_lock) _programs.Remove(Convert.ToHexString(entry.Id));
        _logger.LogInformation("Deleted hosted program {Key} and everything it kept: {Why}", Key(entry), why);
        Deleted?.Invoke(Info(entry));
    }

    private void DeleteRows(byte[] id)
    {
        Write("DELETE FROM store WHERE program = $1", id);
        Write("DELETE FROM programs WHERE id = $1", id);
        // secure_delete zeroes the pages in the log; the checkpoint puts them in the file and empties the log of what they held.
        Write("PRAGMA wal_checkpoint(TRUNCATE)");
    }

    private Entry? FindEntry(byte[] id)
    {
        lock (_lock) return _programs.GetValueOrDefault(Convert.ToHexString(id));
    }

    private static long FuelOf(IReadOnlyList<EpochCredit> payment) => Credit.Total(payment.Select(p => p.Token.Order)) * CpuBlock.FuelPerCredit;

    private static DeskRefused NotFound() => new(CreditRefusal.NotFound, "No program of that id runs here.");

    private static DeskProgram Answer(Entry entry)
    {
        var info = Info(entry);
        return new DeskProgram(entry.Id, info.State, (ulong)info.Fuel, (ulong)info.MemoryBytes, (ulong)info.StoredBytes,
            info.DeleteAt is { } at ? (ulong)at.ToUnixTimeSeconds() : 0, entry.AddressKey, info.Low);
    }

    private static HostedProgramInfo Info(Entry entry) => new(entry.Id,
        entry.Deleted ? ProgramState.Deleted : entry.PausedAt is null ? ProgramState.Running : ProgramState.Paused,
        entry.Deleted ? 0 : entry.Fuel, entry.Deleted ? 0 : entry.Memory, entry.Deleted ? 0 : entry.Stored, entry.Postage,
        entry.Deployed, entry.PausedAt, entry.WarnedAt, !entry.Deleted && entry.Low, entry.AddressKey);

    private static string Key(Entry entry) => Convert.ToHexStringLower(entry.Id)[..12];

    /// <summary>The public key of the session address a program's seed makes (PROTOCOL §9: a stable address).</summary>
    private static byte[] AddressKey(byte[] seed)
    {
        using var keys = Services.ServiceKeys.Stable(seed);
        return keys.FixedAddress!.PublicKey.ToArray();
    }

    private void Keep(Entry entry)
    {
        foreach (var (key, value) in entry.Program.TakeStoreChanges())
        {
            if (value is null) Write("DELETE FROM store WHERE program = $1 AND key = $2", entry.Id, key);
            else Write("INSERT OR REPLACE INTO store (program, key, value) VALUES ($1, $2, $3)", entry.Id, key, value);
        }
    }

    private void Save(Entry entry)
    {
        if (entry.Deleted) return;
        Write("UPDATE programs SET fuel = $2, topped = $3, paused_at = $4, warned_at = $5, charged_at = $6 WHERE id = $1", entry.Id, entry.Program.Fuel, entry.Topped,
            entry.PausedAt?.ToUnixTimeSeconds(), entry.WarnedAt?.ToUnixTimeSeconds(), entry.ChargedAt.ToUnixTimeSeconds());
    }

    private List<KeyValuePair<string, byte[]>> StoreOf(byte[] id)
    {
        var store = new List<KeyValuePair<string, byte[]>>();
        using var command = _db.CreateCommand();
        command.CommandText = "SELECT key, value FROM store WHERE program = $1";
        command.Parameters.AddWithValue("$1", id);
        using var reader = command.ExecuteReader();
        while (reader.Read()) store.Add(new(reader.GetString(0), (byte[])reader[1]));
        return store;
    }

    private void Write(string sql, params object?[] values)
    {
        lock (_db)
        {
            using var command = _db.CreateCommand();
            command.CommandText = sql;
            for (int i = 0; i < values.Length; i++) command.Parameters.AddWithValue($"${i + 1}", values[i] ?? DBNull.Value);
            command.ExecuteNonQuery();
        }
    }

    public void Dispose()
    {
        List<Entry> entries;
        lock (_lock)
        {
            entries = [.. _programs.Values];
            _programs.Clear();
        }
        foreach (var entry in entries)
        {
            // Closed, not deleted: its rows stay for the next start.
            lock (entry)
            {
                entry.Deleted = true;
                entry.Timer?.Dispose();
                entry.Program.Dispose();
            }
        }
        _engine.Dispose();
        _db.Dispose();
    }
}
