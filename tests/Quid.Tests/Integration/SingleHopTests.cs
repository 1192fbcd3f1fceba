using System.Net;
using System.Security.Cryptography;
using Quid.Cli.Demo;

namespace Quid.Tests.Integration;

/// <summary>The seed's base design end to end: real curl through a partner, on real loopback sockets.</summary>
public sealed class SingleHopTests
{
    // Grants of hundreds of Mbit/s: these tests are about the path, not the shaping.
    private static readonly NodeSpec[] ThreeNodes = [new(1048576, 524288), new(2097152, 1048576), new(1048576, 0)];

    [Fact]
    public async Task Curl_fetches_16_MiB_through_a_partner_and_the_server_sees_the_partner()
    {
        await using var network = await TestNetwork.StartAsync(10, ThreeNodes);
        await network.WaitForClientPartnerAsync();
        const int size = 16 * 1024 * 1024;
        string file = Path.Combine(Path.GetTempPath(), $"quid-{Guid.NewGuid():n}.bin");
        try
        {
            var (exitCode, _, errors) = await Curl.RunAsync("--silent", "--show-error", "--max-time", "60",
                "--socks5-hostname", network.Socks.ToString(), $"{network.Web.BaseUrl}/bytes/{size}", "--output", file);
            Assert.True(exitCode == 0, $"curl failed ({exitCode}): {errors}");

            var expected = new byte[size];
            LocalWebServer.FillPattern(expected, 0);
            Assert.Equal(SHA256.HashData(expected), SHA256.HashData(await File.ReadAllBytesAsync(file)));

            var seen = Assert.Single(network.Web.Clients);
            Assert.Contains(seen, await network.ClientPartnerAddressesAsync());
            Assert.NotEqual(IPAddress.Loopback, seen);
            Assert.NotEqual(network.Client.LinkEndPoint.Address, seen);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task Names_are_resolved_by_the_exit_never_by_the_client()
    {
        // Only the exits know this name; if the client resolved it, the fetch could not succeed.
        var resolved = new List<string>();
        await using var network = await TestNetwork.StartAsync(20, ThreeNodes, exitResolver: (host, _) =>
        {
            lock (resolved) resolved.Add(host);
            return Task.FromResult(host == "web.quid.test" ? new[] { IPAddress.Loopback } : []);
        });
        await network.WaitForClientPartnerAsync();

        var (exitCode, output, errors) = await Curl.RunAsync("--silent", "--show-error", "--max-time", "30",
            "--socks5-hostname", network.Socks.ToString(), $"http://web.quid.test:{network.Web.EndPoint.Port}/");
        Assert.True(exitCode == 0, $"curl failed ({exitCode}): {errors}");
        Assert.Contains("Hello through Quid", output, StringComparison.Ordinal);
        lock (resolved) Assert.Equal(["web.quid.test"], resolved);
    }

    [Fact]
    public async Task A_refused_destination_gets_the_SOCKS_reply_for_it_and_the_next_request_works()
    {
        await using var network = await TestNetwork.StartAsync(30, ThreeNodes);
        await network.WaitForClientPartnerAsync();

        // Port 1 on loopback: nothing listens, the exit's connect is refused.
        var (refused, _, errors) = await Curl.RunAsync("--silent", "--show-error", "--max-time", "30",
            "--socks5-hostname", network.Socks.ToString(), "http://127.0.0.1:1/");
        Assert.Equal(97, refused); // curl: the proxy refused the connection
        Assert.True(errors.EndsWith("(5)\n", StringComparison.Ordinal), errors); // SOCKS5 reply 5: connection refused

        var (ok, output, _) = await Curl.RunAsync("--silent", "--max-time", "30", "--socks5-hostname", network.Socks.ToString(), $"{network.Web.BaseUrl}/");
        Assert.Equal(0, ok);
        Assert.Contains("Hello through Quid", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Tor_style_SOCKS_RESOLVE_is_answered_by_the_exit_resolver()
    {
        await using var network = await TestNetwork.StartAsync(25, ThreeNodes, exitResolver: (host, _) =>
            Task.FromResult(host == "name.quid.test" ? new[] { IPAddress.Parse("192.0.2.7"), IPAddress.Loopback } : []));
        await network.WaitForClientPartnerAsync();

        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        await socket.ConnectAsync(network.Socks);
        await socket.SendAsync(new byte[] { 5, 1, 0 });
        var reply = new byte[64];
        Assert.Equal(2, await socket.ReceiveAsync(reply));
        byte[] name = "name.quid.test"u8.ToArray();
        await socket.SendAsync((byte[])[5, 0xF0, 0, 3, (byte)name.Length, .. name, 0, 0]);
        int n = await socket.ReceiveAsync(reply);
        // Success, with the exit's first answer: an IPv4 address, port 0.
        Assert.Equal(new byte[] { 5, 0, 0, 1, 192, 0, 2, 7, 0, 0 }, reply[..n]);
    }
}
