using System.Net;
using System.Net.Sockets;
using Quid.Circuits;
using Quid.Wire;

namespace Quid.Tests.Integration;

/// <summary>What an exit refuses to connect to, and what its refusals tell a client, seen through a client's SOCKS proxy.</summary>
public sealed class ExitRefusalTests
{
    private static readonly NodeSpec[] ClientAndExit = [new(1048576, 524288), new(2097152, 1048576)];

    private static ExitRule Rule(ExitAction action, string address, byte prefix) => new(action, IPAddress.Parse(address), prefix, 0, ushort.MaxValue);

    private static readonly ExitRule AcceptAnything = new(ExitAction.Accept, null, 0, 0, ushort.MaxValue);

    private static async Task<int> ReplyAsync(TestNetwork network, string host, int port)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var (socket, reply) = await Socks5.ConnectAsync(network.Socks.ToString(), "", host, port, timeout.Token);
        socket?.Dispose();
        return reply;
    }

    [Fact]
    public async Task The_exit_refuses_its_own_address_as_Tors_ExitPolicyRejectPrivate_does_unless_a_rule_names_it()
    {
        // Loopback stands in for the exit's host: 127.0.0.1 is refused as private is, the rest of
        // 127/8 stands in for the internet. The exit listens on 127.0.0.41, its own address.
        await using var network = await TestNetwork.StartAsync(40, ClientAndExit, configure: (i, o, _) => i == 0 ? o : o with
        {
            ExitPolicy = new ExitPolicy([Rule(ExitAction.Reject, "127.0.0.1", 32), AcceptAnything]),
        });
        await network.WaitForClientPartnerAsync();
        using var own = new HoldingServer(IPAddress.Parse("127.0.0.41"));
        using var elsewhere = new HoldingServer(IPAddress.Parse("127.0.0.42"));

        Assert.Equal(0, await ReplyAsync(network, "127.0.0.42", elsewhere.EndPoint.Port));
        Assert.Equal(2, await ReplyAsync(network, "127.0.0.41", own.EndPoint.Port)); // not allowed by ruleset
        Assert.Empty(own.Clients);
    }

    [Fact]
    public async Task A_name_of_a_private_address_and_a_name_that_does_not_exist_get_the_same_answer()
    {
        await using var network = await TestNetwork.StartAsync(44, ClientAndExit,
            exitResolver: (host, _) => host switch
            {
                "intranet.quid.test" => Task.FromResult(new[] { IPAddress.Parse("10.1.2.3") }),
                "public.quid.test" => Task.FromResult(new[] { IPAddress.Parse("127.0.0.46") }),
                _ => Task.FromException<IPAddress[]>(new SocketException((int)SocketError.HostNotFound)),
            },
            configure: (i, o, _) => i == 0 ? o : o with { ExitPolicy = new ExitPolicy([Rule(ExitAction.Reject, "10.0.0.0", 8), AcceptAnything]) });
        await network.WaitForClientPartnerAsync();
        using var server = new HoldingServer(IPAddress.Parse("127.0.0.46"));

        Assert.Equal(0, await ReplyAsync(network, "public.quid.test", server.EndPoint.Port));
        int intranet = await ReplyAsync(network, "intranet.quid.test", 80);
        int missing = await ReplyAsync(network, "missing.quid.test", 80);
        Assert.Equal(missing, intranet);
        Assert.Equal(4, missing); // host unreachable, as for any name that does not resolve
        // An address the client gave itself reveals nothing of the exit's DNS: it is refused as what it is.
        Assert.Equal(2, await ReplyAsync(network, "10.1.2.3", 80));
    }

    [Fact]
    public async Task A_circuits_stream_past_its_limit_opens_on_another_circuit_of_the_same_isolation()
    {
        await using var network = await TestNetwork.StartAsync(48, ClientAndExit,
            configure: (_, o, _) => o with { Circuits = o.Circuits with { MaxStreamsPerCircuit = 4 } });
        await network.WaitForClientPartnerAsync();
        using var server = new HoldingServer(IPAddress.Loopback);
        var sockets = new List<Socket>();
        try
        {
            for (int i = 0; i < 6; i++)
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                var (socket, reply) = await Socks5.ConnectAsync(network.Socks.ToString(), "alice", server.EndPoint, timeout.Token);
                Assert.True(reply == 0, $"Stream {i + 1} got SOCKS reply {reply}.");
                sockets.Add(socket!);
            }
            var alices = network.Client.Pool.Circuits.Where(c => c.Isolation is Quid.Proxy.Socks.SocksAuth a && a.Username.Span.SequenceEqual("alice"u8)).ToList();
            Assert.Equal(2, alices.Count);
            Assert.All(alices, c => Assert.InRange(c.StreamCount, 1, 4));
        }
        finally
        {
            foreach (var socket in sockets) socket.Dispose();
        }
    }
}
