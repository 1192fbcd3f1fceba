using System.Net;
using System.Net.Sockets;
using Quid.Circuits;
using Quid.Tests.Integration;
using Quid.Wire;

namespace Quid.Tests.Circuits;

/// <summary>Streams over circuits: bytes both ways, half-closes, failures, windows and names resolved at the exit.</summary>
public sealed class StreamTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Either_end_may_finish_sending_first_and_the_other_goes_on_like_a_TCP_half_close(bool originFirst)
    {
        using var net = new CircuitHarness();
        await using var through = await net.StreamThroughAsync(3);
        var (hops, circuit, stream, server) = (through.Hops, through.Circuit, through.Stream, through.Server);
        var request = Bytes.Pattern(100_000);
        var response = Bytes.Pattern(300_000).Reverse().ToArray();

        if (originFirst)
        {
            await stream.WriteAsync(request);
            stream.CompleteWrites();
            // The destination reads the request and then its end, while its own direction stays open.
            Assert.Equal(request, await Bytes.ReadToEndAsync(server));
            await server.SendAsync(response, SocketFlags.None);
            server.Shutdown(SocketShutdown.Send);
            Assert.Equal(response, await Bytes.ReadToEndAsync(stream));
        }
        else
        {
            await server.SendAsync(response, SocketFlags.None);
            server.Shutdown(SocketShutdown.Send);
            Assert.Equal(response, await Bytes.ReadToEndAsync(stream));
            await stream.WriteAsync(request);
            stream.CompleteWrites();
            Assert.Equal(request, await Bytes.ReadToEndAsync(server));
        }
        await Assert.ThrowsAsync<InvalidOperationException>(() => stream.WriteAsync(request).AsTask());

        // Both directions done: the stream is gone at both ends, the circuit stays for more.
        await stream.DisposeAsync();
        await Eventually.WaitUntilAsync(() => hops[2].OpenCircuits.Single().StreamCount == 0, Timeout, "the exit to finish the stream");
        Assert.Equal(0, circuit.StreamCount);
        Assert.Equal(CircuitState.Open, circuit.State);
    }

    [Fact]
    public async Task Disposing_a_stream_delivers_what_was_written_with_END_Done_and_data_arriving_later_aborts_it()
    {
        using var net = new CircuitHarness();
        await using var through = await net.StreamThroughAsync(1);
        var (hops, circuit, stream, server) = (through.Hops, through.Circuit, through.Stream, through.Server);
        await stream.WriteAsync(new byte[] { 1, 2, 3 });

        // As closing a socket: what was written arrives, then the end.
        await stream.DisposeAsync();
        Assert.Equal([1, 2, 3], await Bytes.ReadToEndAsync(server));
        Assert.Equal(1, circuit.StreamCount);

        // The destination's direction was still open, but nobody reads it any more: its next bytes end the stream both ways.
        await server.SendAsync(new byte[] { 9 }, SocketFlags.None);
        await Eventually.WaitUntilAsync(() => circuit.StreamCount == 0 && hops[0].OpenCircuits.Single().StreamCount == 0, Timeout, "both ends to drop the stream");
        Assert.Equal(CircuitState.Open, circuit.State);
    }

    [Fact]
    public async Task Disposing_a_stream_with_bytes_unread_aborts_it_at_once()
    {
        using var net = new CircuitHarness();
        await using var through = await net.StreamThroughAsync(1);
        var (hops, circuit, stream, server) = (through.Hops, through.Circuit, through.Stream, through.Server);
        await server.SendAsync(new byte[] { 9 }, SocketFlags.None);
        await Eventually.WaitUntilAsync(() => stream.BytesReceived == 1, Timeout, "the destination's byte at the origin");

        await stream.DisposeAsync();

        Assert.Equal(0, circuit.StreamCount);
        await Assert.ThrowsAsync<StreamException>(() => stream.ReadAsync(new byte[1]).AsTask());
        await Eventually.WaitUntilAsync(() => hops[0].OpenCircuits.Single().StreamCount == 0, Timeout, "the exit to drop the stream");
        Assert.Empty(await Bytes.ReadToEndAsync(server));
    }

    [Fact]
    public async Task A_stream_the_exit_cannot_open_fails_with_the_exits_reason_and_the_circuit_stays()
    {
        using var net = new CircuitHarness();
        var (origin, hops) = net.Line(2);
        var circuit = await origin.BuildAsync(hops);
        int closedPort;
        using (var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            closedPort = ((IPEndPoint)listener.LocalEndPoint!).Port;
        }

        var refused = await Assert.ThrowsAsync<StreamException>(() => circuit.OpenStreamAsync(new StreamTarget("127.0.0.1", (ushort)closedPort), Timeout, default));
        var unknown = await Assert.ThrowsAsync<StreamException>(() => circuit.OpenStreamAsync(new StreamTarget("nowhere.test", 80), Timeout, default));

        Assert.Equal(EndReason.ConnectionRefused, refused.Reason);
        Assert.Equal(EndReason.ResolveFailed, unknown.Reason);
        Assert.Equal(CircuitState.Open, circuit.State);
        Assert.Equal(0, circuit.StreamCount);
    }

    [Fact]
    public async Task The_exit_resolves_names_for_the_origin_with_its_own_resolver_and_says_when_it_cannot()
    {
        using var net = new CircuitHarness();
        net.Names["files.test"] = [IPAddress.Parse("127.0.0.7"), IPAddress.IPv6Loopback];
        net.Names["mail.test"] = [IPAddress.Parse("127.0.0.9")];
        var (origin, hops) = net.Line(3);
        var circuit = await origin.BuildAsync(hops);

        // Two lookups in flight at once each get their own answer.
        var answers = await Task.WhenAll(circuit.ResolveAsync("files.test", Timeout, default), circuit.ResolveAsync("mail.test", Timeout, default));
        var failed = await Assert.ThrowsAsync<StreamException>(() => circuit.ResolveAsync("nowhere.test", Timeout, default));

        Assert.Equal(net.Names["files.test"], answers[0]);
        Assert.Equal(net.Names["mail.test"], answers[1]);
        Assert.Equal(EndReason.ResolveFailed, failed.Reason);
        Assert.Equal(CircuitState.Open, circuit.State);
    }

    [Fact]
    public async Task An_origin_that_does_not_read_holds_the_exit_to_one_stream_window_and_reading_lets_the_rest_through_intact()
    {
        using var net = new CircuitHarness();
        await using var through = await net.StreamThroughAsync(1);
        var (origin, hops, stream, server) = (through.Origin, through.Hops, through.Stream, through.Server);
        var download = Bytes.Pattern(4 << 20);
        var sending = Task.Run(async () =>
        {
            await server.SendAsync(download, SocketFlags.None);
            server.Shutdown(SocketShutdown.Send);
        });

        // Sendmes go back only for bytes the application has read: the exit stops at one window of
        // Data cells (after its CONNECTED), and that is all the origin holds for the stream.
        var toOrigin = hops[0].PortTo(origin);
        await Eventually.WaitUntilAsync(() => toOrigin.SentCells(CellCommand.Relay).Count() >= 1 + StreamFlow.Window, Timeout, "a window of data from the exit");
        await net.Wire.SettleAsync();
        Assert.Equal(1 + StreamFlow.Window, toOrigin.SentCells(CellCommand.Relay).Count());
        Assert.InRange(stream.BytesReceived, 1, StreamFlow.Window * RelayCell.MaxData);

        Assert.Equal(download, await Bytes.ReadToEndAsync(stream));
        await sending.WaitAsync(Timeout);
    }

    [Fact]
    public async Task Streams_that_get_no_Sendmes_stop_all_together_at_the_circuits_congestion_window()
    {
        using var net = new CircuitHarness();
        var (origin, hops) = net.Line(1);
        var circuit = await origin.BuildAsync(hops);
        const int streams = 5;
        var opened = new List<(RelayStream Stream, Socket Server)>();
        for (int i = 0; i < streams; i++)
            opened.Add((await circuit.OpenStreamAsync(net.Destination.Target, Timeout, default), await net.Destination.AcceptAsync()));
        // The exit's Sendmes, stream and circuit alike, are held back.
        var back = hops[0].PortTo(origin);
        back.Stall();

        var upload = Bytes.Pattern(1 << 20);
        var writes = opened.Select(o => o.Stream.WriteAsync(upload).AsTask()).ToList();
        long Sent() => opened.Sum(o => o.Stream.BytesSent);
        // No Sendme has come back, so the window is still the first one.
        await Eventually.WaitUntilAsync(() => Sent() >= CongestionWindow.Initial * RelayCell.MaxData, Timeout, "a congestion window of data sent");
        await net.Wire.SettleAsync();
        Assert.Equal(CongestionWindow.Initial * RelayCell.MaxData, Sent());
        Assert.Equal(CongestionWindow.Initial, circuit.Congestion.Cells);
        Assert.All(writes, w => Assert.False(w.IsCompleted));

        back.Resume();
        await Task.WhenAll(writes).WaitAsync(Timeout);
        foreach (var (stream, server) in opened)
        {
            stream.CompleteWrites();
            Assert.Equal(upload, await Bytes.ReadToEndAsync(server));
            server.Dispose();
            await stream.DisposeAsync();
        }
    }
}
