using Quid.Crypto;

namespace Quid.Tests.Crypto;

/// <summary>
/// Ed25519 key blinding against the published vectors of the two Tor implementations: C tor's
/// blinding parameters and blinded keys, and arti's whole derivation from a public key and a time
/// period to the blinded key pair (which arti generated with C tor).
/// </summary>
public sealed class KeyBlindingTests
{
    private static byte[] Hex(string hex) => Convert.FromHexString(hex);

    // arti, crates/tor-hscrypto/src/pk.rs, test key_blinding_testvec ("generated with C tor"): an
    // identity key (as an RFC 8032 expanded secret a | prefix and its public key), time period
    // 1234 of 1440 minutes, the blinding factor h before clamping, the blinded public key and
    // the blinded secret a' | prefix'.
    private static readonly byte[] ArtiPublicKey = Hex("833990B085C1A688C1D4C8B1F6B56AFAF5A2ECA674449E1D704F83765CCB7BC6");
    private static readonly byte[] ArtiExpandedSecret = Hex(
        "D8C7FF0E31295B66540D789AF3E3DF992038A9592EEA01D8B7CBA06D6E66D159" + "4D6167696320576F7264733A20737065697373636F62616C742062697669756D");
    private const ulong ArtiPeriod = 1234;
    private const ulong ArtiPeriodMinutes = 1440;
    private static readonly byte[] ArtiFactor = Hex("379E50DB31FEE6775ABD0AF6FB7C371E060308F4F847DB09FE4CFE13AF602287");
    private static readonly byte[] ArtiBlindedPublicKey = Hex("3A50BF210E8F9EE955AE0014F7A6917FB65EBF098A86305ABB508D1A7291B6D5");
    private static readonly byte[] ArtiBlindedSecret = Hex(
        "A958DC83AC885F6814C67035DE817A2C604D5D2F715282079448F789B656350B" + "4540FE1F80AA3F7E91306B7BF7A8E367293352B14A29FDCC8C19F3558075524B");

