using System.Security.Cryptography;
using Quid.Services;
using Quid.Wire;

namespace Quid.Tests.Services;

/// <summary>A record's body: readable with the address, sealed against the ultrapeers that store it.</summary>
public sealed class ServiceDescriptorTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 5, 0, 0, 0, TimeSpan.Zero);

    private static (ServiceKeys Keys, ulong Period, ServiceRecord Record, ServiceDescriptor Descriptor) Published(byte fill = 7)
    {
        var keys = ServiceKeys.Stable(Enumerable.Repeat(fill, 32).ToArray());
        ulong period = keys.Periods.Number(Now);
        var descriptor = new ServiceDescriptor(RandomNumberGenerator.GetBytes(32));
        return (keys, period, keys.Record(period, descriptor, Now, TimeSpan.FromHours(1)), descriptor);
    }

    [Fact]
    public void A_client_with_the_address_finds_the_record_under_the_lookup_id_it_works_out_and_opens_the_descriptor()
    {
        var (keys, period, record, descriptor) = Published();
        using var _ = keys;
        var address = SessionAddress.Parse(keys.FixedAddress!.ToString());

        // What the client does with the address alone.
        var periods = ServicePeriod.ForAddress(address);
        ulong now = periods.Number(Now);
        Assert.Equal(period, now);
        Assert.Equal(periods.LookupId(periods.BlindedKey(address.PublicKey, now), now), record.LookupId.ToArray());
        Assert.Null(ServiceRecord.Decode(record.Encoded).Verify(Now, TimeSpan.FromMinutes(5)));

        Assert.Equal(descriptor.HandshakeKey, ServiceDescriptor.Open(record, address, periods).HandshakeKey);
    }

    [Fact]
    public void Another_address_a_changed_body_or_an_odd_size_does_not_open()
    {
        var (keys, _, record, _) = Published();
        using var __ = keys;
        var address = keys.FixedAddress!;
        using var other = ServiceKeys.Stable(Enumerable.Repeat((byte)8, 32).ToArray());

        var wrong = Assert.Throws<ServiceDescriptorException>(() => ServiceDescriptor.Open(record, other.FixedAddress!, other.Periods));
        Assert.Equal(ServiceDescriptorError.NotForThisAddress, wrong.Error);

        // The same key's record, its sealed body changed byte by byte (re-signed, as a storer could not).
        using var blind = keys.Blind(record.Period);
        var body = record.Body.ToArray();
        for (int i = 0; i < body.Length; i++)
        {
            var changed = (byte[])body.Clone();
            changed[i] ^= 0x80;
            var forged = ServiceRecord.Create(blind, record.Period, record.PeriodMinutes, record.Published, record.Expires, changed);
            Assert.Equal(ServiceDescriptorError.NotForThisAddress, Assert.Throws<ServiceDescriptorException>(() => ServiceDescriptor.Open(forged, address, keys.Periods)).Error);
        }
        var odd = ServiceRecord.Create(blind, record.Period, record.PeriodMinutes, record.Published, record.Expires, body.AsSpan(0, body.Length - 1));
        Assert.Equal(ServiceDescriptorError.Malformed, Assert.Throws<ServiceDescriptorException>(() => ServiceDescriptor.Open(odd, address, keys.Periods)).Error);
    }

    [Fact]
    public void A_descriptor_sealed_for_one_period_does_not_open_as_another_and_each_seal_differs()
    {
        var (keys, period, record, descriptor) = Published();
        using var _ = keys;
        var address = keys.FixedAddress!;
        using var blind = keys.Blind(period + 1);
        // Next period's signature and lookup id over this period's sealed body.
        var moved = ServiceRecord.Create(blind, period + 1, keys.Periods.LengthMinutes, Now, Now + TimeSpan.FromHours(1), record.Body);
        Assert.Equal(ServiceDescriptorError.NotForThisAddress, Assert.Throws<ServiceDescriptorException>(() => ServiceDescriptor.Open(moved, address, keys.Periods)).Error);
        Assert.NotEqual(descriptor.Seal(address, keys.Periods, period), descriptor.Seal(address, keys.Periods, period));
    }
}
