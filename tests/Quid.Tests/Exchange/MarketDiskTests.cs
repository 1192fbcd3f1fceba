using Microsoft.Extensions.Time.Testing;
using Quid.Crypto;
using Quid.Exchange;
using Quid.Tests.Wire;
using Quid.Wire;

namespace Quid.Tests.Exchange;

/// <summary>Disk rides on the bandwidth agreement (PROTOCOL §10.1), and what it grants is paid out as credits (§10.2).</summary>
public sealed class MarketDiskTests : IDisposable
{
    private static readonly MarketOptions Options = new() { TrialOrders = 0 };
    private readonly FakeTimeProvider _time = new(TestDescriptors.Epoch);
    private readonly List<NodeIdentity> _identities = [];

    public void Dispose()
    {
        foreach (var identity in _identities) identity.Dispose();
    }

    private sealed record Node(NodeIdentity Identity, Market Market)
    {
        public NodeId Id => Identity.Id;

        public Descriptor Descriptor(DateTimeOffset now) => new Descriptor
        {
            SigningKey = Identity.SigningPublicKey,
            LinkKey = Identity.LinkPublicKey,
            Published = now,
            Expires = now + TimeSpan.FromHours(1),
            Offer = Market.Offer,
            Request = Market.Request,
            FreeBlocks = Market.Capacity.FreeBlocks,
            ExitPolicy = ExitPolicy.Default,
            FreeDisk = Market.LargestFreeDisk,
            DiskRequest = Market.DiskRequest,
            FreeCpu = Market.LargestFreeCpu,
            CpuRequest = Market.CpuRequest,
        }.Sign(Identity);
    }

    private Node NewNode(long offerDiskMiB, long? requestDiskMiB, long offerCpuGfuel = 0, byte? requestCpuOrder = null)
    {
        var identity = NodeIdentity.Generate(out _);
        _identities.Add(identity);
        return new Node(identity, new Market(identity, Block.FromKbps(512), Block.FromKbps(256), _time, Options with { Random = new Random(1) },
            offerDiskMiB: offerDiskMiB, diskRequest: requestDiskMiB is { } r ? DiskBlock.FromBytes(r << 20) : null,
            offerCpuGfuel: offerCpuGfuel, cpuRequest: requestCpuOrder is { } c ? new CpuBlock(c) : null));
    }

    private static IReadOnlyList<MarketAction> Deliver(Node from, Node to, ControlMessage message) =>
        to.Market.Receive(from.Id, from.Identity.SigningPublicKey, ControlCodec.Decode(ControlCodec.Encode(message)));

    /// <summary>A proposes to B, B answers, A hears it; returns what B answered.</summary>
    private ControlMessage Agree(Node a, Node b)
    {
        var proposal = (AgreementProposal)a.Market.Search([(b.Id, b.Descriptor(_time.GetUtcNow()))], _ => true).OfType<SendMarketMessage>().Single().Message;
        var answer = Deliver(a, b, proposal).OfType<SendMarketMessage>().Single().Message;
        Deliver(b, a, answer);
        return answer;
    }

    [Fact]
    public void EachSideGrantsTheDiskTheOtherAsksWhenItHasItFree()
    {
        var a = NewNode(offerDiskMiB: 1000, requestDiskMiB: 256);
        var b = NewNode(offerDiskMiB: 300, requestDiskMiB: 64);
        Assert.IsType<AgreementAcceptance>(Agree(a, b));
        var ours = Assert.Single(a.Market.Active);
        var theirs = Assert.Single(b.Market.Active);
        Assert.Equal(DiskBlock.FromBytes(64 << 20), ours.WeGrantDisk);
        Assert.Equal(DiskBlock.FromBytes(256 << 20), ours.TheyGrantDisk);
        Assert.Equal(ours.TheyGrantDisk, theirs.WeGrantDisk);
        Assert.Equal(1000 - 64, a.Market.FreeDiskMiB);
        Assert.Equal(300 - 256, b.Market.FreeDiskMiB);
        // 44 MiB left: the largest block B can still grant is 32 MiB.
        Assert.Equal(DiskBlock.FromBytes(32 << 20), b.Market.LargestFreeDisk);
    }

    [Fact]
    public void NoDiskIsAskedOfANodeWithoutItAndBandwidthOnlyTermsStayVersionTwo()
    {
        var a = NewNode(offerDiskMiB: 0, requestDiskMiB: 256);
        var b = NewNode(offerDiskMiB: 100, requestDiskMiB: null);
        Assert.IsType<AgreementAcceptance>(Agree(a, b));
        var agreement = Assert.Single(a.Market.Active);
        Assert.Null(agreement.TheyGrantDisk);
        Assert.Null(agreement.WeGrantDisk);
        Assert.Equal(2, agreement.Terms.Encode()[0]);
    }

