using System.Security.Cryptography;
using Quid.Crypto;
using Quid.Wire;

namespace Quid.Credits;

/// <summary>What an issuer answers: an evaluation of the credits asked, or why not.</summary>
public readonly record struct IssuerAnswer(CreditEvaluation? Evaluation, CreditRefusal? Refusal, string Text)
{
    public static IssuerAnswer Refuse(CreditRefusal reason, string text) => new(null, reason, text);
}

/// <summary>
/// The issuing side of credits (PROTOCOL §10.3, §10.4), sans-IO. It evaluates blinded credits for
/// a partner within what the partner is owed, and exchanges credits anyone brings for fresh ones
/// of the same total and epoch, checking each against its key and its spent set. It never sees a
/// credit's input before it is spent, so it cannot tell whom it issued a spent credit to.
/// </summary>
public sealed class CreditIssuer(CreditKeys keys, ISpentCredits spent, TimeProvider time)
{
    private readonly Lock _lock = new();
    private long _issued;
    private long _exchanged;
    private long _redeemed;

    /// <summary>MiB·days issued to partners since start.</summary>
    public long Issued => Interlocked.Read(ref _issued);
    /// <summary>MiB·days taken back in exchanges since start.</summary>
    public long Exchanged => Interlocked.Read(ref _exchanged);
    /// <summary>Credits in the spent set now, over the epochs still taken.</summary>
    public long SpentCount
    {
        get
        {
            lock (_lock) return spent.Count;
        }
    }

    /// <summary>Evaluates <paramref name="credits"/> for a partner owed <paramref name="allowance"/> MiB·days, under the current epoch only.</summary>
    public IssuerAnswer Issue(ulong epoch, IReadOnlyList<BlindedCredit> credits, long allowance)
    {
        ulong current = CreditEpoch.Of(time.GetUtcNow());
        if (epoch != current) return IssuerAnswer.Refuse(CreditRefusal.WrongEpoch, $"Credits are issued under epoch {current}, not {epoch}.");
        long total = Credit.Total(credits.Select(c => c.Order));
        if (credits.Count == 0 || total > allowance)
            return IssuerAnswer.Refuse(CreditRefusal.NoAllowance, $"Asked {total} MiB·days of credits; {allowance} are owed.");
        var answer = Evaluate(epoch, credits);
        if (answer.Evaluation is not null) Interlocked.Add(ref _issued, total);
        return answer;
    }

    /// <summary>
    /// Takes the credits <paramref name="exchange"/> spends and evaluates, blinded, the same total
    /// of the same epoch: all or nothing. A credit spent twice, or not made by us, refuses it all.
    /// </summary>
    public IssuerAnswer Exchange(DeskExchange exchange)
    {
        var now = time.GetUtcNow();
        lock (_lock)
        {
            Prune(now);
            if (exchange.Epoch > CreditEpoch.Of(now)) return IssuerAnswer.Refuse(CreditRefusal.WrongEpoch, $"Epoch {exchange.Epoch} has not begun.");
            if (!CreditEpoch.Redeemable(exchange.Epoch, now))
                return IssuerAnswer.Refuse(CreditRefusal.Expired, $"Credits of epoch {exchange.Epoch} expired {CreditEpoch.Expires(exchange.Epoch):u}.");
            long offered = Credit.Total(exchange.Spend.Select(t => t.Order));
            long asked = Credit.Total(exchange.Mint.Select(c => c.Order));
            if (exchange.Spend.Count == 0 || offered != asked)
                return IssuerAnswer.Refuse(CreditRefusal.Unbalanced, $"Offered {offered} MiB·days for {asked}: an exchange keeps the total.");
            var inputs = new List<byte[]>(exchange.Spend.Count);
            Span<byte> output = stackalloc byte[Voprf.OutputSize];
            foreach (var token in exchange.Spend)
            {
                Voprf.Evaluate(keys.For(exchange.Epoch, token.Order).Secret, token.Input, output);
                if (!CryptographicOperations.FixedTimeEquals(output, token.Output))
                    return IssuerAnswer.Refuse(CreditRefusal.Invalid, "A credit offered is not one this node issued (or not of the denomination it claims).");
                if (spent.Contains(exchange.Epoch, token.Input) || inputs.Any(i => i.AsSpan().SequenceEqual(token.Input)))
                    return IssuerAnswer.Refuse(CreditRefusal.Spent, "A credit offered was spent before.");
                inputs.Add(token.Input);
            }
            var answer = Evaluate(exchange.Epoch, exchange.Mint);
            if (answer.Evaluation is null) return answer;
            spent.Add(exchange.Epoch, inputs);
            _exchanged += offered;
            return answer;
        }
    }

