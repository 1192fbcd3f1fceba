using System.Net;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Quid.Cli.Demo;
using Xunit.Abstractions;

namespace Quid.Tests.Integration;

/// <summary>A network of separate quid processes, each on its own loopback address, all joined through the first.</summary>
internal sealed class ProcessNetwork : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("quid-procs-").FullName;

    public List<(QuidProcess Process, string Id, IPAddress Address)> Nodes { get; } = [];
    public string Socks { get; private set; } = "";

    public string DataDirectory(int node) => Path.Combine(_root, $"node{node}");

    /// <summary>Starts <paramref name="count"/> nodes; the first runs the SOCKS proxy.</summary>
    public static async Task<ProcessNetwork> StartAsync(byte firstAddress, int count, params string[] common)
    {
        var network = new ProcessNetwork();
        try
        {
            string? bootstrap = null;
            for (int i = 0; i < count; i++)
            {
                var address = new IPAddress([127, 0, 0, (byte)(firstAddress + i)]);
                string[] args =
                [
                    "run", "--data-dir", network.DataDirectory(i), "--listen", $"{address}:0",
                    "--socks", i == 0 ? "127.0.0.1:0" : "off", "--http-proxy", "off", "--exit-allow-private", .. common,
                    .. (bootstrap is null ? Array.Empty<string>() : ["--peer", bootstrap]),
                ];
                var process = QuidProcess.Start(args);
                var id = (await process.WaitForLineAsync(@"Node ([a-z2-7]{32}) ", TimeSpan.FromSeconds(30))).Groups[1].Value;
                var port = (await process.WaitForLineAsync($@"Accepting links on {Regex.Escape(address.ToString())}:(\d+)", TimeSpan.FromSeconds(30))).Groups[1].Value;
                bootstrap ??= $"{address}:{port}";
                if (i == 0) network.Socks = (await process.WaitForLineAsync(@"SOCKS proxy on (127\.0\.0\.1:\d+)", TimeSpan.FromSeconds(30))).Groups[1].Value;
                network.Nodes.Add((process, id, address));
            }
            return network;
        }
        catch
        {
            network.Dispose();
            throw;
        }
    }

    /// <summary>Waits for the client to log a circuit built ahead; returns its hops as node indexes.</summary>
    public async Task<int[]> ReadyCircuitAsync(TimeSpan timeout, int skip = 0)
    {
        var client = Nodes[0].Process;
        await Eventually.WaitUntilAsync(() => Regex.Count(client.Output, "Circuit ready: (.+)") > skip, timeout, "the client to build a circuit ahead");
        var path = Regex.Matches(client.Output, "Circuit ready: (.+)")[skip].Groups[1].Value.Split(" → ");
        return [.. path.Select(brief => Nodes.FindIndex(n => n.Id.StartsWith(brief.Trim(), StringComparison.Ordinal)))];
    }

    public void Dispose()
    {
        foreach (var node in Nodes) node.Process.Dispose();
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

/// <summary>Circuits across separate node processes, with real curl: the acceptance tests of the circuits issue.</summary>
[Collection(nameof(SerialTests))]
public sealed class ProcessCircuitTests(ITestOutputHelper output)
{
    // Grants of hundreds of Mbit/s, so shaping is not what these tests measure; no probes, which
    // on a loaded machine would find such grants undelivered and end agreements mid-transfer.
    private static readonly string[] Fast = ["--offer", "1048576", "--request", "524288", "--hops", "3", "--no-probes"];

    [Fact]
    public async Task Curl_fetches_64_MiB_through_three_hops_of_separate_processes_and_the_server_sees_the_exit()
    {
        await using var web = new LocalWebServer(new IPEndPoint(IPAddress.Loopback, 0));
        web.Start();
        using var network = await ProcessNetwork.StartAsync(220, 6, Fast);
        var path = await network.ReadyCircuitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(3, path.Length);
        Assert.DoesNotContain(0, path);
        Assert.Equal(3, path.Distinct().Count());

        const int size = 64 << 20;
        string file = Path.Combine(Path.GetTempPath(), $"quid-{Guid.NewGuid():n}.bin");
        try
        {
            var started = DateTime.UtcNow;
            var (code, _, errors) = await Curl.RunAsync("--silent", "--show-error", "--max-time", "120", "--output", file,
                "--socks5-hostname", network.Socks, $"{web.BaseUrl}/bytes/{size}");
            var elapsed = DateTime.UtcNow - started;
            Assert.True(code == 0, $"curl failed ({code}): {errors}");
            var expected = new byte[size];
            LocalWebServer.FillPattern(expected, 0);
            Assert.Equal(SHA256.HashData(expected), SHA256.HashData(await File.ReadAllBytesAsync(file)));
            var exit = network.Nodes[path[^1]];
            Assert.Equal(exit.Address, Assert.Single(web.Clients));
            output.WriteLine($"64 MiB through nodes {string.Join(" → ", path)} in {elapsed.TotalSeconds:0.0} s ({size / elapsed.TotalSeconds / 1e6:0.0} MB/s); the server saw {exit.Address}");
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task Killing_the_middle_hop_fails_only_its_stream_and_a_new_request_succeeds_within_ten_seconds()
    {
        await using var web = new LocalWebServer(new IPEndPoint(IPAddress.Loopback, 0));
        web.Start();
        using var network = await ProcessNetwork.StartAsync(230, 6, Fast);
        var path = await network.ReadyCircuitAsync(TimeSpan.FromSeconds(60));
        var middle = network.Nodes[path[1]];

        string file = Path.Combine(Path.GetTempPath(), $"quid-{Guid.NewGuid():n}.bin");
        try
        {
            // A transfer far too big to finish before the middle hop dies.
            var transfer = Curl.RunAsync("--silent", "--show-error", "--max-time", "60", "--output", file,
                "--socks5-hostname", network.Socks, $"{web.BaseUrl}/bytes/{64L << 30}");
            await Eventually.WaitUntilAsync(() => File.Exists(file) && new FileInfo(file).Length > 4 << 20, TimeSpan.FromSeconds(30), "the transfer to be under way");
            middle.Process.KillHard();
            var killed = DateTime.UtcNow;

            var (code, _, errors) = await transfer;
            Assert.NotEqual(0, code); // the stream through the dead hop fails with an error, it does not hang
            output.WriteLine($"the cut transfer: curl exit {code} ({errors.Trim()}) {(DateTime.UtcNow - killed).TotalSeconds:0.0} s after the kill");

            // The next request gets a new circuit, around the dead node.
            int attempts = 0;
            await Eventually.WaitUntilAsync(() =>
            {
                attempts++;
                var (ok, body, _) = Curl.RunAsync("--silent", "--max-time", "5", "--socks5-hostname", network.Socks, $"{web.BaseUrl}/").GetAwaiter().GetResult();
                return ok == 0 && body.Contains("Hello through Quid", StringComparison.Ordinal);
            }, TimeSpan.FromSeconds(10), "a new request to succeed after the middle hop died");
            output.WriteLine($"a new request succeeded {(DateTime.UtcNow - killed).TotalSeconds:0.0} s after the kill, on attempt {attempts}");
            Assert.NotEqual(middle.Address, web.Clients[^1]);
        }
        finally
        {
            File.Delete(file);
        }
    }
}
