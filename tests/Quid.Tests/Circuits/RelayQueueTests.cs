using Quid.Circuits;
using Quid.Tests.Integration;
using Quid.Wire;

namespace Quid.Tests.Circuits;

/// <summary>
/// Cells that can wait for a link that is behind wait in their circuit, not in the link's queue,
/// where a new circuit's cells would queue behind them.
/// </summary>
public sealed class RelayQueueTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task A_relay_holds_cells_while_its_next_link_is_behind_and_passes_them_on_in_order_once_it_catches_up()
    {
        using var net = new CircuitHarness();
        var (origin, hops) = net.Line(2);
        var circuit = await origin.BuildAsync(hops);
        var passedOn = hops[0].PortTo(hops[1]);
        var replies = hops[1].PortTo(hops[0]);
        int relayed = passedOn.SentCells(CellCommand.Relay).Count(), replied = replies.SentCells(CellCommand.Relay).Count();
        var echo = new byte[RelayCell.MaxData];

        passedOn.Backlog = TimeSpan.FromSeconds(1);
        for (int i = 0; i < 3; i++) Assert.True(circuit.SendRelay(RelayCommand.Echo, 0, echo));
        await net.Wire.SettleAsync();
        Assert.Equal(relayed, passedOn.SentCells(CellCommand.Relay).Count());

        // The exit answers each echo once they arrive, and only if they arrive in order: each
        // cell's layer is opened in sequence, and one out of place would end the circuit.
        passedOn.Backlog = TimeSpan.Zero;
        net.Time.Advance(TimeSpan.FromSeconds(1));
        await Eventually.WaitUntilAsync(() => replies.SentCells(CellCommand.Relay).Count() == replied + 3, Deadline, "the exit's three echo replies");
        Assert.Equal(relayed + 3, passedOn.SentCells(CellCommand.Relay).Count());
        Assert.Equal(CircuitState.Open, circuit.State);
    }

    [Fact]
    public async Task What_an_exit_sends_waits_until_the_link_back_is_within_the_bound()
    {
        using var net = new CircuitHarness();
        var (origin, hops) = net.Line(1);
        await origin.BuildAsync(hops);
        var exit = Assert.Single(hops[0].OpenCircuits);
        var back = hops[0].PortTo(origin);

        back.Backlog = TimeSpan.FromSeconds(1);
        var wait = exit.ShapeAsync(share: null, Cell.Size, CancellationToken.None, exit.Inward).AsTask();
        Assert.False(wait.IsCompleted);
        net.Time.Advance(Circuit.MaxLinkBacklog * 8);
        Assert.False(wait.IsCompleted);
        net.Time.Advance(Circuit.MaxLinkBacklog);
        await wait.WaitAsync(Deadline);

        // Within the bound, at once.
        back.Backlog = Circuit.MaxLinkBacklog;
        Assert.True(exit.ShapeAsync(share: null, Cell.Size, CancellationToken.None, exit.Inward).AsTask().IsCompleted);
    }
}
