using System.Buffers.Binary;
using Quid.Circuits;
using Quid.Crypto;
using Quid.Links;
using Quid.Tests.Integration;
using Quid.Wire;

namespace Quid.Tests.Circuits;

/// <summary>Building circuits hop by hop, and what a hop does with a CREATE it must not accept.</summary>
public sealed class CircuitBuildTests
{
    private const uint DialerBit = 0x8000_0000;

    [Fact]
    public async Task A_one_hop_circuit_ends_at_its_only_hop_which_is_its_exit()
    {
        using var net = new CircuitHarness();
        var (origin, hops) = net.Line(1);

        var circuit = await origin.BuildAsync(hops);

        Assert.Equal(CircuitState.Open, circuit.State);
        Assert.Equal(CircuitRole.Origin, circuit.Role);
        Assert.Equal([hops[0].Id], circuit.Hops.Select(h => h.Id));
        var exit = Assert.Single(hops[0].OpenCircuits);
        Assert.Equal(CircuitRole.Exit, exit.Role);
        Assert.Equal(origin.Id, exit.Inward!.PeerId);
        Assert.Null(exit.Outward);
        Assert.Equal(circuit.OutwardId, exit.InwardId);
    }

    [Fact]
    public async Task A_three_hop_circuit_is_relayed_by_the_first_two_hops_and_exits_at_the_third_with_ids_from_each_links_dialer()
    {
        using var net = new CircuitHarness();
        var (origin, hops) = net.Line(3);

        var circuit = await origin.BuildAsync(hops);

        Assert.Equal(hops.Select(h => h.Id), circuit.Hops.Select(h => h.Id));
        var (first, middle, exit) = (Assert.Single(hops[0].OpenCircuits), Assert.Single(hops[1].OpenCircuits), Assert.Single(hops[2].OpenCircuits));
        Assert.Equal([CircuitRole.Relay, CircuitRole.Relay, CircuitRole.Exit], new[] { first.Role, middle.Role, exit.Role });
        // Each leg's id is picked by the node that dialed that link, which sets the top bit.
        Assert.Equal(circuit.OutwardId, first.InwardId);
        Assert.Equal(first.OutwardId, middle.InwardId);
        Assert.Equal(middle.OutwardId, exit.InwardId);
        Assert.All(new[] { circuit.OutwardId, first.OutwardId, middle.OutwardId }, id => Assert.NotEqual(0u, id & DialerBit));
        // Each hop knows only its neighbours on the circuit.
        Assert.Equal((origin.Id, hops[1].Id), (first.Inward!.PeerId, first.Outward!.PeerId));
        Assert.Equal((hops[0].Id, hops[2].Id), (middle.Inward!.PeerId, middle.Outward!.PeerId));
        Assert.Equal(hops[1].Id, exit.Inward!.PeerId);
    }

