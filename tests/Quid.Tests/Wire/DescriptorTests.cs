using System.Net;
using Quid.Crypto;
using Quid.Wire;

namespace Quid.Tests.Wire;

/// <summary>Signed descriptors built the way the node builds them, for the Wire, Overlay and Exchange tests.</summary>
internal static class TestDescriptors
{
    /// <summary>A whole second, since descriptors carry seconds.</summary>
    public static readonly DateTimeOffset Epoch = new(2025, 6, 1, 12, 0, 0, TimeSpan.Zero);

    public static Descriptor Make(
        NodeIdentity identity,
        Block offer,
        Block? request,
        IReadOnlyList<Block>? free = null,
        DateTimeOffset? published = null,
        TimeSpan? lifetime = null,
        IPEndPoint? address = null,
        IReadOnlyList<NodeId>? partners = null,
        ExitPolicy? policy = null,
        NodeRoles roles = NodeRoles.None)
    {
        var at = published ?? Epoch;
        return new Descriptor
        {
            SigningKey = identity.SigningPublicKey,
            LinkKey = identity.LinkPublicKey,
            Published = at,
            Expires = at + (lifetime ?? TimeSpan.FromHours(1)),
            Address = address,
            Offer = offer,
            Request = request,
            FreeBlocks = free ?? [offer],
            Roles = roles,
            ExitPolicy = policy ?? ExitPolicy.Default,
            Partners = partners ?? [],
        }.Sign(identity);
    }

    /// <summary>Signs an arbitrary body as a descriptor, so a decoder's checks after parsing can be reached.</summary>
    public static byte[] Resign(NodeIdentity identity, ReadOnlySpan<byte> body) =>
        [.. body, .. identity.Sign([.. "quid descriptor v1"u8, .. body])];

    public static byte[] Body(Descriptor descriptor) => descriptor.Encoded[..^NodeIdentity.SignatureSize];

    /// <summary>Random edits of a byte string: flips, overwrites, insertions, deletions, truncation, garbage.</summary>
    public static void Mutate(Random random, List<byte> bytes)
    {
        int at = random.Next(bytes.Count + 1);
        switch (random.Next(6))
        {
            case 0 when at < bytes.Count:
                bytes[at] ^= (byte)(1 << random.Next(8));
                break;
            case 1 when at < bytes.Count:
                bytes[at] = (byte)random.Next(256);
                break;
            case 2:
                bytes.Insert(at, (byte)random.Next(256));
                break;
            case 3 when at < bytes.Count:
                bytes.RemoveAt(at);
                break;
            case 4:
                bytes.RemoveRange(at, bytes.Count - at);
                break;
            default:
                bytes.AddRange(Enumerable.Range(0, random.Next(1, 64)).Select(_ => (byte)random.Next(256)));
                break;
        }
    }
}

public sealed class DescriptorTests : IDisposable
{
    private readonly NodeIdentity _identity = NodeIdentity.Generate(out _);
    private readonly NodeIdentity _other = NodeIdentity.Generate(out _);

    public void Dispose()
    {
        _identity.Dispose();
        _other.Dispose();
    }

    private static readonly ExitPolicy MixedPolicy = new(
    [
        new ExitRule(ExitAction.Reject, IPAddress.Parse("10.0.0.0"), 8, 0, ushort.MaxValue),
        new ExitRule(ExitAction.Reject, IPAddress.Parse("fe80::"), 10, 25, 25),
        new ExitRule(ExitAction.Accept, null, 0, 80, 443),
        new ExitRule(ExitAction.Reject, null, 0, 0, ushort.MaxValue),
    ]);

    private Descriptor Full(IPEndPoint? address) => TestDescriptors.Make(
        _identity,
        Block.FromKbps(512),
        Block.FromKbps(256),
        free: [Block.FromKbps(256), Block.FromKbps(128), Block.FromKbps(64), Block.FromKbps(32), Block.FromKbps(16)],
        published: TestDescriptors.Epoch,
        lifetime: TimeSpan.FromMinutes(90),
        address: address,
        partners: [_other.Id, NodeId.FromSigningKey(new byte[32])],
        policy: MixedPolicy,
        roles: NodeRoles.Ultrapeer);