    // C tor, src/test/ed25519_vectors.inc since tor 0.4.6 (last changed in commit 769d54c5d7,
    // made by src/test/ed25519_exts_ref.py): seed, expanded secret a | prefix, public key,
    // blinding parameter h (before clamping), blinded secret a' | prefix', blinded public key.
    private static readonly string[][] TorVectors =
    [
        ["26c76712d89d906e6672dafa614c42e5cb1caac8c6568e4d2493087db51f0d36",
         "c0a4de23cc64392d85aa1da82b3defddbea946d13bb053bf8489fa9296281f495022f1f7ec0dcf52f07d4c7965c4eaed121d5d88d0a8ff546b06116a20e97755",
         "c2247870536a192d142d056abefca68d6193158e7c1a59c1654c954eccaff894",
         "54a513898b471d1d448a2f3c55c1de2c0ef718c447b04497eeb999ed32027823",
         "293c3acff4e902f6f63ddc5d5caa2a57e771db4f24de65d4c28df3232f47fa01171d43f24e3f53e70ec7ac280044ac77d4942dee5d6807118a59bdf3ee647e89",
         "1fc1fa4465bd9d4956fdbdc9d3acb3c7019bb8d5606b951c2e1dfe0b42eaeb41"],
        ["fba7a5366b5cb98c2667a18783f5cf8f4f8d1a2ce939ad22a6e685edde85128d",
         "18a8a69a06790dac778e882f7e868baacfa12521a5c058f5194f3a729184514a2a656fe7799c3e41f43d756da8d9cd47a061316cfe6147e23ea2f90d1ca45f30",
         "1519a3b15816a1aafab0b213892026ebf5c0dc232c58b21088d88cb90e9b940d",
         "831e9b5325b5d31b7ae6197e9c7a7baf2ec361e08248bce055908971047a2347",
         "38b88f9f9440358da544504ee152fb475528f7c51c285bd1c68b14ade8e29a07b8ceff20dfcf53eb52b891fc078c934efbf0353af7242e7dc51bb32a093afa29",
         "1cbbd4a88ce8f165447f159d9f628ada18674158c4f7c5ead44ce8eb0fa6eb7e"],
        ["67e3aa7a14fac8445d15e45e38a523481a69ae35513c9e4143eb1c2196729a0e",
         "58d84f8862d2ecfa30eb491a81c36d05b574310ea69dae18ecb57e992a896656b982187ee96c15bf4caeeab2d0b0ae4cd0b8d17470fc7efa98bb26428f4ef36d",
         "081faa81992e360ea22c06af1aba096e7a73f1c665bc8b3e4e531c46455fd1dd",
         "ac78a1d46faf3bfbbdc5af5f053dc6dc9023ed78236bec1760dadfd0b2603760",
         "4d03ce16a3f3249846aac9de0a0075061495c3b027248eeee47da4ddbaf9e0049217f52e92797462bd890fc274672e05c98f2c82970d640084781334aae0f940",
         "c5419ad133ffde7e0ac882055d942f582054132b092de377d587435722deb028"],
        ["d51385942033a76dc17f089a59e6a5a7fe80d9c526ae8ddd8c3a506b99d3d0a6",
         "50702d20b3550c6e16033db5ad4fba16436f1ecc7485be6af62b0732ceb5d173c47ccd9d044b6ea99dd99256adcc9c62191be194e7cb1a5b58ddcec85d876a2b",
         "73cfa1189a723aad7966137cbffa35140bb40d7e16eae4c40b79b5f0360dd65a",
         "f9c84dc0ac31571507993df94da1b3d28684a12ad14e67d0a068aba5c53019fc",
         "51d7db01aaa0d937a9fd7c8c7381445a14d8fa61f43347af5460d7cd8fda9904509ecee77082ce088f7c19d5a00e955eeef8df6fa41686abc1030c2d76807733",
         "3e08d0dc291066272e313014bfac4d39ad84aa93c038478a58011f431648105f"],
        ["5c8eac469bb3f1b85bc7cd893f52dc42a9ab66f1b02b5ce6a68e9b175d3bb433",
         "7077464c864c2ed5ed21c9916dc3b3ba6256f8b742fec67658d8d233dadc8d5a7a82c371083cc86892c2c8782dda2a09b6baf016aec51b689183ae59ce932ff2",
         "66c1a77104d86461b6f98f73acf3cd229c80624495d2d74d6fda1e940080a96b",
         "b1fe79d1dec9bc108df69f6612c72812755751f21ecc5af99663b30be8b9081f",
         "1f76cab834e222bd2546efa7e073425680ab88df186ff41327d3e40770129b00b57b95a440570659a440a3e4771465022a8e67af86bdf2d0990c54e7bb87ff9a",
         "59381f06acb6bf1389ba305f70874eed3e0f2ab57cdb7bc69ed59a9b8899ff4d"],
        ["eda433d483059b6d1ff8b7cfbd0fe406bfb23722c8f3c8252629284573b61b86",
         "8883c1387a6c86fc0bd7b9f157b4e4cd83f6885bf55e2706d2235d4527a2f05311a3595953282e436df0349e1bb313a19b3ddbf7a7b91ecce8a2c34abadb38b3",
         "d21c294db0e64cb2d8976625786ede1d9754186ae8197a64d72f68c792eecc19",
         "81f1512b63ab5fb5c1711a4ec83d379c420574aedffa8c3368e1c3989a3a0084",
         "c23588c23ee76093419d07b27c6df5922a03ac58f96c53671456a7d1bdbf560ec492fc87d5ec2a1b185ca5a40541fdef0b1e128fd5c2380c888bfa924711bcab",
         "2b946a484344eb1c17c89dd8b04196a84f3b7222c876a07a4cece85f676f87d9"],
        ["4377c40431c30883c5fbd9bc92ae48d1ed8a47b81d13806beac5351739b5533d",
         "186791ac8d03a3ac8efed6ac360467edd5a3bed2d02b3be713ddd5be53b3287ee37436e5fd7ac43794394507ad440ecfdf59c4c255f19b768a273109e06d7d8e",
         "c4d58b4cf85a348ff3d410dd936fa460c4f18da962c01b1963792b9dcc8a6ea6",
         "97f45142597c473a4b0e9a12d64561133ad9e1155fe5a9807fe6af8a93557818",
         "3ed249c6932d076e1a2f6916975914b14e8c739da00992358b8f37d3e790650691b4768f8e556d78f4bdcb9a13b6f6066fe81d3134ae965dc48cd0785b3af2b8",
         "c6b585129b135f8769df2eba987e76e089e80ba3a2a6729134d3b28008ac098e"],
        ["c6bbcce615839756aed2cc78b1de13884dd3618f48367a17597a16c1cd7a290b",
         "b003077c1e52a62308eef7950b2d532e1d4a7eea50ad22d8ac11b892851f1c40ffb9c9ff8dcd0c6c233f665a2e176324d92416bfcfcd1f787424c0c667452d86",
         "95126f14d86494020665face03f2d42ee2b312a85bc729903eb17522954a1c4a",
         "3f44f6a5a92cde816635dfc12ade70539871078d2ff097278be2a555c9859cd0",
         "288cbfd923cb286d48c084555b5bdd06c05e92fb81acdb45271367f57515380e053d9c00c81e1331c06ab50087be8cfc7dc11691b132614474f1aa9c2503cccd",
         "0eefdc795b59cabbc194c6174e34ba9451e8355108520554ec285acabebb34ac"],
        ["c6bbcce615839756aed2cc78b1de13884dd3618f48367a17597a16c1cd7a290b",
         "b003077c1e52a62308eef7950b2d532e1d4a7eea50ad22d8ac11b892851f1c40ffb9c9ff8dcd0c6c233f665a2e176324d92416bfcfcd1f787424c0c667452d86",
         "95126f14d86494020665face03f2d42ee2b312a85bc729903eb17522954a1c4a",
         "0000000000000000000000000000000000000000000000000000000000000000",
         "e5cd03eb4cc456e11bc36724b558873df0045729b22d8b748360067a7770ac02053d9c00c81e1331c06ab50087be8cfc7dc11691b132614474f1aa9c2503cccd",
         "312404d06a0a9de489904b18d5233e83a50b225977fa8734f2c897a73c067952"],
        ["c6bbcce615839756aed2cc78b1de13884dd3618f48367a17597a16c1cd7a290b",
         "b003077c1e52a62308eef7950b2d532e1d4a7eea50ad22d8ac11b892851f1c40ffb9c9ff8dcd0c6c233f665a2e176324d92416bfcfcd1f787424c0c667452d86",
         "95126f14d86494020665face03f2d42ee2b312a85bc729903eb17522954a1c4a",
         "1111111111111111111111111111111111111111111111111111111111111111",
         "2cf7ed8b163f5af960d2fc62e1883aa422a6090736b4f18a5456ddcaf78ede0c053d9c00c81e1331c06ab50087be8cfc7dc11691b132614474f1aa9c2503cccd",
         "952a908a4a9e0e5176a2549f8f328955aca6817a9fdc59e3acec5dec50838108"],
    ];

