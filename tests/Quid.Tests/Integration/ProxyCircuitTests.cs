using System.Net;
using System.Security.Cryptography;
using Quid.Cli.Demo;

namespace Quid.Tests.Integration;

/// <summary>The HTTP proxy over three-hop circuits: the destination sees the exit, never the client or its first hop.</summary>
public sealed class ProxyCircuitTests
{
    [Fact]
    public async Task Curl_through_the_HTTP_proxy_over_three_hops_fetches_intact_and_the_destination_sees_only_the_exit()
    {
        await using var tls = new TestOrigin(tls: true);
        await using var network = await CircuitTests.StartAsync(200);
        var circuit = await CircuitTests.ReadyCircuitAsync(network);
        var exit = network.Nodes.Single(n => n.Id == circuit.Hops[^1].Id).LinkEndPoint.Address;
        var firstHop = network.Nodes.Single(n => n.Id == circuit.Hops[0].Id).LinkEndPoint.Address;
        const int size = 4 << 20;
        var expected = new byte[size];
        LocalWebServer.FillPattern(expected, 0);

        foreach (var (url, insecure) in new[] { ($"{network.Web.BaseUrl}/bytes/{size}", false), ($"https://127.0.0.1:{tls.Port}/bytes/{size}", true) })
        {
            string file = Path.Combine(Path.GetTempPath(), $"quid-{Guid.NewGuid():n}.bin");
            try
            {
                var (code, _, errors) = await Curl.RunAsync([
                    "--silent", "--show-error", "--fail", "--max-time", "60", "--output", file,
                    .. insecure ? ["--insecure"] : Array.Empty<string>(), "--proxy", $"http://{network.HttpProxy}", url]);
                Assert.True(code == 0, $"curl failed ({code}): {errors}");
                Assert.Equal(SHA256.HashData(expected), SHA256.HashData(await File.ReadAllBytesAsync(file)));
            }
            finally
            {
                File.Delete(file);
            }
        }
        IPAddress[] seen = [.. network.Web.Clients, .. tls.Clients];
        Assert.Equal(2, seen.Length);
        // The prebuilt circuit carried both streams: its exit is all either destination saw.
        Assert.All(seen, address => Assert.Equal(exit, address));
        Assert.NotEqual(firstHop, exit);
        Assert.NotEqual(network.Client.LinkEndPoint.Address, exit);
    }
}