    public static TheoryData<string?> Addresses() => new(null, "127.0.0.1:4550", "[2001:db8::7]:65535", "203.0.113.9:0");

    [Theory]
    [MemberData(nameof(Addresses))]
    public void SignedDescriptorDecodesToEveryFieldItWasBuiltFrom(string? address)
    {
        var original = Full(address is null ? null : IPEndPoint.Parse(address));
        var decoded = Descriptor.Decode(original.Encoded);

        Assert.Equal(original.SigningKey, decoded.SigningKey);
        Assert.Equal(original.LinkKey, decoded.LinkKey);
        Assert.Equal(_identity.Id, decoded.Id);
        Assert.Equal(original.Published, decoded.Published);
        Assert.Equal(original.Expires, decoded.Expires);
        Assert.Equal(original.Address, decoded.Address);
        Assert.Equal(original.Offer, decoded.Offer);
        Assert.Equal(original.Request, decoded.Request);
        Assert.Equal(original.FreeBlocks, decoded.FreeBlocks);
        Assert.Equal(Block.FromKbps(256), decoded.LargestFreeBlock);
        Assert.Equal(NodeRoles.Ultrapeer, decoded.Roles);
        Assert.Equal(MixedPolicy.Rules, decoded.ExitPolicy.Rules);
        Assert.Equal(original.Partners, decoded.Partners);
        Assert.Equal(original.Encoded, decoded.Encoded);
    }

    [Fact]
    public void ADonorWithNothingFreeAndNoPartnersRoundTrips()
    {
        var original = TestDescriptors.Make(_identity, Block.FromKbps(16), null, free: [], policy: ExitPolicy.RejectAll);
        var decoded = Descriptor.Decode(original.Encoded);
        Assert.Null(decoded.Request);
        Assert.Empty(decoded.FreeBlocks);
        Assert.Null(decoded.LargestFreeBlock);
        Assert.Empty(decoded.Partners);
        Assert.Null(decoded.Address);
        Assert.Equal(ExitPolicy.RejectAll.Rules, decoded.ExitPolicy.Rules);
    }

    [Fact]
    public void TheLargestDescriptorTheLimitsAllowStaysUnderMaxEncodedSize()
    {
        var rules = Enumerable.Range(0, ExitPolicy.MaxRules)
            .Select(i => new ExitRule(ExitAction.Reject, IPAddress.Parse($"2001:db8::{i:x}"), 128, 0, ushort.MaxValue)).ToArray();
        var partners = Enumerable.Range(0, Descriptor.MaxPartners).Select(i => NodeId.FromSigningKey([(byte)i, (byte)(i >> 8)])).ToArray();
        var big = TestDescriptors.Make(
            _identity, Block.FromKbps(16 << 20), Block.FromKbps(16),
            free: [.. Enumerable.Range(0, Block.MaxOrder + 1).Select(o => new Block((byte)o)).Where(b => b.Order < Block.MaxOrder), new Block(0)],
            address: IPEndPoint.Parse("[2001:db8::1]:1"), partners: partners, policy: new ExitPolicy(rules));
        Assert.InRange(big.Encoded.Length, 1, Descriptor.MaxEncodedSize);
        var decoded = Descriptor.Decode(big.Encoded);
        Assert.Equal(Descriptor.MaxPartners, decoded.Partners.Count);
        Assert.Equal(Descriptor.MaxFreeBlocks, decoded.FreeBlocks.Count);
    }

    [Fact]
    public void TheSignedDescriptorSaysWhatItsSignedBytesSay()
    {
        // The node stamps descriptors with its clock, milliseconds and all; the wire carries seconds.
        var now = TestDescriptors.Epoch.AddMilliseconds(750);
        var signed = TestDescriptors.Make(_identity, Block.FromKbps(64), null, published: now, lifetime: TimeSpan.FromMinutes(30));
        var decoded = Descriptor.Decode(signed.Encoded);
        Assert.Equal(decoded.Published, signed.Published);
        Assert.Equal(decoded.Expires, signed.Expires);
    }