    public static TheoryData<int> TorVectorIndexes => new(Enumerable.Range(0, TorVectors.Length));

    /// <summary>Plain Ed25519 verification (NSec's), knowing nothing of blinding.</summary>
    private static bool Verifies(byte[] publicKey, byte[] message, byte[] signature) =>
        NodeIdentity.Verify(publicKey, message, signature);

    [Fact]
    public void Arti_vector_the_whole_derivation_from_public_key_and_period_to_blinded_key()
    {
        var factor = new byte[KeyBlinding.FactorSize];
        KeyBlinding.Factor(ArtiPublicKey, ArtiPeriod, ArtiPeriodMinutes, factor);
        Assert.Equal(ArtiFactor, factor);
        Assert.Equal(ArtiBlindedPublicKey, KeyBlinding.BlindPublicKey(ArtiPublicKey, ArtiPeriod, ArtiPeriodMinutes));
    }

    [Fact]
    public void Arti_vector_the_blinded_secret_and_a_signature_with_it_that_verifies_under_the_expected_blinded_key()
    {
        using var blinded = new KeyBlinding.KeyPair(ArtiExpandedSecret, ArtiFactor);
        var secret = new byte[64];
        blinded.ExportSecret(secret);
        Assert.Equal(ArtiBlindedSecret, secret);
        Assert.Equal(ArtiBlindedPublicKey, blinded.PublicKey);

        var message = "a descriptor signed for period 1234"u8.ToArray();
        var signature = blinded.Sign(message);
        Assert.True(Verifies(ArtiBlindedPublicKey, message, signature));
        Assert.False(Verifies(ArtiPublicKey, message, signature));
        Assert.False(Verifies(ArtiBlindedPublicKey, "another message"u8.ToArray(), signature));
    }

