using System.Net;
using Quid.Crypto;
using Quid.Wire;

namespace Quid.Tests.Wire;

public sealed class ControlCodecTests : IDisposable
{
    private static readonly byte[] ValidTypes = [1, 2, 6, 7, 8, 9, 11, 16, 17, 18, 19];

    private readonly NodeIdentity _a = NodeIdentity.Generate(out _);
    private readonly NodeIdentity _b = NodeIdentity.Generate(out _);

    public void Dispose()
    {
        _a.Dispose();
        _b.Dispose();
    }

    private AgreementTerms Terms(Block? proposerGrants, Block? acceptorGrants) =>
        AgreementTerms.Create(_a.Id, _b.Id, proposerGrants, acceptorGrants, TestDescriptors.Epoch.AddMilliseconds(123));

    private static AgreementId SomeId(byte fill) => new(Enumerable.Repeat(fill, AgreementTerms.IdSize).ToArray());

    /// <summary>One of each message type, with the variations a field allows.</summary>
    private List<ControlMessage> Samples()
    {
        var da = TestDescriptors.Make(_a, Block.FromKbps(512), Block.FromKbps(256), address: IPEndPoint.Parse("127.0.0.1:4550"));
        var db = TestDescriptors.Make(_b, Block.FromKbps(16), null, free: [], partners: [_a.Id]);
        var terms = Terms(Block.FromKbps(64), Block.FromKbps(32));
        var donorTerms = Terms(null, Block.FromKbps(16 << 20));
        List<ControlMessage> samples =
        [
            new DescriptorMessage(da),
            new PeersMessage([]),
            new PeersMessage([db]),
            new PeersMessage([da, db]),
            new AgreementProposal(terms, _a.Sign(terms.SignedMessage())),
            new AgreementProposal(donorTerms, _a.Sign(donorTerms.SignedMessage())),
            new AgreementAcceptance(terms.Id, _b.Sign(terms.SignedMessage())),
        ];
        foreach (var reason in Enum.GetValues<AgreementRejectReason>()) samples.Add(new AgreementRejection(SomeId((byte)reason), reason));
        foreach (var reason in Enum.GetValues<AgreementEndReason>()) samples.Add(new AgreementEnd(SomeId((byte)(0x80 | (byte)reason)), reason));
        var record = ServiceRecordTests.Sample();
        samples.Add(new RecordPublishMessage(new QueryId(7), 3, record));
        samples.Add(new LookupMessage(new QueryId(8), 2, record.LookupId.ToArray(), []));
        samples.Add(new LookupMessage(new QueryId(9), QueryMessage.MaxTtl, record.LookupId.ToArray(), new byte[LookupMessage.MaxIntroductionSize]));
        samples.Add(new LookupHitMessage(new QueryId(10), record));
        samples.Add(new IntroduceMessage(new QueryId(11), new QueryId(12), [1, 2, 3]));
        samples.Add(new IntroduceFailedMessage(new QueryId(13), new QueryId(14)));
        samples.Add(new OfferSummaryMessage(OfferSummary.Empty));
        samples.Add(new OfferSummaryMessage(OfferSummaryTests.Of((Block.FromKbps(16), null), (Block.FromKbps(1024), Block.FromKbps(64)), (new Block(Block.MaxOrder), new Block(Block.MaxOrder)))));
        var diskTerms = AgreementTerms.Create(_a.Id, _b.Id, Block.FromKbps(64), Block.FromKbps(32), TestDescriptors.Epoch, new Random(5), false, new DiskBlock(8), new DiskBlock(10));
        samples.Add(new AgreementProposal(diskTerms, _a.Sign(diskTerms.SignedMessage())));
        byte[] element = [.. Enumerable.Range(1, CreditCodec.ElementSize).Select(i => (byte)i)];
        samples.Add(new CreditRequest(1, 2917, [new BlindedCredit(0, element), new BlindedCredit(CreditCodec.MaxOrder, element)]));
        samples.Add(new CreditIssue(2, new CreditEvaluation([new CreditProof(0, element, new byte[CreditCodec.ProofSize]), new CreditProof(5, element, new byte[CreditCodec.ProofSize])], [element, element])));
        foreach (var reason in Enum.GetValues<CreditRefusal>()) samples.Add(new CreditRefused((uint)reason, reason, 12));
        return samples;
    }

