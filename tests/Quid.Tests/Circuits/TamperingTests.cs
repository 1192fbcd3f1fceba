using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;
using Quid.Circuits;
using Quid.Wire;

namespace Quid.Tests.Circuits;

/// <summary>What each hop of a three-hop circuit sees, and what happens when one of them changes a cell.</summary>
public sealed class TamperingTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task A_marker_crossing_a_three_hop_circuit_both_ways_appears_in_no_cell_on_any_link()
    {
        using var net = new CircuitHarness();
        await using var through = await net.StreamThroughAsync(3);
        var (origin, hops, stream, server) = (through.Origin, through.Hops, through.Stream, through.Server);
        var marker = Encoding.ASCII.GetBytes($"QUID-MARKER-{Guid.NewGuid():N}");

        // Forward: the marker goes to the destination; backward: the destination sends it back.
        await stream.WriteAsync(marker);
        stream.CompleteWrites();
        Assert.Equal(marker, await Bytes.ReadToEndAsync(server));
        await server.SendAsync(marker, SocketFlags.None);
        server.Shutdown(SocketShutdown.Send);
        Assert.Equal(marker, await Bytes.ReadToEndAsync(stream));

        // Only the exit's socket carried it in the clear; every link between nodes carried only ciphertext.
        var ports = new[] { origin }.Concat(hops).SelectMany(n => n.Ports.Values).ToList();
        Assert.Equal(6, ports.Count);
        Assert.All(ports, port => Assert.NotEmpty(port.SentCells(CellCommand.Relay)));
        Assert.All(ports, port => Assert.DoesNotContain(port.Sent, cell => cell.AsSpan().IndexOf(marker) >= 0));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_bit_flipped_by_a_relay_is_caught_by_the_next_that_reads_it_and_the_circuit_ends_everywhere_with_nothing_corrupted_delivered(bool towardExit)
    {
        using var net = new CircuitHarness();
        await using var through = await net.StreamThroughAsync(3);
        var (origin, hops, circuit, stream, server) = (through.Origin, through.Hops, through.Circuit, through.Stream, through.Server);
        var carried = hops.Select(h => Assert.Single(h.OpenCircuits)).ToList();

        // The middle hop flips one bit of the tenth relay cell it passes on in the chosen direction.
        var middle = hops[1];
        int relayed = 0;
        middle.PortTo(towardExit ? hops[2] : hops[0]).Tamper = cell =>
        {
            if (Cell.Command(cell) == CellCommand.Relay && ++relayed == 10) cell[Cell.HeaderSize + 100] ^= 0x04;
        };
        const int size = 1 << 20;
        var pattern = Bytes.Pattern(size);
        byte[] got;
        if (towardExit)
        {
            var upload = stream.WriteAsync(pattern).AsTask();
            got = await Bytes.ReadToEndAsync(server);
            await Assert.ThrowsAsync<StreamException>(() => upload.WaitAsync(Timeout));
        }
        else
        {
            var download = server.SendAsync(pattern, SocketFlags.None);
            got = await Bytes.ReadToEndAsync(stream);
            try
            {
                // Into the socket's buffers, or cut when the exit dropped the connection.
                await download.WaitAsync(Timeout);
            }
            catch (SocketException)
            {
            }
        }

        await net.Wire.SettleAsync();
        // Whatever arrived is the true content up to the cut, never a corrupted byte.
        Assert.True(got.Length < size, $"all {size} bytes arrived through a tampered circuit");
        Assert.True(got.AsSpan().SequenceEqual(pattern.AsSpan(0, got.Length)), "corrupted bytes were delivered");
        // The hop that read the cell destroyed the circuit as a protocol violation; every hop and the origin let it go.
        var (reader, toward) = towardExit ? (hops[2], hops[1]) : (origin, hops[0]);
        var destroy = Assert.Single(reader.PortTo(toward).SentCells(CellCommand.Destroy));
        Assert.Equal((byte)DestroyReason.Protocol, Cell.Body(destroy)[0]);
        Assert.Equal(CircuitState.Closed, circuit.State);
        Assert.All(carried, c => Assert.Equal(CircuitState.Closed, c.State));
        Assert.All(hops, h => Assert.Empty(h.OpenCircuits));
        Assert.Empty(origin.OpenCircuits);
        // The exit that caught it says so at the default level, without naming the neighbour the
        // circuit came from (at a first hop, its origin).
        if (towardExit)
        {
            Assert.Contains(reader.Logs.Lines, l => l.Level == LogLevel.Information && l.Text.StartsWith("Destroying a relayed circuit", StringComparison.Ordinal));
            Assert.DoesNotContain(reader.Logs.Lines, l => l.Text.Contains(") from ", StringComparison.Ordinal));
        }
    }
}
