using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Quid.Credits;
using Quid.Crypto;
using Quid.Storage;
using Quid.Wire;

namespace Quid.Node;

/// <summary>
/// Storage (PROTOCOL §10.7). As a host, the node keeps what others pay it for in its credits,
/// within its disk offer. As an owner, it seals a file, stores copies on hosts whose credits it
/// holds, through circuits (a host never learns who stores), audits them, renews what runs low,
/// and copies a lost one again from another.
/// </summary>
public sealed partial class QuidNode
{
    /// <summary>Audits each copy can answer: precomputed, as the owner keeps nothing of the file.</summary>
    private const int ChallengesPerCopy = 16;

    private StorageHost? _storage;
    private DateTimeOffset _lastSweep;
    private DateTimeOffset _lastAudit;
    private int _auditing;
    /// <summary>One change to our stored files at a time: puts, audits and repairs each rewrite a file's copies.</summary>
    private readonly SemaphoreSlim _storeBusy = new(1, 1);

    public StorageHost? Storage => _storage;

    /// <summary>
    /// How long a host may take to answer what makes it read or sync a whole object (an audit, the
    /// end of an upload): the desk's usual patience, and a second for each 32 MiB at a slow disk's pace.
    /// </summary>
    private static TimeSpan WholeObjectPatience(long size) => CreditDesk.Patience + TimeSpan.FromSeconds(size / (32 << 20));

    private void OpenStorage()
    {
        // The first round five minutes after a start, once partners and circuits are back: at the
        // first tick every host would look unreachable.
        _lastAudit = _time.GetUtcNow() - _options.StorageAuditInterval + TimeSpan.FromMinutes(5);
        if (_options.OfferDisk <= 0) return;
        _storage = StorageHost.Open(Path.Combine(_options.DataDirectory, "hosted"), _options.OfferDisk, _issuer, _time, _logger);
    }