    [Fact]
    public void EveryMessageTypeRoundTripsFieldByField()
    {
        foreach (var message in Samples())
        {
            byte[] encoded = ControlCodec.Encode(message);
            var decoded = ControlCodec.Decode(encoded);
            Assert.Equal(message.GetType(), decoded.GetType());
            Assert.Equal(encoded, ControlCodec.Encode(decoded));
            switch ((message, decoded))
            {
                case (DescriptorMessage m, DescriptorMessage d):
                    Assert.Equal(m.Descriptor.Encoded, d.Descriptor.Encoded);
                    Assert.Equal(m.Descriptor.Id, d.Descriptor.Id);
                    break;
                case (PeersMessage m, PeersMessage d):
                    Assert.Equal(m.Descriptors.Select(x => x.Encoded), d.Descriptors.Select(x => x.Encoded));
                    break;
                case (AgreementProposal m, AgreementProposal d):
                    Assert.Equal(m.Terms.Proposer, d.Terms.Proposer);
                    Assert.Equal(m.Terms.Acceptor, d.Terms.Acceptor);
                    Assert.Equal(m.Terms.ProposerGrants, d.Terms.ProposerGrants);
                    Assert.Equal(m.Terms.AcceptorGrants, d.Terms.AcceptorGrants);
                    Assert.Equal(m.Terms.Start, d.Terms.Start);
                    Assert.Equal(m.Terms.Nonce, d.Terms.Nonce);
                    Assert.Equal(m.Terms.Id, d.Terms.Id);
                    Assert.Equal((m.Terms.ProposerGrantsDisk, m.Terms.AcceptorGrantsDisk), (d.Terms.ProposerGrantsDisk, d.Terms.AcceptorGrantsDisk));
                    Assert.Equal(m.ProposerSignature, d.ProposerSignature);
                    Assert.True(NodeIdentity.Verify(_a.SigningPublicKey, d.Terms.SignedMessage(), d.ProposerSignature));
                    break;
                case (AgreementAcceptance m, AgreementAcceptance d):
                    Assert.Equal(m.Agreement, d.Agreement);
                    Assert.Equal(m.AcceptorSignature, d.AcceptorSignature);
                    break;
                case (AgreementRejection m, AgreementRejection d):
                    Assert.Equal(m, d);
                    break;
                case (AgreementEnd m, AgreementEnd d):
                    Assert.Equal(m, d);
                    break;
                case (RecordPublishMessage m, RecordPublishMessage d):
                    Assert.Equal((m.Id, m.Ttl), (d.Id, d.Ttl));
                    Assert.Equal(m.Record.Encoded, d.Record.Encoded);
                    break;
                case (LookupMessage m, LookupMessage d):
                    Assert.Equal((m.Id, m.Ttl), (d.Id, d.Ttl));
                    Assert.Equal(m.LookupId, d.LookupId);
                    Assert.Equal(m.Introduction, d.Introduction);
                    break;
                case (LookupHitMessage m, LookupHitMessage d):
                    Assert.Equal(m.Lookup, d.Lookup);
                    Assert.Equal(m.Record.Encoded, d.Record.Encoded);
                    break;
                case (IntroduceMessage m, IntroduceMessage d):
                    Assert.Equal((m.Publish, m.Lookup), (d.Publish, d.Lookup));
                    Assert.Equal(m.Introduction, d.Introduction);
                    break;
                case (IntroduceFailedMessage m, IntroduceFailedMessage d):
                    Assert.Equal((m.Publish, m.Lookup), (d.Publish, d.Lookup));
                    break;
                case (OfferSummaryMessage m, OfferSummaryMessage d):
                    Assert.Equal(m.Summary, d.Summary);
                    break;
                case (CreditRequest m, CreditRequest d):
                    Assert.Equal((m.Id, m.Epoch), (d.Id, d.Epoch));
                    Assert.Equal(m.Credits.Select(c => (c.Order, Convert.ToHexString(c.Element))), d.Credits.Select(c => (c.Order, Convert.ToHexString(c.Element))));
                    break;
                case (CreditIssue m, CreditIssue d):
                    Assert.Equal(m.Id, d.Id);
                    Assert.Equal(m.Evaluation.Proofs.Select(p => (p.Order, Convert.ToHexString(p.PublicKey), Convert.ToHexString(p.Proof))),
                        d.Evaluation.Proofs.Select(p => (p.Order, Convert.ToHexString(p.PublicKey), Convert.ToHexString(p.Proof))));
                    Assert.Equal(m.Evaluation.Evaluated, d.Evaluation.Evaluated);
                    break;
                case (CreditRefused m, CreditRefused d):
                    Assert.Equal(m, d);
                    break;
                default:
                    Assert.Fail($"Unexpected pair {message.GetType().Name}, {decoded.GetType().Name}");
                    break;
            }
        }
    }