    [Theory]
    [MemberData(nameof(TorVectorIndexes))]
    public void Tor_vectors_blinded_secret_and_public_keys(int index)
    {
        var row = TorVectors[index];
        var (seed, expanded, publicKey, factor, blindedSecret, blindedPublicKey) =
            (Hex(row[0]), Hex(row[1]), Hex(row[2]), Hex(row[3]), Hex(row[4]), Hex(row[5]));

        var ours = new byte[64];
        KeyBlinding.KeyPair.Expand(seed, ours);
        Assert.Equal(expanded, ours);
        Assert.Equal(blindedPublicKey, KeyBlinding.BlindPublicKey(publicKey, factor));

        using var blinded = new KeyBlinding.KeyPair(expanded, factor);
        blinded.ExportSecret(ours);
        Assert.Equal(blindedSecret, ours);
        Assert.Equal(blindedPublicKey, blinded.PublicKey);
        Assert.True(Verifies(blindedPublicKey, publicKey, blinded.Sign(publicKey)));
    }

    [Fact]
    public void A_key_pair_from_a_seed_blinds_to_the_key_a_client_derives_from_the_public_key_alone()
    {
        var seed = Hex(TorVectors[3][0]);
        using var blinded = KeyBlinding.KeyPair.FromSeed(seed, 20_000, 1440);
        Assert.Equal(KeyBlinding.BlindPublicKey(Hex(TorVectors[3][2]), 20_000, 1440), blinded.PublicKey);
    }

    [Fact]
    public void Blinding_is_deterministic_and_differs_per_period_and_period_length()
    {
        var seed = Hex(TorVectors[0][0]);
        using var a = KeyBlinding.KeyPair.FromSeed(seed, 7, 1440);
        using var again = KeyBlinding.KeyPair.FromSeed(seed, 7, 1440);
        using var next = KeyBlinding.KeyPair.FromSeed(seed, 8, 1440);
        using var shorter = KeyBlinding.KeyPair.FromSeed(seed, 7, 60);
        Assert.Equal(a.PublicKey, again.PublicKey);
        var message = "hello"u8.ToArray();
        Assert.Equal(a.Sign(message), again.Sign(message));
        Assert.NotEqual(a.PublicKey, next.PublicKey);
        Assert.NotEqual(a.PublicKey, shorter.PublicKey);
        Assert.NotEqual(Hex(TorVectors[0][2]), a.PublicKey);
    }

    [Fact]
    public void A_blinded_signature_verifies_only_under_its_own_blinded_key()
    {
        var seed = Hex(TorVectors[5][0]);
        var message = "introduction points for this period"u8.ToArray();
        using var now = KeyBlinding.KeyPair.FromSeed(seed, 100, 1440);
        using var next = KeyBlinding.KeyPair.FromSeed(seed, 101, 1440);
        var signature = now.Sign(message);
        Assert.True(Verifies(now.PublicKey, message, signature));
        Assert.False(Verifies(next.PublicKey, message, signature));
        Assert.False(Verifies(Hex(TorVectors[5][2]), message, signature));
        for (int i = 0; i < signature.Length; i += 9)
        {
            var bad = (byte[])signature.Clone();
            bad[i] ^= 1;
            Assert.False(Verifies(now.PublicKey, message, bad));
        }
    }

