using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;
using Quid.Circuits;
using Quid.Crypto;
using Quid.Links;
using Quid.Node;
using Quid.Cli.Demo;
using Quid.Wire;
using Xunit.Abstractions;

namespace Quid.Tests.Integration;

/// <summary>Three-hop onion circuits on real sockets: what each hop sees, tampering, isolation and memory.</summary>
public sealed class CircuitTests(ITestOutputHelper output)
{
    /// <summary>Six nodes, every one asking four partners for bandwidth, so walks of three hops abound.</summary>
    private static readonly NodeSpec[] Six = [.. Enumerable.Repeat(new NodeSpec(1048576, 524288), 6)];

    internal static Task<TestNetwork> StartAsync(byte firstAddress, Func<int, NodeOptions, NodeOptions>? more = null, ILoggerFactory? loggers = null) =>
        TestNetwork.StartAsync(firstAddress, Six, loggers: loggers, configure: (i, o, _) =>
        {
            // Only the client builds circuits, so every relayed cell a test sees is the client's. No
            // probes: on a machine loaded by other tests, Gbit/s grants would be judged undelivered
            // and their agreements, with the circuits on them, ended.
            var options = OverlayNetworkTests.Quick(o with { Hops = 3, Paths = o.Paths with { Prebuilt = i == 0 ? 1 : 0 }, Market = o.Market with { ProbePartners = false } });
            return more?.Invoke(i, options) ?? options;
        });

    internal static async Task<Circuit> ReadyCircuitAsync(TestNetwork network)
    {
        await Eventually.WaitUntilAsync(() => network.Client.Pool.Circuits.Any(c => c.Hops.Count == 3), TimeSpan.FromSeconds(30), "a three-hop circuit built ahead");
        return network.Client.Pool.Circuits.First(c => c.Hops.Count == 3);
    }

