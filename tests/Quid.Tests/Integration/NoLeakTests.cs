using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using Quid.Node;

namespace Quid.Tests.Integration;

/// <summary>
/// The proxies never listen beyond loopback. (That names reach the exit unresolved and that the
/// node never connects to a destination itself is shown by every fetch in
/// <see cref="ProxyClientTests"/>: the names exist only at the exits, and destinations see only exits.)
/// </summary>
public sealed class NoLeakTests
{
    public static TheoryData<string, string> NotLoopback => new()
    {
        { "socks", "0.0.0.0" }, { "socks", "::" }, { "http", "0.0.0.0" }, { "http", "::" }, { "http", "192.0.2.1" },
    };

    [Theory]
    [MemberData(nameof(NotLoopback))]
    public async Task A_node_told_to_serve_a_proxy_beyond_loopback_refuses_to_start_and_opens_nothing(string proxy, string address)
    {
        string directory = Directory.CreateTempSubdirectory("quid-noleak-").FullName;
        // A fixed link port, so we can tell afterwards that the failed start left nothing listening on it.
        var listen = new IPEndPoint(IPAddress.Parse("127.0.0.196"), 47843);
        var outside = new IPEndPoint(IPAddress.Parse(address), 0);
        var options = new NodeOptions
        {
            DataDirectory = directory,
            Listen = listen,
            Socks = proxy == "socks" ? outside : null,
            HttpProxy = proxy == "http" ? outside : null,
        };
        try
        {
            var refused = await Assert.ThrowsAsync<ArgumentException>(() => QuidNode.StartAsync(options, NullLoggerFactory.Instance));
            Assert.Contains($"listens on loopback only, never on {IPAddress.Parse(address)}", refused.Message, StringComparison.Ordinal);
            using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            probe.Bind(listen);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task Quid_run_refuses_an_HTTP_proxy_address_beyond_loopback_and_says_why()
    {
        string directory = Directory.CreateTempSubdirectory("quid-noleak-").FullName;
        try
        {
            var (code, output) = await QuidProcess.RunAsync("run", "--data-dir", directory, "--listen", "127.0.0.198:0", "--socks", "off", "--http-proxy", "0.0.0.0:8118");
            Assert.Equal(78, code);
            Assert.Contains("http-proxy (from flag --http-proxy): 0.0.0.0 is not a loopback address", output, StringComparison.Ordinal);
            Assert.DoesNotContain("Accepting links", output, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task A_node_with_default_proxy_settings_serves_both_on_loopback()
    {
        string directory = Directory.CreateTempSubdirectory("quid-noleak-").FullName;
        var defaults = new NodeOptions { DataDirectory = directory };
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, NodeOptions.DefaultSocksPort), defaults.Socks);
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, NodeOptions.DefaultHttpProxyPort), defaults.HttpProxy);
        // The same, on free ports, so the test does not depend on 1080 and 8118 being free.
        await using (var node = await QuidNode.StartAsync(defaults with
        {
            Listen = new IPEndPoint(IPAddress.Parse("127.0.0.197"), 0),
            Socks = new IPEndPoint(IPAddress.Loopback, 0),
            HttpProxy = new IPEndPoint(IPAddress.Loopback, 0),
        }, NullLoggerFactory.Instance))
        {
            Assert.True(IPAddress.IsLoopback(node.SocksEndPoint!.Address));
            Assert.True(IPAddress.IsLoopback(node.HttpProxyEndPoint!.Address));
            Assert.NotEqual(node.SocksEndPoint.Port, node.HttpProxyEndPoint.Port);
        }
        Directory.Delete(directory, recursive: true);
    }
}
