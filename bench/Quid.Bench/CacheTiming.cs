using System.Diagnostics;
using System.Globalization;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Quid.Cache;

namespace Quid.Bench;

/// <summary>
/// Whether a client can tell by timing that the exit cache answered it, that is, that someone
/// else fetched the same object before. Two quid processes (a client, and its partner exiting
/// with a cache) and an origin whose answers take 40 ms plus an exponentially distributed extra
/// (mean 15 ms), as a distant web server's do. Each of N objects is fetched on three circuits:
/// the first is a miss the cache only remembers, the second a miss it stores, the third a hit.
/// The second and third are compared: time to the first byte and to the last, as curl measures
/// them, and the distinguishing advantage of the best threshold test between the two samples
/// (the Kolmogorov–Smirnov distance: 0 when they cannot be told apart, 1 when always).
/// </summary>
internal static class CacheTiming
{
    public static async Task<int> RunAsync(string[] args)
    {
        int objects = args.Length > 1 && int.TryParse(args[1], CultureInfo.InvariantCulture, out int n) ? n : 150;
        string quid = EndToEnd.FindQuid();
        string root = Directory.CreateTempSubdirectory("quid-cache-timing-").FullName;
        var processes = new List<Process>();
        await using var origin = await SlowOrigin.StartAsync();
        try
        {
            var (exit, exitLog) = EndToEnd.StartQuid(quid, ["run", "--data-dir", Path.Combine(root, "exit"), "--listen", "127.0.0.1:0", "--socks", "off", "--http-proxy", "off",
                "--control", "off", "--offer", "1048576", "--request", "0", "--hops", "1", "--exit-allow-private", "--no-probes", "--cache", "256MiB", "--cache-port", $"{origin.Port}"], processes);
            string linkPort = (await EndToEnd.WaitForAsync(exitLog, @"Accepting links on 127\.0\.0\.1:(\d+)", exit)).Groups[1].Value;
            var (client, clientLog) = EndToEnd.StartQuid(quid, ["run", "--data-dir", Path.Combine(root, "client"), "--listen", "127.0.0.2:0", "--socks", "127.0.0.1:0",
                "--http-proxy", "off", "--control", "off", "--offer", "1048576", "--request", "1048576", "--hops", "1", "--no-probes", "--peer", $"127.0.0.1:{linkPort}"], processes);
            string socks = (await EndToEnd.WaitForAsync(clientLog, @"SOCKS proxy on (127\.0\.0\.1:\d+)", client)).Groups[1].Value;
            await EndToEnd.WaitForAsync(clientLog, "Circuit ready", client, TimeSpan.FromSeconds(60));
            Console.Error.WriteLine($"quid: {quid}; {objects} objects, each fetched on three circuits; origin on port {origin.Port}");

            string cache = Path.Combine(root, "exit", "cache");
            var misses = new List<(double First, double Total)>();
            var hits = new List<(double First, double Total)>();
            for (int i = 0; i < objects; i++)
            {
                string url = $"http://127.0.0.1:{origin.Port}/object/{i}";
                await FetchAsync(socks, "first", url);
                misses.Add(await FetchAsync(socks, "second", url));
                // The second asker's copy is indexed once synced, just after curl has it all.
                await StoredAsync(cache, i + 1);
                hits.Add(await FetchAsync(socks, "third", url));
            }
            int reached = origin.Requests;
            Console.WriteLine($"Exit cache timing: {objects} objects; the origin answered {reached} requests (the hits never reached it: {2 * objects} expected)");
            Console.WriteLine();
            Console.WriteLine("| sample | median first byte | p10–p90 | median last byte | p10–p90 |");
            Console.WriteLine("|---|---|---|---|---|");
            foreach (var (name, sample) in new[] { ("miss (stored)", misses), ("hit", hits) })
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {name} | {Quantile(sample, s => s.First, 0.5):0.0} ms | {Quantile(sample, s => s.First, 0.1):0.0}–{Quantile(sample, s => s.First, 0.9):0.0} ms | {Quantile(sample, s => s.Total, 0.5):0.0} ms | {Quantile(sample, s => s.Total, 0.1):0.0}–{Quantile(sample, s => s.Total, 0.9):0.0} ms |"));
            Console.WriteLine();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"Distinguishing advantage (Kolmogorov–Smirnov distance, hit against miss): first byte {Advantage(misses, hits, s => s.First):0.00}, last byte {Advantage(misses, hits, s => s.Total):0.00}"));
            Console.WriteLine($"Command: dotnet run -c Release --project bench/Quid.Bench -- cache-timing {objects}");
            return reached == 2 * objects ? 0 : 1;
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

