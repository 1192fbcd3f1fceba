using System.Text.Json;
using Quid.Node.Control;

namespace Quid.Tests.Integration;

/// <summary>The control API on loopback, asked with the real curl: nothing without the cookie, everything with it.</summary>
public sealed class ControlApiTests
{
    // The client offers what it asks of the donor: a donor grants no node more than it offers.
    private static readonly NodeSpec[] TwoNodes = [new(2048, 2048), new(4096, 0)];
    private static readonly string[] DataPaths = ["/api/status", "/api/peers", "/api/circuits", "/api/ledger", "/api/id", "/api/throughput", "/metrics"];

    [Fact]
    public async Task The_API_refuses_every_request_without_the_right_cookie_and_answers_with_it()
    {
        await using var network = await TestNetwork.StartAsync(246, TwoNodes);
        await network.WaitForClientPartnerAsync();
        await using var control = await ControlPlane.StartAsync(network.Client, network.DataDirectory(0));
        string wrong = new('0', 64);

        foreach (var path in DataPaths)
        {
            var (none, body) = await control.CurlAsync(path, token: null);
            Assert.Equal(401, none);
            Assert.Contains(ControlCookie.FileName, body, StringComparison.Ordinal);
            Assert.DoesNotContain(network.Client.Id.ToString(), body, StringComparison.Ordinal);
            Assert.Equal(401, (await control.CurlAsync(path, wrong)).Status);
            Assert.Equal(401, (await control.CurlAsync(path, control.Token[..^1])).Status);
            Assert.Equal(200, (await control.CurlAsync(path, control.Token)).Status);
        }

        var (_, status) = await control.CurlAsync("/api/status", control.Token);
        using var json = JsonDocument.Parse(status);
        Assert.Equal(network.Client.Id.ToString(), json.RootElement.GetProperty("id").GetString());
        Assert.True(json.RootElement.GetProperty("requestMet").GetBoolean());
        var (_, peers) = await control.CurlAsync("/api/peers", control.Token);
        var partner = Assert.Single(JsonDocument.Parse(peers).RootElement.EnumerateArray());
        Assert.Equal(network.Nodes[1].Id.ToString(), partner.GetProperty("id").GetString());
        Assert.Equal(2048, partner.GetProperty("theyGrantKbps").GetInt64());
        var (_, metrics) = await control.CurlAsync("/metrics", control.Token);
        Assert.Contains("# TYPE quid_ledger_received_bytes_total counter", metrics, StringComparison.Ordinal);
        Assert.Contains("quid_grant_received_kbps 2048", metrics, StringComparison.Ordinal);
        Assert.Contains("quid_neighbours{role=", metrics, StringComparison.Ordinal);
        // The client advertises its listen address; whether a link has dialed in to it is the partner's choice.
        Assert.Matches(@"quid_reachability\{state=""(reachable|advertised)""\} 1", metrics);
        Assert.Contains("quid_reachability{state=\"not_reachable\"} 0", metrics, StringComparison.Ordinal);

        // The page itself holds no data, so a browser may load it and then ask for the token.
        var (page, html) = await control.CurlAsync("/", token: null);
        Assert.Equal(200, page);
        Assert.Contains("<title>Quid node</title>", html, StringComparison.Ordinal);
        Assert.DoesNotContain(network.Client.Id.ToString(), html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Only_loopback_hosts_and_GET_are_answered()
    {
        await using var network = await TestNetwork.StartAsync(248, [new(256, 0)]);
        await using var control = await ControlPlane.StartAsync(network.Client, network.DataDirectory(0));

        // A page whose name was rebound to 127.0.0.1 sends its own name as the Host.
        Assert.Equal(421, (await control.CurlAsync("/api/status", control.Token, "-H", "Host: attacker.example")).Status);
        Assert.Equal(200, (await control.CurlAsync("/api/status", control.Token, "-H", $"Host: localhost:{control.Server.EndPoint.Port}")).Status);
        Assert.Equal(405, (await control.CurlAsync("/api/status", control.Token, "-X", "POST")).Status);
        Assert.Equal(404, (await control.CurlAsync("/api/nothing", control.Token)).Status);
    }

    [Fact]
    public async Task The_cookie_is_32_owner_only_bytes_rewritten_at_each_start_so_an_old_one_stops_working()
    {
        await using var network = await TestNetwork.StartAsync(249, [new(256, 0)]);
        string directory = network.DataDirectory(0);
        string old;
        await using (var first = await ControlPlane.StartAsync(network.Client, directory))
        {
            old = first.Token;
            var cookie = ControlCookie.PathIn(directory);
            Assert.Equal(ControlCookie.Size, new FileInfo(cookie).Length);
            if (!OperatingSystem.IsWindows()) Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(cookie));
            Assert.Equal(first.Server.EndPoint.ToString(), await File.ReadAllTextAsync(Path.Combine(directory, ControlCookie.EndPointFileName)));
        }
        Assert.False(File.Exists(Path.Combine(directory, ControlCookie.EndPointFileName)));

        await using var second = await ControlPlane.StartAsync(network.Client, directory);
        Assert.NotEqual(old, second.Token);
        Assert.Equal(401, (await second.CurlAsync("/api/id", old)).Status);
        Assert.Equal(200, (await second.CurlAsync("/api/id", second.Token)).Status);
    }
}
