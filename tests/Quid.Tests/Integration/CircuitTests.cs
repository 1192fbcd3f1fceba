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

/// <summary>
/// Three-hop onion circuits on real sockets: isolation and memory. What each hop sees and what
/// tampering does are asserted over in-memory links (tests/Circuits/TamperingTests.cs).
/// </summary>
public sealed class CircuitTests
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
