using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using Quid.Cli.Demo;
using Quid.Services;
using Xunit.Abstractions;

namespace Quid.Tests.Integration;

/// <summary>The quid command as a person runs it: real node processes, the status commands against them, configuration from every source.</summary>
[Collection(nameof(SerialTests))]
public sealed class CliTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("quid-cli-").FullName;

    [Fact]
    public async Task Quid_status_shows_live_rates_during_a_transfer_and_SIGTERM_drains_and_ends_agreements_politely()
    {
        await using var web = new LocalWebServer(new IPEndPoint(IPAddress.Loopback, 0));
        web.Start();
        string exitDir = Path.Combine(_root, "exit"), clientDir = Path.Combine(_root, "client");
        using var exit = QuidProcess.Start("run", "--data-dir", exitDir, "--listen", "127.0.0.250:0", "--socks", "off", "--http-proxy", "off", "--control", "127.0.0.1:0",
            "--offer", "2048", "--request", "0", "--hops", "1", "--exit-allow-private");
        string linkPort = (await exit.WaitForLineAsync(@"Accepting links on 127\.0\.0\.250:(\d+)", TimeSpan.FromSeconds(30))).Groups[1].Value;
        string exitId = (await exit.WaitForLineAsync(@"Node ([a-z2-7]{32}) ", TimeSpan.FromSeconds(30))).Groups[1].Value;
        using var client = QuidProcess.Start("run", "--data-dir", clientDir, "--listen", "127.0.0.251:0", "--socks", "127.0.0.1:0", "--http-proxy", "off", "--control", "127.0.0.1:0",
            "--offer", "2048", "--request", "2048", "--hops", "1", "--peer", $"127.0.0.250:{linkPort}");
        string socks = (await client.WaitForLineAsync(@"SOCKS proxy on (127\.0\.0\.1:\d+)", TimeSpan.FromSeconds(30))).Groups[1].Value;

        // --wait waits for the starting node to answer, follows its bootstrapping, and returns once a circuit is ready.
        var (waited, progress) = await QuidProcess.RunAsync("status", "--data-dir", clientDir, "--wait", "--timeout", "30");
        Assert.True(waited == 0, progress);
        Assert.Contains("Ready: a circuit is waiting", progress, StringComparison.Ordinal);

        // A download shaped by the exit to its 2 Mbit/s offer: it is still running while we look.
        var download = Curl.RunAsync("--silent", "--output", "/dev/null", "--max-time", "30", "--socks5-hostname", socks, $"{web.BaseUrl}/bytes/{64 << 20}");
        JsonElement status = default;
        await Eventually.WaitUntilAsync(() =>
        {
            status = Json(QuidProcess.RunAsync("status", "--data-dir", clientDir, "--json").GetAwaiter().GetResult());
            return status.GetProperty("rates").GetProperty("receivedBytesPerSecond").GetDouble() > 0;
        }, TimeSpan.FromSeconds(20), "quid status to show a received rate");
        Assert.Equal("Ready", status.GetProperty("phase").GetString());

        var (code, text) = await QuidProcess.RunAsync("status", "--data-dir", clientDir);
        Assert.True(code == 0, text);
        output.WriteLine(text);
        var received = Regex.Match(text, @"received\s+([\d.]+) (bit/s|kbit/s|Mbit/s)");
        Assert.True(received.Success, text);
        Assert.True(double.Parse(received.Groups[1].Value, CultureInfo.InvariantCulture) > 0, $"quid status shows {received.Value}");
        var (_, exitText) = await QuidProcess.RunAsync("status", "--data-dir", exitDir);
        var given = Regex.Match(exitText, @"given\s+([\d.]+) (bit/s|kbit/s|Mbit/s)");
        Assert.True(given.Success && double.Parse(given.Groups[1].Value, CultureInfo.InvariantCulture) > 0, exitText);
        // The exit was dialed by the client: reachable. The client listens on loopback, was dialed by nobody, and asked no gateway.
        Assert.Contains("reachable at 127.0.0.250:", exitText, StringComparison.Ordinal);
        var exitReach = Json(await QuidProcess.RunAsync("status", "--data-dir", exitDir, "--json")).GetProperty("reachability");
        Assert.Equal($"reachable at 127.0.0.250:{linkPort} (the listen address; 1 link dialed in)", exitReach.GetProperty("text").GetString());
        var clientReach = status.GetProperty("reachability");
        Assert.Equal("Advertised", clientReach.GetProperty("state").GetString());
        Assert.Equal("off", clientReach.GetProperty("portMapping").GetString());
        Assert.Equal("not tried: listening on loopback", clientReach.GetProperty("portMappingText").GetString());

        var peer = Assert.Single(Json(await QuidProcess.RunAsync("peers", "--data-dir", clientDir, "--json")).EnumerateArray());
        Assert.Equal(exitId, peer.GetProperty("id").GetString());
        Assert.Equal(2048, peer.GetProperty("theyGrantKbps").GetInt64());
        var circuit = Assert.Single(Json(await QuidProcess.RunAsync("circuits", "--data-dir", clientDir, "--json")).GetProperty("circuits").EnumerateArray());
        Assert.Equal([exitId], circuit.GetProperty("path").EnumerateArray().Select(h => h.GetString()));
        Assert.Equal(1, circuit.GetProperty("streams").GetInt32());
        var account = Assert.Single(Json(await QuidProcess.RunAsync("ledger", "--data-dir", clientDir, "--json")).EnumerateArray());
        Assert.True(account.GetProperty("bytesReceived").GetInt64() > 0);
        var (_, table) = await QuidProcess.RunAsync("peers", "--data-dir", clientDir);
        Assert.Contains(exitId[..8], table, StringComparison.Ordinal);

        // systemd's stop: SIGTERM. The node lets the open stream run for a while, then ends its agreement politely.
        client.Signal("TERM");
        // Read the output rather than QuidProcess.WaitForLineAsync, which gives up once the process has exited, as this one will.
        await Eventually.WaitUntilAsync(() => Regex.IsMatch(client.Output, @"Node [a-z2-7]{8} stopped"), TimeSpan.FromSeconds(15), "the client to stop");
        Assert.Contains("Waiting up to 5 s for 1 open streams to finish", client.Output, StringComparison.Ordinal);
        await exit.WaitForLineAsync(@"Agreement with [a-z2-7]{8} ended \(ShuttingDown\)", TimeSpan.FromSeconds(10));
        Assert.NotEqual(0, (await download).ExitCode);

        // With the node stopped, the ledger is read from its database.
        var (offline, saved) = await QuidProcess.RunAsync("ledger", "--data-dir", clientDir);
        Assert.True(offline == 0, saved);
        Assert.Contains("not running", saved, StringComparison.Ordinal);
        Assert.Contains(exitId[..8], saved, StringComparison.Ordinal);
        var (down, reason) = await QuidProcess.RunAsync("status", "--data-dir", clientDir);
        Assert.Equal(1, down);
        Assert.Contains("No node answers", reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Quid_serve_and_share_publish_through_the_running_node_what_curl_then_reaches_and_quid_services_lists_and_removes()
    {
        await using var web = new LocalWebServer(new IPEndPoint(IPAddress.Loopback, 0));
        web.Start();
        using var network = await ProcessNetwork.StartAsync(80, 6, "--offer", "1048576", "--request", "524288", "--hops", "3", "--no-probes");
        await network.ReadyCircuitAsync(TimeSpan.FromSeconds(60));
        // The service's node needs circuits of its own, to its introduction points.
        string dataDir = network.DataDirectory(5);
        var (ready, progress) = await QuidProcess.RunAsync("status", "--data-dir", dataDir, "--wait", "--timeout", "60");
        Assert.True(ready == 0, progress);

        int port = web.EndPoint.Port;
        var clock = Stopwatch.StartNew();
        var (code, text) = await QuidProcess.RunAsync("serve", $"127.0.0.1:{port}", "--data-dir", dataDir);
        output.WriteLine($"quid serve answered in {clock.Elapsed.TotalSeconds:0.0} s:\n{text}");
        Assert.True(code == 0, text);
        string address = Regex.Match(text, @"\b[a-z2-7]{56}\.quid\b").Value;
        Assert.True(SessionAddress.TryParse(address, out _), text);
        Assert.Contains($"Publishing serve-{port} → 127.0.0.1:{port} (ephemeral)", text, StringComparison.Ordinal);
        Assert.Contains("Published:", text, StringComparison.Ordinal);
        Assert.Contains("Ephemeral: the address dies with the service", text, StringComparison.Ordinal);
        Assert.Contains($"curl --socks5-hostname 127.0.0.1:1080 http://{address}/", text, StringComparison.Ordinal);

        // Another node's proxy reaches the web server by the printed name.
        var (fetched, page, errors) = await Curl.RunAsync("-sS", "--fail", "--max-time", "60", "--socks5-hostname", network.Socks, $"http://{address}/echo/through-quid");
        Assert.True(fetched == 0, $"curl exited {fetched}: {errors}");
        Assert.Equal("through-quid", page);

        // A private one: its key, given to the client's node with quid access, opens the way.
        (code, text) = await QuidProcess.RunAsync("serve", $"127.0.0.1:{port}", "--private", "--name", "hidden", "--data-dir", dataDir);
        Assert.True(code == 0, text);
        string hidden = Regex.Match(text, @"\b[a-z2-7]{56}\.quid\b").Value;
        string key = Regex.Match(text, @"\b(quid-secret-[a-z2-7]{56})\b").Groups[1].Value;
        Assert.True(ServiceSecret.TryParse(key, out var access), text);
        access.Dispose();
        Assert.Contains("quid access ADDRESS KEY", text, StringComparison.Ordinal);
        (code, text) = await QuidProcess.RunAsync("access", hidden, key, "--data-dir", network.DataDirectory(0));
        Assert.True(code == 0, text);
        (fetched, page, errors) = await Curl.RunAsync("-sS", "--fail", "--max-time", "60", "--socks5-hostname", network.Socks, $"http://{hidden}/echo/private");
        Assert.True(fetched == 0, $"curl exited {fetched}: {errors}");
        Assert.Equal("private", page);
        (code, text) = await QuidProcess.RunAsync("access", hidden, key[..^2] + "aa", "--data-dir", network.DataDirectory(0));
        Assert.Equal(1, code);
        (code, text) = await QuidProcess.RunAsync("access", "remove", hidden, "--data-dir", network.DataDirectory(0));
        Assert.True(code == 0, text);
        (code, text) = await QuidProcess.RunAsync("access", "remove", hidden, "--data-dir", network.DataDirectory(0));
        Assert.Equal(1, code);
        Assert.Contains("no access key", text, StringComparison.Ordinal);

        string folder = Path.Combine(_root, "shared");
        Directory.CreateDirectory(folder);
        await File.WriteAllTextAsync(Path.Combine(folder, "hello.txt"), "hello");
        (code, text) = await QuidProcess.RunAsync("share", folder, "--kind", "stable", "--name", "files", "--data-dir", dataDir);
        Assert.True(code == 0, text);
        output.WriteLine(text);
        string shareAddress = Regex.Match(text, @"\b[a-z2-7]{56}\.quid\b").Value;
        using (var keys = ServiceKeys.Stable(await File.ReadAllBytesAsync(Path.Combine(dataDir, "services", "files.stable.key"))))
            Assert.Equal(keys.FixedAddress!.ToString(), shareAddress);
        Assert.Contains("▄▄▄▄▄", text, StringComparison.Ordinal); // the QR code's finder patterns, in half blocks
        Assert.Contains($"http://{shareAddress}/", text, StringComparison.Ordinal);
        Assert.Contains("files.stable.key", text, StringComparison.Ordinal);
        Assert.Contains("publishes it again each time it starts", text, StringComparison.Ordinal);

        (code, text) = await QuidProcess.RunAsync("serve", "127.0.0.1:9", "--kind", "moving", "--name", "follow-me", "--data-dir", dataDir);
        Assert.True(code == 0, text);
        string secret = Regex.Match(text, @"Secret: (quid-secret-[a-z2-7]+)").Groups[1].Value;
        Assert.True(ServiceSecret.TryParse(secret, out var parsed), text);
        parsed.Dispose();
        string movingAddress = Regex.Match(text, @"\b[a-z2-7]{56}\.quid\b").Value;
        // Followed from its secret, it is reached by a name of the follower's choosing.
        (code, text) = await QuidProcess.RunAsync("follow", "friend", secret, "--data-dir", dataDir);
        Assert.True(code == 0, text);
        Assert.Contains("friend.quid", text, StringComparison.Ordinal);
        Assert.Contains(movingAddress, text, StringComparison.Ordinal);
        (code, text) = await QuidProcess.RunAsync("follows", "--data-dir", dataDir);
        Assert.True(code == 0 && text.Contains(movingAddress, StringComparison.Ordinal), text);
        (code, text) = await QuidProcess.RunAsync("follows", "remove", "friend", "--data-dir", dataDir);
        Assert.True(code == 0, text);
        (code, text) = await QuidProcess.RunAsync("follow", "friend", "quid-secret-nonsense", "--data-dir", dataDir);
        Assert.Equal(1, code);
        Assert.StartsWith("quid follow:", text, StringComparison.Ordinal);

        // Refusals come back in one line that says what to change.
        (code, text) = await QuidProcess.RunAsync("serve", "nonsense", "--data-dir", dataDir);
        Assert.Equal(1, code);
        Assert.StartsWith("quid serve: 'nonsense' is not host:port", text, StringComparison.Ordinal);
        // The same service asked for again is the one there; the same name asked for another is refused.
        (code, text) = await QuidProcess.RunAsync("serve", $"127.0.0.1:{port}", "--data-dir", dataDir);
        Assert.True(code == 0, text);
        Assert.Contains(address, text, StringComparison.Ordinal);
        (code, text) = await QuidProcess.RunAsync("serve", $"127.0.0.1:{port}", "--kind", "stable", "--data-dir", dataDir);
        Assert.Equal(1, code);
        Assert.Contains($"quid services remove serve-{port}", text, StringComparison.Ordinal);
        (code, text) = await QuidProcess.RunAsync("share", Path.Combine(folder, "nothing-here"), "--data-dir", dataDir);
        Assert.Equal(1, code);
        Assert.Contains(Path.Combine(folder, "nothing-here"), text, StringComparison.Ordinal);

        var listed = Json(await QuidProcess.RunAsync("services", "--data-dir", dataDir, "--json")).EnumerateArray().ToDictionary(s => s.GetProperty("name").GetString()!);
        Assert.Equal(["files", "follow-me", "hidden", $"serve-{port}"], listed.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(address, listed[$"serve-{port}"].GetProperty("address").GetString());
        Assert.Equal(1, listed[$"serve-{port}"].GetProperty("met").GetInt64());
        Assert.Equal(secret, listed["follow-me"].GetProperty("secret").GetString());
        (code, text) = await QuidProcess.RunAsync("services", "--data-dir", dataDir);
        Assert.True(code == 0, text);
        Assert.Contains(shareAddress, text, StringComparison.Ordinal);
        Assert.Contains("quid services --json", text, StringComparison.Ordinal);

        (code, text) = await QuidProcess.RunAsync("services", "remove", "files", "--data-dir", dataDir);
        Assert.True(code == 0, text);
        (code, text) = await QuidProcess.RunAsync("services", "remove", "files", "--data-dir", dataDir);
        Assert.Equal(1, code);
        Assert.Contains("No service named 'files'", text, StringComparison.Ordinal);
        Assert.DoesNotContain(shareAddress, (await QuidProcess.RunAsync("services", "--data-dir", dataDir)).Output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("serve", "127.0.0.1:8080")]
    [InlineData("share", "/tmp")]
    [InlineData("services")]
    [InlineData("services", "remove", "web")]
    public async Task The_service_commands_say_plainly_when_no_node_runs(params string[] command)
    {
        string dataDir = Path.Combine(_root, "never-ran");
        var (code, text) = await QuidProcess.RunAsync([.. command, "--data-dir", dataDir]);
        Assert.Equal(1, code);
        Assert.Equal($"quid {string.Join(' ', command.TakeWhile(w => w is "serve" or "share" or "services" or "remove"))}: No node has run with data directory {dataDir}: there is no control_auth_cookie (use --data-dir).",
            text.Trim());
    }

    [Fact]
    public async Task A_bad_quid_toml_stops_quid_run_with_each_key_its_source_and_the_fix()
    {
        string dataDir = Path.Combine(_root, "bad");
        Directory.CreateDirectory(dataDir);
        string file = Path.Combine(dataDir, "quid.toml");
        await File.WriteAllTextAsync(file, "offer = 1000\nsocks = \"0.0.0.0:1080\"\n");

        var (code, text) = await QuidProcess.RunAsync("run", "--data-dir", dataDir);

        Assert.Equal(78, code);
        Assert.Contains($"offer (from {file}): 1000 kbps is not a block", text, StringComparison.Ordinal);
        Assert.Contains("use 512 or 1024", text, StringComparison.Ordinal);
        Assert.Contains($"socks (from {file}): 0.0.0.0 is not a loopback address", text, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(dataDir, "identity.key")), "a node with a bad configuration must not start at all");
    }

    [Fact]
    public async Task Quid_config_shows_flags_over_the_environment_over_the_file_and_where_each_value_came_from()
    {
        string dataDir = Path.Combine(_root, "config");
        Directory.CreateDirectory(dataDir);
        await File.WriteAllTextAsync(Path.Combine(dataDir, "quid.toml"), "offer = 1024\nhops = 1\nrequest = 512\n");

        var config = Json(await RunWithEnvironmentAsync([("QUID_OFFER", "2048"), ("QUID_HOPS", "2")], "config", "--data-dir", dataDir, "--hops", "4", "--json"));
        var settings = config.GetProperty("settings").EnumerateArray().ToDictionary(s => s.GetProperty("key").GetString()!);
        Assert.True(config.GetProperty("fileExists").GetBoolean());
        Assert.Equal(("4", "flag --hops"), Of(settings["hops"]));
        Assert.Equal(("2048", "environment QUID_OFFER"), Of(settings["offer"]));
        Assert.Equal(("512", Path.Combine(dataDir, "quid.toml")), Of(settings["request"]));
        Assert.Equal(("127.0.0.1:9051", "default"), Of(settings["control"]));

        static (string?, string?) Of(JsonElement s) => (s.GetProperty("value").GetString(), s.GetProperty("from").GetString());
    }

    private static JsonElement Json((int ExitCode, string Output) run)
    {
        Assert.True(run.ExitCode == 0, run.Output);
        return JsonDocument.Parse(run.Output).RootElement.Clone();
    }

    /// <summary>Runs quid with extra environment variables, which QuidProcess does not set.</summary>
    private static async Task<(int ExitCode, string Output)> RunWithEnvironmentAsync((string Name, string Value)[] environment, params string[] arguments)
    {
        var start = new ProcessStartInfo(QuidProcess.Executable) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var (name, value) in environment) start.Environment[name] = value;
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await stdout + await stderr);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
            // Leftovers in a temporary directory are harmless.
        }
    }
}
