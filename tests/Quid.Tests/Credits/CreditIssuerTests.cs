using Microsoft.Extensions.Time.Testing;
using Quid.Credits;
using Quid.Crypto;
using Quid.Wire;

namespace Quid.Tests.Credits;

public sealed class CreditIssuerTests : IDisposable
{
    private static readonly NodeId Issuer = new([.. Enumerable.Range(1, NodeId.Size).Select(i => (byte)i)]);
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 6, 12, 0, 0, TimeSpan.Zero));
    private readonly CreditKeys _keys = new([.. Enumerable.Range(7, 32).Select(i => (byte)i)]);
    private readonly MemorySpentCredits _spent = new();
    private readonly CreditIssuer _issuer;

    public CreditIssuerTests() => _issuer = new CreditIssuer(_keys, _spent, _time);

    public void Dispose() => _keys.Dispose();

    private ulong Epoch => CreditEpoch.Of(_time.GetUtcNow());

    /// <summary>Credits of <paramref name="amount"/> issued under the current epoch, as a partner finalizes them.</summary>
    private IReadOnlyList<Credit> Issue(long amount)
    {
        var pending = PendingCredits.Prepare(Issuer, Epoch, Credit.Denominations(amount));
        var answer = _issuer.Issue(Epoch, pending.Blinded, allowance: amount);
        Assert.Null(answer.Refusal);
        return pending.Finalize(answer.Evaluation!);
    }

    private (IssuerAnswer Answer, PendingCredits Pending) Exchange(IReadOnlyList<Credit> spend, IReadOnlyList<byte> mint)
    {
        var pending = CreditDesk.Prepare(spend, mint, out var request);
        return (_issuer.Exchange(request), pending);
    }

    [Fact]
    public async Task The_desk_weighs_each_request_by_its_credits_and_waits_on_its_pace_before_serving_it()
    {
        // Three credits (1 + 2 + 4 for 7) spent for three, then a Get: 6 and 1 to check.
        CreditDesk.Prepare(Issue(7), Credit.Denominations(7), out var exchange);
        var toDesk = new MemoryStream();
        toDesk.Write(DeskCodec.Encode(exchange));
        toDesk.Write(DeskCodec.Encode(new DeskGet(new byte[16])));
        toDesk.Position = 0;
        var fromDesk = new MemoryStream();
        var paced = new List<(int Weight, long ExchangedBefore)>();
        await CreditDesk.ServeAsync(new Duplex(toDesk, fromDesk), _issuer, _time, CancellationToken.None,
            other: (_, _, _) => Task.FromResult(true),
            pace: (request, _) =>
            {
                paced.Add((CreditDesk.Weight(request), _issuer.Exchanged));
                return ValueTask.CompletedTask;
            });
        // The exchange was paced before the issuer served it, and served after.
        Assert.Equal([(6, 0L), (1, 7L)], paced);
        Assert.Equal(1, CreditDesk.Weight(new DeskRenew(new byte[16], 1, [])));
    }

    [Fact]
    public void IssuesWithinTheAllowanceAndNoMore()
    {
        var credits = Issue(13);
        Assert.Equal([8L, 4L, 1L], credits.Select(c => c.Value));
        Assert.Equal(13, _issuer.Issued);

        var pending = PendingCredits.Prepare(Issuer, Epoch, Credit.Denominations(13));
        var refused = _issuer.Issue(Epoch, pending.Blinded, allowance: 12);
        Assert.Equal(CreditRefusal.NoAllowance, refused.Refusal);
        Assert.Equal(13, _issuer.Issued);
        Assert.Equal(CreditRefusal.WrongEpoch, _issuer.Issue(Epoch + 1, pending.Blinded, allowance: 100).Refusal);
    }

    [Fact]
    public void AnExchangeSpendsOnceAndMintsTheSameTotal()
    {
        var credits = Issue(12);
        var (answer, pending) = Exchange(credits, Credit.Denominations(12));
        Assert.Null(answer.Refusal);
        var fresh = pending.Finalize(answer.Evaluation!);
        Assert.Equal(12, fresh.Sum(c => c.Value));
        Assert.Equal(2, _spent.Count);

        // The same credits again: spent. The fresh ones: good, once.
        Assert.Equal(CreditRefusal.Spent, Exchange(credits, Credit.Denominations(12)).Answer.Refusal);
        // Change: 12 as 4 + 4 + 2 + 1 + 1.
        Assert.Null(Exchange(fresh, [2, 2, 1, 0, 0]).Answer.Refusal);
        Assert.Equal(CreditRefusal.Spent, Exchange(fresh, Credit.Denominations(12)).Answer.Refusal);
    }

    [Fact]
    public void ACreditThatIsNotOursOrNotItsDenominationIsRefused()
    {
        var credit = Issue(8).Single();
        var forged = credit with { Output = [.. credit.Output.Select((b, i) => i == 0 ? (byte)(b ^ 1) : b)] };
        Assert.Equal(CreditRefusal.Invalid, Exchange([forged], [3]).Answer.Refusal);
        // A credit of 8 claimed as one of 16: its output is not what the 16-key makes of its input.
        Assert.Equal(CreditRefusal.Invalid, Exchange([credit with { Order = 4 }], [4]).Answer.Refusal);
        // Another issuer's key: same input, another seed.
        using var otherKeys = new CreditKeys([.. Enumerable.Range(9, 32).Select(i => (byte)i)]);
        var other = new CreditIssuer(otherKeys, new MemorySpentCredits(), _time);
        Assert.Equal(CreditRefusal.Invalid, other.Exchange(new DeskExchange(Epoch, [credit.Token], PendingCredits.Prepare(Issuer, Epoch, [3]).Blinded)).Refusal);
        Assert.Equal(0, _spent.Count);
    }

    [Fact]
    public void AnExchangeIsAllOrNothing()
    {
        var good = Issue(4).Single();
        var spentAlready = Issue(2).Single();
        Assert.Null(Exchange([spentAlready], [1]).Answer.Refusal);
        Assert.Equal(CreditRefusal.Spent, Exchange([good, spentAlready], [2, 1]).Answer.Refusal);
        // The good credit was not spent by the refused exchange.
        Assert.Null(Exchange([good], [1, 1]).Answer.Refusal);
        // The same credit twice in one exchange is one credit spent twice.
        var twice = Issue(4).Single();
        Assert.Equal(CreditRefusal.Spent, Exchange([twice, twice], [3]).Answer.Refusal);
        Assert.Equal(CreditRefusal.Unbalanced, Exchange([twice], [1]).Answer.Refusal);
    }

    [Fact]
    public void CreditsExpireWithTheEpochAfterTheirsAndTheSpentSetIsDroppedWithThem()
    {
        var kept = Issue(16);
        var spentOnes = Issue(8);
        Assert.Null(Exchange(spentOnes, [3]).Answer.Refusal);
        Assert.Equal(1, _spent.Count);
        ulong issuedIn = Epoch;

        // Through the next epoch and its grace, still good.
        _time.SetUtcNow(CreditEpoch.Expires(issuedIn) + CreditEpoch.Grace - TimeSpan.FromMinutes(1));
        var (answer, pending) = Exchange(kept, [4]);
        Assert.Null(answer.Refusal);
        kept = pending.Finalize(answer.Evaluation!);
        Assert.Equal(2, _spent.Count);

        // Then gone: refused as expired, and the epoch's spent set forgotten.
        _time.SetUtcNow(CreditEpoch.Expires(issuedIn) + CreditEpoch.Grace + TimeSpan.FromMinutes(1));
        Assert.Equal(CreditRefusal.Expired, Exchange(kept, [4]).Answer.Refusal);
        Assert.Equal(0, _spent.Count);
    }

    [Fact]
    public void TheSpentSetHoldsOnlyTheEpochsStillTaken()
    {
        var start = _time.GetUtcNow();
        for (int week = 0; week < 6; week++)
        {
            _time.SetUtcNow(start + CreditEpoch.Length * week);
            Assert.Null(Exchange(Issue(32), [4, 4]).Answer.Refusal);
            // At most the current epoch, the one before, and the one before that within its day of grace.
            Assert.InRange(_spent.Count, 1, 3);
        }
    }

    [Fact]
    public void AHolderRefusesCreditsUnderAKeyOtherThanTheOneItKnows()
    {
        var pending = PendingCredits.Prepare(Issuer, Epoch, [2]);
        var answer = _issuer.Issue(Epoch, pending.Blinded, allowance: 4);
        var known = new byte[32];
        known[0] = 1;
        var refused = Assert.Throws<CreditException>(() => pending.Finalize(answer.Evaluation!, _ => known));
        Assert.Contains("could tell these credits apart", refused.Message);
        // The proof is checked too: an evaluation with another proof does not finalize.
        var proofs = answer.Evaluation!.Proofs.Select(p => p with { Proof = [.. p.Proof.Reverse()] }).ToList();
        Assert.Throws<CreditException>(() => pending.Finalize(answer.Evaluation with { Proofs = proofs }));
    }
}