    /// <summary>
    /// Takes <paramref name="payment"/> for <paramref name="price"/> MiB·days of what we grant:
    /// all or nothing, every credit ours, unspent and of an epoch still taken. A payer makes
    /// change first (an exchange); what it pays beyond the price is not returned.
    /// </summary>
    public IssuerAnswer Redeem(IReadOnlyList<EpochCredit> payment, long price)
    {
        var now = time.GetUtcNow();
        lock (_lock)
        {
            Prune(now);
            long paid = Credit.Total(payment.Select(p => p.Token.Order));
            if (paid < price) return IssuerAnswer.Refuse(CreditRefusal.Underpaid, $"Paid {paid} MiB·days of the {price} asked.");
            var inputs = new List<EpochCredit>(payment.Count);
            Span<byte> output = stackalloc byte[Voprf.OutputSize];
            foreach (var credit in payment)
            {
                if (credit.Epoch > CreditEpoch.Of(now) || !CreditEpoch.Redeemable(credit.Epoch, now))
                    return IssuerAnswer.Refuse(CreditRefusal.Expired, $"A credit of epoch {credit.Epoch} is not taken now.");
                Voprf.Evaluate(keys.For(credit.Epoch, credit.Token.Order).Secret, credit.Token.Input, output);
                if (!CryptographicOperations.FixedTimeEquals(output, credit.Token.Output))
                    return IssuerAnswer.Refuse(CreditRefusal.Invalid, "A credit offered is not one this node issued (or not of the denomination it claims).");
                if (spent.Contains(credit.Epoch, credit.Token.Input) || inputs.Any(i => i.Epoch == credit.Epoch && i.Token.Input.AsSpan().SequenceEqual(credit.Token.Input)))
                    return IssuerAnswer.Refuse(CreditRefusal.Spent, "A credit offered was spent before.");
                inputs.Add(credit);
            }
            foreach (var epoch in inputs.GroupBy(i => i.Epoch)) spent.Add(epoch.Key, [.. epoch.Select(i => i.Token.Input)]);
            _redeemed += paid;
            return new IssuerAnswer(null, null, "");
        }
    }

    /// <summary>MiB·days taken as payment for what we grant since start.</summary>
    public long Redeemed => Interlocked.Read(ref _redeemed);

    /// <summary>Forgets the keys and spent credits of epochs no longer taken.</summary>
    public void Prune()
    {
        lock (_lock) Prune(time.GetUtcNow());
    }

    private void Prune(DateTimeOffset now)
    {
        ulong oldest = CreditEpoch.OldestRedeemable(now);
        spent.DropBefore(oldest);
        keys.DropBefore(oldest);
    }

    /// <summary>One proof per denomination, smallest first, each covering that denomination's elements.</summary>
    private IssuerAnswer Evaluate(ulong epoch, IReadOnlyList<BlindedCredit> credits)
    {
        var evaluated = new byte[credits.Count][];
        var proofs = new List<CreditProof>();
        try
        {
            foreach (byte order in credits.Select(c => c.Order).Distinct().Order())
            {
                var indices = Enumerable.Range(0, credits.Count).Where(i => credits[i].Order == order).ToList();
                var (secret, pub) = keys.For(epoch, order);
                var proof = Voprf.BlindEvaluate(secret, pub, indices.Select(i => credits[i].Element).ToList(), out var elements);
                for (int j = 0; j < indices.Count; j++) evaluated[indices[j]] = elements[j];
                proofs.Add(new CreditProof(order, pub, proof));
            }
        }
        catch (VoprfException e)
        {
            return IssuerAnswer.Refuse(CreditRefusal.Invalid, $"A blinded credit is not a valid element: {e.Message}");
        }
        return new IssuerAnswer(new CreditEvaluation(proofs, evaluated), null, "");
    }
}
