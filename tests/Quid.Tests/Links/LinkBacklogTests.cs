using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using Quid.Crypto;
using Quid.Links;
using Quid.Tests.Integration;
using Quid.Wire;

namespace Quid.Tests.Links;

/// <summary>
/// How far behind a link is, on real loopback sockets (127.18/16): the time its queue would take to
/// drain at the rate it is measured to drain, or the time a write has waited on a peer that does
/// not read. The overlay drops queries and hits once this passes a second.
/// </summary>
public sealed class LinkBacklogTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    private static byte[] Padding()
    {
        var cell = new byte[Cell.Size];
        Cell.WriteHeader(cell, 0, CellCommand.Padding);
        return cell;
    }

    /// <summary>
    /// A sender that always has more: tops the link's queue up to <paramref name="queued"/> each time
    /// it is asked, until <paramref name="most"/> bytes are sent in all (the kernel's buffers take
    /// some megabytes before the link's own queue has to hold anything).
    /// </summary>
    private sealed class Sender(Link link, long queued, long most, byte[]? cell = null)
    {
        private readonly byte[] _cell = cell ?? Padding();

        public long Sent { get; private set; }

        public void TopUp()
        {
            while (link.QueuedBytes < queued && Sent < most)
            {
                Assert.True(link.TrySend(_cell));
                Sent += Cell.Size;
            }
        }
    }

    [Fact]
    public async Task A_link_whose_peer_stops_reading_is_more_than_a_second_behind_within_seconds()
    {
        // The listener's end never starts, so nobody reads its socket: once the kernel's buffers are
        // full, the writer waits on the socket and the queue grows.
        await using var host = ListenerHost.Start(new LinkOptions(), address: "127.18.0.1");
        using var identity = NodeIdentity.Generate(out _);
        await using var link = await Link.ConnectAsync(host.EndPoint, IPAddress.Parse("127.18.0.2"), identity, host.Identity.Id, new LinkOptions(),
            TimeProvider.System, NullLogger.Instance, default);
        Ignore.Start(link);
        Assert.Equal(TimeSpan.Zero, link.Backlog);

        var sender = new Sender(link, queued: 1 << 20, most: 64L << 20);
        await Eventually.WaitUntilAsync(() =>
        {
            sender.TopUp();
            return link.Backlog > TimeSpan.FromSeconds(1);
        }, Deadline, "the link to be more than a second behind");
        Assert.True(link.IsOpen);
        // Behind because the writer waits on the socket: the kernel took a few megabytes, then no more.
        Assert.True(link.QueuedBytes > 0 && sender.Sent < 64L << 20, $"{sender.Sent} bytes sent, {link.QueuedBytes} queued");
    }

    [Fact]
    public async Task A_link_measures_the_rate_its_peer_takes_bytes_at_and_is_behind_by_its_queue_over_that_rate()
    {
        const int pace = 512 << 10;
        await using var host = ListenerHost.Start(new LinkOptions(), address: "127.18.0.3", start: true);
        await using var slow = PacedForwarder.Start(IPAddress.Parse("127.18.0.4"), host.EndPoint, pace);
        using var identity = NodeIdentity.Generate(out _);
        await using var link = await Link.ConnectAsync(slow.EndPoint, IPAddress.Parse("127.18.0.5"), identity, host.Identity.Id, new LinkOptions(),
            TimeProvider.System, NullLogger.Instance, default);
        Ignore.Start(link);

        // Always 2 MiB waiting in the link's queue, once the kernel's buffers are full: the link drains at the forwarder's pace.
        var sender = new Sender(link, queued: 2 << 20, most: 64L << 20);
        await Eventually.WaitUntilAsync(() =>
        {
            sender.TopUp();
            return link.QueuedBytes >= 2 << 20 && link.DrainBytesPerSecond is > pace / 2 and < pace * 2;
        }, Deadline, $"a drain rate near {pace >> 10} KiB/s");

        var expected = TimeSpan.FromSeconds((double)link.QueuedBytes / link.DrainBytesPerSecond);
        var backlog = link.Backlog;
        Assert.True(backlog >= expected * 0.9 && backlog <= expected * 1.1 + TimeSpan.FromSeconds(1), $"backlog {backlog}, queue over rate {expected}");
        Assert.True(backlog > TimeSpan.FromSeconds(1), $"{link.QueuedBytes} bytes queued at {pace} bytes/s are only {backlog} behind");
        Assert.True(link.IsOpen);
    }

    [Fact]
    public async Task A_link_seconds_behind_with_relay_cells_is_not_behind_for_a_control_message()
    {
        const int pace = 512 << 10;
        await using var host = ListenerHost.Start(new LinkOptions(), address: "127.18.0.6", start: true);
        await using var slow = PacedForwarder.Start(IPAddress.Parse("127.18.0.7"), host.EndPoint, pace);
        using var identity = NodeIdentity.Generate(out _);
        await using var link = await Link.ConnectAsync(slow.EndPoint, IPAddress.Parse("127.18.0.8"), identity, host.Identity.Id, new LinkOptions(),
            TimeProvider.System, NullLogger.Instance, default);
        Ignore.Start(link);
        var relay = new byte[Cell.Size];
        Cell.WriteHeader(relay, 7, CellCommand.Relay);

        var sender = new Sender(link, queued: 2 << 20, most: 64L << 20, relay);
        await Eventually.WaitUntilAsync(() =>
        {
            sender.TopUp();
            return link.Backlog > TimeSpan.FromSeconds(1);
        }, Deadline, "the link to be more than a second behind");
        // A control message goes before the relay cells: it waits only for the write under way.
        var urgent = link.UrgentBacklog;
        Assert.True(urgent < TimeSpan.FromSeconds(1), $"{urgent} behind for a control message, {link.Backlog} for a relay cell");
    }
}

