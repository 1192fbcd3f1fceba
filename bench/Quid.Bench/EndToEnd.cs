using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Quid.Bench;

/// <summary>
/// The end-to-end benchmark: on loopback, with each Quid node a separate process, it measures
/// bulk throughput (256 MiB) and time to first byte (1 MiB) for a direct connection, a plain
/// single-hop SOCKS5 proxy (microsocks), Quid with 1 hop, with 3 hops, and with 3 hops and 20
/// parallel streams on 20 circuits; the time to build a fresh circuit; the CPU the Quid
/// processes spend per MB; the memory of an idle and a loaded node; and a session-address
/// service (<c>quid serve</c> on a relay, reached by its <c>.quid</c> name over a rendezvous):
/// the time from publishing to the first fetch, the first byte on a new and on an established
/// rendezvous, and bulk throughput through it. Every figure is the
/// median of the runs, with min and max, and a ratio to the direct connection measured in the
/// same run. Grants are set far above what loopback carries, so shaping never caps a result, and
/// probes are off, since no node could deliver such grants on a shared machine.
/// </summary>
internal static class EndToEnd
{
    private const long Bulk = 256L << 20;
    private const long Small = 1L << 20;
    private const int ParallelStreams = 20;
    private const int Relays = 6;
    // 16·2^20 kbps (about 16 Gbit/s), the largest block: shaping never binds on loopback. Probes
    // would find every partner short of it within a minute and end the agreements mid-transfer.
    private static readonly string[] Unshaped = ["--offer", "16777216", "--request", "8388608", "--no-probes"];

    public static async Task<int> RunAsync(string[] args)
    {
        int runs = args.Length > 1 && int.TryParse(args[1], CultureInfo.InvariantCulture, out int r) ? r : 5;
        string quid = FindQuid();
        string root = Directory.CreateTempSubdirectory("quid-bench-").FullName;
        var processes = new List<Process>();
        await using var server = new BenchServer();
        try
        {
            Console.Error.WriteLine($"quid: {quid}; {runs} runs each; web server on {server.EndPoint}");
            var microsocks = StartMicrosocks(processes);

            // Six relays and two clients (1 hop and 3 hops), each its own process on its own address.
            var nodes = new List<(Process Process, IPAddress Address, string Log)>();
            string? bootstrap = null;
            for (int i = 0; i < Relays + 2; i++)
            {
                var address = new IPAddress([127, 0, 1, (byte)(10 + i)]);
                bool client = i >= Relays;
                string[] nodeArgs =
                [
                    "run", "--data-dir", Path.Combine(root, $"node{i}"), "--listen", $"{address}:0", "--exit-allow-private",
                    "--socks", client ? "127.0.0.1:0" : "off", "--http-proxy", "off", "--hops", i == Relays ? "1" : "3", .. Unshaped,
                    .. (bootstrap is null ? Array.Empty<string>() : ["--peer", bootstrap]),
                ];
                var (process, log) = StartQuid(quid, nodeArgs, processes);
                string port = (await WaitForAsync(log, $@"Accepting links on {Regex.Escape(address.ToString())}:(\d+)", process)).Groups[1].Value;
                bootstrap ??= $"{address}:{port}";
                nodes.Add((process, address, log));
            }
            string socks1 = (await WaitForAsync(nodes[6].Log, @"SOCKS proxy on (127\.0\.0\.1:\d+)", nodes[6].Process)).Groups[1].Value;
            string socks3 = (await WaitForAsync(nodes[7].Log, @"SOCKS proxy on (127\.0\.0\.1:\d+)", nodes[7].Process)).Groups[1].Value;
            await WaitForAsync(nodes[6].Log, "Circuit ready", nodes[6].Process, TimeSpan.FromSeconds(90));
            await WaitForAsync(nodes[7].Log, "Circuit ready", nodes[7].Process, TimeSpan.FromSeconds(90));
            Console.Error.WriteLine("network ready: 6 relays, a 1-hop client and a 3-hop client");

            long idleRss = Rss(nodes[7].Process);
            long relayIdleRss = Rss(nodes[0].Process);
            string url = $"http://{server.EndPoint}";
            var results = new List<Row>();

            var direct = await MeasureAsync("direct", [], url, runs);
            results.Add(direct);
            if (microsocks is not null) results.Add(await MeasureAsync("microsocks (plain SOCKS5, 1 hop)", ["--socks5-hostname", microsocks], url, runs));
            var quidProcesses = nodes.Select(n => n.Process).ToList();
            results.Add(await MeasureAsync("Quid, 1 hop", ["--socks5-hostname", socks1], url, runs, quidProcesses));
            results.Add(await MeasureAsync("Quid, 3 hops", ["--socks5-hostname", socks3], url, runs, quidProcesses));

            // 20 streams on 20 circuits: different credentials never share a circuit.
            var parallel = new List<double>();
            long peakRss = 0;
            double parallelCpu = 0;
            for (int run = 0; run < runs; run++)
            {
                double cpuBefore = Cpu(quidProcesses);
                using var sampling = new CancellationTokenSource();
                var sampler = Task.Run(async () =>
                {
                    while (!sampling.IsCancellationRequested)
                    {
                        peakRss = Math.Max(peakRss, Rss(nodes[7].Process));
                        await Task.Delay(100).ConfigureAwait(false);
                    }
                });
                var started = Stopwatch.GetTimestamp();
                var downloads = Enumerable.Range(0, ParallelStreams).Select(i => Curl(["--proxy", $"socks5h://run{run}s{i}:x@{socks3}"], $"{url}/bytes/{Bulk / ParallelStreams * 2}", "%{size_download}")).ToArray();
                var sizes = await Task.WhenAll(downloads).ConfigureAwait(false);
                double seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
                await sampling.CancelAsync().ConfigureAwait(false);
                await sampler.ConfigureAwait(false);
                double bytes = sizes.Sum(s => double.Parse(s, CultureInfo.InvariantCulture));
                parallel.Add(bytes / seconds);
                parallelCpu += (Cpu(quidProcesses) - cpuBefore) / (bytes / 1e6);
            }
            results.Add(new Row($"Quid, 3 hops, {ParallelStreams} streams on {ParallelStreams} circuits", Stats(parallel), null, parallelCpu / runs));

            // A fresh circuit: new credentials force one; the first byte waits for it.
            var fresh = new List<double>();
            for (int run = 0; run < runs; run++)
                fresh.Add(double.Parse(await Curl(["--proxy", $"socks5h://fresh{run}:x@{socks3}"], $"{url}/bytes/{Small}", "%{time_starttransfer}").ConfigureAwait(false), CultureInfo.InvariantCulture));

            var service = await MeasureServicesAsync(quid, root, $"{server.EndPoint}", socks3, runs, quidProcesses).ConfigureAwait(false);
            results.Add(service.Row);

            Print(results, direct, Stats(fresh), service, idleRss, peakRss, relayIdleRss, runs);
            return 0;
        }
        finally
        {
            foreach (var process in processes)
            {
                if (!process.HasExited) process.Kill(entireProcessTree: true);
                process.Dispose();
            }
            Directory.Delete(root, recursive: true);
        }
    }

