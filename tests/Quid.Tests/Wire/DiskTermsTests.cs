using Quid.Crypto;
using Quid.Wire;

namespace Quid.Tests.Wire;

/// <summary>Disk in agreements and descriptors (PROTOCOL §10.1): only there when traded, so bandwidth-only ones sign what they did before.</summary>
public sealed class DiskTermsTests : IDisposable
{
    private readonly NodeIdentity _a = NodeIdentity.Generate(out _);
    private readonly NodeIdentity _b = NodeIdentity.Generate(out _);

    public void Dispose()
    {
        _a.Dispose();
        _b.Dispose();
    }

    private AgreementTerms Terms(DiskBlock? proposerDisk, DiskBlock? acceptorDisk) =>
        AgreementTerms.Create(_a.Id, _b.Id, Block.FromKbps(64), Block.FromKbps(32), TestDescriptors.Epoch, new Random(3), false, proposerDisk, acceptorDisk);

    [Fact]
    public void TermsWithDiskAreVersionThreeAndRoundTrip()
    {
        var terms = Terms(DiskBlock.FromBytes(1L << 30), null);
        var encoded = terms.Encode();
        Assert.Equal(3, encoded[0]);
        Assert.Equal(AgreementTerms.MaxEncodedSize - 2, encoded.Length);
        var reader = new WireReader(encoded);
        var decoded = AgreementTerms.Decode(ref reader);
        Assert.Equal(terms.ProposerGrantsDisk, decoded.ProposerGrantsDisk);
        Assert.Null(decoded.AcceptorGrantsDisk);
        Assert.Equal(terms.Id, decoded.Id);
        Assert.Equal(DiskBlock.FromBytes(1L << 30), decoded.DiskGrantedBy(_a.Id));
        Assert.Null(decoded.DiskGrantedBy(_b.Id));
    }

    [Fact]
    public void WithoutDiskTheTermsAreVersionTwoAndVersionThreeMustTradeDisk()
    {
        var plain = Terms(null, null).Encode();
        Assert.Equal(2, plain[0]);
        Assert.Equal(AgreementTerms.MaxEncodedSize - 4, plain.Length);
        // A version 3 encoding that trades no disk would give the same terms a second id.
        byte[] empty = [3, .. plain[1..], Block.NoneByte, Block.NoneByte];
        Assert.Throws<WireException>(() =>
        {
            var reader = new WireReader(empty);
            AgreementTerms.Decode(ref reader);
        });
        byte[] outOfRange = [3, .. plain[1..], 31, Block.NoneByte];
        Assert.Throws<WireException>(() =>
        {
            var reader = new WireReader(outOfRange);
            AgreementTerms.Decode(ref reader);
        });
    }

    [Fact]
    public void ADescriptorCarriesDiskOnlyWhenItTradesSome()
    {
        var plain = TestDescriptors.Make(_a, Block.FromKbps(512), Block.FromKbps(256));
        var withDisk = plain with { FreeDisk = DiskBlock.FromBytes(512L << 20), DiskRequest = DiskBlock.FromBytes(64L << 20) };
        var signed = withDisk.Sign(_a);
        Assert.Equal(plain.Encoded.Length + 2, signed.Encoded.Length);
        var decoded = Descriptor.Decode(signed.Encoded);
        Assert.Equal(DiskBlock.FromBytes(512L << 20), decoded.FreeDisk);
        Assert.Equal(DiskBlock.FromBytes(64L << 20), decoded.DiskRequest);
        Assert.Null(Descriptor.Decode(plain.Encoded).FreeDisk);
        // Disk fields that say nothing are refused: one encoding per descriptor.
        var body = TestDescriptors.Body(plain);
        Assert.Throws<WireException>(() => Descriptor.Decode(TestDescriptors.Resign(_a, [.. body, Block.NoneByte, Block.NoneByte])));
        Assert.Throws<WireException>(() => Descriptor.Decode(TestDescriptors.Resign(_a, [.. body, 3])));
    }

    [Fact]
    public void DiskBlocksArePowersOfTwoMiB()
    {
        Assert.True(DiskBlock.TryFromBytes(1L << 20, out var one));
        Assert.Equal(0, one.Order);
        Assert.False(DiskBlock.TryFromBytes(3L << 20, out _));
        Assert.False(DiskBlock.TryFromBytes(1000, out _));
        Assert.Throws<ArgumentException>(() => DiskBlock.FromBytes(1_000_000_000));
        Assert.Equal(new DiskBlock(9), DiskBlock.Floor(1000));
        Assert.Null(DiskBlock.Floor(0));
        Assert.Equal("1 GiB", new DiskBlock(10).ToString());
    }
}