/// <summary>
/// A TCP forwarder that passes what the dialer sends at <c>bytesPerSecond</c> and what comes back at
/// once: a link through it drains no faster than that pace.
/// </summary>
internal sealed class PacedForwarder : IAsyncDisposable
{
    private const int Chunk = 16 << 10;

    private readonly Socket _listener;
    private readonly IPEndPoint _target;
    private readonly int _bytesPerSecond;
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Socket> _sockets = [];
    private readonly List<Task> _pumps = [];
    private Task _accepting = Task.CompletedTask;

    private PacedForwarder(IPAddress address, IPEndPoint target, int bytesPerSecond)
    {
        _target = target;
        _bytesPerSecond = bytesPerSecond;
        _listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 64 << 10 };
        _listener.Bind(new IPEndPoint(address, 0));
        _listener.Listen(4);
    }

    public IPEndPoint EndPoint => (IPEndPoint)_listener.LocalEndPoint!;

    public static PacedForwarder Start(IPAddress address, IPEndPoint target, int bytesPerSecond)
    {
        var forwarder = new PacedForwarder(address, target, bytesPerSecond);
        forwarder._accepting = forwarder.AcceptAsync();
        return forwarder;
    }

    private async Task AcceptAsync()
    {
        try
        {
            var client = await _listener.AcceptAsync(_stopping.Token);
            var server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await server.ConnectAsync(_target, _stopping.Token);
            _sockets.Add(client);
            _sockets.Add(server);
            _pumps.Add(PumpAsync(client, server, paced: true));
            _pumps.Add(PumpAsync(server, client, paced: false));
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // Stopping.
        }
    }

    private async Task PumpAsync(Socket from, Socket to, bool paced)
    {
        var buffer = new byte[Chunk];
        var started = DateTime.MinValue;
        long passed = 0;
        try
        {
            while (true)
            {
                int read = await from.ReceiveAsync(buffer, SocketFlags.None, _stopping.Token);
                if (read == 0) return;
                if (passed == 0) started = DateTime.UtcNow;
                await to.SendAsync(buffer.AsMemory(0, read), SocketFlags.None, _stopping.Token);
                passed += read;
                // The pace: no more than bytesPerSecond on average since the first byte.
                var due = started + TimeSpan.FromSeconds((double)passed / _bytesPerSecond);
                if (paced && due > DateTime.UtcNow) await Task.Delay(due - DateTime.UtcNow, _stopping.Token);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // Stopping, or an end closed.
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        _listener.Dispose();
        foreach (var socket in _sockets) socket.Dispose();
        await _accepting;
        await Task.WhenAll(_pumps);
        _stopping.Dispose();
    }
}
