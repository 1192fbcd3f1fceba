using Quid.Crypto;
using Quid.Wire;

namespace Quid.Credits;

/// <summary>A credit operation failed, on our side or the issuer's; <see cref="Reason"/> is the issuer's when it refused.</summary>
public sealed class CreditException(string message, CreditRefusal? reason = null) : Exception(message)
{
    public CreditRefusal? Reason { get; } = reason;
}

/// <summary>
/// Credits asked for and not yet issued: the random inputs and blinds stay here, the blinded
/// elements go to the issuer, and its evaluation, once its proofs check, makes the credits.
/// </summary>
public sealed class PendingCredits
{
    private readonly byte[][] _inputs;
    private readonly byte[][] _blinds;

    private PendingCredits(NodeId issuer, ulong epoch, IReadOnlyList<byte> orders)
    {
        if (orders.Count is 0 or > CreditCodec.MaxCredits) throw new ArgumentException($"1 to {CreditCodec.MaxCredits} credits at a time.", nameof(orders));
        Issuer = issuer;
        Epoch = epoch;
        _inputs = new byte[orders.Count][];
        _blinds = new byte[orders.Count][];
        var blinded = new BlindedCredit[orders.Count];
        for (int i = 0; i < orders.Count; i++)
        {
            _inputs[i] = System.Security.Cryptography.RandomNumberGenerator.GetBytes(CreditCodec.InputSize);
            _blinds[i] = new byte[Voprf.ScalarSize];
            var element = new byte[Voprf.ElementSize];
            Voprf.Blind(_inputs[i], _blinds[i], element);
            blinded[i] = new BlindedCredit(orders[i], element);
        }
        Blinded = blinded;
    }

    public static PendingCredits Prepare(NodeId issuer, ulong epoch, IReadOnlyList<byte> orders) => new(issuer, epoch, orders);

    public NodeId Issuer { get; }
    public ulong Epoch { get; }
    public IReadOnlyList<BlindedCredit> Blinded { get; }
    public long Total => Credit.Total(Blinded.Select(b => b.Order));

    /// <summary>
    /// Checks the issuer's proofs and unblinds; <paramref name="knownKey"/> says the public key we
    /// already know for an epoch and denomination, if any: a different one would let the issuer
    /// tell our credits from others' when they are spent, so it is refused.
    /// </summary>
    public IReadOnlyList<Credit> Finalize(CreditEvaluation evaluation, Func<byte, byte[]?>? knownKey = null)
    {
        if (evaluation.Evaluated.Count != Blinded.Count) throw new CreditException($"The issuer evaluated {evaluation.Evaluated.Count} credits of {Blinded.Count} asked.");
        var orders = Blinded.Select(b => b.Order).Distinct().Order().ToList();
        if (!evaluation.Proofs.Select(p => p.Order).SequenceEqual(orders)) throw new CreditException("The issuer's proofs do not cover the denominations asked.");
        var credits = new Credit[Blinded.Count];
        foreach (var proof in evaluation.Proofs)
        {
            if (knownKey?.Invoke(proof.Order) is { } known && !known.AsSpan().SequenceEqual(proof.PublicKey))
                throw new CreditException($"The issuer used a key for {1L << proof.Order} MiB·days of epoch {Epoch} other than the one it used before: it could tell these credits apart.");
            var indices = Enumerable.Range(0, Blinded.Count).Where(i => Blinded[i].Order == proof.Order).ToList();
            byte[][] outputs;
            try
            {
                outputs = Voprf.Finalize(indices.Select(i => _inputs[i]).ToList(), indices.Select(i => _blinds[i]).ToList(),
                    indices.Select(i => evaluation.Evaluated[i]).ToList(), indices.Select(i => Blinded[i].Element).ToList(), proof.PublicKey, proof.Proof);
            }
            catch (VoprfException e)
            {
                throw new CreditException($"The issuer's answer does not check: {e.Message}");
            }
            for (int j = 0; j < indices.Count; j++)
                credits[indices[j]] = new Credit(Issuer, Epoch, proof.Order, _inputs[indices[j]], outputs[j]);
        }
        return credits;
    }
}
