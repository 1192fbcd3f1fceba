using System.Security.Cryptography;
using NSec.Cryptography;
using Quid.Crypto;
using Quid.Services;

namespace Quid.Tests.Services;

/// <summary>
/// The three kinds of address: what the service derives with its secret and what a client
/// derives from the address (or the shared secret) must agree period by period. Moving
/// addresses are checked against the independent Python reference, Vectors/session_addresses.py.
/// </summary>
public sealed class ServiceKeysTests
{
    private static byte[] Hex(string hex) => Convert.FromHexString(hex);

    private static readonly byte[] Seed = Hex("d51385942033a76dc17f089a59e6a5a7fe80d9c526ae8ddd8c3a506b99d3d0a6");
    private static readonly byte[] SeedPublicKey = Hex("73cfa1189a723aad7966137cbffa35140bb40d7e16eae4c40b79b5f0360dd65a");
    private static ServiceSecret VectorSecret() => new(Enumerable.Range(0, 32).Select(i => (byte)i).ToArray());

    private static bool Verifies(byte[] publicKey, byte[] message, byte[] signature) => NodeIdentity.Verify(publicKey, message, signature);

    [Fact]
    public void A_stable_service_has_one_address_and_a_client_finds_its_blinded_key_and_lookup_id_from_it()
    {
        using var keys = ServiceKeys.Stable(Seed);
        Assert.Equal(AddressKind.Stable, keys.Kind);
        Assert.Equal(new SessionAddress(SeedPublicKey), keys.FixedAddress);
        var address = SessionAddress.Parse(keys.FixedAddress!.ToString());

        var client = ServicePeriod.ForAddress(address);
        Assert.Equal(keys.Periods.Offset, client.Offset);
        foreach (ulong period in new ulong[] { 0, 1, 20_000, 20_001 })
        {
            Assert.Equal(address, keys.Address(period));
            using var blinded = keys.Blind(period);
            var blindedKey = client.BlindedKey(address.PublicKey, period);
            Assert.Equal(blindedKey, blinded.PublicKey);
            Assert.Equal(client.LookupId(blindedKey, period), keys.LookupId(period));
        }
        Assert.NotEqual(keys.LookupId(1), keys.LookupId(2));
    }

    [Fact]
    public void A_blinded_signature_verifies_under_the_period_key_and_not_the_address_key_or_another_period()
    {
        using var keys = ServiceKeys.Stable(Seed);
        var message = "descriptor"u8.ToArray();
        using var now = keys.Blind(20_000);
        using var next = keys.Blind(20_001);
        var signature = now.Sign(message);
        Assert.True(Verifies(now.PublicKey, message, signature));
        Assert.False(Verifies(next.PublicKey, message, signature));
        Assert.False(Verifies(SeedPublicKey, message, signature));
    }

    [Fact]
    public void An_ephemeral_service_has_a_new_address_each_start()
    {
        using var first = ServiceKeys.Ephemeral();
        using var second = ServiceKeys.Ephemeral(TimeSpan.FromMinutes(5));
        Assert.Equal(AddressKind.Ephemeral, first.Kind);
        Assert.NotNull(first.FixedAddress);
        Assert.NotEqual(first.FixedAddress, second.FixedAddress);
        Assert.Equal(first.FixedAddress, first.Address(99));
        Assert.Equal(TimeSpan.FromMinutes(5), second.Periods.PeriodLength);
        using var blinded = second.Blind(3);
        Assert.Equal(ServicePeriod.ForAddress(second.FixedAddress!, TimeSpan.FromMinutes(5)).BlindedKey(second.FixedAddress!.PublicKey, 3), blinded.PublicKey);
    }

    [Fact]
    public void A_moving_address_matches_the_reference_derivation()
    {
        using var secret = VectorSecret();
        using var keys = ServiceKeys.Moving(secret);
        Assert.Equal(AddressKind.Moving, keys.Kind);
        Assert.Null(keys.FixedAddress);
        Assert.Equal(TimeSpan.FromMinutes(1032), keys.Periods.Offset);
        Assert.Equal("rz67sy2mwopglumq6go6eebpy6rgk6l73tohtwltkibe7nbu45t56kyb.quid", keys.Address(0).ToString());
        Assert.Equal("bkfvut3clumrcqzuo3v5k3dltzja73edcg7qp3h25msgfofncf5xwjab.quid", keys.Address(1).ToString());
        Assert.Equal("e24aexiwmcwjpxhy4aqajmacc4w4kkg3ehk5bi5xihellaq5mdlgzkyb.quid", keys.Address(20_000).ToString());
    }

    [Fact]
    public void The_same_secret_gives_the_same_address_per_period_and_a_new_one_each_period()
    {
        using var secret = ServiceSecret.Generate();
        using var service = ServiceKeys.Moving(secret);
        // A client holding the secret, pasted from its text form.
        using var shared = ServiceSecret.Parse(secret.ToText());
        using var client = ServiceKeys.Moving(shared);
        using var stranger = ServiceKeys.Moving(ServiceSecret.Generate());

        var seen = new HashSet<SessionAddress>();
        for (ulong period = 100; period < 110; period++)
        {
            var address = service.Address(period);
            Assert.Equal(address, client.Address(period));
            Assert.NotEqual(address, stranger.Address(period));
            Assert.True(seen.Add(address));
            Assert.Equal(service.LookupId(period), client.LookupId(period));
            Assert.NotEqual(service.LookupId(period), stranger.LookupId(period));

            using var blinded = service.Blind(period);
            Assert.Equal(service.Periods.BlindedKey(address.PublicKey, period), blinded.PublicKey);
            var message = "moving descriptor"u8.ToArray();
            Assert.True(Verifies(blinded.PublicKey, message, blinded.Sign(message)));
            Assert.False(Verifies(address.PublicKey.ToArray(), message, blinded.Sign(message)));
        }
        Assert.Equal(service.Periods.Offset, client.Periods.Offset);
    }