    /// <summary>On the loop, each tick: expired objects go once a minute; our copies are audited every <see cref="NodeOptions.StorageAuditInterval"/>.</summary>
    private void LookAfterStorage()
    {
        var now = _time.GetUtcNow();
        if (_storage is not null && now - _lastSweep >= TimeSpan.FromMinutes(1))
        {
            _lastSweep = now;
            _storage.Sweep();
        }
        if (now - _lastAudit >= _options.StorageAuditInterval && Interlocked.Exchange(ref _auditing, 1) == 0)
        {
            _lastAudit = now;
            _ = Task.Run(async () =>
            {
                try
                {
                    await AuditStoredAsync(_stopping.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    // Stopping.
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    _logger.LogWarning(e, "Auditing stored files failed; the next round tries again");
                }
                finally
                {
                    Volatile.Write(ref _auditing, 0);
                }
            });
        }
    }

    public IReadOnlyList<StoredFile> StoredFiles() => _database.LoadStoredFiles();

    /// <summary>The stored file whose id starts with <paramref name="prefix"/> (8 hex digits or more); null when none or several do.</summary>
    public StoredFile? FindStored(string prefix) =>
        prefix.Length >= 8 && StoredFiles().Where(f => f.Key32.StartsWith(prefix.ToLowerInvariant(), StringComparison.Ordinal)).ToList() is [var one] ? one : null;

    /// <summary>
    /// Seals <paramref name="path"/> and stores <paramref name="copies"/> copies for
    /// <paramref name="days"/> days on hosts whose credits we hold, each paid in its own credits.
    /// </summary>
    public async Task<StoredFile> PutAsync(string path, int days, int copies, CancellationToken cancellationToken)
    {
        if (days is < 1 or > DeskCodec.MaxDays) throw new CreditException($"Store for 1 to {DeskCodec.MaxDays} days.");
        if (copies is < 1 or > 16) throw new CreditException("Keep 1 to 16 copies.");
        var info = new FileInfo(path);
        if (!info.Exists) throw new CreditException($"{path} is not a file.");
        await _storeBusy.WaitAsync(cancellationToken).ConfigureAwait(false);
        string sealedPath = Path.Combine(_options.DataDirectory, $"store-{Guid.NewGuid():N}.sealed");
        try
        {
            byte[] id = RandomNumberGenerator.GetBytes(DeskCodec.ObjectSize), key = RandomNumberGenerator.GetBytes(ObjectCipher.KeySize), secret = RandomNumberGenerator.GetBytes(DeskCodec.HashSize);
            byte[] sha256;
            await using (var plain = File.OpenRead(path))
                sha256 = await SHA256.HashDataAsync(plain, cancellationToken).ConfigureAwait(false);
            await using (var plain = File.OpenRead(path))
            await using (var sealedFile = File.Create(sealedPath))
                await ObjectCipher.EncryptAsync(plain, info.Length, sealedFile, key, cancellationToken).ConfigureAwait(false);
            long cipherSize = ObjectCipher.CipherLength(info.Length);
            var file = new StoredFile(id, info.Name, info.Length, cipherSize, sha256, key, secret, days, copies, _time.GetUtcNow(), []);
            file = await PlaceCopiesAsync(file, sealedPath, cancellationToken).ConfigureAwait(false);
            if (file.Copies.Count == 0)
                throw new CreditException($"No host took {info.Name}: {HostsWanted(file)}");
            _database.SaveStoredFile(file);
            _logger.LogInformation("Stored {Name} ({Size} bytes) as {Id}: {Copies} of {Wanted} copies, paid for {Days} day(s)",
                info.Name, info.Length, file.Key32[..12], file.Copies.Count, copies, days);
            return file;
        }
        finally
        {
            File.Delete(sealedPath);
            _storeBusy.Release();
        }
    }

    /// <summary>Adds copies of <paramref name="file"/> (sealed at <paramref name="sealedPath"/>) on new hosts until it has as many as wanted, or no host is left.</summary>
    /// <param name="avoid">Hosts not to use: those that lost a copy of this file.</param>
    private async Task<StoredFile> PlaceCopiesAsync(StoredFile file, string sealedPath, CancellationToken cancellationToken, IEnumerable<NodeId>? avoid = null)
    {
        long price = StorageHost.Price(file.CipherSize, file.Days);
        var tried = file.Copies.Select(c => c.Host).Concat(avoid ?? []).ToHashSet();
        while (file.Copies.Count(c => c.State is CopyState.Held or CopyState.Expiring) < file.CopiesWanted)
        {
            var host = _wallet.Balances().Where(b => b.Issuer != Id && !tried.Contains(b.Issuer) && b.MiBDays >= price).Select(b => b.Issuer).FirstOrDefault();
            if (host == default) break;
            tried.Add(host);
            try
            {
                var challenges = await ChallengesAsync(sealedPath, cancellationToken).ConfigureAwait(false);
                var credits = await PayAsync(host, price, cancellationToken).ConfigureAwait(false);
                var payment = credits.Select(c => new EpochCredit(c.Epoch, c.Token)).ToList();
                bool uploading = false;
                ulong paidUntil;
                try
                {
                    paidUntil = await DeskAsync(host, async (stream, cancellationToken) =>
                    {
                        await CreditDesk.WriteAsync(stream, new DeskPut(file.Id, file.CipherSize, (ushort)file.Days, SHA256.HashData(file.Secret), payment), cancellationToken).ConfigureAwait(false);
                        var ready = await CreditDesk.ReadAsync(stream, _time, cancellationToken).ConfigureAwait(false);
                        if (ready is DeskRefused refused) throw new CreditException($"{host.Brief} refused: {refused.Text}", refused.Reason);
                        if (ready is not DeskReady) throw new CreditException($"{host.Brief} answered a Put with {ready?.Type.ToString() ?? "nothing"}.");
                        uploading = true;
                        await using (var sealedFile = File.OpenRead(sealedPath))
                            await sealedFile.CopyToAsync(stream, cancellationToken).ConfigureAwait(false);
                        await stream.FlushAsync(cancellationToken).ConfigureAwait(false);
                        return await CreditDesk.ReadAsync(stream, _time, cancellationToken, WholeObjectPatience(file.CipherSize)).ConfigureAwait(false) is DeskStored stored
                            ? stored.PaidUntil
                            : throw new CreditException($"{host.Brief} did not confirm the file.");
                    }, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e) when (!uploading && !CreditsGone((e as CreditException)?.Reason))
                {
                    // The host took nothing before it was ready for the file: the credits are still good.
                    _wallet.Change(credits, []);
                    throw;
                }
                file = file with { Copies = [.. file.Copies, new StoredCopy(host, DateTimeOffset.FromUnixTimeSeconds((long)paidUntil), challenges, CopyState.Held)] };
            }
            catch (Exception e) when (e is CreditException or IOException or WireException)
            {
                _logger.LogWarning("Could not store a copy of {Name} on {Host}: {Reason}", file.Name, host.Brief, e.Message);
            }
        }
        return file;
    }

    private string HostsWanted(StoredFile file)
    {
        long price = StorageHost.Price(file.CipherSize, file.Days);
        var balances = _wallet.Balances().Where(b => b.Issuer != Id).ToList();
        return $"it costs {price} MiB·days of a host's credits per copy, and you hold that much on {balances.Count(b => b.MiBDays >= price)} host(s) " +
            $"({string.Join(", ", balances.Select(b => $"{b.Issuer.Brief}: {b.MiBDays}"))}); ask partners for disk with --request-disk, or take a card of credits.";
    }

    /// <summary>Takes <paramref name="price"/> MiB·days of <paramref name="host"/>'s credits out of the wallet, making change at the host first if needed.</summary>
    private async Task<IReadOnlyList<Credit>> PayAsync(NodeId host, long price, CancellationToken cancellationToken)
    {
        await _creditsBusy.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var exact = await ExactAsync(host, price, cancellationToken).ConfigureAwait(false);
            // A payment carries at most 64 credits: many small ones (a minute's issue each) are first
            // exchanged, an epoch at a time, for the fewest that make their total.
            while (exact.Count > CreditCodec.MaxCredits)
            {
                var smallest = exact.GroupBy(c => c.Epoch).OrderByDescending(g => g.Count()).First().OrderBy(c => c.Value).Take(CreditCodec.MaxCredits).ToList();
                // Already the fewest for their total (one of each denomination): no exchange makes fewer.
                if (Credit.Denominations(smallest.Sum(c => c.Value)).Count >= smallest.Count)
                    throw new CreditException($"Paying {price} MiB·days at {host.Brief} takes {exact.Count} credits of several weeks, more than the 64 a payment carries: store for fewer days.");
                var merged = await ExchangeAsync(smallest, Credit.Denominations(smallest.Sum(c => c.Value)), cancellationToken).ConfigureAwait(false);
                _wallet.Change(merged, smallest);
                exact = [.. exact.Except(smallest), .. merged];
            }
            _wallet.Change([], exact);
            return exact;
        }
        finally
        {
            _creditsBusy.Release();
        }
    }

    /// <summary>Nonces and the digests a host holding the sealed file must answer them with.</summary>
    private static async Task<byte[]> ChallengesAsync(string sealedPath, CancellationToken cancellationToken)
    {
        var challenges = new byte[ChallengesPerCopy * StoredCopy.ChallengeSize];
        var hashes = new IncrementalHash[ChallengesPerCopy];
        for (int i = 0; i < ChallengesPerCopy; i++)
        {
            hashes[i] = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var nonce = challenges.AsSpan(i * StoredCopy.ChallengeSize, DeskCodec.HashSize);
            RandomNumberGenerator.Fill(nonce);
            hashes[i].AppendData(nonce);
        }
        await using (var sealedFile = File.OpenRead(sealedPath))
        {
            var buffer = new byte[1 << 16];
            int read;
            while ((read = await sealedFile.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
                foreach (var hash in hashes) hash.AppendData(buffer, 0, read);
        }
        for (int i = 0; i < ChallengesPerCopy; i++)
        {
            hashes[i].GetHashAndReset().CopyTo(challenges.AsSpan(i * StoredCopy.ChallengeSize + DeskCodec.HashSize));
            hashes[i].Dispose();
        }
        return challenges;
    }

    /// <summary>Fetches a file from the first copy that answers whole, checks it, and writes it to <paramref name="output"/>.</summary>
    public async Task GetAsync(StoredFile file, Stream output, CancellationToken cancellationToken)
    {
        string plainPath = Path.Combine(_options.DataDirectory, $"store-{Guid.NewGuid():N}.get");
        try
        {
            var failures = new List<string>();
            // Copies on hosts we are linked to first: a host that went away costs a circuit's timeouts to find out.
            var linked = await OnLoopAsync(() => _core.Links.Select(l => l.Peer).ToHashSet()).ConfigureAwait(false);
            foreach (var copy in file.Copies.OrderBy(c => c.State is CopyState.Held or CopyState.Expiring ? 0 : c.State == CopyState.Unreachable ? 1 : 2).ThenBy(c => !linked.Contains(c.Host)))
            {
                try
                {
                    await FetchSealedAsync(file, copy.Host, plainPath, decrypt: true, cancellationToken).ConfigureAwait(false);
                    await using var plain = File.OpenRead(plainPath);
                    await plain.CopyToAsync(output, cancellationToken).ConfigureAwait(false);
                    return;
                }
                catch (Exception e) when (e is CreditException or StorageException or IOException or WireException)
                {
                    failures.Add($"{copy.Host.Brief}: {e.Message}");
                }
            }
            throw new CreditException($"No copy of {file.Name} could be read back: {string.Join("; ", failures)}");
        }
        finally
        {
            File.Delete(plainPath);
        }
    }

    /// <summary>Gets the sealed object from <paramref name="host"/> into <paramref name="path"/>: the plaintext, checked against the file's SHA-256, or the sealed bytes as stored.</summary>
    private async Task FetchSealedAsync(StoredFile file, NodeId host, string path, bool decrypt, CancellationToken cancellationToken)
    {
        await DeskAsync(host, async (stream, cancellationToken) =>
        {
            await CreditDesk.WriteAsync(stream, new DeskGet(file.Id), cancellationToken).ConfigureAwait(false);
            var answer = await CreditDesk.ReadAsync(stream, _time, cancellationToken).ConfigureAwait(false);
            if (answer is DeskRefused refused) throw new CreditException(refused.Text, refused.Reason);
            if (answer is not DeskData { } data || data.Size != file.CipherSize) throw new StorageException($"{host.Brief} answered with another object.");
            await using var target = File.Create(path);
            if (!decrypt)
            {
                var buffer = new byte[1 << 16];
                for (long left = data.Size; left > 0;)
                {
                    int read = await stream.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, left)), cancellationToken).ConfigureAwait(false);
                    if (read == 0) throw new StorageException("The object ended early.");
                    await target.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
                    left -= read;
                }
                return true;
            }
            await ObjectCipher.DecryptAsync(stream, data.Size, target, file.Key, cancellationToken).ConfigureAwait(false);
            target.Position = 0;
            if (!(await SHA256.HashDataAsync(target, cancellationToken).ConfigureAwait(false)).AsSpan().SequenceEqual(file.Sha256))
                throw new StorageException("The object decrypts, but not to the file stored.");
            return true;
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Audits every copy once: a host that answers wrong, or not at all, has lost it, and the
    /// file is copied again from another; one paid for less than a day more is renewed when we
    /// hold its credits, and said to be expiring when we do not.
    /// </summary>
    public async Task AuditStoredAsync(CancellationToken cancellationToken)
    {
        await _storeBusy.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            foreach (var file in StoredFiles())
            {
                var copies = new List<StoredCopy>();
                foreach (var copy in file.Copies)
                    copies.Add(copy.State == CopyState.Lost ? copy : await AuditAsync(file, copy, cancellationToken).ConfigureAwait(false));
                var audited = file with { Copies = copies };
                if (copies.Count(c => c.State is CopyState.Held or CopyState.Expiring) < file.CopiesWanted && copies.Any(c => c.State is CopyState.Held or CopyState.Expiring))
                    audited = await RepairAsync(audited, cancellationToken).ConfigureAwait(false);
                _database.SaveStoredFile(audited);
            }
        }
        finally
        {
            _storeBusy.Release();
        }
    }

    private async Task<StoredCopy> AuditAsync(StoredFile file, StoredCopy copy, CancellationToken cancellationToken)
    {
        int used = copy.NextChallenge();
        // All asked: the host is still asked, with a nonce of no known answer, so that we learn it
        // answers and until when it is paid (and renew in time); what it holds is no longer checked.
        byte[] nonce = used < 0 ? RandomNumberGenerator.GetBytes(DeskCodec.HashSize) : copy.Challenges[(used * StoredCopy.ChallengeSize)..(used * StoredCopy.ChallengeSize + DeskCodec.HashSize)];
        byte[]? expected = used < 0 ? null : copy.Challenges[(used * StoredCopy.ChallengeSize + DeskCodec.HashSize)..((used + 1) * StoredCopy.ChallengeSize)];
        // A challenge is asked once: a host must not learn the answer from one audit for the next.
        var challenges = (byte[])copy.Challenges.Clone();
        if (used >= 0) Array.Clear(challenges, used * StoredCopy.ChallengeSize, StoredCopy.ChallengeSize);
        DeskMessage? answer;
        try
        {
            answer = await DeskAsync(copy.Host, async (stream, cancellationToken) =>
            {
                await CreditDesk.WriteAsync(stream, new DeskAudit(file.Id, nonce), cancellationToken).ConfigureAwait(false);
                return await CreditDesk.ReadAsync(stream, _time, cancellationToken, WholeObjectPatience(file.CipherSize)).ConfigureAwait(false);
            }, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is CreditException or IOException or WireException)
        {
            // Not lost yet: it may be a host offline for a while, or a network settling. Asked again
            // next time, with the same challenge; meanwhile the file is copied elsewhere if it is short.
            _logger.LogWarning("Host {Host} did not answer the audit of {Name}: {Reason}", copy.Host.Brief, file.Name, e.Message);
            return copy with { State = CopyState.Unreachable };
        }
        if (answer is not DeskAudited audited || (expected is not null && !CryptographicOperations.FixedTimeEquals(audited.Digest, expected)))
        {
            _logger.LogWarning("Host {Host} failed the audit of {Name} ({Answer}): it no longer holds it whole; copying it again elsewhere",
                copy.Host.Brief, file.Name, answer is DeskRefused r ? r.Text : "a wrong digest");
            // A partner that lost what we paid it for is answered as one that under-delivers; one that
            // deleted it after what we paid and its grace ran out did what it said.
            if (copy.PaidUntil + StorageHost.Grace > _time.GetUtcNow())
                await OnLoopAsync(() =>
                {
                    Execute(_core.Audited(copy.Host, passed: false));
                    return true;
                }).ConfigureAwait(false);
            return copy with { State = CopyState.Lost, Challenges = challenges };
        }
        await OnLoopAsync(() =>
        {
            Execute(_core.Audited(copy.Host, passed: true));
            return true;
        }).ConfigureAwait(false);
        var paidUntil = DateTimeOffset.FromUnixTimeSeconds((long)audited.PaidUntil);
        if (!StorageHost.Expiring(paidUntil, TimeSpan.FromDays(file.Days), _time.GetUtcNow()))
            return copy with { PaidUntil = paidUntil, State = CopyState.Held, Challenges = challenges };
        var renewed = await RenewCopyAsync(file, copy.Host, file.Days, cancellationToken).ConfigureAwait(false);
        if (renewed is { } until) return copy with { PaidUntil = until, State = CopyState.Held, Challenges = challenges };
        _logger.LogWarning("{Name} on {Host} is paid only until {PaidUntil:u} and you hold too few of its credits to renew it: it is deleted a day after",
            file.Name, copy.Host.Brief, paidUntil);
        return copy with { PaidUntil = paidUntil, State = CopyState.Expiring, Challenges = challenges };
    }

    /// <summary>Pays <paramref name="host"/> for <paramref name="days"/> more of <paramref name="file"/>; null when we hold too few of its credits or it refuses.</summary>
    private async Task<DateTimeOffset?> RenewCopyAsync(StoredFile file, NodeId host, int days, CancellationToken cancellationToken)
    {
        long price = StorageHost.Price(file.CipherSize, days);
        if ((_wallet.Balances().FirstOrDefault(b => b.Issuer == host)?.MiBDays ?? 0) < price) return null;
        try
        {
            var payment = (await PayAsync(host, price, cancellationToken).ConfigureAwait(false)).Select(c => new EpochCredit(c.Epoch, c.Token)).ToList();
            return await DeskAsync(host, async (stream, cancellationToken) =>
            {
                await CreditDesk.WriteAsync(stream, new DeskRenew(file.Id, (ushort)days, payment), cancellationToken).ConfigureAwait(false);
                return await CreditDesk.ReadAsync(stream, _time, cancellationToken).ConfigureAwait(false) is DeskStored stored
                    ? DateTimeOffset.FromUnixTimeSeconds((long)stored.PaidUntil)
                    : (DateTimeOffset?)null;
            }, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is CreditException or IOException or WireException)
        {
            _logger.LogWarning("Could not renew {Name} on {Host}: {Reason}", file.Name, host.Brief, e.Message);
            return null;
        }
    }

    /// <summary>Copies a file whose copies were lost again, from one still held, onto new hosts.</summary>
    private async Task<StoredFile> RepairAsync(StoredFile file, CancellationToken cancellationToken)
    {
        string sealedPath = Path.Combine(_options.DataDirectory, $"store-{Guid.NewGuid():N}.sealed");
        try
        {
            foreach (var source in file.Copies.Where(c => c.State is CopyState.Held or CopyState.Expiring))
            {
                try
                {
                    await FetchSealedAsync(file, source.Host, sealedPath, decrypt: false, cancellationToken).ConfigureAwait(false);
                    // What goes to a new host must be the file: opened here, as a reader would.
                    await using (var sealedFile = File.OpenRead(sealedPath))
                        await ObjectCipher.DecryptAsync(sealedFile, file.CipherSize, Stream.Null, file.Key, cancellationToken).ConfigureAwait(false);
                    // Lost copies are dropped; unreachable ones stay, audited again, while new ones make up the count.
                    var kept = file with { Copies = [.. file.Copies.Where(c => c.State != CopyState.Lost)] };
                    var repaired = await PlaceCopiesAsync(kept, sealedPath, cancellationToken, file.Copies.Where(c => c.State == CopyState.Lost).Select(c => c.Host)).ConfigureAwait(false);
                    _logger.LogInformation("Repaired {Name}: {Added} new copies from {Source}", file.Name, repaired.Copies.Count - kept.Copies.Count, source.Host.Brief);
                    return repaired;
                }
                catch (Exception e) when (e is CreditException or StorageException or IOException or WireException)
                {
                    _logger.LogWarning("Could not read {Name} back from {Host} to repair it: {Reason}", file.Name, source.Host.Brief, e.Message);
                }
            }
            return file;
        }
        finally
        {
            File.Delete(sealedPath);
        }
    }

    /// <summary>Pays every copy's host for <paramref name="days"/> more.</summary>
    public async Task<StoredFile> RenewAsync(StoredFile file, int days, CancellationToken cancellationToken)
    {
        await _storeBusy.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var copies = new List<StoredCopy>();
            foreach (var copy in file.Copies)
                copies.Add(copy.State != CopyState.Lost && await RenewCopyAsync(file, copy.Host, days, cancellationToken).ConfigureAwait(false) is { } until
                    ? copy with { PaidUntil = until, State = CopyState.Held }
                    : copy);
            var renewed = file with { Copies = copies };
            _database.SaveStoredFile(renewed);
            return renewed;
        }
        finally
        {
            _storeBusy.Release();
        }
    }

    /// <summary>Removes the file from every host that still answers, and forgets it.</summary>
    public async Task RemoveAsync(StoredFile file, CancellationToken cancellationToken)
    {
        await _storeBusy.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            foreach (var copy in file.Copies.Where(c => c.State != CopyState.Lost))
            {
                try
                {
                    await DeskAsync(copy.Host, async (stream, cancellationToken) =>
                    {
                        await CreditDesk.WriteAsync(stream, new DeskRemove(file.Id, file.Secret), cancellationToken).ConfigureAwait(false);
                        return await CreditDesk.ReadAsync(stream, _time, cancellationToken).ConfigureAwait(false);
                    }, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is CreditException or IOException or WireException)
                {
                    _logger.LogWarning("Could not remove {Name} from {Host}: {Reason}; it is deleted there when its payment runs out", file.Name, copy.Host.Brief, e.Message);
                }
            }
            _database.DeleteStoredFile(file.Id);
        }
        finally
        {
            _storeBusy.Release();
        }
    }
}
