using Quid.Credits;
using Quid.Crypto;
using Quid.Wire;

namespace Quid.Node;

/// <summary>What we hold of one issuer's credits.</summary>
public sealed record CreditBalance(NodeId Issuer, long MiBDays, int Credits, DateTimeOffset SoonestExpiry);

/// <summary>
/// The credits this node holds, in memory and in the database (both change together), and the
/// requests to partners whose answers will add to them. Spending chooses the soonest to expire.
/// </summary>
public sealed class CreditWallet
{
    /// <summary>A request unanswered this long is dropped: the partner may ask again at the next round.</summary>
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromMinutes(1);

    private readonly NodeDatabase _database;
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private readonly List<Credit> _held;
    private readonly Dictionary<uint, (NodeId Partner, PendingCredits Credits, DateTimeOffset Sent)> _asked = [];
    private uint _nextRequest;

    public CreditWallet(NodeDatabase database, TimeProvider time)
    {
        _database = database;
        _time = time;
        _database.DropCreditsBefore(CreditEpoch.OldestRedeemable(time.GetUtcNow()));
        _held = [.. _database.LoadCredits()];
    }

    /// <summary>The credits held that their issuers still take.</summary>
    public IReadOnlyList<Credit> Held
    {
        get
        {
            var now = _time.GetUtcNow();
            lock (_lock) return [.. _held.Where(c => CreditEpoch.Redeemable(c.Epoch, now))];
        }
    }

    public IReadOnlyList<CreditBalance> Balances() =>
        [.. Held.GroupBy(c => c.Issuer).Select(g => new CreditBalance(g.Key, g.Sum(c => c.Value), g.Count(), g.Min(c => c.Expires))).OrderByDescending(b => b.MiBDays)];

    /// <summary>Whether a request to <paramref name="partner"/> awaits its answer.</summary>
    public bool Asking(NodeId partner)
    {
        var now = _time.GetUtcNow();
        lock (_lock)
        {
            foreach (var (id, asked) in _asked)
                if (now - asked.Sent > RequestTimeout) _asked.Remove(id);
            return _asked.Values.Any(a => a.Partner == partner);
        }
    }

    /// <summary>A request for <paramref name="amount"/> MiB·days of <paramref name="partner"/>'s credits, one credit per denomination in it.</summary>
    public CreditRequest Ask(NodeId partner, long amount)
    {
        var now = _time.GetUtcNow();
        ulong epoch = CreditEpoch.Of(now);
        var pending = PendingCredits.Prepare(partner, epoch, Credit.Denominations(Math.Min(amount, (1L << (CreditCodec.MaxOrder + 1)) - 1)));
        lock (_lock)
        {
            uint id = ++_nextRequest;
            _asked[id] = (partner, pending, now);
            return new CreditRequest(id, epoch, pending.Blinded);
        }
    }

    /// <summary>
    /// Takes a partner's answer to our request: the credits it issued, checked, are ours (the
    /// amount is returned), or the refusal forgets the request. A stranger's answer is ignored.
    /// </summary>
    public long Answered(NodeId partner, ControlMessage answer)
    {
        uint id = answer switch { CreditIssue i => i.Id, CreditRefused r => r.Id, _ => 0 };
        PendingCredits pending;
        lock (_lock)
        {
            if (!_asked.TryGetValue(id, out var asked) || asked.Partner != partner) return 0;
            _asked.Remove(id);
            pending = asked.Credits;
        }
        if (answer is not CreditIssue issue) return 0;
        var credits = pending.Finalize(issue.Evaluation, KnownKey(partner, pending.Epoch));
        RememberKeys(partner, pending.Epoch, issue.Evaluation.Proofs);
        Change(credits, []);
        return pending.Total;
    }

    /// <summary>
    /// The public key <paramref name="issuer"/> made our credits of <paramref name="epoch"/> under,
    /// by denomination, if we saw one: a different key would mark the credits made under it.
    /// </summary>
    public Func<byte, byte[]?> KnownKey(NodeId issuer, ulong epoch) => order => _database.CreditKey(issuer, epoch, order);

    /// <summary>Remembers the keys an issuer just made credits of <paramref name="epoch"/> under, which <see cref="KnownKey"/> holds it to.</summary>
    public void RememberKeys(NodeId issuer, ulong epoch, IEnumerable<CreditProof> proofs)
    {
        foreach (var proof in proofs) _database.RememberCreditKey(issuer, epoch, proof.Order, proof.PublicKey);
    }

    /// <summary>Replaces <paramref name="removed"/> with <paramref name="added"/>, in memory and on disk at once.</summary>
    public void Change(IReadOnlyList<Credit> added, IReadOnlyList<Credit> removed)
    {
        lock (_lock)
        {
            _database.ChangeCredits(added, removed);
            var gone = removed.Select(c => Convert.ToHexString(c.Input)).ToHashSet();
            _held.RemoveAll(c => gone.Contains(Convert.ToHexString(c.Input)));
            _held.AddRange(added);
        }
    }

    /// <summary>
    /// Credits of <paramref name="issuer"/> that make <paramref name="amount"/> exactly, soonest to
    /// expire first; when none do, also the smallest credit left that, split, makes up the rest.
    /// Denominations are powers of two, so taking the largest that fits finds an exact set if any
    /// exists. Throws when all we hold of the issuer is less than the amount.
    /// </summary>
    public (List<Credit> Exact, Credit? Split) Choose(NodeId issuer, long amount)
    {
        var mine = Held.Where(c => c.Issuer == issuer).OrderByDescending(c => c.Value).ThenBy(c => c.Epoch).ToList();
        long total = mine.Sum(c => c.Value);
        if (total < amount) throw new CreditException($"You hold {total} MiB·days of credits on {issuer.Brief}, less than the {amount} asked.");
        var exact = new List<Credit>();
        long left = amount;
        foreach (var credit in mine)
        {
            if (credit.Value > left) continue;
            exact.Add(credit);
            left -= credit.Value;
            if (left == 0) break;
        }
        if (left == 0) return (exact, null);
        var split = mine.Where(c => !exact.Contains(c) && c.Value > left).OrderBy(c => c.Value).ThenBy(c => c.Epoch).First();
        return (exact, split);
    }
}
