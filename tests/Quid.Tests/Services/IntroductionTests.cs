using System.Security.Cryptography;
using Quid.Crypto;
using Quid.Services;
using Quid.Wire;

namespace Quid.Tests.Services;

/// <summary>The introduction a client seals to a service's blinded key: only that key's holder reads it, and nothing else it is fed escapes as anything but a refusal.</summary>
public sealed class IntroductionTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 6, 0, 0, 0, TimeSpan.Zero);

    private static ServiceKeys Service(byte fill = 7) => ServiceKeys.Stable(Enumerable.Repeat(fill, 32).ToArray());

    private static Introduction Plain()
    {
        using var ephemeral = ServiceHandshake.NewEphemeral();
        return new Introduction([(new NodeId(RandomNumberGenerator.GetBytes(NodeId.Size)), RendezvousCookie.Random())], ephemeral.PublicKey.Export(NSec.Cryptography.KeyBlobFormat.RawPublicKey));
    }

    /// <summary>What the client does: A'(p) from the address alone, then the seal.</summary>
    private static byte[] SealedTo(ServiceKeys keys, ulong period, Introduction plain)
    {
        var address = SessionAddress.Parse(keys.FixedAddress!.ToString());
        return Introduction.Seal(ServicePeriod.ForAddress(address).BlindedKey(address.PublicKey, period), plain);
    }

    private static IntroductionError Refusal(KeyBlinding.KeyPair keys, byte[] sealedIntroduction) =>
        Assert.Throws<IntroductionException>(() => Introduction.Open(keys, sealedIntroduction)).Error;

    [Fact]
    public void The_service_opens_what_a_client_sealed_to_its_blinded_key_from_the_address_alone()
    {
        using var keys = Service();
        ulong period = keys.Periods.Number(Now);
        using var blinded = keys.Blind(period);
        using var ephemeral = ServiceHandshake.NewEphemeral();
        byte[] clientKey = ephemeral.PublicKey.Export(NSec.Cryptography.KeyBlobFormat.RawPublicKey);
        for (int count = 1; count <= Introduction.MaxPoints; count++)
        {
            var plain = new Introduction([.. Enumerable.Range(0, count).Select(_ => (new NodeId(RandomNumberGenerator.GetBytes(NodeId.Size)), RendezvousCookie.Random()))], clientKey);
            byte[] sealedIntroduction = SealedTo(keys, period, plain);
            // One point or three, the carriers see the same length.
            Assert.Equal(202, sealedIntroduction.Length);
            Assert.Equal(Introduction.Version, sealedIntroduction[0]);

            var opened = Introduction.Open(blinded, sealedIntroduction);
            Assert.Equal(plain.Points, opened.Points);
            Assert.Equal(plain.ClientKey, opened.ClientKey);
            Assert.Equal(sealedIntroduction.AsSpan(1, 32).ToArray(), Introduction.ReplayKey(sealedIntroduction).ToArray());
        }
    }

    [Fact]
    public void An_introduction_offers_one_to_three_distinct_points()
    {
        using var ephemeral = ServiceHandshake.NewEphemeral();
        byte[] clientKey = ephemeral.PublicKey.Export(NSec.Cryptography.KeyBlobFormat.RawPublicKey);
        var node = new NodeId(RandomNumberGenerator.GetBytes(NodeId.Size));
        (NodeId, RendezvousCookie) Point() => (new NodeId(RandomNumberGenerator.GetBytes(NodeId.Size)), RendezvousCookie.Random());
        Assert.Throws<ArgumentException>(() => new Introduction([], clientKey));
        Assert.Throws<ArgumentException>(() => new Introduction([Point(), Point(), Point(), Point()], clientKey));
        Assert.Throws<ArgumentException>(() => new Introduction([(node, RendezvousCookie.Random()), (node, RendezvousCookie.Random())], clientKey));
    }

    [Fact]
    public void A_fixed_ephemeral_scalar_gives_the_bytes_of_the_independent_reference()
    {
        // tests/Quid.Tests/Vectors/introduction.py: arti's blinded key pair (KeyBlindingTests), e = 32 bytes of 01,
        // two points (node id 00..13, cookie 14..27; node id 28..3b, cookie 3c..4f), X 50..6f.
        byte[] blindedKey = Convert.FromHexString("3A50BF210E8F9EE955AE0014F7A6917FB65EBF098A86305ABB508D1A7291B6D5");
        byte[] expected = Convert.FromHexString(
            "02130ae82201d7072e6fbfc0a1884fb54636554d14945b799125cf7ce38d477f51d16c54afd1a6fa2377b0df60695e5899771f9d47d577d69ade4f7a" +
            "5240a500ea38bc4a7066e383f20a3ad6cb9dcfcaa68074272870b9733f72af9ecfd1b34fab34fe85d286478497f24460c6d4f6c26bf261a4f75bf71e" +
            "234552bb6e9f3e8191dcd9e4350b6e3897382c4d97a3984643b97ea89fdc023d982d2675ed4e63494f9368762e26bae7f9a0decadbc63ce3e17151f6" +
            "36389ff201a0a40fb12f1bb267849bdf6357785f9298");
        byte[] bytes = [.. Enumerable.Range(0, 112).Select(i => (byte)i)];
        var plain = new Introduction(
            [(new NodeId(bytes.AsSpan(0, 20)), new RendezvousCookie(bytes.AsSpan(20, 20))), (new NodeId(bytes.AsSpan(40, 20)), new RendezvousCookie(bytes.AsSpan(60, 20)))],
            bytes.AsSpan(80, 32));

        Assert.Equal(expected, Introduction.Seal(blindedKey, plain, Enumerable.Repeat((byte)1, 32).ToArray()));

        byte[] expandedSecret = Convert.FromHexString(
            "D8C7FF0E31295B66540D789AF3E3DF992038A9592EEA01D8B7CBA06D6E66D159" + "4D6167696320576F7264733A20737065697373636F62616C742062697669756D");
        using var arti = new KeyBlinding.KeyPair(expandedSecret, Convert.FromHexString("379E50DB31FEE6775ABD0AF6FB7C371E060308F4F847DB09FE4CFE13AF602287"));
        Assert.Equal(blindedKey, arti.PublicKey);
        var opened = Introduction.Open(arti, expected);
        Assert.Equal(plain.Points, opened.Points);
        Assert.Equal(plain.ClientKey, opened.ClientKey);
    }

    [Fact]
    public void The_service_answers_the_client_key_an_introduction_carries_and_both_ends_derive_the_same_keys()
    {
        using var serviceKey = NSec.Cryptography.Key.Create(NSec.Cryptography.KeyAgreementAlgorithm.X25519);
        byte[] b = serviceKey.PublicKey.Export(NSec.Cryptography.KeyBlobFormat.RawPublicKey);
        // The client makes its key before it knows B, which the lookup's answer brings.
        var ephemeral = ServiceHandshake.NewEphemeral();
        var plain = new Introduction([(new NodeId(new byte[NodeId.Size]), RendezvousCookie.Random())], ephemeral.PublicKey.Export(NSec.Cryptography.KeyBlobFormat.RawPublicKey));

        using var keys = Service();
        using var blinded = keys.Blind(5);
        var opened = Introduction.Open(blinded, Introduction.Seal(blinded.PublicKey, plain));
        var (reply, serviceKeys) = ServiceHandshake.Respond(serviceKey, opened.ClientKey);
        using var handshake = ServiceHandshake.Start(b, ephemeral);

        Assert.Equal(serviceKeys, handshake.Finish(reply, serviceKeys.Length));
    }

    [Fact]
    public void An_introduction_sealed_to_another_service_or_another_period_does_not_open()
    {
        using var keys = Service();
        using var other = Service(8);
        ulong period = keys.Periods.Number(Now);
        using var blinded = keys.Blind(period);
        using var otherBlinded = other.Blind(period);
        using var nextPeriod = keys.Blind(period + 1);

        Assert.Equal(IntroductionError.NotForThisKey, Refusal(otherBlinded, SealedTo(keys, period, Plain())));
        Assert.Equal(IntroductionError.NotForThisKey, Refusal(nextPeriod, SealedTo(keys, period, Plain())));
        Assert.Equal(IntroductionError.NotForThisKey, Refusal(blinded, SealedTo(keys, period + 1, Plain())));
    }

    [Fact]
    public void Every_flipped_bit_is_refused_as_malformed_in_the_version_and_as_not_for_this_key_elsewhere()
    {
        using var keys = Service();
        using var blinded = keys.Blind(3);
        byte[] sealedIntroduction = Introduction.Seal(blinded.PublicKey, Plain());
        for (int bit = 0; bit < sealedIntroduction.Length * 8; bit++)
        {
            var changed = (byte[])sealedIntroduction.Clone();
            changed[bit / 8] ^= (byte)(1 << (bit % 8));
            Assert.Equal(bit < 8 ? IntroductionError.Malformed : IntroductionError.NotForThisKey, Refusal(blinded, changed));
        }
        Assert.NotNull(Introduction.Open(blinded, sealedIntroduction));
    }

    [Fact]
    public void Sealed_contents_with_no_point_too_many_a_point_twice_or_bytes_past_the_points_are_malformed()
    {
        using var keys = Service();
        using var blinded = keys.Blind(3);
        byte[] Contents(int count, int points, bool twice = false, bool trailing = false)
        {
            var contents = new byte[Introduction.PlainSize];
            contents[0] = (byte)count;
            RandomNumberGenerator.Fill(contents.AsSpan(1, Math.Min(points, Introduction.MaxPoints) * 40));
            if (twice) contents.AsSpan(1, 20).CopyTo(contents.AsSpan(41, 20));
            if (trailing) contents[1 + points * 40] = 1;
            RandomNumberGenerator.Fill(contents.AsSpan(1 + Introduction.MaxPoints * 40));
            return contents;
        }
        Assert.Equal(2, Introduction.Open(blinded, Introduction.SealContents(blinded.PublicKey, Contents(2, 2), default)).Points.Count);
        foreach (var contents in new[] { Contents(0, 0), Contents(4, 3), Contents(255, 3), Contents(2, 2, twice: true), Contents(1, 1, trailing: true), Contents(2, 3) })
            Assert.Equal(IntroductionError.Malformed, Refusal(blinded, Introduction.SealContents(blinded.PublicKey, contents, default)));
    }

    [Fact]
    public void Truncated_or_longer_input_is_malformed()
    {
        using var keys = Service();
        using var blinded = keys.Blind(3);
        byte[] sealedIntroduction = Introduction.Seal(blinded.PublicKey, Plain());
        foreach (int length in new[] { 0, 1, 33, Introduction.SealedSize - 1 })
        {
            Assert.Equal(IntroductionError.Malformed, Refusal(blinded, sealedIntroduction[..length]));
            Assert.Equal(IntroductionError.Malformed, Assert.Throws<IntroductionException>(() => Introduction.ReplayKey(sealedIntroduction.AsSpan(0, length))).Error);
        }
        Assert.Equal(IntroductionError.Malformed, Refusal(blinded, [.. sealedIntroduction, 0]));
        Assert.Equal(IntroductionError.Malformed, Refusal(blinded, [.. sealedIntroduction, .. sealedIntroduction]));
    }

    // Small-order points (the eight libsodium refuses), a point of mixed order (12345·B plus a
    // point of order 8), encodings of no point (y = 2 has no x) and a non-canonical encoding
    // (y = p + 1, the identity written long), computed with integer Edwards arithmetic.
    public static TheoryData<string> NotPrimeOrder =>
    [
        "0100000000000000000000000000000000000000000000000000000000000000",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000080",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
        "40a4cf5c611d737a2f1c6fcca84d9cabfed80987f186a5a6c57e629bff1af27f",
        "0200000000000000000000000000000000000000000000000000000000000000",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    ];

    [Theory]
    [MemberData(nameof(NotPrimeOrder))]
    public void An_ephemeral_key_that_is_no_point_of_the_prime_order_group_is_refused_as_not_for_this_key(string point)
    {
        using var keys = Service();
        using var blinded = keys.Blind(3);
        byte[] sealedIntroduction = Introduction.Seal(blinded.PublicKey, Plain());
        Convert.FromHexString(point).CopyTo(sealedIntroduction, 1);
        Assert.Equal(IntroductionError.NotForThisKey, Refusal(blinded, sealedIntroduction));

        var shared = new byte[KeyBlinding.SharedSize];
        Assert.False(blinded.TryAgree(Convert.FromHexString(point), shared));
        Assert.All(shared, b => Assert.Equal(0, b));
    }

    [Fact]
    public void Sealing_to_a_blinded_key_that_is_no_point_of_the_prime_order_group_is_an_argument_error()
    {
        Assert.Throws<ArgumentException>(() => Introduction.Seal(new byte[31], Plain()));
        Assert.Throws<ArgumentException>(() => Introduction.Seal(Convert.FromHexString("0100000000000000000000000000000000000000000000000000000000000000"), Plain()));
    }

    [Fact]
    public void Random_bytes_of_any_length_raise_only_an_introduction_exception()
    {
        using var keys = Service();
        using var blinded = keys.Blind(3);
        var random = new Random(19);
        for (int i = 0; i < 2000; i++)
        {
            var input = new byte[random.Next(0, 301)];
            random.NextBytes(input);
            // Give about a third the right length and version, so they reach the key agreement and the tag.
            if (i % 3 == 0)
            {
                input = new byte[Introduction.SealedSize];
                random.NextBytes(input);
                input[0] = Introduction.Version;
            }
            Assert.Throws<IntroductionException>(() => Introduction.Open(blinded, input));
        }
    }

    [Fact]
    public void Two_seals_of_the_same_contents_differ_in_every_part()
    {
        using var keys = Service();
        using var blinded = keys.Blind(3);
        var plain = Plain();
        byte[] first = Introduction.Seal(blinded.PublicKey, plain);
        byte[] second = Introduction.Seal(blinded.PublicKey, plain);
        Assert.NotEqual(first.AsSpan(1, 32).ToArray(), second.AsSpan(1, 32).ToArray());
        Assert.NotEqual(first.AsSpan(33).ToArray(), second.AsSpan(33).ToArray());
        Assert.Equal(plain.Points, Introduction.Open(blinded, first).Points);
        Assert.Equal(plain.Points, Introduction.Open(blinded, second).Points);
    }
}
