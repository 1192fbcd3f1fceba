using Microsoft.Extensions.Logging;
using Quid.Circuits;
using Quid.Credits;
using Quid.Crypto;
using Quid.Wire;

namespace Quid.Node;

/// <summary>What the node's credits come to, for the control API and metrics.</summary>
public sealed record CreditStatus(IReadOnlyList<CreditBalance> Balances, long IssuedMiBDays, long ExchangedMiBDays, long SpentCredits,
    long OfferDiskMiB, long FreeDiskMiB, DiskBlock? RequestDisk, ulong Epoch, DateTimeOffset EpochEnds,
    long OfferCpuGfuel = 0, long FreeCpuGfuel = 0, CpuBlock? RequestCpu = null);

/// <summary>
/// Credits (PROTOCOL §10): as an issuer, the node evaluates what partners are owed for the disk
/// and CPU it grants them and keeps a desk for exchanges; as a holder, it asks its partners for what they
/// owe it, and gives and takes credits as cards, exchanging them at their issuer through a circuit.
/// </summary>
public sealed partial class QuidNode
{
    private static readonly TimeSpan DeskStreamTimeout = TimeSpan.FromSeconds(20);
    /// <summary>How long a paced desk request waits before it looks for credit to go on again.</summary>
    private static readonly TimeSpan DeskPaceWait = TimeSpan.FromMilliseconds(50);

    private CreditKeys _creditKeys = null!;
    private CreditIssuer _issuer = null!;
    private CreditWallet _wallet = null!;
    private DateTimeOffset _lastCreditRound;
    /// <summary>
    /// Partners that hold back what we reckon due (a trial of theirs, a verdict of theirs on us):
    /// when to ask again, and the wait before that, which doubles to an hour while they keep refusing.
    /// </summary>
    private readonly Dictionary<NodeId, (DateTimeOffset Next, TimeSpan Wait)> _creditsHeldBack = [];
    private static readonly TimeSpan HeldBackLongest = TimeSpan.FromHours(1);
    /// <summary>One give or take at a time: two could choose the same credits.</summary>
    private readonly SemaphoreSlim _creditsBusy = new(1, 1);
    // Its own isolation: no application stream rides a circuit that spoke to an issuer's desk.
    private readonly object _deskIsolation = new();
    // Strangers reach the desk through circuits, and each credit they send costs a scalar
    // multiplication: so many streams at once, and so many credits a second over all of them.
    private int _deskStreams;
    private Quid.Overlay.TokenBucket _deskPace = null!;
    private readonly Lock _deskPaceLock = new();

    public CreditWallet Wallet => _wallet;
    /// <summary>This node as an issuer: what it issued and took back, and its spent set.</summary>
    public CreditIssuer CreditIssuer => _issuer;

    private void OpenCredits()
    {
        _creditKeys = new CreditKeys(_database.CreditSeed());
        _issuer = new CreditIssuer(_creditKeys, _database.SpentCredits(), _time);
        _issuer.Prune();
        _wallet = new CreditWallet(_database, _time);
        // The burst holds the largest request, an exchange of 64 credits for 64.
        _deskPace = new Quid.Overlay.TokenBucket(_options.DeskCreditsPerSecond, Math.Max(2 * CreditCodec.MaxCredits, 2 * _options.DeskCreditsPerSecond), _time);
        _circuits.Desk = ServeDeskAsync;
    }