    /// <summary>Waits until the exit's cache index lists <paramref name="entries"/> responses, read as <c>quid cache</c> reads it.</summary>
    private static async Task StoredAsync(string directory, int entries)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while ((CacheStore.ReadListing(directory)?.Count ?? 0) < entries)
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"the exit's cache never held {entries} responses");
            await Task.Delay(5);
        }
    }

    private static async Task<(double First, double Total)> FetchAsync(string socks, string circuit, string url)
    {
        var (exit, output, errors) = await EndToEnd.RunCurlAsync(["--socks5-hostname", socks, "--proxy-user", $"{circuit}:x"], url, "%{time_starttransfer} %{time_total} %{time_connect}").ConfigureAwait(false);
        if (exit != 0) throw new InvalidOperationException($"curl {url} failed ({exit}): {errors}");
        var fields = output.Split(' ').Select(f => double.Parse(f, CultureInfo.InvariantCulture) * 1000).ToArray();
        // From the stream's opening: what the cache can change, without the circuit's own set-up.
        return (fields[0] - fields[2], fields[1] - fields[2]);
    }

    private static double Quantile<T>(List<T> sample, Func<T, double> value, double q)
    {
        var sorted = sample.Select(value).Order().ToList();
        return sorted[(int)Math.Min(sorted.Count - 1, Math.Round(q * (sorted.Count - 1)))];
    }

    /// <summary>The largest gap between the two samples' cumulative distributions: the best a threshold on the time can do at telling them apart.</summary>
    private static double Advantage<T>(List<T> a, List<T> b, Func<T, double> value)
    {
        var xs = a.Select(value).Order().ToArray();
        var ys = b.Select(value).Order().ToArray();
        double best = 0;
        foreach (double t in xs.Concat(ys))
            best = Math.Max(best, Math.Abs(xs.Count(x => x <= t) / (double)xs.Length - ys.Count(y => y <= t) / (double)ys.Length));
        return best;
    }

    /// <summary>An origin that answers after 40 ms plus an exponential extra of mean 15 ms, cacheable for an hour, 64 KiB a body.</summary>
    private sealed class SlowOrigin : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private readonly byte[] _body = new byte[64 * 1024];
        private int _requests;

        private SlowOrigin(WebApplication app) => _app = app;

        public int Port { get; private set; }
        public int Requests => Volatile.Read(ref _requests);

        public static async Task<SlowOrigin> StartAsync()
        {
            var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
            builder.WebHost.UseKestrelCore().ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
            var app = builder.Build();
            var origin = new SlowOrigin(app);
            Random.Shared.NextBytes(origin._body);
            app.Run(async context =>
            {
                Interlocked.Increment(ref origin._requests);
                await Task.Delay(TimeSpan.FromMilliseconds(40 - 15 * Math.Log(1 - Random.Shared.NextDouble())));
                context.Response.Headers.CacheControl = "max-age=3600";
                context.Response.ContentType = "application/octet-stream";
                context.Response.ContentLength = origin._body.Length;
                await context.Response.Body.WriteAsync(origin._body);
            });
            await app.StartAsync();
            origin.Port = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()).Port;
            return origin;
        }

        public async ValueTask DisposeAsync()
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }
}
