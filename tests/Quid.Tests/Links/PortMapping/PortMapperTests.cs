using System.Buffers.Binary;
using System.Net;
using Microsoft.Extensions.Time.Testing;
using Quid.Links.PortMapping;

namespace Quid.Tests.Links.PortMapping;

/// <summary>The port mapper on a fake clock, answered by a gateway the test plays: what it sends, when, and what it concludes.</summary>
public sealed class PortMapperTests
{
    private static readonly IPAddress Client = IPAddress.Parse("10.0.0.2");
    private static readonly IPAddress Outside = IPAddress.Parse("198.18.0.1");
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 4, 12, 0, 0, TimeSpan.Zero));
    private readonly DateTimeOffset _start;

    public PortMapperTests() => _start = _time.GetUtcNow();

    private PortMapper Mapper() => new(Client, 7843, _time);

    /// <summary>A gateway's PCP answer to <paramref name="request"/>, with its nonce and ports.</summary>
    private static byte[] PcpAnswer(byte[] request, PcpResult result, uint lifetime, IPAddress? external = null, int? externalPort = null)
    {
        var answer = new byte[Pcp.MapSize];
        answer[0] = 2;
        answer[1] = 0x81;
        answer[3] = (byte)result;
        BinaryPrimitives.WriteUInt32BigEndian(answer.AsSpan(4), lifetime);
        BinaryPrimitives.WriteUInt32BigEndian(answer.AsSpan(8), 1);
        request.AsSpan(24, 36).CopyTo(answer.AsSpan(24));
        if (externalPort is { } port) BinaryPrimitives.WriteUInt16BigEndian(answer.AsSpan(42), (ushort)port);
        (external ?? Outside).MapToIPv6().TryWriteBytes(answer.AsSpan(44, 16), out _);
        return answer;
    }

    private static byte[] NatPmpAddressAnswer(IPAddress address) => [0, 128, 0, 0, 0, 0, 0, 1, .. address.GetAddressBytes()];

    private static byte[] NatPmpMapAnswer(ushort external, uint lifetime)
    {
        var answer = new byte[16];
        answer[1] = 130;
        BinaryPrimitives.WriteUInt16BigEndian(answer.AsSpan(8), 7843);
        BinaryPrimitives.WriteUInt16BigEndian(answer.AsSpan(10), external);
        BinaryPrimitives.WriteUInt32BigEndian(answer.AsSpan(12), lifetime);
        return answer;
    }

    /// <summary>Lets the clock run to each wake the mapper asks for, with no answer, until <paramref name="until"/>; returns what it sent and when (ms after the start).</summary>
    private List<(double At, byte[] Datagram)> Unanswered(PortMapper mapper, MapperStep step, Func<MapperStep, bool> until)
    {
        var sent = step.Send.Select(d => ((_time.GetUtcNow() - _start).TotalMilliseconds, d)).ToList();
        for (int i = 0; i < 100 && !until(step); i++)
        {
            _time.Advance(step.WakeAt!.Value - _time.GetUtcNow());
            step = mapper.Wake();
            sent.AddRange(step.Send.Select(d => ((_time.GetUtcNow() - _start).TotalMilliseconds, d)));
        }
        Assert.True(until(step), "the mapper never got there");
        return sent;
    }

    [Fact]
    public void PCP_is_asked_first_and_its_answer_is_the_mapping_renewed_half_way_with_the_same_nonce()
    {
        var mapper = Mapper();
        var first = mapper.Start();
        var request = Assert.Single(first.Send);
        Assert.Equal(Pcp.MapRequest(request.AsSpan(24, 12), Client, 7843, 7843, null, 7200), request);

        var got = mapper.Receive(PcpAnswer(request, PcpResult.Success, 3600, externalPort: 7843));
        Assert.Equal(new IPEndPoint(Outside, 7843), got.Obtained?.External);
        Assert.Equal(MappingProtocol.Pcp, got.Obtained?.Protocol);
        Assert.Equal(MapperState.Mapped, mapper.State);
        Assert.Equal(_start + TimeSpan.FromMinutes(30), got.WakeAt);

        _time.Advance(TimeSpan.FromMinutes(30) - TimeSpan.FromSeconds(1));
        Assert.Empty(mapper.Wake().Send);
        _time.Advance(TimeSpan.FromSeconds(1));
        var renewal = Assert.Single(mapper.Wake().Send);
        // The same nonce, suggesting the port and address we hold.
        Assert.Equal(Pcp.MapRequest(request.AsSpan(24, 12), Client, 7843, 7843, Outside, 7200), renewal);
        // The same mapping again is no news; a new outside address is.
        Assert.Null(mapper.Receive(PcpAnswer(renewal, PcpResult.Success, 3600, externalPort: 7843)).Obtained);
        _time.Advance(TimeSpan.FromMinutes(30));
        var again = Assert.Single(mapper.Wake().Send);
        var moved = mapper.Receive(PcpAnswer(again, PcpResult.Success, 3600, IPAddress.Parse("198.18.0.9"), 7843));
        Assert.Equal(new IPEndPoint(IPAddress.Parse("198.18.0.9"), 7843), moved.Obtained?.External);
    }

    [Fact]
    public void A_gateway_that_answers_nothing_gets_PCP_four_times_then_NAT_PMP_nine_times_doubling_from_250_ms_then_a_failure_and_a_retry_later()
    {
        var mapper = Mapper();
        var sent = Unanswered(mapper, mapper.Start(), s => s.Failure is not null);

        Assert.Equal([0, 250, 750, 1750], sent.Where(s => s.Datagram[0] == Pcp.Version).Select(s => s.At));
        var natPmp = sent.Where(s => s.Datagram[0] == NatPmp.Version).ToList();
        Assert.All(natPmp, s => Assert.Equal(NatPmp.ExternalAddressRequest(), s.Datagram));
        Assert.Equal(Enumerable.Range(0, 9).Select(k => 3750 + 250.0 * ((1 << k) - 1)), natPmp.Select(s => s.At));
        Assert.Equal(MapperState.Failed, mapper.State);
        Assert.Contains("answered neither PCP nor NAT-PMP", mapper.Failure, StringComparison.Ordinal);
        Assert.Null(mapper.Current);

        // Ten minutes later it starts again, with PCP.
        var failedAt = _time.GetUtcNow();
        var retry = Unanswered(mapper, mapper.Wake(), s => s.Send.Count > 0);
        Assert.Equal(failedAt + TimeSpan.FromMinutes(10), _start + TimeSpan.FromMilliseconds(retry[^1].At));
        Assert.Equal(Pcp.Version, retry[^1].Datagram[0]);
    }

    [Fact]
    public void A_NAT_PMP_gateway_answering_PCP_with_UNSUPP_VERSION_is_asked_its_address_then_the_mapping()
    {
        var mapper = Mapper();
        mapper.Start();
        var askAddress = mapper.Receive([0, 129, 0, 1, 0, 0, 0, 1]);
        Assert.Equal(NatPmp.ExternalAddressRequest(), Assert.Single(askAddress.Send));
        var askMapping = mapper.Receive(NatPmpAddressAnswer(Outside));
        Assert.Equal(NatPmp.MapTcpRequest(7843, 7843, 7200), Assert.Single(askMapping.Send));

        var got = mapper.Receive(NatPmpMapAnswer(7844, 7200));
        Assert.Equal(new IPEndPoint(Outside, 7844), got.Obtained?.External);
        Assert.Equal(MappingProtocol.NatPmp, got.Obtained?.Protocol);
        Assert.Equal(_start + TimeSpan.FromHours(1), got.WakeAt);

        // Renewal asks the address again, then the port it holds.
        _time.Advance(TimeSpan.FromHours(1));
        Assert.Equal(NatPmp.ExternalAddressRequest(), Assert.Single(mapper.Wake().Send));
        Assert.Equal(NatPmp.MapTcpRequest(7843, 7844, 7200), Assert.Single(mapper.Receive(NatPmpAddressAnswer(Outside)).Send));
    }

    [Theory]
    [InlineData(PcpResult.NotAuthorized, "PCP NotAuthorized")]
    [InlineData(PcpResult.NoResources, "PCP NoResources")]
    [InlineData((PcpResult)99, "PCP result 99")]
    public void A_PCP_refusal_is_a_failure_that_says_the_result(PcpResult result, string said)
    {
        var mapper = Mapper();
        var request = Assert.Single(mapper.Start().Send);
        var refused = mapper.Receive(PcpAnswer(request, result, 30, externalPort: 0));
        Assert.Contains(said, refused.Failure, StringComparison.Ordinal);
        Assert.Equal(_start + TimeSpan.FromMinutes(10), refused.WakeAt);
    }

    [Fact]
    public void A_NAT_PMP_refusal_and_a_gateway_without_an_outside_address_are_failures_that_say_why()
    {
        var mapper = Mapper();
        mapper.Start();
        mapper.Receive([0, 129, 0, 1, 0, 0, 0, 1]);
        Assert.Contains("no external address: NAT-PMP NetworkFailure", mapper.Receive([0, 128, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0]).Failure, StringComparison.Ordinal);

        var other = Mapper();
        other.Start();
        other.Receive([0, 129, 0, 1, 0, 0, 0, 1]);
        other.Receive(NatPmpAddressAnswer(Outside));
        Assert.Contains("NAT-PMP NotAuthorized", other.Receive([0, 130, 0, 2, 0, 0, 0, 1]).Failure, StringComparison.Ordinal);
    }

    [Fact]
    public void Datagrams_that_answer_something_else_change_nothing()
    {
        var mapper = Mapper();
        var first = mapper.Start();
        var request = first.Send[0];
        var foreign = PcpAnswer(request, PcpResult.Success, 3600, externalPort: 7843);
        foreign[30] ^= 1;
        foreach (var datagram in new[] { foreign, [], [0xFF], Convert.FromHexString("0281"), NatPmpMapAnswer(7843, 60), [0, 129, 0, 0, 0, 0, 0, 1] })
        {
            var step = mapper.Receive(datagram);
            Assert.Empty(step.Send);
            Assert.Null(step.Obtained);
            Assert.Null(step.Failure);
            Assert.Equal(first.WakeAt, step.WakeAt);
        }
        Assert.Equal(MapperState.Mapping, mapper.State);
    }

    [Fact]
    public void Stop_deletes_the_mapping_with_lifetime_0_and_the_same_nonce_and_gives_up_after_three_tries()
    {
        var mapper = Mapper();
        var request = Assert.Single(mapper.Start().Send);
        mapper.Receive(PcpAnswer(request, PcpResult.Success, 3600, externalPort: 7843));

        var stop = mapper.Stop();
        var delete = Assert.Single(stop.Send);
        Assert.Equal(Pcp.MapRequest(request.AsSpan(24, 12), Client, 7843, 0, null, 0), delete);
        Assert.Equal(MapperState.Deleting, mapper.State);
        var sent = Unanswered(mapper, stop, s => s.WakeAt is null);
        Assert.Equal([0, 250, 750], sent.Select(s => s.At));
        Assert.Equal(MapperState.Stopped, mapper.State);

        var answered = Mapper();
        var asked = Assert.Single(answered.Start().Send);
        answered.Receive(PcpAnswer(asked, PcpResult.Success, 3600, externalPort: 7843));
        var deleting = Assert.Single(answered.Stop().Send);
        Assert.Null(answered.Receive(PcpAnswer(deleting, PcpResult.Success, 0, externalPort: 0)).WakeAt);
        Assert.Equal(MapperState.Stopped, answered.State);

        // With no mapping held there is nothing to delete.
        var never = Mapper();
        never.Start();
        Assert.Empty(never.Stop().Send);
        Assert.Equal(MapperState.Stopped, never.State);
    }

    [Fact]
    public void A_lifetime_of_seconds_is_renewed_after_30_s_not_every_half_second()
    {
        var mapper = Mapper();
        var request = Assert.Single(mapper.Start().Send);
        Assert.Equal(_start + Mapping.MinRenewal, mapper.Receive(PcpAnswer(request, PcpResult.Success, 1, externalPort: 7843)).WakeAt);
    }

    [Fact]
    public void A_renewal_nobody_answers_keeps_the_mapping_until_it_expires_then_fails()
    {
        var mapper = Mapper();
        var request = Assert.Single(mapper.Start().Send);
        mapper.Receive(PcpAnswer(request, PcpResult.Success, 600, externalPort: 7843));
        _time.Advance(TimeSpan.FromMinutes(5));
        var step = Unanswered(mapper, mapper.Wake(), s => s.Send.Count == 0 && mapper.State == MapperState.Mapped && s.WakeAt == _start + TimeSpan.FromMinutes(10));
        Assert.Equal(4, step.Count);
        Assert.NotNull(mapper.Current);

        _time.Advance(_start + TimeSpan.FromMinutes(10) - _time.GetUtcNow());
        var expired = mapper.Wake();
        Assert.Contains("did not answer the renewal", expired.Failure, StringComparison.Ordinal);
        Assert.Null(mapper.Current);
    }
}