    [Fact]
    public void AgreementTermsKeepMillisecondsAndNameThemselvesByTheirHash()
    {
        var terms = Terms(Block.FromKbps(64), null);
        Assert.Equal(TestDescriptors.Epoch.AddMilliseconds(123), terms.Start);
        Assert.Equal(AgreementTerms.NonceSize, terms.Nonce.Length);
        Assert.Equal(terms.EncodedLength, terms.Encode().Length);
        Assert.Equal(Block.FromKbps(64), terms.GrantedBy(_a.Id));
        Assert.Null(terms.GrantedBy(_b.Id));
        Assert.Equal(_b.Id, terms.Counterpart(_a.Id));
        Assert.Equal(_a.Id, terms.Counterpart(_b.Id));
        // Fresh nonces: the same terms twice are two agreements.
        Assert.NotEqual(terms.Id, Terms(Block.FromKbps(64), null).Id);
    }

    [Fact]
    public void APrivateAgreementSaysSoInItsSignedTermsAndIsAnotherAgreement()
    {
        var open = Terms(Block.FromKbps(64), Block.FromKbps(64));
        var hidden = open with { Private = true };
        var decoded = Assert.IsType<AgreementProposal>(ControlCodec.Decode(ControlCodec.Encode(new AgreementProposal(hidden, _a.Sign(hidden.SignedMessage())))));
        Assert.True(decoded.Terms.Private);
        Assert.False(Assert.IsType<AgreementProposal>(ControlCodec.Decode(ControlCodec.Encode(new AgreementProposal(open, _a.Sign(open.SignedMessage()))))).Terms.Private);
        // The flag is signed: the same terms made public are not the same agreement.
        Assert.NotEqual(open.Id, hidden.Id);
        Assert.NotEqual(open.SignedMessage(), hidden.SignedMessage());
    }

    [Fact]
    public void EveryProperPrefixIsRefused()
    {
        foreach (var message in Samples())
        {
            byte[] encoded = ControlCodec.Encode(message);
            for (int length = 0; length < encoded.Length; length++)
            {
                var error = Assert.Throws<WireException>(() => ControlCodec.Decode(encoded.AsSpan(0, length)));
                // A descriptor is the rest of the message, so cutting it is caught by its own checks.
                if (message is not DescriptorMessage and not PeersMessage and not RecordPublishMessage and not LookupHitMessage) Assert.Equal(WireError.Truncated, error.Error);
            }
        }
    }

    [Fact]
    public void ATrailingByteIsRefused()
    {
        foreach (var message in Samples())
            Assert.Throws<WireException>(() => ControlCodec.Decode([.. ControlCodec.Encode(message), 0]));
    }