    private sealed record Stat(double Median, double Min, double Max);

    private sealed record Row(string Name, Stat Throughput, Stat? FirstByte, double? CpuMsPerMb);

    /// <summary>The session-address figures: the table's row (bulk throughput, first byte over an established rendezvous, CPU) and the rest.</summary>
    private sealed record ServiceFigures(Row Row, Stat ServeToFirstFetch, Stat Serve, Stat NewRendezvous, int Retried);

    /// <summary>
    /// Each run, a relay (a different one each run) publishes the web server twice under fresh
    /// ephemeral addresses with <c>quid serve</c>, as a user would, and the 3-hop client fetches
    /// them by name. The first: the time from just before <c>quid serve</c> until a 1 MiB fetch
    /// succeeds, retried at once (2 s per attempt) while the address is not yet found or met.
    /// The second, once <c>quid serve</c> has returned: the first byte of the first fetch (a new
    /// rendezvous: lookup, meeting, stream), of a second one with the same credentials (the same
    /// rendezvous), then the bulk download through it. Each service is removed after its run.
    /// </summary>
    private static async Task<ServiceFigures> MeasureServicesAsync(string quid, string root, string target, string socks, int runs, List<Process> quidProcesses)
    {
        Console.Error.WriteLine("measuring a session-address service over a rendezvous");
        var toFirstFetch = new List<double>();
        var serve = new List<double>();
        var newRendezvous = new List<double>();
        var established = new List<double>();
        var throughput = new List<double>();
        double cpu = 0;
        int retried = 0;
        for (int run = 0; run < runs; run++)
        {
            string dataDirectory = Path.Combine(root, $"node{run % Relays}");

            string name = $"bench-{run}";
            var started = Stopwatch.GetTimestamp();
            string address = await ServeAsync(quid, dataDirectory, target, name).ConfigureAwait(false);
            serve.Add(Stopwatch.GetElapsedTime(started).TotalSeconds);
            string[] proxy = ["--proxy", $"socks5h://first{run}:x@{socks}", "--fail", "--max-time", "2"];
            // Retried at once until it succeeds or the deadline passes: each try is a curl process
            // that waits on the node itself (up to --max-time), so no pause between tries is needed.
            for (int attempt = 0; ; attempt++)
            {
                if ((await RunCurlAsync(proxy, $"http://{address}/bytes/{Small}", "%{http_code}").ConfigureAwait(false)).Exit == 0) break;
                if (attempt == 0) retried++;
                if (Stopwatch.GetElapsedTime(started) > TimeSpan.FromMinutes(2)) throw new TimeoutException($"{address} (quid serve on node{run % Relays}) was not reached in 2 minutes");
            }
            toFirstFetch.Add(Stopwatch.GetElapsedTime(started).TotalSeconds);
            await RemoveServiceAsync(quid, dataDirectory, name).ConfigureAwait(false);

            name = $"bench-{run}-rendezvous";
            address = await ServeAsync(quid, dataDirectory, target, name).ConfigureAwait(false);
            string url = $"http://{address}/bytes/";
            proxy = ["--proxy", $"socks5h://rendezvous{run}:x@{socks}"];
            newRendezvous.Add(double.Parse(await Curl([.. proxy, "--max-time", "60"], $"{url}{Small}", "%{time_starttransfer}").ConfigureAwait(false), CultureInfo.InvariantCulture));
            established.Add(double.Parse(await Curl(proxy, $"{url}{Small}", "%{time_starttransfer}").ConfigureAwait(false), CultureInfo.InvariantCulture));
            double before = Cpu(quidProcesses);
            throughput.Add(double.Parse(await Curl(proxy, $"{url}{Bulk}", "%{speed_download}").ConfigureAwait(false), CultureInfo.InvariantCulture));
            cpu += (Cpu(quidProcesses) - before) / (Bulk / 1e6);
            await RemoveServiceAsync(quid, dataDirectory, name).ConfigureAwait(false);
        }
        var row = new Row("Quid, .quid service over a rendezvous (3 + 3 hops)", Stats(throughput), Stats(established), cpu / runs);
        return new ServiceFigures(row, Stats(toFirstFetch), Stats(serve), Stats(newRendezvous), retried);
    }

