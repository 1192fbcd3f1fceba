using System.Security.Cryptography;
using Quid.Crypto;
using Quid.Wire;

namespace Quid.Tests.Wire;

/// <summary>Service records: what a storer checks, and what it refuses to read.</summary>
public sealed class ServiceRecordTests
{
    private static readonly DateTimeOffset Now = TestDescriptors.Epoch;
    private static readonly TimeSpan Skew = TimeSpan.FromMinutes(5);

    /// <summary>A record signed by a fixed seed's blinded key for period 20,000 of a day's length.</summary>
    public static ServiceRecord Sample(byte fill = 1, DateTimeOffset? published = null, int bodySize = 40)
    {
        using var keys = KeyBlinding.KeyPair.FromSeed(Enumerable.Repeat(fill, 32).ToArray(), 20_000, 1440);
        var at = published ?? Now;
        return ServiceRecord.Create(keys, 20_000, 1440, at, at + TimeSpan.FromHours(1), new byte[bodySize]);
    }

    [Fact]
    public void A_record_carries_the_lookup_id_its_blinded_key_and_period_give_and_verifies()
    {
        var record = Sample();
        var decoded = ServiceRecord.Decode(record.Encoded);

        Assert.Null(decoded.Verify(Now, Skew));
        Assert.Equal(ServiceRecord.LookupIdFor(decoded.BlindedKey, 20_000, 1440), decoded.LookupId.ToArray());
        Assert.Equal((20_000UL, 1440UL, Now, Now + TimeSpan.FromHours(1)), (decoded.Period, decoded.PeriodMinutes, decoded.Published, decoded.Expires));
        Assert.Equal(40, decoded.Body.Length);
        // The lookup id a client works out from the address alone, through ServicePeriod, is the same.
        using var service = Quid.Services.ServiceKeys.Stable(Enumerable.Repeat((byte)1, 32).ToArray());
        Assert.Equal(service.Periods.LookupId(decoded.BlindedKey, 20_000), decoded.LookupId.ToArray());
    }

    [Fact]
    public void A_changed_byte_anywhere_fails_verification_and_an_expired_or_future_record_is_refused()
    {
        var record = Sample();
        for (int i = 0; i < record.Encoded.Length; i++)
        {
            var changed = (byte[])record.Encoded.Clone();
            changed[i] ^= 0x01;
            ServiceRecord decoded;
            try
            {
                decoded = ServiceRecord.Decode(changed);
            }
            catch (WireException)
            {
                continue; // the version, or a length
            }
            Assert.NotNull(decoded.Verify(Now, Skew));
        }
        Assert.Equal(WireError.Expired, record.Verify(Now + TimeSpan.FromHours(1), Skew));
        Assert.Equal(WireError.BadField, Sample(published: Now + TimeSpan.FromMinutes(6)).Verify(Now, Skew));
        Assert.Null(Sample(published: Now + TimeSpan.FromMinutes(4)).Verify(Now, Skew));
    }

    [Fact]
    public void Truncated_oversized_and_random_input_is_only_ever_a_wire_exception()
    {
        var record = Sample(bodySize: ServiceRecord.MaxBodySize);
        Assert.Equal(ServiceRecord.MaxEncodedSize, record.Encoded.Length);
        for (int length = 0; length < record.Encoded.Length; length++)
            Assert.Equal(WireError.Truncated, Assert.Throws<WireException>(() => ServiceRecord.Decode(record.Encoded.AsSpan(0, length))).Error);
        Assert.Equal(WireError.Oversized, Assert.Throws<WireException>(() => ServiceRecord.Decode([.. record.Encoded, 0])).Error);
        Assert.Throws<ArgumentException>(() => Sample(bodySize: ServiceRecord.MaxBodySize + 1));

        var random = new Random(19);
        for (int i = 0; i < 5_000; i++)
        {
            byte[] input = RandomNumberGenerator.GetBytes(random.Next(0, 200));
            if (input.Length > 0) input[0] = ServiceRecord.Version;
            try
            {
                var decoded = ServiceRecord.Decode(input);
                Assert.NotNull(decoded.Verify(Now, Skew));
            }
            catch (WireException)
            {
            }
        }
    }
}
