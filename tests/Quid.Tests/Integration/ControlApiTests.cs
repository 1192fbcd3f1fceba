using System.Security.Cryptography;
using System.Text.Json;
using Quid.Node.Control;
using Quid.Services;

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
    public async Task Only_loopback_hosts_and_the_methods_each_path_takes_are_answered()
    {
        await using var network = await TestNetwork.StartAsync(248, [new(256, 0)]);
        await using var control = await ControlPlane.StartAsync(network.Client, network.DataDirectory(0));

        // A page whose name was rebound to 127.0.0.1 sends its own name as the Host.
        Assert.Equal(421, (await control.CurlAsync("/api/status", control.Token, "-H", "Host: attacker.example")).Status);
        Assert.Equal(200, (await control.CurlAsync("/api/status", control.Token, "-H", $"Host: localhost:{control.Server.EndPoint.Port}")).Status);
        Assert.Equal(405, (await control.CurlAsync("/api/status", control.Token, "-X", "POST")).Status);
        Assert.Equal(405, (await control.CurlAsync("/api/services", control.Token, "-X", "PUT")).Status);
        Assert.Equal(405, (await control.CurlAsync("/api/shares", control.Token)).Status);
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

    [Fact]
    public async Task Services_are_published_listed_and_removed_and_a_request_that_cannot_be_met_says_what_to_change()
    {
        // A lone node: nothing publishes its records, so every service stays unpublished; the API answers after its short wait all the same.
        await using var network = await TestNetwork.StartAsync(56, [new(256, 0)]);
        string directory = network.DataDirectory(0);
        await using var control = await ControlPlane.StartAsync(network.Client, directory, new ControlOptions { PublishWait = TimeSpan.FromMilliseconds(200) });

        var web = await PostAsync(control, "/api/services", 201, """{"name": "web", "target": "127.0.0.1:8080", "kind": "stable"}""");
        Assert.Equal("web", web.GetProperty("name").GetString());
        Assert.Equal("Stable", web.GetProperty("kind").GetString());
        Assert.False(web.GetProperty("published").GetBoolean());
        Assert.Equal(JsonValueKind.Null, web.GetProperty("secret").ValueKind);
        // The key in the data directory is the address.
        using (var keys = ServiceKeys.Stable(await File.ReadAllBytesAsync(Path.Combine(directory, "services", "web.stable.key"))))
            Assert.Equal(keys.FixedAddress!.ToString(), web.GetProperty("address").GetString());

        // A moving service's owner gets the secret, from which this period's address follows.
        var moving = await PostAsync(control, "/api/services", 201, """{"name": "follow-me", "target": "localhost:8081", "kind": "moving"}""");
        string secret = moving.GetProperty("secret").GetString()!;
        Assert.StartsWith(ServiceSecret.Prefix, secret, StringComparison.Ordinal);
        using (var parsed = ServiceSecret.Parse(secret))
        using (var keys = ServiceKeys.Moving(parsed))
        {
            var now = DateTimeOffset.UtcNow;
            Assert.Equal(keys.Address(keys.Periods.Number(now)).ToString(), moving.GetProperty("address").GetString());
            var until = moving.GetProperty("addressUntil").GetDateTimeOffset();
            Assert.InRange(until, now, now + ServicePeriod.DefaultLength);
        }
        // A target elsewhere than loopback is the owner's choice.
        await PostAsync(control, "/api/services", 201, """{"name": "lan", "target": "192.0.2.7:80"}""");
        // A private one comes with its access key, which another node's API takes for its proxies.
        var hidden = await PostAsync(control, "/api/services", 201, """{"name": "hidden", "target": "127.0.0.1:8082", "private": true}""");
        string access = hidden.GetProperty("accessKey").GetString()!;
        Assert.StartsWith(ServiceSecret.Prefix, access, StringComparison.Ordinal);
        Assert.Equal(JsonValueKind.Null, web.GetProperty("accessKey").ValueKind);
        string hiddenAddress = hidden.GetProperty("address").GetString()!;
        var accepted = await PostAsync(control, "/api/access", 200, JsonSerializer.Serialize(new { address = hiddenAddress, key = access }));
        Assert.Equal(hiddenAddress, accepted.GetProperty("address").GetString());
        // A moving service followed by its secret: reached as NAME.quid, at this period's address.
        var follow = await PostAsync(control, "/api/follows", 200, JsonSerializer.Serialize(new { name = "Blog", secret }));
        Assert.Equal(("blog", "blog.quid", moving.GetProperty("address").GetString()),
            (follow.GetProperty("name").GetString(), follow.GetProperty("host").GetString(), follow.GetProperty("address").GetString()));
        Assert.Equal("blog", Assert.Single((await GetAsync(control, "/api/follows")).EnumerateArray()).GetProperty("name").GetString());
        Assert.Contains("letters, digits and dashes", await PostAsync(control, "/api/follows", 400, JsonSerializer.Serialize(new { name = new string('a', 56), secret }), error: true));
        Assert.Contains("quid-secret-", await PostAsync(control, "/api/follows", 400, """{"name": "x", "secret": "not a secret"}""", error: true));
        Assert.Equal(204, (await control.CurlAsync("/api/follows/blog", control.Token, "-X", "DELETE")).Status);
        Assert.Equal(404, (await control.CurlAsync("/api/follows/blog", control.Token, "-X", "DELETE")).Status);
        Assert.Equal(0, (await GetAsync(control, "/api/follows")).GetArrayLength());
        Assert.Equal(204, (await control.CurlAsync($"/api/access/{hiddenAddress}", control.Token, "-X", "DELETE")).Status);
        Assert.Equal(404, (await control.CurlAsync($"/api/access/{hiddenAddress}", control.Token, "-X", "DELETE")).Status);
        Assert.Contains("checksum", await PostAsync(control, "/api/access", 400, JsonSerializer.Serialize(new { address = hiddenAddress, key = access[..20] + (access[20] == 'a' ? 'b' : 'a') + access[21..] }), error: true), StringComparison.OrdinalIgnoreCase);

        Assert.Contains("quid services remove web", await PostAsync(control, "/api/services", 409, """{"name": "web", "target": "127.0.0.1:9090"}""", error: true));
        // The very same request again is no conflict: it gets the service that is there.
        Assert.Equal(web.GetProperty("address").GetString(),
            (await PostAsync(control, "/api/services", 201, """{"name": "web", "target": "127.0.0.1:8080", "kind": "stable"}""")).GetProperty("address").GetString());
        Assert.Contains("letters, digits and dashes", await PostAsync(control, "/api/services", 400, """{"name": "my web", "target": "127.0.0.1:8080"}""", error: true));
        Assert.Contains("such as 127.0.0.1:8080", await PostAsync(control, "/api/services", 400, """{"name": "x", "target": "8080"}""", error: true));
        Assert.Contains("give 127.0.0.1:80", await PostAsync(control, "/api/services", 400, """{"name": "x", "target": "0.0.0.0:80"}""", error: true));
        Assert.Contains("use stable", await PostAsync(control, "/api/services", 400, """{"name": "x", "target": "127.0.0.1:80", "kind": "forever"}""", error: true));
        Assert.Contains("JSON object", await PostAsync(control, "/api/services", 400, "name=x", error: true));
        Assert.Equal(413, (await control.CurlAsync("/api/services", control.Token, "--data-binary", $"{{\"name\": \"{new string('a', 70_000)}\"}}")).Status);

        string folder = Directory.CreateTempSubdirectory("quid-api-share-").FullName;
        try
        {
            await File.WriteAllTextAsync(Path.Combine(folder, "a.txt"), "a");
            var files = await PostAsync(control, "/api/shares", 201, JsonSerializer.Serialize(new { name = "files", paths = new[] { folder } }));
            Assert.Equal("Ephemeral", files.GetProperty("kind").GetString());
            string missing = Path.Combine(folder, "missing.txt");
            Assert.Contains(missing, await PostAsync(control, "/api/shares", 400, JsonSerializer.Serialize(new { name = "x", paths = new[] { missing } }), error: true));
            Assert.Contains("not an absolute path", await PostAsync(control, "/api/shares", 400, """{"name": "x", "paths": ["a.txt"]}""", error: true));
            Assert.Contains("not both", await PostAsync(control, "/api/shares", 400, JsonSerializer.Serialize(new { name = "x", paths = new[] { folder }, receive = folder }), error: true));
            string inbox = Path.Combine(folder, "inbox");
            await PostAsync(control, "/api/shares", 201, JsonSerializer.Serialize(new { name = "inbox", receive = inbox }));
            Assert.True(Directory.Exists(inbox));

            // Without the cookie nothing is published.
            Assert.Equal(401, (await control.CurlAsync("/api/services", null, "--data-binary", """{"name": "sneaky", "target": "127.0.0.1:22"}""")).Status);

            var listed = await GetAsync(control, "/api/services");
            Assert.Equal(["files", "follow-me", "hidden", "inbox", "lan", "web"], listed.EnumerateArray().Select(s => s.GetProperty("name").GetString()));
            Assert.All(listed.EnumerateArray(), s => Assert.EndsWith(".quid", s.GetProperty("address").GetString(), StringComparison.Ordinal));
            Assert.Equal(secret, listed.EnumerateArray().Single(s => s.GetProperty("kind").GetString() == "Moving").GetProperty("secret").GetString());
            Assert.Equal(web.GetProperty("address").GetString(), (await GetAsync(control, "/api/services/web")).GetProperty("address").GetString());

            Assert.Equal(204, (await control.CurlAsync("/api/services/web", control.Token, "-X", "DELETE")).Status);
            var (again, body) = await control.CurlAsync("/api/services/web", control.Token, "-X", "DELETE");
            Assert.Equal(404, again);
            Assert.Contains("quid services", body, StringComparison.Ordinal);
            Assert.DoesNotContain(network.Client.Services, s => s.Name == "web");
            Assert.Equal(404, (await control.CurlAsync("/api/services/web", control.Token)).Status);

            // Published again under its name, a stable service has its address back: the key file is the address.
            var back = await PostAsync(control, "/api/services", 201, """{"name": "web", "target": "127.0.0.1:8080", "kind": "stable"}""");
            Assert.Equal(web.GetProperty("address").GetString(), back.GetProperty("address").GetString());
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public async Task A_share_published_through_the_API_is_fetched_by_curl_by_its_quid_name_and_the_API_counts_the_client_met()
    {
        await using var network = await CircuitTests.StartAsync(50);
        await CircuitTests.ReadyCircuitAsync(network);
        var serviceNode = network.Nodes[^1];
        await using var control = await ControlPlane.StartAsync(serviceNode, network.DataDirectory(network.Nodes.Count - 1));
        string folder = Directory.CreateTempSubdirectory("quid-api-share-").FullName;
        try
        {
            var file = RandomNumberGenerator.GetBytes(256 << 10);
            await File.WriteAllBytesAsync(Path.Combine(folder, "file.bin"), file);

            var share = await PostAsync(control, "/api/shares", 201, JsonSerializer.Serialize(new { name = "files", paths = new[] { folder } }));
            Assert.True(share.GetProperty("published").GetBoolean(), "the node had partners, so an introduction point published the record within the wait");
            Assert.True(share.GetProperty("introductionPointsUp").GetInt32() >= 1);

            string saved = Path.Combine(folder, "..", $"fetched-{Guid.NewGuid():N}");
            var (exit, _, errors) = await Curl.RunAsync("-sS", "--fail", "--max-time", "60", "--socks5-hostname", network.Socks.ToString(), "-o", saved,
                $"http://{share.GetProperty("address").GetString()}/file.bin");
            Assert.True(exit == 0, $"curl exited {exit}: {errors}");
            Assert.Equal(SHA256.HashData(file), SHA256.HashData(await File.ReadAllBytesAsync(saved)));
            File.Delete(saved);

            var listed = Assert.Single((await GetAsync(control, "/api/services")).EnumerateArray());
            Assert.Equal(1, listed.GetProperty("met").GetInt64());
            Assert.Equal(1, listed.GetProperty("introduced").GetInt64());
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private static async Task<JsonElement> GetAsync(ControlPlane control, string path)
    {
        var (status, body) = await control.CurlAsync(path, control.Token);
        Assert.True(status == 200, $"{path}: {status} {body}");
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    /// <summary>POSTs <paramref name="json"/>, asserts the status, and returns the answer.</summary>
    private static async Task<JsonElement> PostAsync(ControlPlane control, string path, int expected, string json)
    {
        var (status, body) = await control.CurlAsync(path, control.Token, "--data-binary", json);
        Assert.True(status == expected, $"{path} {json}: expected {expected}, got {status} {body}");
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    /// <summary>As above, for a refusal: its message.</summary>
    private static async Task<string> PostAsync(ControlPlane control, string path, int expected, string json, bool error)
    {
        Assert.True(error);
        return (await PostAsync(control, path, expected, json)).GetProperty("error").GetString()!;
    }
}