    [Fact]
    public void SigningWithAnotherNodesKeyIsRefused()
    {
        var unsigned = Full(null) with { SigningKey = _other.SigningPublicKey };
        Assert.Throws<ArgumentException>(() => unsigned.Sign(_identity));
    }

    [Fact]
    public void AnyFlippedBitIsRefusedAndMostlyAsABadSignature()
    {
        byte[] encoded = Full(IPEndPoint.Parse("192.0.2.1:4550")).Encoded;
        var errors = new Dictionary<WireError, int>();
        for (int bit = 0; bit < encoded.Length * 8; bit++)
        {
            byte[] flipped = (byte[])encoded.Clone();
            flipped[bit / 8] ^= (byte)(1 << (bit % 8));
            var error = Assert.Throws<WireException>(() => Descriptor.Decode(flipped));
            errors[error.Error] = errors.GetValueOrDefault(error.Error) + 1;
        }
        Assert.True(errors.GetValueOrDefault(WireError.BadSignature) > encoded.Length * 8 * 3 / 4, string.Join(", ", errors));
    }

    [Fact]
    public void EveryProperPrefixIsRefused()
    {
        byte[] encoded = Full(IPEndPoint.Parse("[2001:db8::7]:80")).Encoded;
        for (int length = 0; length < encoded.Length; length++)
            Assert.Throws<WireException>(() => Descriptor.Decode(encoded.AsSpan(0, length)));
        Assert.Throws<WireException>(() => Descriptor.Decode([.. encoded, 0]));
    }

    [Fact]
    public void RandomBytesAreOnlyEverAWireException()
    {
        var random = new Random(16384);
        byte[] valid = Full(IPEndPoint.Parse("198.51.100.2:443")).Encoded;
        for (int i = 0; i < 20_000; i++)
        {
            byte[] input;
            switch (i % 3)
            {
                case 0:
                    input = new byte[random.Next(0, 700)];
                    random.NextBytes(input);
                    break;
                case 1:
                    // Version 1, then noise: reaches the field decoders.
                    input = new byte[random.Next(1, 700)];
                    random.NextBytes(input);
                    input[0] = Descriptor.Version;
                    break;
                default:
                    // A valid head and a random tail: reaches the later fields.
                    byte[] tail = new byte[random.Next(0, 200)];
                    random.NextBytes(tail);
                    input = [.. valid.AsSpan(0, random.Next(valid.Length)), .. tail];
                    break;
            }
            Assert.Throws<WireException>(() => Descriptor.Decode(input));
        }
    }

    [Fact]
    public void RandomMutationsOfAValidDescriptorAreOnlyEverAWireException()
    {
        var random = new Random(1602);
        byte[] valid = Full(IPEndPoint.Parse("198.51.100.2:443")).Encoded;
        int refused = 0;
        for (int i = 0; i < 20_000; i++)
        {
            List<byte> bytes = [.. valid];
            for (int m = random.Next(1, 4); m > 0; m--) TestDescriptors.Mutate(random, bytes);
            byte[] input = [.. bytes];
            try
            {
                Descriptor.Decode(input);
                // Only an edit that changed nothing may still verify.
                Assert.Equal(valid, input);
            }
            catch (WireException)
            {
                refused++;
            }
        }
        Assert.True(refused > 19_000, $"{refused} refused");
    }

    [Fact]
    public void AnythingOver16KiBIsRefusedAsOversizedBeforeParsing()
    {
        byte[] valid = Full(null).Encoded;
        byte[] padded = new byte[Descriptor.MaxEncodedSize + 1];
        valid.CopyTo(padded, 0);
        Assert.Equal(WireError.Oversized, Assert.Throws<WireException>(() => Descriptor.Decode(padded)).Error);
        Assert.Equal(WireError.Oversized, Assert.Throws<WireException>(() => Descriptor.Decode(new byte[1 << 20])).Error);
        // At the limit the size is fine and the content decides.
        Assert.NotEqual(WireError.Oversized, Assert.Throws<WireException>(() => Descriptor.Decode(padded.AsSpan(0, Descriptor.MaxEncodedSize))).Error);
    }