    [Fact]
    public void Keys_outlive_the_secret_they_were_made_from_and_refuse_use_once_disposed()
    {
        var secret = VectorSecret();
        var keys = ServiceKeys.Moving(secret);
        secret.Dispose();
        Assert.Equal("rz67sy2mwopglumq6go6eebpy6rgk6l73tohtwltkibe7nbu45t56kyb.quid", keys.Address(0).ToString());
        keys.Dispose();
        Assert.Throws<ObjectDisposedException>(() => keys.Address(0));
        Assert.Throws<ObjectDisposedException>(() => keys.Blind(0));
        Assert.Throws<ObjectDisposedException>(() => keys.LookupId(0));
        Assert.Throws<ArgumentException>(() => ServiceKeys.Stable(new byte[31]));
    }

    [Fact]
    public void A_stable_address_is_the_public_key_NSec_derives_from_the_seed()
    {
        for (int n = 0; n < 10; n++)
        {
            using var key = Key.Create(SignatureAlgorithm.Ed25519, new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport });
            var seed = key.Export(KeyBlobFormat.RawPrivateKey);
            using var keys = ServiceKeys.Stable(seed);
            Assert.Equal(key.PublicKey.Export(KeyBlobFormat.RawPublicKey), keys.FixedAddress!.PublicKey.ToArray());
        }
    }

    [Fact]
    public void The_handshake_key_is_the_same_for_every_run_of_a_service_in_a_period_and_differs_between_periods_and_services()
    {
        var seed = Enumerable.Repeat((byte)3, 32).ToArray();
        using var run1 = ServiceKeys.Stable(seed);
        using var run2 = ServiceKeys.Stable(seed);
        using var other = ServiceKeys.Stable(Enumerable.Repeat((byte)4, 32).ToArray());
        byte[] Public(ServiceKeys keys, ulong period)
        {
            using var key = keys.HandshakeKey(period);
            return key.PublicKey.Export(KeyBlobFormat.RawPublicKey);
        }

        Assert.Equal(Public(run1, 20000), Public(run2, 20000));
        Assert.NotEqual(Public(run1, 20000), Public(run1, 20001));
        Assert.NotEqual(Public(run1, 20000), Public(other, 20000));
        using var moving = ServiceKeys.Moving(new ServiceSecret(seed));
        Assert.NotEqual(Public(moving, 20000), Public(moving, 20001));
    }

    [Fact]
    public void A_private_services_lookup_id_and_blinded_key_need_its_access_key_and_its_records_open_only_with_it()
    {
        var seed = Enumerable.Repeat((byte)5, 32).ToArray();
        using var access = ServiceSecret.Generate();
        using var service = ServiceKeys.Stable(seed, access: new ServiceSecret(access.Bytes));
        using var sameAddressPublic = ServiceKeys.Stable(seed);
        var address = service.FixedAddress!;
        var periods = ServicePeriod.ForAddress(address);
        ulong period = periods.Number(DateTimeOffset.UtcNow);

        // Same address, another lookup id: without the key, a client looks up a name nobody publishes.
        Assert.Equal(address, sameAddressPublic.FixedAddress);
        Assert.NotEqual(sameAddressPublic.LookupId(period), service.LookupId(period));
        Assert.Equal(periods.LookupId(periods.BlindedKey(address.PublicKey, period, access), period), service.LookupId(period));
        using var blinded = service.Blind(period);
        Assert.Equal(periods.BlindedKey(address.PublicKey, period, access), blinded.PublicKey);

        var record = service.Record(period, new ServiceDescriptor(RandomNumberGenerator.GetBytes(32)), DateTimeOffset.UtcNow, TimeSpan.FromHours(1));
        Assert.Null(record.Verify(DateTimeOffset.UtcNow, TimeSpan.FromMinutes(5)));
        Assert.NotNull(ServiceDescriptor.Open(record, address, periods, access));
        Assert.Throws<ServiceDescriptorException>(() => ServiceDescriptor.Open(record, address, periods));
    }

    [Fact]
    public void A_client_holding_only_a_moving_services_address_of_the_day_computes_the_lookup_id_its_records_are_filed_under()
    {
        using var secret = ServiceSecret.Generate();
        using var service = ServiceKeys.Moving(new ServiceSecret(secret.Bytes));
        var start = new DateTimeOffset(2026, 12, 5, 0, 0, 0, TimeSpan.Zero);
        // Every hour of two days: the address's own schedule and the secret's straddle each other somewhere.
        for (int hour = 0; hour < 48; hour++)
        {
            var now = start.AddHours(hour);
            ulong period = service.Periods.Number(now);
            var address = service.Address(period);
            var client = ServicePeriod.ForAddress(address);
            ulong blinding = client.Number(now);

            Assert.Equal(blinding, service.BlindingPeriod(period, now));
            Assert.Equal(client.LookupId(client.BlindedKey(address.PublicKey, blinding), blinding), service.LookupId(period, blinding));
            using var blinded = service.Blind(period, blinding);
            Assert.Equal(client.BlindedKey(address.PublicKey, blinding), blinded.PublicKey);
        }
    }
}
