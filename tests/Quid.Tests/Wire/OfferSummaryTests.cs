using Quid.Wire;

namespace Quid.Tests.Wire;

public sealed class OfferSummaryTests
{
    /// <summary>The summary of offers given as (largest free block, request).</summary>
    internal static OfferSummary Of(params (Block Free, Block? Request)[] offers)
    {
        Span<byte> table = stackalloc byte[OfferSummary.Size];
        OfferSummary.Clear(table);
        foreach (var (free, request) in offers) OfferSummary.Include(table, free, request);
        return OfferSummary.From(table);
    }

    /// <summary>What a query ending at the summarised node matches, offer by offer (Overlay.Matches).</summary>
    private static bool AnyMatches((Block Free, Block? Request)[] offers, Block wanted, Block? canGrant) =>
        offers.Any(o => o.Free >= wanted && (o.Request is not { } theirs || (canGrant is { } can && theirs <= can)));

    [Fact]
    public void ASummaryAnswersExactlyAsTheOffersItSummarises()
    {
        var random = new Random(17);
        for (int round = 0; round < 2_000; round++)
        {
            var offers = new (Block Free, Block? Request)[random.Next(0, 6)];
            for (int i = 0; i < offers.Length; i++)
                offers[i] = (new Block((byte)random.Next(Block.MaxOrder + 1)), random.Next(3) == 0 ? null : new Block((byte)random.Next(Block.MaxOrder + 1)));
            var summary = Of(offers);
            var wanted = new Block((byte)random.Next(Block.MaxOrder + 1));
            Block? canGrant = random.Next(4) == 0 ? null : new Block((byte)random.Next(Block.MaxOrder + 1));
            Assert.Equal(AnyMatches(offers, wanted, canGrant), summary.Matches(wanted, canGrant));
        }
    }

    [Fact]
    public void AnOfferAskingNothingBackMatchesASearcherWhoCanGrantNothing()
    {
        var summary = Of((Block.FromKbps(256), Block.FromKbps(64)), (Block.FromKbps(128), null));
        Assert.True(summary.Matches(Block.FromKbps(128), null));
        Assert.False(summary.Matches(Block.FromKbps(256), null));
        Assert.True(summary.Matches(Block.FromKbps(256), Block.FromKbps(64)));
        Assert.False(summary.Matches(Block.FromKbps(512), Block.FromKbps(1024)));
        Assert.False(OfferSummary.Empty.Matches(Block.FromKbps(16), new Block(Block.MaxOrder)));
    }

    [Fact]
    public void EqualTablesAreEqualSummaries()
    {
        var a = Of((Block.FromKbps(64), null), (Block.FromKbps(64), Block.FromKbps(16)));
        var b = Of((Block.FromKbps(64), Block.FromKbps(16)), (Block.FromKbps(64), null));
        Assert.Equal(a, b);
        Assert.Equal(a.GetHashCode(), b.GetHashCode());
        Assert.NotEqual(a, Of((Block.FromKbps(64), Block.FromKbps(16))));
        Span<byte> table = stackalloc byte[OfferSummary.Size];
        a.WriteTo(table);
        Assert.True(b.Is(table));
    }

    [Theory]
    [InlineData(Block.MaxOrder + 1)]
    [InlineData(0x80)]
    [InlineData(0xFD)]
    public void AnEntryThatIsNoOrderIsRefused(byte entry)
    {
        byte[] encoded = [(byte)ControlType.OfferSummary, .. Enumerable.Repeat(OfferSummary.Nothing, OfferSummary.Size)];
        encoded[5] = entry;
        Assert.Equal(WireError.BadField, Assert.Throws<WireException>(() => ControlCodec.Decode(encoded)).Error);
    }

    [Fact]
    public void BothSpecialEntriesAndEveryOrderDecode()
    {
        byte[] encoded = [(byte)ControlType.OfferSummary, .. Enumerable.Range(0, OfferSummary.Size).Select(i => (byte)i)];
        encoded[1] = OfferSummary.NoRequest;
        encoded[2] = OfferSummary.Nothing;
        var summary = Assert.IsType<OfferSummaryMessage>(ControlCodec.Decode(encoded)).Summary;
        Assert.Equal(encoded, ControlCodec.Encode(new OfferSummaryMessage(summary)));
        Assert.True(summary.Matches(new Block(0), null));
    }
}