    [Fact]
    public void AnAcceptorWhoseDiskWasTakenMeanwhileRefusesAsBusy()
    {
        var a = NewNode(offerDiskMiB: 0, requestDiskMiB: 64);
        var b = NewNode(offerDiskMiB: 64, requestDiskMiB: null);
        var c = NewNode(offerDiskMiB: 0, requestDiskMiB: 64);
        // Both saw B's 64 MiB free; the first takes it.
        var stale = b.Descriptor(_time.GetUtcNow());
        var first = (AgreementProposal)a.Market.Search([(b.Id, stale)], _ => true).OfType<SendMarketMessage>().Single().Message;
        var second = (AgreementProposal)c.Market.Search([(b.Id, stale)], _ => true).OfType<SendMarketMessage>().Single().Message;
        Assert.IsType<AgreementAcceptance>(Deliver(a, b, first).OfType<SendMarketMessage>().Single().Message);
        var refusal = Assert.IsType<AgreementRejection>(Deliver(c, b, second).OfType<SendMarketMessage>().Single().Message);
        Assert.Equal(AgreementRejectReason.NoCapacity, refusal.Reason);
    }

    [Fact]
    public void CreditsAreOwedADayAheadAfterTheTrialThenAsTheGrantRunsAndCountedOnce()
    {
        var a = NewNode(offerDiskMiB: 0, requestDiskMiB: 64);
        var b = NewNode(offerDiskMiB: 64, requestDiskMiB: null);
        Agree(a, b);
        // On trial, only what has accrued: nothing yet.
        Assert.Equal(0, b.Market.CreditAllowance(a.Id));
        Assert.Equal(0, a.Market.CreditsDue(b.Id));
        _time.Advance(Options.TrialPeriod);
        Assert.Equal(64, b.Market.CreditAllowance(a.Id));
        Assert.Equal(64, a.Market.CreditsOwed(b.Id));
        b.Market.CreditsIssued(a.Id, 40);
        a.Market.CreditsReceived(b.Id, 40);
        Assert.Equal(24, b.Market.CreditAllowance(a.Id));
        Assert.Equal(24, a.Market.CreditsOwed(b.Id));
        _time.Advance(TimeSpan.FromHours(12));
        Assert.Equal(24 + 32, b.Market.CreditAllowance(a.Id));
        // A grants B nothing: B is owed nothing.
        Assert.Equal(0, a.Market.CreditAllowance(b.Id));
        // The agreement ends: nothing more is owed.
        b.Market.PartnerLost(a.Id);
        Assert.Equal(0, b.Market.CreditAllowance(a.Id));
        Assert.Equal(64, b.Market.FreeDiskMiB);
    }

    [Fact]
    public void CpuIsGrantedAsDiskIsAndPaidInCreditsAtItsRate()
    {
        // A asks 64 Gfuel a day and 16 MiB; B offers 100 Gfuel and 1 GiB, and asks 128 Gfuel of A, which has none.
        var a = NewNode(offerDiskMiB: 0, requestDiskMiB: 16, offerCpuGfuel: 0, requestCpuOrder: 6);
        var b = NewNode(offerDiskMiB: 1024, requestDiskMiB: null, offerCpuGfuel: 100, requestCpuOrder: 7);
        Assert.IsType<AgreementAcceptance>(Agree(a, b));
        var ours = Assert.Single(a.Market.Active);
        Assert.Equal(new CpuBlock(6), ours.TheyGrantCpu);
        Assert.Null(ours.WeGrantCpu);
        Assert.Equal(100 - 64, b.Market.FreeCpuGfuel);
        Assert.Equal(new CpuBlock(5), b.Market.LargestFreeCpu);
        // 64 Gfuel a day at 64 Mfuel a credit is 1,024 credits a day, and 16 MiB of disk 16 more.
        Assert.Equal(1024 + 16, ours.TheyGrantCreditsPerDay);
        _time.Advance(Options.TrialPeriod);
        Assert.Equal(1024 + 16, b.Market.CreditAllowance(a.Id));
        Assert.Equal(b.Market.CreditAllowance(a.Id), a.Market.CreditsDue(b.Id));
        // 36 Gfuel left: B's descriptor says 32, so a node asking 64 would ask none of it.
        Assert.Equal(new CpuBlock(5), b.Descriptor(_time.GetUtcNow()).FreeCpu);
        b.Market.PartnerLost(a.Id);
        Assert.Equal(100, b.Market.FreeCpuGfuel);
    }