    [Fact]
    public void AMessageOverMaxSizeIsRefusedAsOversized()
    {
        byte[] big = new byte[ControlMessage.MaxSize + 1];
        big[0] = 2;
        Assert.Equal(WireError.Oversized, Assert.Throws<WireException>(() => ControlCodec.Decode(big)).Error);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(12)]
    [InlineData(15)]
    [InlineData(24)]
    [InlineData(255)]
    public void AnUnknownTypeIsRefused(byte type)
    {
        var error = Assert.Throws<WireException>(() => ControlCodec.Decode([type, .. new byte[100]]));
        Assert.Equal(WireError.UnknownMessageType, error.Error);
    }

    [Theory]
    [InlineData(18, 0)]
    [InlineData(18, 6)]
    [InlineData(18, 255)]
    [InlineData(19, 0)]
    [InlineData(19, 5)]
    public void AnUnknownReasonIsRefused(byte type, byte reason)
    {
        var error = Assert.Throws<WireException>(() => ControlCodec.Decode([type, .. new byte[AgreementTerms.IdSize], reason]));
        Assert.Equal(WireError.BadField, error.Error);
    }

    [Fact]
    public void MoreThan32DescriptorsInAPeersMessageAreRefused()
    {
        var error = Assert.Throws<WireException>(() => ControlCodec.Decode([2, PeersMessage.MaxDescriptors + 1]));
        Assert.Equal(WireError.Oversized, error.Error);
    }

    [Fact]
    public void ABadDescriptorInsideAPeersMessageIsRefused()
    {
        var d = TestDescriptors.Make(_a, Block.FromKbps(64), null);
        byte[] encoded = ControlCodec.Encode(new PeersMessage([d]));
        encoded[^1] ^= 1;
        Assert.Equal(WireError.BadSignature, Assert.Throws<WireException>(() => ControlCodec.Decode(encoded)).Error);
    }

    [Fact]
    public void MalformedAgreementTermsAreRefused()
    {
        var terms = Terms(Block.FromKbps(64), Block.FromKbps(32));
        byte[] valid = ControlCodec.Encode(new AgreementProposal(terms, _a.Sign(terms.SignedMessage())));
        const int Version = 1, Proposer = 2, Acceptor = Proposer + NodeId.Size, Grants = Acceptor + NodeId.Size, Start = Grants + 2,
            Flags = Start + 8 + AgreementTerms.NonceSize;

        // Version 1 had no flags byte: a node that still speaks it is refused, not misread.
        byte[] version = (byte[])valid.Clone();
        version[Version] = 1;
        Assert.Equal(WireError.BadVersion, Assert.Throws<WireException>(() => ControlCodec.Decode(version)).Error);

        byte[] flags = (byte[])valid.Clone();
        flags[Flags] = 0x02;
        Assert.Equal(WireError.BadField, Assert.Throws<WireException>(() => ControlCodec.Decode(flags)).Error);

        byte[] self = (byte[])valid.Clone();
        valid.AsSpan(Proposer, NodeId.Size).CopyTo(self.AsSpan(Acceptor));
        Assert.Equal(WireError.BadField, Assert.Throws<WireException>(() => ControlCodec.Decode(self)).Error);

        byte[] order = (byte[])valid.Clone();
        order[Grants] = Block.MaxOrder + 1;
        Assert.Equal(WireError.BadField, Assert.Throws<WireException>(() => ControlCodec.Decode(order)).Error);

        byte[] start = (byte[])valid.Clone();
        start.AsSpan(Start, 8).Fill(0xFF);
        Assert.Equal(WireError.BadField, Assert.Throws<WireException>(() => ControlCodec.Decode(start)).Error);
    }

