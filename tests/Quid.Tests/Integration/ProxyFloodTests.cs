using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Quid.Cli.Demo;
using Xunit.Abstractions;

namespace Quid.Tests.Integration;

/// <summary>
/// Floods of idle connections against the local proxies of a real quid process, whose descriptor
/// limit (and only its) is lowered with prlimit: the cap closes what is over it, accepting backs off
/// when descriptors run out, the log stays short, and the node serves its applications again.
/// </summary>
[Collection(nameof(SerialTests))]
public sealed class ProxyFloodTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("quid-flood-").FullName;
    private readonly List<Socket> _flood = [];

    [Fact]
    public async Task Idle_floods_are_capped_accepting_backs_off_without_descriptors_and_the_node_serves_again()
    {
        await using var web = new LocalWebServer(new IPEndPoint(IPAddress.Loopback, 0));
        web.Start();
        using var exit = QuidProcess.Start("run", "--data-dir", Path.Combine(_root, "exit"), "--listen", "127.0.15.1:0", "--socks", "off", "--http-proxy", "off",
            "--control", "off", "--offer", "2048", "--request", "0", "--hops", "1", "--exit-allow-private", "--no-probes");
        string linkPort = (await exit.WaitForLineAsync(@"Accepting links on 127\.0\.15\.1:(\d+)", TimeSpan.FromSeconds(30))).Groups[1].Value;
        // The variable, not the flag, so that the same test runs against a build that knows no cap.
        using var client = QuidProcess.Start(new Dictionary<string, string> { ["QUID_PROXY_MAX_CONNECTIONS"] = "200" },
            "run", "--data-dir", Path.Combine(_root, "client"), "--listen", "127.0.15.2:0", "--socks", "127.0.0.1:0", "--http-proxy", "127.0.0.1:0",
            "--control", "off", "--offer", "256", "--request", "2048", "--hops", "1", "--no-probes", "--peer", $"127.0.15.1:{linkPort}");
        var socks = IPEndPoint.Parse((await client.WaitForLineAsync(@"SOCKS proxy on (127\.0\.0\.1:\d+)", TimeSpan.FromSeconds(30))).Groups[1].Value);
        var http = IPEndPoint.Parse((await client.WaitForLineAsync(@"HTTP proxy on (127\.0\.0\.1:\d+)", TimeSpan.FromSeconds(30))).Groups[1].Value);
        string page = $"{web.BaseUrl}/echo/served";
        await Eventually.WaitUntilAsync(() => ServedAsync(socks, http, page), TimeSpan.FromSeconds(40), "the client to fetch a page through both proxies");

        // Only the node's limit is lowered: room for what it holds now and 350 more.
        int baseline = Descriptors(client.Id);
        int limit = baseline + 350;
        var (prlimit, _, errors) = await ClientProcess.RunAsync("prlimit", ["--pid", client.Id.ToString(CultureInfo.InvariantCulture), $"--nofile={limit}:{limit}"], TimeSpan.FromSeconds(10));
        Assert.True(prlimit == 0, errors);
        output.WriteLine($"the node holds {baseline} descriptors; its limit is now {limit}");

        // Within the cap, during a flood: 100 idle connections on each proxy, and applications are still served.
        var idleSocks = await OpenAsync(socks, 100);
        var idleHttp = await OpenAsync(http, 100);
        // The baseline may have held a curl connection or two on their way out.
        await Eventually.WaitUntilAsync(() => Descriptors(client.Id) >= baseline + 195, TimeSpan.FromSeconds(10), "the node to accept 200 idle connections");
        Assert.True(await ServedAsync(socks, http, page), "a flood within the caps keeps applications from being served");
        Assert.Equal(0, idleSocks.Count(Closed) + idleHttp.Count(Closed));

        // Over the cap: of 400 on the SOCKS proxy, 200 are served and the rest closed at once.
        var moreSocks = await OpenAsync(socks, 300);
        await Eventually.WaitUntilAsync(() => idleSocks.Concat(moreSocks).Count(Closed) >= 200, TimeSpan.FromSeconds(10), "the SOCKS proxy to close what is over its cap");
        Assert.Equal(200, idleSocks.Concat(moreSocks).Count(Closed));

        // Out of descriptors: 400 more on the HTTP proxy, of which the node can take 50, less the
        // descriptors it keeps for the runtime, before it has none left (under its cap of 200). It
        // waits instead of spinning on the rest, and the runtime still has room to start a thread.
        await OpenAsync(http, 400, untilRefused: true);
        await client.WaitForLineAsync("HTTP proxy cannot accept connections: the process is out of file descriptors", TimeSpan.FromSeconds(10));
        int held = Descriptors(client.Id);
        Assert.True(held <= limit - Quid.Links.Descriptors.Reserve / 2, $"the node holds {held} descriptors of its {limit}: it keeps none for the runtime");
        var cpu = CpuTime(client.Id);
        var watch = Stopwatch.StartNew();
        await Eventually.WaitUntilAsync(() => watch.Elapsed > TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(10), "three seconds of the node out of descriptors");
        Assert.False(client.HasExited, client.Output);
        double busy = (CpuTime(client.Id) - cpu) / watch.Elapsed;
        output.WriteLine($"out of descriptors, the node used {busy:P0} of a core");
        Assert.True(busy < 0.5, $"the node used {busy:P0} of a core while out of descriptors");

        // The flood ends: the node serves both proxies again, and it never stopped running.
        foreach (var socket in _flood) socket.Dispose();
        _flood.Clear();
        await Eventually.WaitUntilAsync(() => ServedAsync(socks, http, page), TimeSpan.FromSeconds(20), "the client to be served again after the flood");
        Assert.False(client.HasExited, client.Output);

        var acceptLines = client.Output.Split('\n').Where(l => l.Contains("accept failed", StringComparison.Ordinal) || l.Contains("cannot accept", StringComparison.Ordinal)).ToList();
        var capLines = client.Output.Split('\n').Where(l => l.Contains("its limit (proxy-max-connections)", StringComparison.Ordinal)).ToList();
        output.WriteLine(string.Join('\n', acceptLines.Concat(capLines)));
        Assert.InRange(acceptLines.Count, 1, 3);
        Assert.InRange(capLines.Count, 1, 3);
    }

    [Fact]
    public async Task Idle_connections_to_the_HTTP_proxy_hold_no_buffers()
    {
        using var node = QuidProcess.Start(new Dictionary<string, string> { ["QUID_PROXY_MAX_CONNECTIONS"] = "4000" },
            "run", "--data-dir", Path.Combine(_root, "lone"), "--listen", "127.0.15.3:0", "--socks", "off", "--http-proxy", "127.0.0.1:0",
            "--control", "off", "--offer", "256", "--request", "0", "--no-probes");
        var http = IPEndPoint.Parse((await node.WaitForLineAsync(@"HTTP proxy on (127\.0\.0\.1:\d+)", TimeSpan.FromSeconds(30))).Groups[1].Value);
        await node.WaitForLineAsync("Accepting links on", TimeSpan.FromSeconds(30));
        // One request first, so that what runs per connection has been compiled before measuring.
        Assert.True(await AnsweredAsync(http), "the HTTP proxy does not answer");
        int baseline = Descriptors(node.Id);
        long before = Rss(node.Id);

        const int Idle = 2000;
        await OpenAsync(http, Idle);
        // Within a few descriptors: a starting node may still open or close one of its own meanwhile.
        await Eventually.WaitUntilAsync(() => Descriptors(node.Id) >= baseline + Idle - 10, TimeSpan.FromSeconds(20), $"the node to accept {Idle} idle connections");
        long during = Rss(node.Id);
        foreach (var socket in _flood) socket.Dispose();
        _flood.Clear();
        await Eventually.WaitUntilAsync(() => Descriptors(node.Id) <= baseline + 10, TimeSpan.FromSeconds(20), "the node to close them");
        Assert.True(await AnsweredAsync(http), "the HTTP proxy does not answer after the idle connections closed");
        long after = Rss(node.Id);

        output.WriteLine($"RSS {before >> 10} KiB before, {during >> 10} KiB with {Idle} idle connections, {after >> 10} KiB after they closed");
        // A head buffer taken before the first byte was 32 KiB a connection; what is left is the socket itself.
        Assert.True((during - before) / Idle < 8 * 1024, $"each idle connection costs {(during - before) / Idle} bytes");
    }

    /// <summary>True when a page comes back through the SOCKS proxy and through the HTTP proxy.</summary>
    private static async Task<bool> ServedAsync(IPEndPoint socks, IPEndPoint http, string page)
    {
        var viaSocks = await Curl.RunAsync("--silent", "--max-time", "5", "--socks5-hostname", socks.ToString(), page);
        var viaHttp = await Curl.RunAsync("--silent", "--max-time", "5", "--proxy", $"http://{http}", page);
        return viaSocks.Output == "served" && viaHttp.Output == "served";
    }

    /// <summary>A request the proxy answers itself (it is not one to forward): the listener is serving.</summary>
    private static async Task<bool> AnsweredAsync(IPEndPoint http)
    {
        var (_, answer, _) = await Curl.RunAsync("--silent", "--max-time", "5", "--write-out", "%{http_code}", "--output", "/dev/null", $"http://{http}/");
        return answer == "400";
    }

    /// <summary>
    /// Opens <paramref name="count"/> idle connections; with <paramref name="untilRefused"/>, stops
    /// at the first the machine refuses or resets: a node out of descriptors has stopped accepting,
    /// its backlog fills, and a loaded machine may answer the next connection with a reset.
    /// </summary>
    private async Task<List<Socket>> OpenAsync(IPEndPoint proxy, int count, bool untilRefused = false)
    {
        var opened = new List<Socket>(count);
        for (int i = 0; i < count; i++)
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            _flood.Add(socket);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            try
            {
                await socket.ConnectAsync(proxy, timeout.Token);
            }
            catch (Exception e) when (untilRefused && e is SocketException or OperationCanceledException)
            {
                break;
            }
            opened.Add(socket);
        }
        return opened;
    }

    /// <summary>The proxy closed it: an idle connection is never sent anything, so readable means closed.</summary>
    private static bool Closed(Socket socket)
    {
        try
        {
            return socket.Poll(0, SelectMode.SelectRead);
        }
        catch (SocketException)
        {
            return true;
        }
    }

    private static int Descriptors(int pid) => Directory.GetFiles($"/proc/{pid}/fd").Length;

    private static long Rss(int pid)
    {
        string line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
    }

    /// <summary>User and system time the process has used (fields 14 and 15 of /proc/pid/stat, in clock ticks of 10 ms).</summary>
    private static TimeSpan CpuTime(int pid)
    {
        string stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        long ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        return TimeSpan.FromMilliseconds(ticks * 10);
    }

    public void Dispose()
    {
        foreach (var socket in _flood) socket.Dispose();
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
