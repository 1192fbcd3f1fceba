using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using Quid.Node;

namespace Quid.Tests.Integration;

public sealed class NodeStartTests
{
    [Fact]
    public async Task A_node_that_cannot_open_its_HTTP_proxy_does_not_start_and_lets_go_of_the_ports_it_had_opened()
    {
        using var taken = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        taken.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        taken.Listen();
        var socks = FreePort();
        var links = new IPEndPoint(IPAddress.Parse("127.0.0.98"), FreePort().Port);
        string directory = Directory.CreateTempSubdirectory("quid-start-").FullName;
        try
        {
            var options = new NodeOptions { DataDirectory = directory, Listen = links, Socks = socks, HttpProxy = (IPEndPoint)taken.LocalEndPoint! };

            var e = await Assert.ThrowsAsync<SocketException>(() => QuidNode.StartAsync(options, NullLoggerFactory.Instance));

            Assert.Equal(SocketError.AddressAlreadyInUse, e.SocketErrorCode);
            // The SOCKS listener that had opened is closed again: its port binds.
            using var again = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            again.Bind(socks);
            // And the node, once the port is free, starts from the same data directory.
            taken.Close();
            await using var node = await QuidNode.StartAsync(options with { Socks = new IPEndPoint(IPAddress.Loopback, 0) }, NullLoggerFactory.Instance);
            Assert.NotNull(node.HttpProxyEndPoint);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static IPEndPoint FreePort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return (IPEndPoint)probe.LocalEndPoint!;
    }
}