    [Fact]
    public void Signatures_over_many_messages_all_verify()
    {
        var random = new Random(19);
        using var blinded = KeyBlinding.KeyPair.FromSeed(Hex(TorVectors[7][0]), 1, 10);
        for (int n = 0; n < 200; n++)
        {
            var message = new byte[random.Next(0, 300)];
            random.NextBytes(message);
            Assert.True(Verifies(blinded.PublicKey, message, blinded.Sign(message)));
        }
    }

    [Fact]
    public void Keys_outside_the_prime_order_group_are_refused()
    {
        var identity = new byte[32];
        identity[0] = 1;
        var zero = new byte[32];
        var notOnCurve = Hex("0200000000000000000000000000000000000000000000000000000000000000");
        foreach (var key in new[] { identity, zero, notOnCurve, new byte[31] })
        {
            Assert.False(KeyBlinding.IsValidPublicKey(key));
            Assert.Throws<ArgumentException>(() => KeyBlinding.BlindPublicKey(key, 1, 1440));
        }
        Assert.True(KeyBlinding.IsValidPublicKey(ArtiPublicKey));
    }

    [Fact]
    public void A_sender_with_the_blinded_key_and_its_holder_agree_on_the_same_point()
    {
        using var blinded = KeyBlinding.KeyPair.FromSeed(Enumerable.Repeat((byte)3, 32).ToArray(), ArtiPeriod, ArtiPeriodMinutes);
        var ephemeral = new byte[KeyBlinding.PublicKeySize];
        var senderShared = new byte[KeyBlinding.SharedSize];
        var holderShared = new byte[KeyBlinding.SharedSize];
        KeyBlinding.AgreeEphemeral(blinded.PublicKey, ephemeral, senderShared);
        Assert.True(KeyBlinding.IsValidPublicKey(ephemeral));
        Assert.True(blinded.TryAgree(ephemeral, holderShared));
        Assert.Equal(senderShared, holderShared);

        var again = new byte[KeyBlinding.PublicKeySize];
        KeyBlinding.AgreeEphemeral(blinded.PublicKey, again, senderShared);
        Assert.NotEqual(ephemeral, again);
        Assert.NotEqual(holderShared, senderShared);
    }

    [Fact]
    public void Agreement_with_a_point_outside_the_prime_order_group_fails_and_leaves_nothing_behind()
    {
        using var blinded = KeyBlinding.KeyPair.FromSeed(new byte[32], 1, 1440);
        var identity = new byte[32];
        identity[0] = 1;
        var notOnCurve = Hex("0200000000000000000000000000000000000000000000000000000000000000");
        var mixedOrder = Hex("40a4cf5c611d737a2f1c6fcca84d9cabfed80987f186a5a6c57e629bff1af27f"); // 12345·B plus a point of order 8
        foreach (var point in new[] { identity, new byte[32], notOnCurve, mixedOrder, new byte[31] })
        {
            var shared = Enumerable.Repeat((byte)0xAA, KeyBlinding.SharedSize).ToArray();
            Assert.False(blinded.TryAgree(point, shared));
            Assert.All(shared, b => Assert.Equal(0, b));
            Assert.Throws<ArgumentException>(() => KeyBlinding.AgreeEphemeral(point, new byte[32], new byte[32]));
        }
    }

    [Fact]
    public void A_disposed_key_pair_refuses_to_sign()
    {
        var blinded = KeyBlinding.KeyPair.FromSeed(new byte[32], 1, 1440);
        blinded.Dispose();
        Assert.Throws<ObjectDisposedException>(() => blinded.Sign("late"u8));
        Assert.Throws<ObjectDisposedException>(() => blinded.TryAgree(blinded.PublicKey, new byte[32]));
    }
}
