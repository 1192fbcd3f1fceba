using Quid.Circuits;
using Quid.Tests.Integration;
using Quid.Wire;

namespace Quid.Tests.Circuits;

/// <summary>Hops that break the relay protocol: each costs only its circuit, never the node or the link.</summary>
public sealed class MisbehavingHopTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    /// <summary>A one-hop circuit to a fake exit that answers BEGIN at once with CONNECTED, and a stream open on it.</summary>
    private static async Task<(CircuitNode Origin, FakeHop Hop, Circuit Circuit, RelayStream Stream)> StreamToFakeAsync(CircuitHarness net)
    {
        var origin = net.AddNode();
        var hop = net.AddFake(origin);
        hop.OnMessage = (self, command, stream, _) =>
        {
            if (command == RelayCommand.Begin) self.Send(RelayCommand.Connected, stream, [4, 127, 0, 0, 1]);
        };
        var circuit = await origin.Builder.BuildAsync(origin.Ports[hop.Id], [hop.Descriptor], isolation: null, default).WaitAsync(Timeout);
        return (origin, hop, circuit, await circuit.OpenStreamAsync(new StreamTarget("example.org", 80), Timeout, default));
    }

    /// <summary>The circuit ended as a violation at the origin; the link and the node carry on.</summary>
    private static async Task AssertDestroyedAsViolation(CircuitHarness net, CircuitNode origin, FakeHop hop, Circuit circuit)
    {
        await net.Wire.SettleAsync();
        Assert.Equal(CircuitState.Closed, circuit.State);
        Assert.Equal(DestroyReason.Protocol, hop.DestroyedBecause);
        Assert.Empty(origin.OpenCircuits);
        Assert.True(hop.Port.IsOpen);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_last_hop_that_floods_Sendmes_nobody_earned_has_its_circuit_destroyed_and_the_rest_ignored(bool onStream)
    {
        using var net = new CircuitHarness();
        var (origin, hop, circuit, stream) = await StreamToFakeAsync(net);
        await using var _ = stream;

        for (int i = 0; i < 1000; i++) hop.Send(RelayCommand.Sendme, onStream ? stream.Id : (ushort)0, []);

        await AssertDestroyedAsViolation(net, origin, hop, circuit);
        await Assert.ThrowsAsync<StreamException>(() => stream.WriteAsync(new byte[10]).AsTask());
    }

    [Fact]
    public async Task A_last_hop_that_sends_beyond_the_stream_window_has_the_circuit_destroyed_and_the_unread_stream_held_one_window()
    {
        using var net = new CircuitHarness();
        var (origin, hop, circuit, stream) = await StreamToFakeAsync(net);
        await using var _ = stream;
        var data = new byte[RelayCell.MaxData];

        // A whole window, unread: within the rules. The origin returns a circuit Sendme per 16 cells, and no stream Sendme, since nothing was read.
        for (int i = 0; i < StreamFlow.Window; i++) hop.Send(RelayCommand.Data, stream.Id, data);
        await net.Wire.SettleAsync();
        Assert.Equal(CircuitState.Open, circuit.State);
        Assert.Equal(StreamFlow.Window * RelayCell.MaxData, stream.BytesReceived);
        Assert.Equal(StreamFlow.Window / CircuitFlow.Increment, hop.Received.Count(r => r.Command == RelayCommand.Sendme && r.StreamId == 0));
        Assert.DoesNotContain(hop.Received, r => r.Command == RelayCommand.Sendme && r.StreamId == stream.Id);

        hop.Send(RelayCommand.Data, stream.Id, data);

        await AssertDestroyedAsViolation(net, origin, hop, circuit);
        await Assert.ThrowsAsync<StreamException>(() => stream.ReadAsync(new byte[1]).AsTask());
    }

    [Fact]
    public async Task A_relay_destroys_a_circuit_that_sends_more_RelayEarly_cells_than_the_longest_circuit_needs()
    {
        using var net = new CircuitHarness();
        var (origin, hops) = net.Line(2);
        var circuit = await origin.BuildAsync(hops);
        var echo = new byte[RelayCell.MaxData];
        var passedOn = hops[0].PortTo(hops[1]);

        for (int i = 0; i < Cell.MaxRelayEarly; i++) Assert.True(circuit.SendRelay(RelayCommand.Echo, 0, echo, early: true));
        await net.Wire.SettleAsync();
        Assert.Equal(CircuitState.Open, circuit.State);
        Assert.Equal(Cell.MaxRelayEarly, passedOn.SentCells(CellCommand.RelayEarly).Count());

        circuit.SendRelay(RelayCommand.Echo, 0, echo, early: true);
        await net.Wire.SettleAsync();

        Assert.Equal(CircuitState.Closed, circuit.State);
        Assert.Equal(Cell.MaxRelayEarly, passedOn.SentCells(CellCommand.RelayEarly).Count());
        Assert.Equal((byte)DestroyReason.Protocol, Cell.Body(Assert.Single(hops[0].PortTo(origin).SentCells(CellCommand.Destroy)))[0]);
        Assert.Single(passedOn.SentCells(CellCommand.Destroy));
        Assert.All(hops, h => Assert.Empty(h.OpenCircuits));
    }

    [Fact]
    public async Task A_hop_that_stalls_mid_stream_holds_the_sender_to_its_congestion_window_and_a_new_stream_times_out_on_the_clock()
    {
        using var net = new CircuitHarness();
        await using var through = await net.StreamThroughAsync(3);
        var (hops, circuit, stream, server) = (through.Hops, through.Circuit, through.Stream, through.Server);
        var stalled = hops[1].PortTo(hops[2]);
        stalled.Stall();

        var upload = Bytes.Pattern(4 << 20);
        var writing = stream.WriteAsync(upload).AsTask();
        int window = circuit.Congestion.Cells;
        await Eventually.WaitUntilAsync(() => stalled.Held >= window, Timeout, "a window of cells to pile up at the stalled hop");
        await net.Wire.SettleAsync();
        // The sender stopped at its window (no Sendme returns past the stall): the stalled hop holds those cells and no more.
        Assert.Equal(window, stalled.Held);
        Assert.Equal(window * RelayCell.MaxData, stream.BytesSent);
        Assert.False(writing.IsCompleted);

        // A stream opened behind the stall waits for CONNECTED until the clock says it has waited enough.
        var second = circuit.OpenStreamAsync(net.Destination.Target, Timeout, default);
        await Eventually.WaitUntilAsync(() => stalled.Held == window + 1, Timeout, "the second BEGIN to reach the stalled hop");
        net.Time.Advance(Timeout - TimeSpan.FromSeconds(1));
        Assert.False(second.IsCompleted);
        net.Time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(EndReason.Timeout, (await Assert.ThrowsAsync<StreamException>(() => second.WaitAsync(Timeout))).Reason);

        // Once the hop passes cells on again, the upload finishes and the destination gets every byte in order.
        stalled.Resume();
        await writing.WaitAsync(Timeout);
        stream.CompleteWrites();
        Assert.Equal(upload, await Bytes.ReadToEndAsync(server));
        Assert.Equal(CircuitState.Open, circuit.State);
    }
}
