using System.Net;
using Microsoft.Extensions.Time.Testing;
using Quid.Links;

namespace Quid.Tests.Links;

public sealed class HandshakeAdmissionTests
{
    private readonly FakeTimeProvider _time = new();

    private HandshakeAdmission Admission(LinkOptions options) => new(options, _time);

    private static IPAddress Ip(string text) => IPAddress.Parse(text);

    [Fact]
    public void A_source_has_at_most_its_share_of_handshakes_in_progress()
    {
        var admission = Admission(new LinkOptions { MaxHandshakesPerSource = 2 });
        var first = admission.TryAdmit(Ip("198.51.100.7")).Slot!;
        Assert.NotNull(admission.TryAdmit(Ip("198.51.100.7")).Slot);
        Assert.Equal(HandshakeRefusal.SourceBusy, admission.TryAdmit(Ip("198.51.100.7")).Refusal);
        // Another address of the same /24 is another source.
        Assert.NotNull(admission.TryAdmit(Ip("198.51.100.8")).Slot);

        admission.Release(first);
        Assert.NotNull(admission.TryAdmit(Ip("198.51.100.7")).Slot);
    }

    [Fact]
    public void A_source_starts_handshakes_at_its_rate_after_a_burst()
    {
        var admission = Admission(new LinkOptions { HandshakeRatePerSource = 2, HandshakeBurstPerSource = 3 });
        for (int i = 0; i < 3; i++) admission.Release(admission.TryAdmit(Ip("198.51.100.7")).Slot!);
        Assert.Equal(HandshakeRefusal.SourceRate, admission.TryAdmit(Ip("198.51.100.7")).Refusal);

        _time.Advance(TimeSpan.FromMilliseconds(400));
        Assert.Equal(HandshakeRefusal.SourceRate, admission.TryAdmit(Ip("198.51.100.7")).Refusal);
        _time.Advance(TimeSpan.FromMilliseconds(200));
        admission.Release(admission.TryAdmit(Ip("198.51.100.7")).Slot!);
        Assert.Equal(HandshakeRefusal.SourceRate, admission.TryAdmit(Ip("198.51.100.7")).Refusal);
    }

    [Fact]
    public void When_every_slot_is_taken_a_newcomer_network_takes_the_oldest_slot_of_the_busiest()
    {
        var admission = Admission(new LinkOptions { MaxConcurrentHandshakes = 4, MaxHandshakesPerSource = 1 });
        var flood = Enumerable.Range(1, 4).Select(i => admission.TryAdmit(Ip($"203.0.113.{i}")).Slot!).ToList();
        // Another address of the flooding /24 gets nothing: its network already has every slot.
        Assert.Equal(HandshakeRefusal.Full, admission.TryAdmit(Ip("203.0.113.99")).Refusal);

        var newcomer = admission.TryAdmit(Ip("192.0.2.1"));
        Assert.NotNull(newcomer.Slot);
        Assert.Same(flood[0], newcomer.Evicted);
        Assert.False(flood[0].Abandoned.IsCompleted);
        newcomer.Evicted!.Abandon();
        Assert.True(flood[0].Abandoned.IsCompleted);
        Assert.Equal(4, admission.InProgress);

        // Releasing the evicted slot when its handshake ends frees nothing twice.
        admission.Release(flood[0]);
        Assert.Equal(4, admission.InProgress);
    }

    [Fact]
    public void Equal_shares_are_kept_not_churned()
    {
        var admission = Admission(new LinkOptions { MaxConcurrentHandshakes = 4, MaxHandshakesPerSource = 2 });
        Assert.NotNull(admission.TryAdmit(Ip("203.0.113.1")).Slot);
        Assert.NotNull(admission.TryAdmit(Ip("203.0.113.1")).Slot);
        Assert.NotNull(admission.TryAdmit(Ip("192.0.2.1")).Slot);
        Assert.NotNull(admission.TryAdmit(Ip("192.0.2.1")).Slot);

        Assert.Equal(HandshakeRefusal.Full, admission.TryAdmit(Ip("203.0.113.2")).Refusal);
        Assert.Equal(HandshakeRefusal.Full, admission.TryAdmit(Ip("192.0.2.2")).Refusal);
        // A third network would take from one of them: 2 is more than its 0 + 1.
        Assert.NotNull(admission.TryAdmit(Ip("198.51.100.1")).Evicted);
    }