    [Fact]
    public void MoreFreeCapacityThanTheOfferIsRefused()
    {
        var greedy = TestDescriptors.Make(_identity, Block.FromKbps(64), Block.FromKbps(16), free: [Block.FromKbps(64), Block.FromKbps(16)]);
        var error = Assert.Throws<WireException>(() => Descriptor.Decode(greedy.Encoded));
        Assert.Equal(WireError.BadField, error.Error);

        var larger = TestDescriptors.Make(_identity, Block.FromKbps(64), null, free: [Block.FromKbps(128)]);
        Assert.Equal(WireError.BadField, Assert.Throws<WireException>(() => Descriptor.Decode(larger.Encoded)).Error);

        // Exactly the offer, split up, is fine.
        var exact = TestDescriptors.Make(_identity, Block.FromKbps(64), null, free: [Block.FromKbps(32), Block.FromKbps(16), Block.FromKbps(16)]);
        Assert.Equal(3, Descriptor.Decode(exact.Encoded).FreeBlocks.Count);
    }

    [Fact]
    public void ADescriptorThatExpiresBeforeItIsPublishedIsRefused()
    {
        var backwards = TestDescriptors.Make(_identity, Block.FromKbps(64), null, lifetime: TimeSpan.Zero);
        Assert.Equal(WireError.BadField, Assert.Throws<WireException>(() => Descriptor.Decode(backwards.Encoded)).Error);
    }

    [Fact]
    public void IsExpiredAtAndAfterTheExpiry()
    {
        var d = TestDescriptors.Make(_identity, Block.FromKbps(64), null, lifetime: TimeSpan.FromMinutes(10));
        Assert.False(d.IsExpired(d.Expires.AddSeconds(-1)));
        Assert.True(d.IsExpired(d.Expires));
        Assert.True(d.IsExpired(d.Expires.AddDays(1)));
    }

    // Offsets into the body: version, two keys, two u64 times, then the address.
    private const int PublishedOffset = 1 + 32 + 32;
    private const int ExpiresOffset = PublishedOffset + 8;
    private const int AddressOffset = ExpiresOffset + 8;

    [Theory]
    [InlineData(PublishedOffset)]
    [InlineData(ExpiresOffset)]
    public void ATimestampBeyondTheYear9999IsABadFieldNotACrash(int offset)
    {
        byte[] body = TestDescriptors.Body(Full(null));
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(body.AsSpan(offset), ulong.MaxValue);
        var error = Assert.Throws<WireException>(() => Descriptor.Decode(TestDescriptors.Resign(_identity, body)));
        Assert.Equal(WireError.BadField, error.Error);
    }

    [Theory]
    [InlineData(1, WireError.BadField)]   // unknown address family
    [InlineData(5, WireError.BadField)]
    [InlineData(255, WireError.BadField)]
    public void AnUnknownAddressFamilyIsRefused(byte family, WireError expected)
    {
        byte[] body = TestDescriptors.Body(Full(null));
        body[AddressOffset] = family;
        Assert.Equal(expected, Assert.Throws<WireException>(() => Descriptor.Decode(TestDescriptors.Resign(_identity, body))).Error);
    }

    [Fact]
    public void AnotherVersionIsRefusedAsBadVersion()
    {
        byte[] body = TestDescriptors.Body(Full(null));
        body[0] = 2;
        Assert.Equal(WireError.BadVersion, Assert.Throws<WireException>(() => Descriptor.Decode(TestDescriptors.Resign(_identity, body))).Error);
    }

    [Fact]
    public void ADescriptorSignedByAKeyOtherThanTheOneItNamesIsRefused()
    {
        byte[] body = TestDescriptors.Body(Full(null));
        var error = Assert.Throws<WireException>(() => Descriptor.Decode(TestDescriptors.Resign(_other, body)));
        Assert.Equal(WireError.BadSignature, error.Error);
    }
}
