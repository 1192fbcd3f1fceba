using Quid.Credits;
using Quid.Crypto;
using Quid.Wire;

namespace Quid.Tests.Credits;

internal static class Payment
{
    /// <summary><paramref name="amount"/> of <paramref name="issuer"/>'s credits of the current epoch, issued as a partner would get them, ready to pay it with.</summary>
    public static List<EpochCredit> Of(CreditIssuer issuer, NodeId issuerId, TimeProvider time, long amount)
    {
        ulong epoch = CreditEpoch.Of(time.GetUtcNow());
        var pending = PendingCredits.Prepare(issuerId, epoch, Credit.Denominations(amount));
        var credits = pending.Finalize(issuer.Issue(epoch, pending.Blinded, amount).Evaluation!);
        return [.. credits.Select(c => new EpochCredit(c.Epoch, c.Token))];
    }
}
