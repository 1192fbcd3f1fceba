using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using Quid.Crypto;
using Quid.Links;
using Quid.Wire;

namespace Quid.Tests.Integration;

/// <summary>
/// Hostile bytes at each of a node's doors: the link handshake, the cell decoder behind an
/// authenticated link, and the SOCKS listener. Each gets its connection closed, and the node
/// goes on serving curl.
/// </summary>
public sealed class BadInputTests
{
    private static readonly NodeSpec[] ThreeNodes = [new(1024, 512), new(2048, 1024), new(1024, 0)];

    public static TheoryData<string> HandshakeGarbage => ["truncated", "oversized", "random"];

    [Theory]
    [MemberData(nameof(HandshakeGarbage))]
    public async Task Garbage_at_the_link_handshake_closes_that_connection_only(string kind)
    {
        await using var network = await TestNetwork.StartAsync(kind switch { "truncated" => 40, "oversized" => 44, _ => 48 }, ThreeNodes);
        await network.WaitForClientPartnerAsync();
        var target = network.Nodes[1].LinkEndPoint;

        byte[] bytes = kind switch
        {
            // The start of a valid first message, then nothing: the handshake timeout must end it.
            "truncated" => [0x00, 0x20, 1, 2, 3],
            // A length prefix over the 1 KiB a handshake message may have.
            "oversized" => [0xFF, 0xFF, .. new byte[4096]],
            _ => RandomBytes(4096, seed: 7),
        };
        using var socket = await ConnectAsync(target);
        await socket.SendAsync(bytes);
        await AssertClosedByPeerAsync(socket);

        await AssertStillServesAsync(network);
        // And it still completes honest handshakes.
        using var identity = NodeIdentity.Generate(out _);
        await using var link = await Link.ConnectAsync(target, IPAddress.Loopback, identity, network.Nodes[1].Id, new LinkOptions(), TimeProvider.System, NullLogger.Instance, default);
        Assert.Equal(network.Nodes[1].Id, link.PeerId);
    }

    public static TheoryData<string> CellGarbage => ["unknown-command", "relay-on-circuit-0", "bad-control-message", "oversized-control-message"];

    [Theory]
    [MemberData(nameof(CellGarbage))]
    public async Task A_malformed_cell_on_an_authenticated_link_closes_that_link_only(string kind)
    {
        byte first = kind switch { "unknown-command" => 52, "relay-on-circuit-0" => 56, "bad-control-message" => 60, _ => 64 };
        await using var network = await TestNetwork.StartAsync(first, ThreeNodes);
        await network.WaitForClientPartnerAsync();
        var victim = network.Nodes[1];
        var linkedBefore = (await victim.StatusAsync()).Neighbours.Select(n => n.Id).ToHashSet();

        using var identity = NodeIdentity.Generate(out _);
        await using var link = await Link.ConnectAsync(victim.LinkEndPoint, IPAddress.Loopback, identity, victim.Id, new LinkOptions(), TimeProvider.System, NullLogger.Instance, default);
        Ignore.Start(link);

        var cell = new byte[Cell.Size];
        switch (kind)
        {
            case "unknown-command":
                Cell.WriteHeader(cell, 5, (CellCommand)0x77);
                link.TrySend(cell);
                break;
            case "relay-on-circuit-0":
                Cell.WriteHeader(cell, 0, CellCommand.Relay);
                link.TrySend(cell);
                break;
            case "bad-control-message":
                ControlFraming.WriteCells([0xEE, 1, 2, 3], cell);
                link.TrySend(cell);
                break;
            default:
                // Fragments that never end: more than a control message may hold.
                var cells = new byte[2 * Cell.Size];
                ControlFraming.WriteCells(new byte[ControlFraming.MaxFragment + 1], cells);
                for (int i = 0; i < ControlMessage.MaxSize / ControlFraming.MaxFragment + 2 && link.State == LinkState.Open; i++)
                    link.TrySend(cells.AsSpan(0, Cell.Size));
                break;
        }
        await link.Closed.WaitAsync(TimeSpan.FromSeconds(10));

        await AssertStillServesAsync(network);
        // Only the offending link went: the victim's other links stay up.
        Assert.Superset(linkedBefore, (await victim.StatusAsync()).Neighbours.Select(n => n.Id).ToHashSet());
    }

    public static TheoryData<string> SocksGarbage => ["truncated", "oversized", "random", "http"];

    [Theory]
    [MemberData(nameof(SocksGarbage))]
    public async Task Garbage_at_the_SOCKS_port_closes_that_connection_only(string kind)
    {
        await using var network = await TestNetwork.StartAsync(kind switch { "truncated" => 70, "oversized" => 74, "random" => 78, _ => 82 }, ThreeNodes);
        await network.WaitForClientPartnerAsync();

        byte[] bytes = kind switch
        {
            // A SOCKS5 greeting cut short, then the client hangs up.
            "truncated" => [0x05, 0x02, 0x00],
            // A SOCKS4a user id that never ends.
            "oversized" => [0x04, 0x01, 0x00, 0x50, 0, 0, 0, 1, .. Enumerable.Repeat((byte)'a', 4096)],
            "random" => RandomBytes(4096, seed: 11),
            _ => "GET / HTTP/1.1\r\nHost: example.org\r\n\r\n"u8.ToArray(),
        };
        using (var socket = await ConnectAsync(network.Socks))
        {
            await socket.SendAsync(bytes);
            if (kind == "truncated") socket.Shutdown(SocketShutdown.Send);
            await AssertClosedByPeerAsync(socket);
        }
        await AssertStillServesAsync(network);
    }

    private static byte[] RandomBytes(int count, int seed)
    {
        var bytes = new byte[count];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private static async Task<Socket> ConnectAsync(IPEndPoint endPoint)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(endPoint);
        return socket;
    }

    /// <summary>The node must end the connection: reads drain whatever reply it sent, then see the end or a reset.</summary>
    private static async Task AssertClosedByPeerAsync(Socket socket)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var buffer = new byte[1024];
        try
        {
            while (await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token) > 0)
            {
            }
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
        {
            // A reset is a close too.
        }
    }

    private static async Task AssertStillServesAsync(TestNetwork network)
    {
        var (exitCode, output, errors) = await Curl.RunAsync("--silent", "--show-error", "--max-time", "30",
            "--socks5-hostname", network.Socks.ToString(), $"{network.Web.BaseUrl}/");
        Assert.True(exitCode == 0, $"curl failed after the bad input ({exitCode}): {errors}");
        Assert.Contains("Hello through Quid", output, StringComparison.Ordinal);
    }
}
