using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Quid.Cli.Demo;
using Xunit.Abstractions;

namespace Quid.Tests.Integration;

/// <summary>A thousand streams at once through one relay, a separate process whose memory is measured.</summary>
[Collection(nameof(SerialTests))]
public sealed class RelayLoadTests(ITestOutputHelper output)
{
    private const int Streams = 1000;
    /// <summary>About 48 MiB in all: seconds of traffic on two cores. Lengths differ, so streams crossed would show.</summary>
    private static int Length(int stream) => 32 * 1024 + stream * 37;

    private static long Rss(QuidProcess process) =>
        long.Parse(File.ReadLines($"/proc/{process.Id}/status").Single(l => l.StartsWith("VmRSS:", StringComparison.Ordinal))
            .Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;

    private static string[] Node(string directory, string listen, params string[] more) =>
        ["run", "--data-dir", directory, "--listen", $"{listen}:0", "--http-proxy", "off", "--control", "127.0.0.1:0", "--hops", "1", "--no-probes", .. more];

    /// <summary>Fetches /bytes/N on each of <paramref name="count"/> streams at once; returns what went wrong with each that did not come back whole and right.</summary>
    private static async Task<string[]> FetchAllAsync(string socks, LocalWebServer web, int count)
    {
        var expected = new byte[Length(count - 1)];
        LocalWebServer.FillPattern(expected, 0);
        var results = await Task.WhenAll(Enumerable.Range(0, count).Select(async i =>
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
            try
            {
                var (socket, reply) = await Socks5.ConnectAsync(socks, "", web.EndPoint, timeout.Token);
                if (socket is null) return $"stream {i}: SOCKS reply {reply}";
                using (socket)
                {
                    await socket.SendAsync(Encoding.ASCII.GetBytes($"GET /bytes/{Length(i)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), SocketFlags.None, timeout.Token);
                    using var received = new MemoryStream();
                    var buffer = new byte[16 * 1024];
                    for (int read; (read = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token)) > 0;) received.Write(buffer, 0, read);
                    var all = received.GetBuffer().AsSpan(0, (int)received.Length);
                    int body = all.IndexOf("\r\n\r\n"u8) + 4;
                    return body >= 4 && SHA256.HashData(all[body..]).AsSpan().SequenceEqual(SHA256.HashData(expected.AsSpan(0, Length(i))))
                        ? null : $"stream {i}: {all.Length - body} bytes of body, hash differs";
                }
            }
            catch (Exception e) when (e is IOException or SocketException or OperationCanceledException)
            {
                return $"stream {i}: {e.GetType().Name} {e.Message}";
            }
        }));
        return [.. results.OfType<string>()];
    }

    [Fact]
    public async Task A_thousand_concurrent_streams_through_one_relay_arrive_whole_and_its_memory_returns_within_a_fifth_of_idle()
    {
        await using var web = new LocalWebServer(new IPEndPoint(IPAddress.Loopback, 0));
        web.Start();
        string root = Directory.CreateTempSubdirectory("quid-load-").FullName;
        try
        {
            using var relay = QuidProcess.Start(Node(Path.Combine(root, "relay"), "127.0.15.11",
                "--socks", "off", "--log-level", "Debug", "--exit-allow-private", "--offer", "1048576", "--request", "64"));
            string port = (await relay.WaitForLineAsync(@"Accepting links on 127\.0\.15\.11:(\d+)", TimeSpan.FromSeconds(30))).Groups[1].Value;
            using var client = QuidProcess.Start(Node(Path.Combine(root, "client"), "127.0.15.12",
                // A thousand applications' streams at once: past the SOCKS proxy's default cap of 512.
                "--socks", "127.0.0.1:0", "--proxy-max-connections", "2000", "--offer", "64", "--request", "524288", "--peer", $"127.0.15.11:{port}"));
            string socks = (await client.WaitForLineAsync(@"SOCKS proxy on (127\.0\.0\.1:\d+)", TimeSpan.FromSeconds(30))).Groups[1].Value;
            await client.WaitForLineAsync("Circuit ready", TimeSpan.FromSeconds(60));

            // A first round compiles the relay's code paths (the JIT's code stays, as it would in a
            // node that has run a while); idle is measured after it.
            Assert.Empty(await FetchAllAsync(socks, web, 100));
            long idle = Rss(relay);

            long peak = idle;
            using var sampling = new CancellationTokenSource();
            var sampler = Task.Run(async () =>
            {
                while (!sampling.IsCancellationRequested)
                {
                    peak = Math.Max(peak, Rss(relay));
                    await Task.Delay(100);
                }
            });
            var started = DateTime.UtcNow;
            var lost = await FetchAllAsync(socks, web, Streams);
            var took = DateTime.UtcNow - started;
            await sampling.CancelAsync();
            await sampler;
            output.WriteLine($"{Streams - lost.Length} of {Streams} streams whole in {took.TotalSeconds:0.0} s; relay RSS idle {idle >> 20} MiB, peak {peak >> 20} MiB");
            if (lost.Length > 0) output.WriteLine($"relay:\n{relay.Output}\nclient:\n{client.Output}");
            Assert.Empty(lost);

            var ended = DateTime.UtcNow;
            long last = 0;
            try
            {
                await Eventually.WaitUntilAsync(() => (last = Rss(relay)) <= idle * 6 / 5, TimeSpan.FromSeconds(75),
                    $"the relay's memory to come back within 20% of idle ({idle >> 20} MiB)");
            }
            finally
            {
                output.WriteLine($"relay RSS {last >> 20} MiB {(DateTime.UtcNow - ended).TotalSeconds:0.0} s after the load");
                output.WriteLine(string.Join('\n', relay.Output.Split('\n').Where(l => l.Contains("memory", StringComparison.Ordinal))));
            }
            Assert.False(relay.HasExited);
        }

        finally
        {
            try
            {
                Directory.Delete(root, recursive: true);
            }
            catch (IOException)
            {
                // Leftovers in a temporary directory are harmless.
            }
        }
    }
}