    [Fact]
    public void IPv6_sources_are_64s_and_networks_48s()
    {
        var admission = Admission(new LinkOptions { MaxConcurrentHandshakes = 4, MaxHandshakesPerSource = 2 });
        // Two addresses of one /64 are one source.
        Assert.NotNull(admission.TryAdmit(Ip("2001:db8:1:1::1")).Slot);
        Assert.NotNull(admission.TryAdmit(Ip("2001:db8:1:1::2")).Slot);
        Assert.Equal(HandshakeRefusal.SourceBusy, admission.TryAdmit(Ip("2001:db8:1:1:ffff::3")).Refusal);
        // Other /64s of the same /48 are other sources of the same network.
        Assert.NotNull(admission.TryAdmit(Ip("2001:db8:1:2::1")).Slot);
        Assert.NotNull(admission.TryAdmit(Ip("2001:db8:1:3::1")).Slot);
        Assert.Equal(HandshakeRefusal.Full, admission.TryAdmit(Ip("2001:db8:1:4::1")).Refusal);
        // Another /48 is another network.
        Assert.NotNull(admission.TryAdmit(Ip("2001:db8:2::1")).Evicted);
    }

    [Fact]
    public void An_IPv4_mapped_address_is_the_IPv4_address()
    {
        Assert.Equal(HandshakeAdmission.Keys(Ip("192.0.2.1")), HandshakeAdmission.Keys(Ip("::ffff:192.0.2.1")));
        Assert.NotEqual(HandshakeAdmission.Keys(Ip("192.0.2.1")).Source, HandshakeAdmission.Keys(Ip("192.0.2.2")).Source);
        Assert.Equal(HandshakeAdmission.Keys(Ip("192.0.2.1")).Network, HandshakeAdmission.Keys(Ip("192.0.2.200")).Network);
        Assert.NotEqual(HandshakeAdmission.Keys(Ip("192.0.2.1")).Network, HandshakeAdmission.Keys(Ip("192.0.3.1")).Network);
    }

    [Fact]
    public void The_table_forgets_idle_sources_first_and_never_a_busy_one()
    {
        var admission = Admission(new LinkOptions { MaxConcurrentHandshakes = 2, MaxHandshakesPerSource = 1, MaxTrackedSources = 10, HandshakeBurstPerSource = 1 });
        Assert.NotNull(admission.TryAdmit(Ip("192.0.2.1")).Slot);
        var spent = admission.TryAdmit(Ip("192.0.2.2")).Slot!;
        admission.Release(spent);
        // 192.0.2.1 is busy and 192.0.2.2 has spent its burst; many other sources pass by.
        for (int i = 0; i < 100; i++) admission.Release(admission.TryAdmit(Ip($"198.51.{i / 200}.{1 + i % 200}")).Slot!);
        Assert.Equal(10, admission.TrackedSources);

        // The busy source is still counted; the idle one was forgotten, and with it its spent bucket.
        Assert.Equal(HandshakeRefusal.SourceBusy, admission.TryAdmit(Ip("192.0.2.1")).Refusal);
        Assert.NotNull(admission.TryAdmit(Ip("192.0.2.2")).Slot);
    }

    [Fact]
    public void Limits_that_cannot_work_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Admission(new LinkOptions { MaxTrackedSources = 64, MaxConcurrentHandshakes = 64 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => Admission(new LinkOptions { HandshakeRatePerSource = 0 }));
    }
}
