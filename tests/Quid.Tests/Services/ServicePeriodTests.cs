using Microsoft.Extensions.Time.Testing;
using Quid.Crypto;
using Quid.Services;

namespace Quid.Tests.Services;

/// <summary>
/// Periods by the clock: Tor's arithmetic (arti's vector, from C tor), each service's own offset,
/// and the lookup id (values from the independent Python reference, Vectors/session_addresses.py).
/// </summary>
public sealed class ServicePeriodTests
{
    private static byte[] Hex(string hex) => Convert.FromHexString(hex);

    private static readonly byte[] VectorKey = Hex("833990B085C1A688C1D4C8B1F6B56AFAF5A2ECA674449E1D704F83765CCB7BC6");
    private static readonly byte[] VectorBlindedKey = Hex("3A50BF210E8F9EE955AE0014F7A6917FB65EBF098A86305ABB508D1A7291B6D5");

    [Fact]
    public void Tor_time_periods_and_blinding_from_a_clock_reading_to_the_blinded_key()
    {
        // arti key_blinding_testvec: one-day periods shifted by Tor's 12 hours; at this instant the
        // period is 1234, and the identity key blinds to the vector's blinded key.
        var tor = new ServicePeriod(TimeSpan.FromDays(1), TimeSpan.FromHours(12));
        ulong period = tor.Number(DateTimeOffset.Parse("1973-05-20T01:50:33Z", System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(1234UL, period);
        Assert.Equal(VectorBlindedKey, tor.BlindedKey(VectorKey, period));
    }

    [Fact]
    public void A_service_offset_comes_from_its_key()
    {
        Assert.Equal(TimeSpan.FromMinutes(687), ServicePeriod.ForKey(VectorKey).Offset);
        Assert.Equal(TimeSpan.FromMinutes(7), ServicePeriod.ForKey(VectorKey, TimeSpan.FromMinutes(10)).Offset);
        Assert.Equal(ServicePeriod.DefaultLength, ServicePeriod.ForKey(VectorKey).PeriodLength);
        Assert.Equal(1440UL, ServicePeriod.ForKey(VectorKey).LengthMinutes);
        Assert.Equal(ServicePeriod.ForKey(VectorKey).Offset, ServicePeriod.ForAddress(new SessionAddress(VectorKey)).Offset);
    }

    [Fact]
    public void The_lookup_id_hashes_the_blinded_key_the_period_and_its_length()
    {
        var periods = ServicePeriod.ForKey(VectorKey);
        var id = periods.LookupId(VectorBlindedKey, 1234);
        Assert.Equal(Hex("7a962648780b08c22e079b7b1c704423de2e09daf26c0eeb0321a82884801c40"), id);
        Assert.Equal(ServicePeriod.LookupIdSize, id.Length);
        Assert.NotEqual(id, periods.LookupId(VectorBlindedKey, 1235));
        Assert.NotEqual(id, ServicePeriod.ForKey(VectorKey, TimeSpan.FromHours(1)).LookupId(VectorBlindedKey, 1234));
    }

    [Fact]
    public void A_service_period_changes_at_its_own_offset_and_two_services_differ()
    {
        var length = TimeSpan.FromMinutes(10);
        var a = new ServicePeriod(length, TimeSpan.FromMinutes(3));
        var b = new ServicePeriod(length, TimeSpan.FromMinutes(8));
        var clock = new FakeTimeProvider(a.Start(5_000_000));

        Assert.Equal(5_000_000UL, a.Number(clock.GetUtcNow()));
        ulong bBefore = b.Number(clock.GetUtcNow());
        clock.Advance(TimeSpan.FromMinutes(5) - TimeSpan.FromTicks(1));
        Assert.Equal(5_000_000UL, a.Number(clock.GetUtcNow()));
        Assert.Equal(bBefore, b.Number(clock.GetUtcNow()));
        clock.Advance(TimeSpan.FromTicks(1));
        Assert.Equal(bBefore + 1, b.Number(clock.GetUtcNow()));
        Assert.Equal(5_000_000UL, a.Number(clock.GetUtcNow()));
        clock.Advance(TimeSpan.FromMinutes(5));
        Assert.Equal(5_000_001UL, a.Number(clock.GetUtcNow()));
        Assert.Equal(a.End(5_000_000), clock.GetUtcNow());

        var x = ServicePeriod.ForKey(Hex("c2247870536a192d142d056abefca68d6193158e7c1a59c1654c954eccaff894"));
        var y = ServicePeriod.ForKey(VectorKey);
        Assert.NotEqual(x.Offset, y.Offset);
    }

    [Fact]
    public void Every_instant_lies_in_its_period_and_restarting_changes_nothing()
    {
        var random = new Random(3);
        var key = Hex("1519a3b15816a1aafab0b213892026ebf5c0dc232c58b21088d88cb90e9b940d");
        foreach (var length in new[] { TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(7), TimeSpan.FromHours(24) })
        {
            var periods = ServicePeriod.ForKey(key, length);
            for (int n = 0; n < 500; n++)
            {
                var time = DateTimeOffset.UnixEpoch + TimeSpan.FromDays(2) + TimeSpan.FromTicks(random.NextInt64(TimeSpan.FromDays(40_000).Ticks));
                ulong period = periods.Number(time);
                Assert.InRange(time, periods.Start(period), periods.End(period) - TimeSpan.FromTicks(1));
                Assert.Equal(periods.End(period) - periods.Start(period), length);
                // A restart builds the schedule again from the key: the same period.
                Assert.Equal(period, ServicePeriod.ForKey(key, length).Number(time));
            }
        }
    }

    [Fact]
    public void Bad_lengths_offsets_and_times_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ServicePeriod(TimeSpan.Zero, TimeSpan.Zero));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ServicePeriod(TimeSpan.FromSeconds(90), TimeSpan.Zero));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ServicePeriod(TimeSpan.FromMinutes(10), TimeSpan.FromMinutes(10)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ServicePeriod(TimeSpan.FromMinutes(10), TimeSpan.FromMinutes(-1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => ServicePeriod.ForKey(VectorKey, TimeSpan.FromSeconds(30)));
        var periods = new ServicePeriod(TimeSpan.FromMinutes(10), TimeSpan.FromMinutes(3));
        Assert.Throws<ArgumentOutOfRangeException>(() => periods.Number(DateTimeOffset.UnixEpoch + TimeSpan.FromMinutes(3) - TimeSpan.FromTicks(1)));
        Assert.Equal(0UL, periods.Number(DateTimeOffset.UnixEpoch + TimeSpan.FromMinutes(3)));
        Assert.Throws<ArgumentException>(() => periods.LookupId(new byte[31], 1));
        Assert.Throws<ArgumentException>(() => ServicePeriod.ForKey(new byte[16]));
    }
}
