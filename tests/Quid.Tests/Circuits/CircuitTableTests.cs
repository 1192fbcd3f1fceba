using Quid.Circuits;
using Quid.Wire;

namespace Quid.Tests.Circuits;

/// <summary>What ends the circuits a node carries for others.</summary>
public sealed class CircuitTableTests
{
    [Fact]
    public async Task Ending_what_is_billed_to_a_partner_ends_the_circuits_it_built_through_us_relayed_or_exiting_and_no_others()
    {
        using var net = new CircuitHarness();
        var (partner, node, beyond, other) = (net.AddNode(), net.AddNode(), net.AddNode(), net.AddNode());
        net.Partners(partner, node);
        net.Partners(node, beyond);
        net.Partners(other, node);
        var relayed = await partner.BuildAsync(node, beyond);
        var exiting = await partner.BuildAsync(node);
        var others = await other.BuildAsync(node);
        var ours = await node.BuildAsync(partner);
        Assert.Equal(4, node.OpenCircuits.Count);

        node.Table.EndBilledTo(partner.Id);
        await net.Wire.SettleAsync();

        // The partner hears that both of its circuits are refused; the hop after us hears the relayed one is gone.
        Assert.Equal(CircuitState.Closed, relayed.State);
        Assert.Equal(CircuitState.Closed, exiting.State);
        Assert.Equal(2, node.PortTo(partner).SentCells(CellCommand.Destroy).Count(c => Cell.Body(c)[0] == (byte)DestroyReason.Refused));
        Assert.Empty(beyond.OpenCircuits);
        // Another partner's circuit and our own circuit through the partner are not billed to it.
        Assert.Equal(CircuitState.Open, others.State);
        Assert.Equal(CircuitState.Open, ours.State);
        Assert.Equal(2, node.OpenCircuits.Count);
        Assert.Contains(node.OpenCircuits, c => c.Role == CircuitRole.Exit && c.Inward!.PeerId == other.Id);
        Assert.Single(partner.OpenCircuits, c => c.Role == CircuitRole.Exit);
    }
}