    [Fact]
    public void AnAcceptorWithoutTheCpuAskedRefusesAsBusy()
    {
        var a = NewNode(offerDiskMiB: 0, requestDiskMiB: null, requestCpuOrder: 6);
        var b = NewNode(offerDiskMiB: 0, requestDiskMiB: null, offerCpuGfuel: 64);
        var c = NewNode(offerDiskMiB: 0, requestDiskMiB: null, requestCpuOrder: 6);
        // Both see B with 64 Gfuel free; A's agreement takes it first.
        var late = (AgreementProposal)c.Market.Search([(b.Id, b.Descriptor(_time.GetUtcNow()))], _ => true).OfType<SendMarketMessage>().Single().Message;
        Assert.IsType<AgreementAcceptance>(Agree(a, b));
        var refusal = Assert.IsType<AgreementRejection>(Deliver(c, b, late).OfType<SendMarketMessage>().Single().Message);
        Assert.Equal(AgreementRejectReason.NoCapacity, refusal.Reason);
    }

    [Fact]
    public void CreditsAreDueOnlyOnceAnHourOfTheGrantIsOwed()
    {
        var a = NewNode(offerDiskMiB: 0, requestDiskMiB: 1024);
        var b = NewNode(offerDiskMiB: 1024, requestDiskMiB: null);
        Agree(a, b);
        // The day ahead is due as soon as the trial is over (a minute's accrual with it).
        _time.Advance(Options.TrialPeriod);
        Assert.Equal(1024, a.Market.CreditsDue(b.Id));
        a.Market.CreditsReceived(b.Id, 1024);
        // A minute later about one MiB·day is owed, but an hour of 1 GiB is 42: not yet worth a request.
        _time.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(1, a.Market.CreditsOwed(b.Id));
        Assert.Equal(0, a.Market.CreditsDue(b.Id));
        _time.Advance(TimeSpan.FromMinutes(58));
        Assert.Equal(42, a.Market.CreditsDue(b.Id));
        // What the issuer allows is due only if it too is worth a request.
        Assert.Equal(0, a.Market.CreditsDue(b.Id, allowance: 41));
    }

    [Fact]
    public void APartnerUnderAVerdictIsPaidNoDayAhead()
    {
        var a = NewNode(offerDiskMiB: 0, requestDiskMiB: 64);
        var b = NewNode(offerDiskMiB: 64, requestDiskMiB: null);
        Agree(a, b);
        // A grants B bandwidth and delivers an eighth of it, twice (a suspicion, then its confirmation).
        b.Market.ProbeResult(a.Id, deliveredKbps: 32, promisedKbps: 256);
        b.Market.ProbeResult(a.Id, deliveredKbps: 32, promisedKbps: 256);
        Assert.Equal(Verdict.Underdelivering, b.Market.Ledger.Find(a.Id)!.Verdict);
        _time.Advance(TimeSpan.FromHours(6));
        // Past its trial, it is issued only what the grant has run: a quarter of a day.
        Assert.Equal(16, b.Market.CreditAllowance(a.Id));
    }

    [Fact]
    public void AHostThatFailsAnAuditIsAnsweredAsAnUnderDelivererAndDroppedAfterThree()
    {
        var owner = NewNode(offerDiskMiB: 0, requestDiskMiB: 64);
        var host = NewNode(offerDiskMiB: 64, requestDiskMiB: null);
        Agree(owner, host);
        var granted = Assert.Single(owner.Market.Active).WeGrant!.Value;

        var cut = owner.Market.AuditResult(host.Id, passed: false);
        Assert.Equal(granted.Order - 1, Assert.Single(owner.Market.Active).WeGrant!.Value.Order);
        Assert.Contains(cut, a => a is SendMarketMessage { Message: GrantChanged });
        Assert.Equal(Verdict.Underdelivering, owner.Market.Ledger.Account(host.Id).Verdict);
        // A passed audit clears the count; the grant grows back with good probes, as after any verdict.
        owner.Market.AuditResult(host.Id, passed: true);
        Assert.Equal(Verdict.Good, owner.Market.Ledger.Account(host.Id).Verdict);

        owner.Market.AuditResult(host.Id, passed: false);
        owner.Market.AuditResult(host.Id, passed: false);
        var ended = owner.Market.AuditResult(host.Id, passed: false);
        Assert.Contains(ended, a => a is AgreementEnded);
        Assert.Empty(owner.Market.Active);
        Assert.True(owner.Market.Shuns(host.Id));
        // A stranger's failed audit (no agreement with it) changes nothing.
        Assert.Empty(owner.Market.AuditResult(NodeIdentity.Generate(out _).Id, passed: false));
    }
}
