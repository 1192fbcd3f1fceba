using System.Buffers.Binary;
using Quid.Circuits;
using Quid.Crypto;
using Quid.Links;
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
}
