using Quid.Crypto;
using Quid.Wire;

namespace Quid.Tests.Wire;

/// <summary>CPU in agreements and descriptors (PROTOCOL §10.1): after disk, only there when traded.</summary>
public sealed class CpuTermsTests : IDisposable
{
    private readonly NodeIdentity _a = NodeIdentity.Generate(out _);
    private readonly NodeIdentity _b = NodeIdentity.Generate(out _);

    public void Dispose()
    {
        _a.Dispose();
        _b.Dispose();
    }

    private AgreementTerms Terms(DiskBlock? proposerDisk, CpuBlock? proposerCpu, CpuBlock? acceptorCpu) =>
        AgreementTerms.Create(_a.Id, _b.Id, Block.FromKbps(64), Block.FromKbps(32), TestDescriptors.Epoch, new Random(3), false, proposerDisk, null, proposerCpu, acceptorCpu);

    private static AgreementTerms Decode(byte[] encoded)
    {
        var reader = new WireReader(encoded);
        return AgreementTerms.Decode(ref reader);
    }

    [Fact]
    public void TermsWithCpuAreVersionFourAndRoundTrip()
    {
        var terms = Terms(null, null, new CpuBlock(6));
        var encoded = terms.Encode();
        Assert.Equal(4, encoded[0]);
        Assert.Equal(AgreementTerms.MaxEncodedSize, encoded.Length);
        var decoded = Decode(encoded);
        Assert.Null(decoded.ProposerGrantsDisk);
        Assert.Null(decoded.ProposerGrantsCpu);
        Assert.Equal(new CpuBlock(6), decoded.CpuGrantedBy(_b.Id));
        Assert.Equal(terms.Id, decoded.Id);
        var both = Terms(DiskBlock.FromBytes(1L << 30), new CpuBlock(2), null);
        Assert.Equal(both, Decode(both.Encode()) with { Nonce = both.Nonce });
    }

    [Fact]
    public void DiskOnlyTermsStayVersionThreeAndVersionFourMustTradeCpu()
    {
        var disk = Terms(DiskBlock.FromBytes(1L << 20), null, null).Encode();
        Assert.Equal(3, disk[0]);
        Assert.Equal(AgreementTerms.MaxEncodedSize - 2, disk.Length);
        // The same terms as version 4 without CPU would give them a second id.
        Assert.Throws<WireException>(() => Decode([4, .. disk[1..], Block.NoneByte, Block.NoneByte]));
        Assert.Throws<WireException>(() => Decode([4, .. disk[1..], CpuBlock.MaxOrder + 1, Block.NoneByte]));
        Assert.Throws<WireException>(() => Decode([4, .. disk[1..], 3]));
        // Version 4 may trade CPU with no disk at all.
        var plain = Terms(null, null, null).Encode();
        Assert.Equal(new CpuBlock(0), Decode([4, .. plain[1..], Block.NoneByte, Block.NoneByte, 0, Block.NoneByte]).ProposerGrantsCpu);
    }

    [Fact]
    public void ADescriptorCarriesCpuAfterDiskOnlyWhenItTradesSome()
    {
        var plain = TestDescriptors.Make(_a, Block.FromKbps(512), Block.FromKbps(256));
        var signed = (plain with { FreeCpu = new CpuBlock(10), CpuRequest = null }).Sign(_a);
        Assert.Equal(plain.Encoded.Length + 4, signed.Encoded.Length);
        var decoded = Descriptor.Decode(signed.Encoded);
        Assert.Equal(new CpuBlock(10), decoded.FreeCpu);
        Assert.Null(decoded.FreeDisk);
        Assert.Null(decoded.CpuRequest);
        var body = TestDescriptors.Body(plain);
        byte none = Block.NoneByte;
        Assert.Throws<WireException>(() => Descriptor.Decode(TestDescriptors.Resign(_a, [.. body, none, none, none, none])));
        Assert.Throws<WireException>(() => Descriptor.Decode(TestDescriptors.Resign(_a, [.. body, none, none, 3])));
        Assert.Equal(new CpuBlock(1), Descriptor.Decode(TestDescriptors.Resign(_a, [.. body, none, none, none, 1])).CpuRequest);
    }

    [Fact]
    public void ACpuBlockIsGfuelADayWorthSixteenCreditsEach()
    {
        Assert.Equal(1L << 30, new CpuBlock(0).Fuel);
        Assert.Equal(16, new CpuBlock(0).CreditsPerDay);
        Assert.Equal(new CpuBlock(9), CpuBlock.Floor(1000));
        Assert.Null(CpuBlock.Floor(0));
        Assert.Equal("1 Tfuel/day", new CpuBlock(10).ToString());
    }
}