    [Fact]
    public void A_flood_with_no_ttl_or_more_than_the_most_and_an_introduction_over_the_limit_are_refused()
    {
        var record = ServiceRecordTests.Sample();
        foreach (byte ttl in new byte[] { 0, QueryMessage.MaxTtl + 1 })
        {
            byte[] lookup = ControlCodec.Encode(new LookupMessage(new QueryId(1), 1, record.LookupId.ToArray(), []));
            lookup[1 + QueryId.Size] = ttl;
            Assert.Equal(WireError.BadField, Assert.Throws<WireException>(() => ControlCodec.Decode(lookup)).Error);
            byte[] publish = ControlCodec.Encode(new RecordPublishMessage(new QueryId(1), 1, record));
            publish[1 + QueryId.Size] = ttl;
            Assert.Equal(WireError.BadField, Assert.Throws<WireException>(() => ControlCodec.Decode(publish)).Error);
        }
        byte[] introduce = ControlCodec.Encode(new IntroduceMessage(new QueryId(1), new QueryId(2), []));
        byte[] tooLong = [.. introduce[..^2], .. new byte[] { (LookupMessage.MaxIntroductionSize + 1) >> 8, (LookupMessage.MaxIntroductionSize + 1) & 0xFF }, .. new byte[LookupMessage.MaxIntroductionSize + 1]];
        Assert.Equal(WireError.Oversized, Assert.Throws<WireException>(() => ControlCodec.Decode(tooLong)).Error);
        Assert.Throws<ArgumentException>(() => ControlCodec.Encode(new IntroduceMessage(new QueryId(1), new QueryId(2), new byte[LookupMessage.MaxIntroductionSize + 1])));
        Assert.Throws<ArgumentException>(() => ControlCodec.Encode(new LookupMessage(new QueryId(1), 1, new byte[31], [])));
    }

    [Fact]
    public void RandomBytesAreOnlyEverAWireException()
    {
        var random = new Random(65536);
        for (int i = 0; i < 20_000; i++)
        {
            byte[] input = new byte[random.Next(0, 4) == 0 ? random.Next(0, 2000) : random.Next(0, 120)];
            random.NextBytes(input);
            if (input.Length > 0 && random.Next(4) != 0) input[0] = ValidTypes[random.Next(ValidTypes.Length)];
            DecodeOrWireException(input);
        }
    }

    [Fact]
    public void RandomMutationsOfValidMessagesAreOnlyEverAWireException()
    {
        var random = new Random(4242);
        byte[][] valid = [.. Samples().Select(ControlCodec.Encode)];
        for (int i = 0; i < 20_000; i++)
        {
            List<byte> bytes = [.. valid[random.Next(valid.Length)]];
            for (int m = random.Next(1, 4); m > 0; m--) TestDescriptors.Mutate(random, bytes);
            DecodeOrWireException([.. bytes]);
        }
    }

    /// <summary>Whatever decodes must encode back to exactly the input: no field is read loosely.</summary>
    private static void DecodeOrWireException(byte[] input)
    {
        ControlMessage message;
        try
        {
            message = ControlCodec.Decode(input);
        }
        catch (WireException)
        {
            return;
        }
        Assert.Equal(input, ControlCodec.Encode(message));
    }

    [Fact]
    public void EncodeRefusesAPeersMessageTheDecoderWouldRefuse()
    {
        var d = TestDescriptors.Make(_a, Block.FromKbps(64), null);
        var tooMany = new PeersMessage(Enumerable.Repeat(d, PeersMessage.MaxDescriptors + 1).ToArray());
        // Sending it would only make the peer close the link; the mistake is ours and should surface here.
        Assert.Throws<ArgumentException>(() => ControlCodec.Encode(tooMany));
    }

    [Fact]
    public void EncodeRefusesAMessageOverMaxSize()
    {
        var partners = Enumerable.Range(0, Descriptor.MaxPartners).Select(i => NodeId.FromSigningKey([(byte)i])).ToArray();
        var bulky = TestDescriptors.Make(_a, Block.FromKbps(64), null, partners: partners);
        var message = new PeersMessage(Enumerable.Repeat(bulky, PeersMessage.MaxDescriptors).ToArray());
        Assert.Throws<ArgumentException>(() => ControlCodec.Encode(message));
    }
}