    /// <summary>Runs <c>quid serve TARGET --name NAME --kind ephemeral --json</c> against the node of the data directory and returns the address it prints.</summary>
    private static async Task<string> ServeAsync(string quid, string dataDirectory, string target, string name)
    {
        string json = await QuidCommandAsync(quid, "serve", target, "--name", name, "--kind", "ephemeral", "--data-dir", dataDirectory, "--json").ConfigureAwait(false);
        using var report = JsonDocument.Parse(json);
        if (!report.RootElement.GetProperty("published").GetBoolean())
            Console.Error.WriteLine($"quid serve returned before {name} was published: {json}");
        return report.RootElement.GetProperty("address").GetString()!;
    }

    private static Task RemoveServiceAsync(string quid, string dataDirectory, string name) =>
        QuidCommandAsync(quid, "services", "remove", name, "--data-dir", dataDirectory, "--json");

    private static async Task<string> QuidCommandAsync(string quid, params string[] args)
    {
        var start = new ProcessStartInfo(quid) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) start.ArgumentList.Add(a);
        start.Environment["NO_COLOR"] = "1";
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        string errors = await process.StandardError.ReadToEndAsync().ConfigureAwait(false);
        await process.WaitForExitAsync().ConfigureAwait(false);
        if (process.ExitCode != 0) throw new InvalidOperationException($"quid {string.Join(' ', args)} failed ({process.ExitCode}): {errors}");
        return await output.ConfigureAwait(false);
    }

    private static Stat Stats(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return new Stat(sorted[sorted.Length / 2], sorted[0], sorted[^1]);
    }

    private static async Task<Row> MeasureAsync(string name, string[] proxy, string url, int runs, List<Process>? quid = null)
    {
        Console.Error.WriteLine($"measuring {name}");
        var throughput = new List<double>();
        var firstByte = new List<double>();
        double cpu = 0;
        for (int run = 0; run < runs; run++)
        {
            double before = quid is null ? 0 : Cpu(quid);
            throughput.Add(double.Parse(await Curl(proxy, $"{url}/bytes/{Bulk}", "%{speed_download}").ConfigureAwait(false), CultureInfo.InvariantCulture));
            if (quid is not null) cpu += (Cpu(quid) - before) / (Bulk / 1e6);
            firstByte.Add(double.Parse(await Curl(proxy, $"{url}/bytes/{Small}", "%{time_starttransfer}").ConfigureAwait(false), CultureInfo.InvariantCulture));
        }
        return new Row(name, Stats(throughput), Stats(firstByte), quid is null ? null : cpu / runs);
    }

    private static void Print(List<Row> rows, Row direct, Stat fresh, ServiceFigures service, long idleRss, long peakRss, long relayIdleRss, int runs)
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"Median of {runs} runs (min–max); ratios to the direct connection in the same run. Quid's grants are 16 Gbit/s, so shaping never caps a figure, and probes are off.");
        text.AppendLine();
        text.AppendLine("| case | throughput MB/s | × direct | first byte of 1 MiB, ms | above direct, ms | Quid CPU, core-ms per MB |");
        text.AppendLine("|---|---|---|---|---|---|");
        foreach (var row in rows)
        {
            string fb = row.FirstByte is { } f ? $"{f.Median * 1000:0.0} ({f.Min * 1000:0.0}–{f.Max * 1000:0.0})" : "";
            string fbAbove = row.FirstByte is { } g && direct.FirstByte is { } d ? $"{(g.Median - d.Median) * 1000:+0.0;-0.0;0.0}" : "";
            string cpu = row.CpuMsPerMb is { } c ? $"{c * 1000:0.00}" : "";
            text.AppendLine(CultureInfo.InvariantCulture,
                $"| {row.Name} | {row.Throughput.Median / 1e6:0.0} ({row.Throughput.Min / 1e6:0.0}–{row.Throughput.Max / 1e6:0.0}) | {row.Throughput.Median / direct.Throughput.Median:0.00} | {fb} | {fbAbove} | {cpu} |");
        }
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"- First byte of 1 MiB on a fresh 3-hop circuit (built for new credentials): {fresh.Median * 1000:0.0} ms ({fresh.Min * 1000:0.0}–{fresh.Max * 1000:0.0}).");
        var threeHops = rows.Single(r => r.Name == "Quid, 3 hops");
        var (first, serve, meet) = (service.ServeToFirstFetch, service.Serve, service.NewRendezvous);
        text.AppendLine(CultureInfo.InvariantCulture, $"- From `quid serve` on a relay to the first successful fetch of 1 MiB from its new .quid address: {first.Median:0.00} s ({first.Min:0.00}–{first.Max:0.00}); `quid serve` itself returned in {serve.Median * 1000:0} ms ({serve.Min * 1000:0}–{serve.Max * 1000:0}); the first fetch failed and was retried in {service.Retried} of {runs} runs.");
        text.AppendLine(CultureInfo.InvariantCulture, $"- First byte of 1 MiB on a new rendezvous (the first fetch once `quid serve` returned): {meet.Median * 1000:0.0} ms ({meet.Min * 1000:0.0}–{meet.Max * 1000:0.0}); over the established rendezvous (same credentials): the table's row.");
        text.AppendLine(CultureInfo.InvariantCulture, $"- Throughput through the rendezvous: {service.Row.Throughput.Median / threeHops.Throughput.Median:0%} of 3 hops in this run.");
        text.AppendLine(CultureInfo.InvariantCulture, $"- Resident memory: 3-hop client idle {idleRss / 1048576.0:0.0} MiB, loaded (peak, 20 streams) {peakRss / 1048576.0:0.0} MiB; a relay idle {relayIdleRss / 1048576.0:0.0} MiB.");
        Console.WriteLine(text);
    }

    // ---- Processes ----

    /// <summary>The quid to measure: $QUID (bench/e2e.sh sets it to the Native AOT build), else the Release JIT build.</summary>
    internal static string FindQuid()
    {
        if (Environment.GetEnvironmentVariable("QUID") is { Length: > 0 } given)
            return File.Exists(given) ? Path.GetFullPath(given) : throw new FileNotFoundException("QUID names no file", given);
        var dir = AppContext.BaseDirectory;
        while (dir is not null && !File.Exists(Path.Combine(dir, "Quid.sln"))) dir = Path.GetDirectoryName(dir);
        var quid = Path.Combine(dir ?? ".", "src", "Quid.Cli", "bin", "Release", "net10.0", "quid");
        return File.Exists(quid) ? quid : throw new FileNotFoundException("Build quid first: dotnet build -c Release src/Quid.Cli", quid);
    }

    internal static (Process, string) StartQuid(string quid, string[] args, List<Process> processes)
    {
        string log = Path.GetTempFileName();
        var start = new ProcessStartInfo("/bin/sh") { RedirectStandardOutput = false };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add($"exec \"{quid}\" {string.Join(' ', args.Select(a => $"'{a}'"))} > '{log}' 2>&1");
        start.Environment["NO_COLOR"] = "1";
        var process = Process.Start(start)!;
        processes.Add(process);
        return (process, log);
    }

    private static string? StartMicrosocks(List<Process> processes)
    {
        int port = FreePort();
        try
        {
            var process = Process.Start(new ProcessStartInfo("microsocks") { ArgumentList = { "-i", "127.0.0.1", "-p", port.ToString(CultureInfo.InvariantCulture) } })!;
            processes.Add(process);
            return $"127.0.0.1:{port}";
        }
        catch (System.ComponentModel.Win32Exception)
        {
            Console.Error.WriteLine("microsocks is not installed (apt-get install microsocks): its row is left out");
            return null;
        }
    }

    private static int FreePort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }

    internal static async Task<Match> WaitForAsync(string log, string pattern, Process process, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(30));
        var regex = new Regex(pattern);
        while (DateTime.UtcNow < deadline)
        {
            var match = regex.Match(await File.ReadAllTextAsync(log).ConfigureAwait(false));
            if (match.Success) return match;
            if (process.HasExited) break;
            await Task.Delay(50).ConfigureAwait(false);
        }
        throw new TimeoutException($"quid never logged /{pattern}/:\n{await File.ReadAllTextAsync(log).ConfigureAwait(false)}");
    }

    private static async Task<string> Curl(string[] proxy, string url, string writeOut)
    {
        var (exit, output, errors) = await RunCurlAsync(proxy, url, writeOut).ConfigureAwait(false);
        if (exit != 0) throw new InvalidOperationException($"curl {url} failed ({exit}): {errors}");
        return output;
    }

    internal static async Task<(int Exit, string Output, string Errors)> RunCurlAsync(string[] proxy, string url, string writeOut)
    {
        var start = new ProcessStartInfo("curl") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in (string[])["--silent", "--show-error", "--output", "/dev/null", "--write-out", writeOut, .. proxy, url]) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        string errors = await process.StandardError.ReadToEndAsync().ConfigureAwait(false);
        await process.WaitForExitAsync().ConfigureAwait(false);
        return (process.ExitCode, (await output.ConfigureAwait(false)).Trim(), errors);
    }

    /// <summary>Resident set size in bytes, from /proc.</summary>
    private static long Rss(Process process)
    {
        foreach (var line in File.ReadLines($"/proc/{process.Id}/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
        return 0;
    }

    /// <summary>User plus system CPU seconds of the processes, from /proc (clock ticks of 1/100 s).</summary>
    private static double Cpu(IEnumerable<Process> processes) => processes.Sum(p =>
    {
        var fields = File.ReadAllText($"/proc/{p.Id}/stat").Split(')')[1].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return (double.Parse(fields[11], CultureInfo.InvariantCulture) + double.Parse(fields[12], CultureInfo.InvariantCulture)) / 100;
    });
}

/// <summary>A web server that costs as little as possible: /bytes/N is a 1 MiB random block sent over and over.</summary>
internal sealed class BenchServer : IAsyncDisposable
{
    private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    private readonly byte[] _block = new byte[1 << 20];
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;

    public BenchServer()
    {
        new Random(1).NextBytes(_block);
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(256);
        EndPoint = (IPEndPoint)_listener.LocalEndPoint!;
        _accepting = Task.Run(AcceptAsync);
    }

    public IPEndPoint EndPoint { get; }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }
            _ = ServeAsync(client);
        }
    }

    private async Task ServeAsync(Socket client)
    {
        using var _ = client;
        try
        {
            var head = new byte[8192];
            int filled = 0;
            while (head.AsSpan(0, filled).IndexOf("\r\n\r\n"u8) < 0)
            {
                int n = await client.ReceiveAsync(head.AsMemory(filled), SocketFlags.None).ConfigureAwait(false);
                if (n == 0) return;
                filled += n;
            }
            var line = Encoding.ASCII.GetString(head, 0, head.AsSpan(0, filled).IndexOf("\r\n"u8));
            var path = line.Split(' ')[1];
            if (path.StartsWith("http://", StringComparison.Ordinal)) path = new Uri(path).PathAndQuery;
            long length = long.Parse(path.AsSpan(path.LastIndexOf('/') + 1), CultureInfo.InvariantCulture);
            await client.SendAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"), SocketFlags.None).ConfigureAwait(false);
            for (long sent = 0; sent < length;)
            {
                int chunk = (int)Math.Min(_block.Length, length - sent);
                sent += await client.SendAsync(_block.AsMemory(0, chunk), SocketFlags.None).ConfigureAwait(false);
            }
        }
        catch (SocketException)
        {
            // The client went away.
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _listener.Dispose();
        await _accepting.ConfigureAwait(false);
        _stop.Dispose();
    }
}