    private async Task ServeDeskAsync(RelayStream stream)
    {
        await using (stream.ConfigureAwait(false))
        {
            if (Interlocked.Increment(ref _deskStreams) > _options.DeskStreams)
            {
                Interlocked.Decrement(ref _deskStreams);
                _logger.LogDebug("A desk stream was closed as it began: {Streams} are served already", _options.DeskStreams);
                return;
            }
            try
            {
                await CreditDesk.ServeAsync(stream, _issuer, _time, _stopping.Token, _storage is null && _programs is null ? null : ServeHostedAsync, PaceDeskAsync).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
            {
                _logger.LogDebug("A desk stream ended: {Reason}", e.Message);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // A stranger's stream must never take the node down; what broke is ours to see.
                _logger.LogWarning(e, "Serving a desk stream failed; the stream is closed");
            }
            finally
            {
                Interlocked.Decrement(ref _deskStreams);
            }
        }
    }

    /// <summary>Waits until the desk may take on <paramref name="request"/>'s credits.</summary>
    private async ValueTask PaceDeskAsync(DeskMessage request, CancellationToken cancellationToken)
    {
        int weight = CreditDesk.Weight(request);
        while (true)
        {
            lock (_deskPaceLock)
            {
                if (_deskPace.TryTake(weight)) return;
            }
            await Task.Delay(DeskPaceWait, _time, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Once per interval, on the loop: ask each partner that owes us credits for them, one request at a time.</summary>
    private void AskForCredits()
    {
        var now = _time.GetUtcNow();
        if (now - _lastCreditRound < _options.CreditRequestInterval) return;
        _lastCreditRound = now;
        var granting = _core.Market.Active.Where(a => a.TheyGrantCreditsPerDay > 0).Select(a => a.Partner).ToHashSet();
        foreach (var gone in _creditsHeldBack.Keys.Where(p => !granting.Contains(p)).ToList()) _creditsHeldBack.Remove(gone);
        foreach (var partner in granting) AskForCredits(partner);
    }

    /// <summary>On the loop: asks <paramref name="partner"/> for what it owes us, unless it owes nothing or a request to it is unanswered.</summary>
    private void AskForCredits(NodeId partner)
    {
        long owed = _core.Market.CreditsDue(partner);
        if (owed < 1 || _wallet.Asking(partner)) return;
        if (_creditsHeldBack.TryGetValue(partner, out var back) && _time.GetUtcNow() < back.Next) return;
        _core.LinkTo(partner)?.SendControl(_wallet.Ask(partner, owed));
    }

    private void OnCreditsAnswered(NodeId partner, ControlMessage answer)
    {
        try
        {
            long received = _wallet.Answered(partner, answer);
            if (received > 0)
            {
                _creditsHeldBack.Remove(partner);
                _core.Market.CreditsReceived(partner, received);
                _logger.LogInformation("{Peer} issued us {Amount} MiB·days of credits", partner.Brief, received);
            }
            else if (answer is CreditRefused { Reason: CreditRefusal.NoAllowance, Allowance: > 0 } refused
                && _core.Market.CreditsDue(partner, (long)Math.Min(refused.Allowance, long.MaxValue)) is > 0 and var due)
            {
                // Its reckoning runs behind ours (it started the agreement later, or holds back the day
                // ahead): ask what it says, once that too is worth a request.
                _core.LinkTo(partner)?.SendControl(_wallet.Ask(partner, due));
            }
            else if (answer is CreditRefused other)
            {
                if (other.Reason == CreditRefusal.NoAllowance)
                {
                    // What it allows is not yet worth a request: ask again later, and later each time it says so.
                    var wait = _creditsHeldBack.TryGetValue(partner, out var back) ? TimeSpan.FromTicks(Math.Min(2 * back.Wait.Ticks, HeldBackLongest.Ticks)) : _options.CreditRequestInterval;
                    _creditsHeldBack[partner] = (_time.GetUtcNow() + wait, wait);
                }
                _logger.LogDebug("{Peer} refused our credit request: {Reason}", partner.Brief, other.Reason);
            }
        }
        catch (CreditException e)
        {
            _logger.LogWarning("{Peer}'s credits do not check, and were refused: {Reason}", partner.Brief, e.Message);
        }
    }

    public Task<CreditStatus> CreditStatusAsync() => OnLoopAsync(() =>
    {
        var now = _time.GetUtcNow();
        ulong epoch = CreditEpoch.Of(now);
        return new CreditStatus(_wallet.Balances(), _issuer.Issued, _issuer.Exchanged, _issuer.SpentCount,
            _core.Market.OfferDiskMiB, _core.Market.FreeDiskMiB, _core.Market.DiskRequest, epoch, CreditEpoch.Start(epoch + 1),
            _core.Market.OfferCpuGfuel, _core.Market.FreeCpuGfuel, _core.Market.CpuRequest);
    });

    /// <summary>
    /// Takes <paramref name="amount"/> MiB·days of <paramref name="issuer"/>'s credits out of the
    /// wallet as a card (making change at the issuer first when no set of ours adds up to it).
    /// </summary>
    public async Task<string> GiveCreditsAsync(NodeId issuer, long amount, CancellationToken cancellationToken)
    {
        if (amount < 1) throw new CreditException("Give at least 1 MiB·day.");
        await _creditsBusy.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var exact = await ExactAsync(issuer, amount, cancellationToken).ConfigureAwait(false);
            var card = CreditCard.Write(exact);
            _wallet.Change([], exact);
            _logger.LogInformation("Gave {Amount} MiB·days of credits on {Issuer} as a card", amount, issuer.Brief);
            return card;
        }
        finally
        {
            _creditsBusy.Release();
        }
    }

    /// <summary>
    /// Credits of <paramref name="issuer"/> that make <paramref name="amount"/> exactly, making
    /// change at the issuer when no set of ours does; they stay in the wallet. Under <see cref="_creditsBusy"/>.
    /// </summary>
    private async Task<List<Credit>> ExactAsync(NodeId issuer, long amount, CancellationToken cancellationToken)
    {
        var (exact, split) = _wallet.Choose(issuer, amount);
        if (split is null) return exact;
        long missing = amount - exact.Sum(c => c.Value);
        var part = Credit.Denominations(missing);
        var change = await ExchangeAsync([split], [.. part, .. Credit.Denominations(split.Value - missing)], cancellationToken).ConfigureAwait(false);
        _wallet.Change(change, [split]);
        // The first credits minted are the part asked for, in the order asked.
        return [.. exact, .. change.Take(part.Count)];
    }

    /// <summary>
    /// Takes a card's credits: exchanges them at their issuer for fresh ones only we hold, so the
    /// giver's copy is worth nothing after. Returns the MiB·days taken.
    /// </summary>
    public async Task<long> TakeCreditsAsync(string card, CancellationToken cancellationToken)
    {
        IReadOnlyList<Credit> credits;
        try
        {
            credits = CreditCard.Read(card);
        }
        catch (WireException e)
        {
            throw new CreditException($"Not a credit card: {e.Message}");
        }
        await _creditsBusy.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            long taken = 0;
            foreach (var chunk in credits.GroupBy(c => c.Epoch).SelectMany(g => g.Chunk(CreditCodec.MaxCredits)))
            {
                IReadOnlyList<Credit> fresh;
                try
                {
                    // The same denominations back: any total a card holds can be minted so.
                    fresh = await ExchangeAsync(chunk, [.. chunk.Select(c => c.Order)], cancellationToken).ConfigureAwait(false);
                }
                catch (CreditException e) when (taken > 0)
                {
                    throw new CreditException($"Took {taken} MiB·days of the card, then: {e.Message}", e.Reason);
                }
                _wallet.Change(fresh, []);
                taken += fresh.Sum(c => c.Value);
            }
            _logger.LogInformation("Took a card of {Amount} MiB·days of credits on {Issuer}", taken, credits[0].Issuer.Brief);
            return taken;
        }
        finally
        {
            _creditsBusy.Release();
        }
    }

    /// <summary>
    /// Whether a host's refusal means the credits we paid are gone (it took them, or they were
    /// spent, forged or expired); after any other failure they are still good and go back to the wallet.
    /// </summary>
    private static bool CreditsGone(CreditRefusal? reason) =>
        reason is CreditRefusal.Spent or CreditRefusal.Invalid or CreditRefusal.Expired or CreditRefusal.StartFailed;

    /// <summary>
    /// Runs <paramref name="work"/> on a desk stream at <paramref name="host"/>, through a circuit
    /// of its own that ends there, so the host serves it without learning who asks.
    /// </summary>
    private async Task<T> DeskAsync<T>(NodeId host, Func<Stream, CancellationToken, Task<T>> work, CancellationToken cancellationToken)
    {
        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopping.Token);
        Circuit circuit;
        try
        {
            circuit = await _pool.BuildToAsync([host], _deskIsolation, stopping.Token).ConfigureAwait(false);
        }
        catch (StreamException e)
        {
            throw new CreditException($"No circuit reaches {host.Brief}'s desk: {e.Message}");
        }
        try
        {
            var stream = await circuit.OpenDeskStreamAsync(DeskStreamTimeout, stopping.Token).ConfigureAwait(false);
            await using (stream.ConfigureAwait(false))
                return await work(stream, stopping.Token).ConfigureAwait(false);
        }
        catch (StreamException e)
        {
            throw new CreditException($"{host.Brief}'s desk could not be reached: {e.Message}");
        }
        finally
        {
            circuit.Destroy(DestroyReason.Finished);
        }
    }

    /// <summary>Spends <paramref name="spend"/> at its issuer's desk, through a circuit of its own, for fresh credits of <paramref name="mint"/>.</summary>
    private async Task<IReadOnlyList<Credit>> ExchangeAsync(IReadOnlyList<Credit> spend, IReadOnlyList<byte> mint, CancellationToken cancellationToken)
    {
        var issuer = spend[0].Issuer;
        var epoch = spend[0].Epoch;
        var knownKey = _wallet.KnownKey(issuer, epoch);
        (IReadOnlyList<Credit> Credits, IReadOnlyList<CreditProof> Keys) fresh;
        if (issuer == Id)
        {
            // Our own credits come back to us: our desk is here.
            var pending = CreditDesk.Prepare(spend, mint, out var request);
            var result = _issuer.Exchange(request);
            fresh = CreditDesk.Finish(pending, result.Evaluation is { } evaluation ? new DeskExchanged(evaluation) : new DeskRefused(result.Refusal!.Value, result.Text), knownKey);
        }
        else
        {
            fresh = await DeskAsync(issuer, (stream, token) => CreditDesk.ExchangeAsync(stream, spend, mint, knownKey, _time, token), cancellationToken).ConfigureAwait(false);
        }
        _wallet.RememberKeys(issuer, epoch, fresh.Keys);
        return fresh.Credits;
    }
}