    [Fact]
    public async Task A_marker_crossing_a_three_hop_circuit_appears_on_no_link_of_any_node_but_the_exit()
    {
        string marker = $"QUID-MARKER-{Guid.NewGuid():N}";
        var needle = Encoding.ASCII.GetBytes(marker);
        var sightings = new ConcurrentDictionary<int, int>(); // node index → cells with the marker on its links
        long cellsSeen = 0;
        await using var network = await StartAsync(30, (i, o) => o with
        {
            LinkObserver = (_, _, cell) =>
            {
                Interlocked.Increment(ref cellsSeen);
                if (cell.IndexOf(needle) >= 0) sightings.AddOrUpdate(i, 1, (_, n) => n + 1);
            },
        });
        var circuit = await ReadyCircuitAsync(network);
        var exitId = circuit.Hops[^1].Id;

        // Forward: the marker is in the request; backward: the server sends it back.
        var (code, body, errors) = await Curl.RunAsync("--silent", "--show-error", "--max-time", "30",
            "--socks5-hostname", network.Socks.ToString(), $"{network.Web.BaseUrl}/echo/{marker}");
        Assert.True(code == 0, errors);
        Assert.Equal(marker, body);
        Assert.Contains(network.Web.Requests, r => r.Contains(marker, StringComparison.Ordinal));
        Assert.True(Interlocked.Read(ref cellsSeen) > 0);
        int exit = network.Nodes.ToList().FindIndex(n => n.Id == exitId);
        // No node but the exit may see it; the exit too sees only its layer of ciphertext on its links.
        Assert.DoesNotContain(sightings, s => s.Key != exit);
        output.WriteLine($"{cellsSeen} cells observed on the links of all six nodes; the marker in none. The exit was node {exit}.");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_bit_flipped_in_flight_tears_the_circuit_down_and_nothing_corrupted_reaches_the_application(bool towardExit)
    {
        using var logs = new LogCapture(LogLevel.Information);
        await using var network = await StartAsync((byte)(towardExit ? 40 : 50), loggers: logs);
        var circuit = await ReadyCircuitAsync(network);
        // The middle hop tampers: flips one bit of the first cell it passes on in the chosen direction.
        var middle = network.Nodes.Single(n => n.Id == circuit.Hops[1].Id);
        int flipped = 0;
        Circuit? tampered = null;
        middle.Circuits.RelayTap = (relay, cell) =>
        {
            bool forward = Cell.CircuitId(cell) == relay.OutwardId;
            if (forward != towardExit || Interlocked.Exchange(ref flipped, 1) == 1) return;
            tampered = relay;
            cell[Cell.HeaderSize + 100] ^= 0x04;
        };

        const int size = 1 << 20;
        string file = Path.Combine(Path.GetTempPath(), $"quid-{Guid.NewGuid():n}.bin");
        try
        {
            var (code, _, errors) = await Curl.RunAsync("--silent", "--show-error", "--max-time", "30", "--output", file,
                "--socks5-hostname", network.Socks.ToString(), $"{network.Web.BaseUrl}/bytes/{size}");
            Assert.Equal(1, Volatile.Read(ref flipped));
            // The hop that read the cell destroyed the circuit; the DESTROY travels to every hop and to us.
            await Eventually.WaitUntilAsync(() => tampered!.State == CircuitState.Closed && circuit.State == CircuitState.Closed,
                TimeSpan.FromSeconds(10), "the tampered circuit to be torn down end to end");

            // Whatever the application got is the true content, never a corrupted byte.
            var expected = new byte[size];
            LocalWebServer.FillPattern(expected, 0);
            var got = File.Exists(file) ? await File.ReadAllBytesAsync(file) : [];
            Assert.True(got.AsSpan().SequenceEqual(expected.AsSpan(0, got.Length)), "corrupted bytes reached curl");
            // Toward the exit, the tampered request never reached the server; either way, every request it did get is intact.
            Assert.All(network.Web.Requests, r => Assert.Equal($"GET /bytes/{size} HTTP/1.1", r));
            output.WriteLine($"curl exit {code} ({errors.Trim()}), {got.Length} intact bytes, server saw {network.Web.Requests.Count} requests");

            // The hop that caught it says so at the default level, without naming the neighbour the
            // circuit came from (at a first hop, its origin).
            if (towardExit)
            {
                Assert.Contains(logs.Lines, l => l.Text.StartsWith("Destroying a relayed circuit", StringComparison.Ordinal));
                Assert.DoesNotContain(logs.Lines, l => l.Text.Contains(") from ", StringComparison.Ordinal));
            }
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task Streams_with_different_SOCKS_credentials_use_different_circuits_and_the_same_credentials_share_one()
    {
        await using var network = await StartAsync(60);
        await ReadyCircuitAsync(network);
        foreach (var user in new[] { "alice", "bob", "alice" })
        {
            var (code, _, errors) = await Curl.RunAsync("--silent", "--show-error", "--max-time", "30",
                "--proxy", $"socks5h://{user}:secret@{network.Socks}", $"{network.Web.BaseUrl}/");
            Assert.True(code == 0, errors);
        }
        var isolations = network.Client.Pool.Circuits.Select(c => c.Isolation).ToList();
        Assert.Equal(2, isolations.Count(i => i is Quid.Proxy.Socks.SocksAuth { Kind: Quid.Proxy.Socks.SocksAuthKind.UsernamePassword }));
        Assert.Single(isolations, i => i is Quid.Proxy.Socks.SocksAuth a && a.Username.Span.SequenceEqual("alice"u8));
    }
}

/// <summary>A slow reader behind a fast writer: measured alone, since it asserts on memory.</summary>
[Collection(nameof(SerialTests))]
public sealed class CircuitMemoryTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_slow_reader_behind_a_fast_writer_keeps_every_relay_within_one_circuit_window()
    {
        await using var network = await CircuitTests.StartAsync(70);
        var circuit = await CircuitTests.ReadyCircuitAsync(network);
        var middle = network.Nodes.Single(n => n.Id == circuit.Hops[1].Id);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        long before = GC.GetTotalMemory(forceFullCollection: true);

        using var socket = await Socks5Client.ConnectAsync(network.Socks, network.Web.EndPoint.Address.ToString(), network.Web.EndPoint.Port, default);
        socket.ReceiveBufferSize = 4096;
        await socket.SendAsync(Encoding.ASCII.GetBytes($"GET /bytes/{256L << 20} HTTP/1.1\r\nHost: x\r\n\r\n"), SocketFlags.None);
        var buffer = new byte[4096];
        long read = 0, worstQueued = 0;
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(8);
        while (DateTime.UtcNow < until)
        {
            read += await socket.ReceiveAsync(buffer, SocketFlags.None);
            worstQueued = Math.Max(worstQueued, (await middle.StatusAsync()).Neighbours.Sum(n => n.QueuedBytes));
            await Task.Delay(20); // the reader is slow on purpose: about 200 KiB/s against a server that would send gigabytes
        }
        GC.Collect();
        GC.WaitForPendingFinalizers();
        long after = GC.GetTotalMemory(forceFullCollection: true);
        output.WriteLine($"read {read >> 10} KiB; worst queue at the middle {worstQueued >> 10} KiB; heap grew {(after - before) >> 20} MiB");
        // The stated bound: one circuit window of cells per direction at a relay.
        Assert.True(worstQueued <= CircuitFlow.Window * Cell.Size, $"The middle queued {worstQueued} bytes.");
        Assert.True(after - before < 32L << 20, $"The heap grew by {(after - before) >> 20} MiB while the reader dawdled.");
        Assert.True(read > 0);
    }
}