    [Fact]
    public async Task A_CREATE_from_a_neighbour_we_grant_nothing_is_refused_and_the_link_stays()
    {
        using var net = new CircuitHarness();
        var origin = net.AddNode();
        var stranger = net.AddNode();
        net.Link(origin, stranger);

        var build = origin.StartBuild(stranger);

        var refused = await Assert.ThrowsAsync<StreamException>(() => build.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Contains("refused", refused.Message, StringComparison.Ordinal);
        var destroy = Assert.Single(stranger.PortTo(origin).SentCells(CellCommand.Destroy));
        Assert.Equal((byte)DestroyReason.Refused, Cell.Body(destroy)[0]);
        Assert.True(origin.PortTo(stranger).IsOpen);
        Assert.Empty(stranger.OpenCircuits);
        Assert.Empty(origin.OpenCircuits);
    }

    public static TheoryData<string, uint> BadIds => new()
    {
        { "circuit id 0", 0 },
        { "the listener's half of the ids, from the dialer", 0x0000_1234 },
    };

    [Theory]
    [MemberData(nameof(BadIds))]
    public void A_CREATE_with_an_id_its_sender_may_not_pick_closes_the_link(string what, uint id)
    {
        using var net = new CircuitHarness();
        var (origin, hops) = net.Line(1);

        origin.PortTo(hops[0]).TrySend(Create(id, hops[0]));

        var port = hops[0].PortTo(origin);
        Assert.False(port.IsOpen, what);
        Assert.Equal(LinkError.BadCell, Assert.IsType<LinkException>(port.CloseReason).Error);
        Assert.Empty(hops[0].OpenCircuits);
    }

    [Fact]
    public void A_CREATE_reusing_an_id_already_open_on_the_link_closes_the_link_and_its_circuits()
    {
        using var net = new CircuitHarness();
        var (origin, hops) = net.Line(1);
        var port = origin.PortTo(hops[0]);

        port.TrySend(Create(DialerBit | 7, hops[0]));
        Assert.Single(hops[0].OpenCircuits);
        Assert.Single(port.Other.SentCells(CellCommand.Created));

        port.TrySend(Create(DialerBit | 7, hops[0]));

        Assert.False(port.IsOpen);
        Assert.Equal(LinkError.BadCell, Assert.IsType<LinkException>(hops[0].PortTo(origin).CloseReason).Error);
        Assert.Empty(hops[0].OpenCircuits);
    }

    [Fact]
    public async Task An_EXTEND_to_a_node_that_is_not_the_hops_partner_fails_with_that_reason_and_nothing_reaches_the_node()
    {
        using var net = new CircuitHarness();
        var (origin, hops) = net.Line(1);
        var stranger = net.AddNode();
        // Linked to the hop, but no agreement: it grants the hop nothing, so paths may not go there.
        net.Link(hops[0], stranger);

        var failed = await Assert.ThrowsAsync<StreamException>(() => origin.BuildAsync(hops[0], stranger));

        Assert.Equal($"{hops[0].Id.Brief} could not extend to {stranger.Id.Brief}: not one of its partners.", failed.Message);
        Assert.Equal(EndReason.CircuitClosed, failed.Reason);
        Assert.Empty(hops[0].PortTo(stranger).Sent);
        await net.Wire.SettleAsync();
        Assert.Empty(hops[0].OpenCircuits);
        Assert.Empty(origin.OpenCircuits);
    }

    [Fact]
    public async Task A_hop_will_not_put_a_second_neighbours_circuit_on_a_next_hop_whose_grant_the_first_neighbours_circuit_in_use_fills_unless_the_origin_insists_or_the_first_falls_idle()
    {
        using var net = new CircuitHarness();
        // The hop grants each origin 256 kbps, and the next hop grants it 256: room for one of them.
        var (first, second, hop, next) = TwoOriginsThroughOneHop(net, nextGrants: 256);
        var carrying = await first.BuildAsync(hop, next);
        int sentToNext = hop.PortTo(next).Sent.Count;

        var refused = await Assert.ThrowsAsync<StreamException>(() => second.BuildAsync(hop, next));

        Assert.Equal($"{hop.Id.Brief} could not extend to {next.Id.Brief}: what it carries there already fills its grant.", refused.Message);
        Assert.True(refused.HopFull);
        Assert.Equal(next.Id, refused.FailedHop);
        Assert.Equal(sentToNext, hop.PortTo(next).Sent.Count);
        // The first origin's circuits share its grant, which is counted already: another of them goes.
        (await first.BuildAsync(hop, next)).Destroy(DestroyReason.Finished);
        await net.Wire.SettleAsync();

        // An origin out of other paths insists: a slow circuit beats none.
        var insisted = await second.Builder.BuildAsync(second.PortTo(hop), [hop.Descriptor, next.Descriptor], null, CancellationToken.None, evenIfFull: true)
            .WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal([hop.Id, next.Id], insisted.Hops.Select(h => h.Id));
        insisted.Destroy(DestroyReason.Finished);
        await net.Wire.SettleAsync();

        // A larger grant from the next hop has room for both.
        hop.Kbps[next.Id] = (256, 512);
        (await second.BuildAsync(hop, next)).Destroy(DestroyReason.Finished);
        await net.Wire.SettleAsync();

        // Back to 256: once the first circuit has carried nothing for the window, it is not in use.
        hop.Kbps[next.Id] = (256, 256);
        await Assert.ThrowsAsync<StreamException>(() => second.BuildAsync(hop, next));
        net.Time.Advance(CircuitTable.InUseWindow);
        var built = await second.BuildAsync(hop, next);
        Assert.Equal(CircuitState.Open, carrying.State);
        Assert.Equal(CircuitState.Open, built.State);
    }

    [Fact]
    public async Task A_next_hop_our_last_probe_measured_below_its_grant_counts_at_what_it_delivered()
    {
        using var net = new CircuitHarness();
        // The next hop grants 512 kbps, room for both origins' 256, but was measured at 300.
        var (first, second, hop, next) = TwoOriginsThroughOneHop(net, nextGrants: 512);
        var account = hop.Ledger.Account(next.Id);
        account.DeliveredKbps = 300;
        await first.BuildAsync(hop, next);

        var refused = await Assert.ThrowsAsync<StreamException>(() => second.BuildAsync(hop, next));
        Assert.True(refused.HopFull);

        // Measured above its grant (idle capacity lent on top), it counts at its grant: room for both.
        account.DeliveredKbps = 900;
        var built = await second.BuildAsync(hop, next);
        Assert.Equal([hop.Id, next.Id], built.Hops.Select(h => h.Id));
    }

    [Fact]
    public async Task A_neighbours_need_is_split_among_the_next_hops_its_circuits_in_use_go_to_so_many_circuits_fill_no_more_than_its_grant()
    {
        using var net = new CircuitHarness();
        var (first, hops) = net.Line(2);
        var (second, other) = (net.AddNode(), net.AddNode());
        net.Partners(second, hops[0]);
        net.Partners(hops[0], other);
        var (hop, next) = (hops[0], hops[1]);
        hop.Kbps[first.Id] = hop.Kbps[second.Id] = (256, 256);
        hop.Kbps[next.Id] = hop.Kbps[other.Id] = (256, 384);
        await first.BuildAsync(hop, next);

        // The first origin needs all 256 at the next hop: with the second's 256, more than its 384.
        var refused = await Assert.ThrowsAsync<StreamException>(() => second.BuildAsync(hop, next));
        Assert.True(refused.HopFull);

        // With a circuit in use to another hop too, it needs half there and half here: 128 + 256 fit.
        await first.BuildAsync(hop, other);
        var built = await second.BuildAsync(hop, next);
        Assert.Equal([hop.Id, next.Id], built.Hops.Select(h => h.Id));
    }

    [Fact]
    public async Task A_next_hop_that_refuses_the_CREATE_is_reported_to_the_origin_by_the_hop_which_keeps_the_circuit_to_say_so()
    {
        using var net = new CircuitHarness();
        var (origin, hops) = net.Line(1);
        var next = net.AddNode();
        net.Link(hops[0], next);
        // The hop believes next grants it bandwidth; next grants the hop nothing (its grant just ended), so it refuses.
        hops[0].GrantedBy[next.Id] = true;

        var failed = await Assert.ThrowsAsync<StreamException>(() => origin.BuildAsync(hops[0], next));

        Assert.Equal($"{hops[0].Id.Brief} could not extend to {next.Id.Brief}: {next.Id.Brief} refused the circuit.", failed.Message);
        Assert.Equal((byte)DestroyReason.Refused, Cell.Body(Assert.Single(next.PortTo(hops[0]).SentCells(CellCommand.Destroy)))[0]);
        await net.Wire.SettleAsync();
        // The hop answered ExtendFailed instead of a DESTROY; the origin then ended the circuit.
        Assert.Empty(hops[0].PortTo(origin).SentCells(CellCommand.Destroy));
        Assert.Single(origin.PortTo(hops[0]).SentCells(CellCommand.Destroy));
        Assert.Empty(hops[0].OpenCircuits);
    }

    [Fact]
    public async Task A_next_hop_that_never_answers_is_given_up_by_the_hop_on_the_clock_and_the_origin_hears_it_timed_out()
    {
        using var net = new CircuitHarness();
        // The origin waits longer than its hop does, so the hop's verdict is the one heard.
        var origin = net.AddNode(net.Options with { BuildTimeout = net.Options.BuildTimeout * 3 });
        var (hop, next) = (net.AddNode(), net.AddNode());
        net.Partners(origin, hop);
        net.Partners(hop, next);
        var silent = hop.PortTo(next);
        silent.Stall();

        var build = origin.StartBuild(hop, next);
        await Eventually.WaitUntilAsync(() => silent.Held == 1, TimeSpan.FromSeconds(10), "the hop's CREATE to the next hop");
        net.Time.Advance(net.Options.BuildTimeout);

        var failed = await Assert.ThrowsAsync<StreamException>(() => build.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(EndReason.Timeout, failed.Reason);
        Assert.Equal($"{hop.Id.Brief} could not extend to {next.Id.Brief}: {next.Id.Brief} did not answer in time.", failed.Message);
        // The silent hop is told to drop the circuit, should it create it after all.
        Assert.Equal([CellCommand.Create, CellCommand.Destroy], silent.Sent.Select(c => Cell.Command(c)));
    }

    [Fact]
    public async Task A_first_hop_that_never_answers_fails_the_build_exactly_when_the_clock_passes_the_build_timeout()
    {
        using var net = new CircuitHarness();
        var (origin, hops) = net.Line(1);
        var silent = origin.PortTo(hops[0]);
        silent.Stall();

        var build = origin.StartBuild(hops[0]);
        await Eventually.WaitUntilAsync(() => silent.Held == 1, TimeSpan.FromSeconds(10), "the origin's CREATE");
        net.Time.Advance(net.Options.BuildTimeout - TimeSpan.FromSeconds(1));
        Assert.False(build.IsCompleted);
        net.Time.Advance(TimeSpan.FromSeconds(1));

        var failed = await Assert.ThrowsAsync<StreamException>(() => build.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(EndReason.Timeout, failed.Reason);
        Assert.Empty(origin.OpenCircuits);
    }

    [Fact]
    public async Task An_EXTEND_the_last_hop_cannot_read_is_answered_ExtendFailed_malformed_and_the_circuit_stays()
    {
        using var net = new CircuitHarness();
        var (origin, hops) = net.Line(1);
        var circuit = await origin.BuildAsync(hops);

        var reply = circuit.ExpectReply();
        circuit.SendRelay(RelayCommand.Extend, 0, [1, 2, 3], early: true);

        var answer = await reply.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Null(answer.Handshake);
        Assert.Equal(ExtendFailure.Malformed, answer.Failure);
        Assert.Equal(CircuitState.Open, circuit.State);
        Assert.Single(hops[0].OpenCircuits);
    }

    /// <summary>A CREATE cell as an origin would send it to <paramref name="to"/>, with any id.</summary>
    internal static byte[] Create(uint id, CircuitNode to)
    {
        using var ntor = Ntor.Start(to.Id, to.Descriptor.LinkKey);
        var cell = new byte[Cell.Size];
        Cell.WriteHeader(cell, id, CellCommand.Create);
        BinaryPrimitives.WriteUInt16BigEndian(Cell.Body(cell.AsSpan()), 1);
        ntor.Request.CopyTo(Cell.Body(cell.AsSpan())[2..]);
        return cell;
    }

    /// <summary>Two origins that are partners of one hop, which grants each 256 kbps and extends to a next hop that grants it <paramref name="nextGrants"/>.</summary>
    private static (CircuitNode First, CircuitNode Second, CircuitNode Hop, CircuitNode Next) TwoOriginsThroughOneHop(CircuitHarness net, long nextGrants)
    {
        var (first, hops) = net.Line(2);
        var second = net.AddNode();
        net.Partners(second, hops[0]);
        var (hop, next) = (hops[0], hops[1]);
        hop.Kbps[first.Id] = hop.Kbps[second.Id] = (256, 256);
        hop.Kbps[next.Id] = (256, nextGrants);
        return (first, second, hop, next);
    }
}
