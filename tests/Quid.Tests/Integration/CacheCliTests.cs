using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace Quid.Tests.Integration;

/// <summary>
/// <c>quid cache</c> as the owner of an exit runs it, a real quid process against an exit whose
/// cache real circuits filled: through the running node's control API, and from the data directory
/// once the node has stopped.
/// </summary>
[Collection(nameof(SerialTests))]
public sealed class CacheCliTests(ITestOutputHelper output) : IDisposable
{
    private const string Page = "/fresh/page.txt", Notes = "/fresh/notes.txt", Logo = "/fresh/logo.png";
    private const string NoCache = "This node keeps no exit cache: start it with --cache 2GiB (or cache = \"2GiB\" in quid.toml).";

    private readonly string _root = Directory.CreateTempSubdirectory("quid-cache-cli-").FullName;

    [Fact]
    public async Task Quid_cache_lists_shows_saves_and_purges_a_running_nodes_entries_and_wipe_empties_the_cache()
    {
        await using var net = await CachingExit.StartAsync(146);
        await net.StoreAsync(Page, Notes, Logo);
        await net.FetchAsync("carol", Page);
        await using var control = await ControlPlane.StartAsync(net.Exit, net.ExitDataDirectory);
        string dir = net.ExitDataDirectory;
        var ids = Ids(net);

        // The figures and every entry, keyed as show and save take them.
        var listed = Json(await QuidProcess.RunAsync("cache", "--data-dir", dir, "--json"));
        Assert.True(listed.GetProperty("enabled").GetBoolean());
        Assert.Equal(3, listed.GetProperty("entries").GetInt32());
        Assert.Equal(1000, listed.GetProperty("bytesSaved").GetInt64());
        var items = Items(listed);
        Assert.Equal(new[] { Page, Notes, Logo }.Select(net.Url).Order(), items.Keys.Order());
        Assert.Equal(ids[Page], items[net.Url(Page)].GetProperty("key").GetString());
        Assert.Equal("image/png", items[net.Url(Logo)].GetProperty("type").GetString());
        Assert.Equal(CacheOrigin.Png(Logo).Length, items[net.Url(Logo)].GetProperty("size").GetInt64());
        Assert.Equal(1, items[net.Url(Page)].GetProperty("hits").GetInt64());

        var (code, text) = await QuidProcess.RunAsync("cache", "--data-dir", dir);
        Assert.True(code == 0, text);
        output.WriteLine(text);
        var counters = net.Cache.Counters;
        Assert.Contains($"hit ratio {Percent(counters.HitRatio)} ({counters.Hits} of {counters.Requests} requests) · byte hit ratio {Percent(counters.ByteHitRatio)} · 1000 B saved",
            text, StringComparison.Ordinal);
        Assert.Contains("of 64.0 MiB · 3 entries", text, StringComparison.Ordinal);
        foreach (var path in new[] { Page, Notes, Logo }) Assert.Matches(Row(ids[path], net.Origin.Port, path), text);
        Assert.DoesNotContain(ids[Page][..13], text, StringComparison.Ordinal);

        // The filters: by type, by name, by host.
        Assert.Equal([net.Url(Logo)], Items(Json(await QuidProcess.RunAsync("cache", "--data-dir", dir, "--type", "image", "--json"))).Keys);
        Assert.Equal([net.Url(Notes)], Items(Json(await QuidProcess.RunAsync("cache", "--data-dir", dir, "--search", "NOTES", "--json"))).Keys);
        Assert.Equal(3, Items(Json(await QuidProcess.RunAsync("cache", "--data-dir", dir, "--host", "0.0.1", "--json"))).Count);
        Assert.Empty(Items(Json(await QuidProcess.RunAsync("cache", "--data-dir", dir, "--host", "example.org", "--json"))));

        // One entry: its details and its head as stored.
        (code, text) = await QuidProcess.RunAsync("cache", "show", ids[Page][..12], "--data-dir", dir);
        Assert.True(code == 0, text);
        Assert.Contains(net.Url(Page), text, StringComparison.Ordinal);
        Assert.Contains(ids[Page], text, StringComparison.Ordinal);
        Assert.Contains("text/plain · 1000 B · status 200", text, StringComparison.Ordinal);
        Assert.Contains("  Cache-Control: max-age=3600\n", text, StringComparison.Ordinal);
        Assert.Contains("  ETag: \"v1\"", text, StringComparison.Ordinal);
        var shown = Json(await QuidProcess.RunAsync("cache", "show", ids[Logo][..6], "--data-dir", dir, "--json"));
        Assert.Equal(ids[Logo], shown.GetProperty("key").GetString());
        Assert.Contains("Content-Type: image/png", shown.GetProperty("head").EnumerateArray().Select(l => l.GetString()));

        // Bodies, exactly: to a file, and to standard output when it is redirected.
        string logo = Path.Combine(_root, "logo.png"), page = Path.Combine(_root, "page.txt");
        (code, text) = await QuidProcess.RunAsync("cache", "save", ids[Logo][..12], logo, "--data-dir", dir);
        Assert.True(code == 0, text);
        Assert.Equal(CacheOrigin.Png(Logo), await File.ReadAllBytesAsync(logo));
        Assert.Contains($"Saved {net.Url(Logo)} to {logo}", text, StringComparison.Ordinal);
        (code, text) = await QuidProcess.RunAsync("cache", "save", ids[Page][..12], page, "--data-dir", dir);
        Assert.True(code == 0, text);
        Assert.Equal(CacheOrigin.Body(Page, 1000), await File.ReadAllBytesAsync(page));
        var piped = await RunForBytesAsync("cache", "save", ids[Logo][..12], "--data-dir", dir);
        Assert.True(piped.ExitCode == 0, piped.Errors);
        Assert.Equal(CacheOrigin.Png(Logo), piped.Output);
        Assert.Equal(CacheOrigin.Png(Logo), (await RunForBytesAsync("cache", "save", ids[Logo][..12], "-", "--data-dir", dir)).Output);
        // To a terminal: text is shown, an image is refused with the way to have it.
        (code, text) = await RunInTerminalAsync("cache", "save", ids[Logo][..12], "--data-dir", dir);
        Assert.Equal(1, code);
        Assert.Contains($"which would garble a terminal: give a file (quid cache save {ids[Logo][..12]} logo.png) or redirect it", text, StringComparison.Ordinal);
        (code, text) = await RunInTerminalAsync("cache", "save", ids[Page][..12], "--data-dir", dir);
        Assert.True(code == 0, text);
        Assert.Contains(Encoding.ASCII.GetString(CacheOrigin.Body(Page, 1000)), text, StringComparison.Ordinal);

        // Keys that name nothing, said plainly.
        (code, text) = await QuidProcess.RunAsync("cache", "show", "abc", "--data-dir", dir);
        Assert.Equal(1, code);
        Assert.Equal("quid cache show: 'abc' is too short to name an entry: give at least 6 characters of its key, as 'quid cache' lists them.", text.Trim());
        (code, text) = await QuidProcess.RunAsync("cache", "save", "zzzzzzzz", Path.Combine(_root, "none"), "--data-dir", dir);
        Assert.Equal(1, code);
        Assert.Equal("quid cache save: No entry in the cache has the key zzzzzzzz: 'quid cache' lists them.", text.Trim());
        Assert.False(File.Exists(Path.Combine(_root, "none")));

        // Purge removes what the pattern matches, and only that; without one, only what is stale.
        (code, text) = await QuidProcess.RunAsync("cache", "purge", "*.png", "--data-dir", dir);
        Assert.True(code == 0, text);
        Assert.Equal("Removed 1 entry matching *.png.", text.Trim());
        Assert.Equal(new[] { Page, Notes }.Select(net.Url).Order(), net.Cache.Store.Entries().Select(e => e.Url).Order());
        (code, text) = await QuidProcess.RunAsync("cache", "purge", $"127.0.0.1:{net.Origin.Port}", "--data-dir", dir);
        Assert.True(code == 0, text);
        Assert.Equal($"No entry matches 127.0.0.1:{net.Origin.Port}: nothing was removed. A pattern matches whole URLs: '127.0.0.1:{net.Origin.Port}/*' matches everything under it.",
            text.Trim());
        (code, text) = await QuidProcess.RunAsync("cache", "purge", "--data-dir", dir);
        Assert.True(code == 0, text);
        Assert.Equal("No entry is stale: nothing was removed.", text.Trim());
        Assert.Equal(2, net.Cache.Store.Count);

        // Wipe: everything, without a question.
        (code, text) = await QuidProcess.RunAsync("cache", "wipe", "--data-dir", dir);
        Assert.True(code == 0, text);
        Assert.StartsWith("Wiped the exit cache: removed 2 entries.", text.Trim(), StringComparison.Ordinal);
        Assert.Equal(0, net.Cache.Store.Count);
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(dir, "cache", "bodies")));
        (code, text) = await QuidProcess.RunAsync("cache", "--data-dir", dir);
        Assert.True(code == 0, text);
        Assert.Contains("The cache is empty", text, StringComparison.Ordinal);

        // A node that keeps no cache says how to start one.
        await using var uncached = await ControlPlane.StartAsync(net.Network.Client, net.Network.DataDirectory(0));
        (code, text) = await QuidProcess.RunAsync("cache", "--data-dir", net.Network.DataDirectory(0));
        Assert.Equal(1, code);
        Assert.Equal($"quid cache: {NoCache}", text.Trim());
        (code, text) = await QuidProcess.RunAsync("cache", "wipe", "--data-dir", net.Network.DataDirectory(0));
        Assert.Equal(1, code);
        Assert.Equal($"quid cache wipe: {NoCache}", text.Trim());
    }

    [Fact]
    public async Task Once_the_node_stopped_quid_cache_lists_shows_saves_checked_bodies_and_purges_in_the_data_directory()
    {
        await using var net = await CachingExit.StartAsync(146);
        await net.StoreAsync(Page, Notes, Logo);
        string dir = net.ExitDataDirectory;
        var ids = Ids(net);
        // As quid run leaves it: a cookie from the control API, no address once it stopped, and the cache in quid.toml.
        await (await ControlPlane.StartAsync(net.Exit, dir)).DisposeAsync();
        await net.Network.StopAsync(1);
        await File.WriteAllTextAsync(Path.Combine(dir, "quid.toml"), "cache = \"64MiB\"\n");
        string nobody = $"127.0.0.1:{FreePort()}";
        string cacheDir = Path.Combine(dir, "cache");

        var (code, text) = await QuidProcess.RunAsync("cache", "--data-dir", dir, "--control", nobody);
        Assert.True(code == 0, text);
        output.WriteLine(text);
        Assert.Contains($"The node is not running: this is the cache as it lies in {cacheDir}.", text, StringComparison.Ordinal);
        Assert.Matches(@"Exit cache: [\d.]+ (KiB|MiB) on disk of 64\.0 MiB · 3 entries", text);
        foreach (var path in new[] { Page, Notes, Logo }) Assert.Matches(Row(ids[path], net.Origin.Port, path), text);
        var listed = Json(await QuidProcess.RunAsync("cache", "--data-dir", dir, "--control", nobody, "--json"));
        Assert.Equal(3, listed.GetProperty("entries").GetInt32());
        Assert.Equal(64 << 20, listed.GetProperty("quota").GetInt64());
        Assert.Equal([net.Url(Logo)], Items(Json(await QuidProcess.RunAsync("cache", "--data-dir", dir, "--control", nobody, "--type", "image/", "--json"))).Keys);

        (code, text) = await QuidProcess.RunAsync("cache", "show", ids[Notes][..12], "--data-dir", dir, "--control", nobody);
        Assert.True(code == 0, text);
        Assert.Contains("The node is not running", text, StringComparison.Ordinal);
        Assert.Contains(net.Url(Notes), text, StringComparison.Ordinal);
        Assert.Contains("  ETag: \"v1\"", text, StringComparison.Ordinal);

        string logo = Path.Combine(_root, "logo.png");
        (code, text) = await QuidProcess.RunAsync("cache", "save", ids[Logo][..12], logo, "--data-dir", dir, "--control", nobody);
        Assert.True(code == 0, text);
        Assert.Equal(CacheOrigin.Png(Logo), await File.ReadAllBytesAsync(logo));
        Assert.Equal(Encoding.ASCII.GetString(CacheOrigin.Body(Page, 1000)),
            Encoding.ASCII.GetString((await RunForBytesAsync("cache", "save", ids[Page][..8], "--data-dir", dir, "--control", nobody)).Output));

        // A body changed on disk does not match its checksum: not saved, not a byte of it.
        string body = Path.Combine(cacheDir, "bodies", ids[Notes]);
        var bytes = await File.ReadAllBytesAsync(body);
        bytes[500] ^= 0x20;
        await File.WriteAllBytesAsync(body, bytes);
        string notes = Path.Combine(_root, "notes.txt");
        (code, text) = await QuidProcess.RunAsync("cache", "save", ids[Notes][..12], notes, "--data-dir", dir, "--control", nobody);
        Assert.Equal(1, code);
        Assert.Contains($"the stored body of {net.Url(Notes)} is not whole (it does not match its checksum), so it is not saved", text, StringComparison.Ordinal);
        Assert.False(File.Exists(notes));
        var piped = await RunForBytesAsync("cache", "save", ids[Notes][..12], "--data-dir", dir, "--control", nobody);
        Assert.Equal(1, piped.ExitCode);
        Assert.Empty(piped.Output);

        (code, text) = await QuidProcess.RunAsync("cache", "save", "12345", "--data-dir", dir, "--control", nobody);
        Assert.Equal(1, code);
        Assert.Contains("'12345' is too short to name an entry", text, StringComparison.Ordinal);

        (code, text) = await QuidProcess.RunAsync("cache", "purge", "http://*.png", "--data-dir", dir, "--control", nobody);
        Assert.True(code == 0, text);
        Assert.Contains($"The node is not running: purged in {cacheDir}.", text, StringComparison.Ordinal);
        Assert.Contains("Removed 1 entry matching http://*.png.", text, StringComparison.Ordinal);
        Assert.Equal(new[] { Page, Notes }.Select(net.Url).Order(),
            Items(Json(await QuidProcess.RunAsync("cache", "--data-dir", dir, "--control", nobody, "--json"))).Keys.Order());
        Assert.False(File.Exists(Path.Combine(cacheDir, "bodies", ids[Logo])));

        (code, text) = await QuidProcess.RunAsync("cache", "wipe", "--data-dir", dir, "--control", nobody);
        Assert.True(code == 0, text);
        Assert.StartsWith($"Wiped the exit cache in {cacheDir} (the node is not running): removed 2 entries.", text.Trim(), StringComparison.Ordinal);
        Assert.Equal(0, Json(await QuidProcess.RunAsync("cache", "--data-dir", dir, "--control", nobody, "--json")).GetProperty("entries").GetInt32());
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(cacheDir, "bodies")));

        // A node that never kept a cache, and a directory no node ran in.
        (code, text) = await QuidProcess.RunAsync("cache", "--data-dir", net.Network.DataDirectory(0), "--control", nobody);
        Assert.Equal(1, code);
        Assert.Equal($"quid cache: {NoCache}", text.Trim());
        string never = Path.Combine(_root, "never-ran");
        (code, text) = await QuidProcess.RunAsync("cache", "show", "abcdef", "--data-dir", never, "--control", nobody);
        Assert.Equal(1, code);
        Assert.Equal($"quid cache show: no node has run with data directory {never} yet (use --data-dir).", text.Trim());
    }

    /// <summary>The stored entries' ids by path.</summary>
    private static Dictionary<string, string> Ids(CachingExit net) => net.Cache.Store.Entries().ToDictionary(e => new Uri(e.Url).AbsolutePath, e => e.Id);

    private static Dictionary<string, JsonElement> Items(JsonElement report) =>
        report.GetProperty("items").EnumerateArray().ToDictionary(i => i.GetProperty("url").GetString()!);

    /// <summary>A row of the listing: the key's first 12 characters, the host, the path, in cells of the table.</summary>
    private static Regex Row(string id, int port, string path) =>
        new($@"\b{id[..12]}\W+127\.0\.0\.1:{port}\W+{Regex.Escape(path.TrimStart('/'))}\W");

    private static string Percent(double ratio) => (ratio * 100).ToString("0", CultureInfo.InvariantCulture) + "%";

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static JsonElement Json((int ExitCode, string Output) run)
    {
        Assert.True(run.ExitCode == 0, run.Output);
        return JsonDocument.Parse(run.Output).RootElement.Clone();
    }

    /// <summary>Runs quid with standard output redirected: its bytes, as a pipe or a file would get them, and the errors apart.</summary>
    private static async Task<(int ExitCode, byte[] Output, string Errors)> RunForBytesAsync(params string[] arguments)
    {
        var start = new ProcessStartInfo(QuidProcess.Executable) { RedirectStandardOutput = true, RedirectStandardError = true };
        start.Environment["NO_COLOR"] = "1";
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        using var process = Process.Start(start)!;
        using var stdout = new MemoryStream();
        var copied = process.StandardOutput.BaseStream.CopyToAsync(stdout);
        var errors = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);
        await copied;
        return (process.ExitCode, stdout.ToArray(), await errors);
    }

    /// <summary>Runs quid with a terminal for its output, as a person at one would (script(1) gives it a pseudo-terminal).</summary>
    private static async Task<(int ExitCode, string Output)> RunInTerminalAsync(params string[] arguments)
    {
        string command = string.Join(' ', new[] { QuidProcess.Executable }.Concat(arguments).Select(a => "'" + a.Replace("'", "'\\''", StringComparison.Ordinal) + "'"));
        var start = new ProcessStartInfo("script") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        start.Environment["NO_COLOR"] = "1";
        foreach (var argument in new[] { "--quiet", "--return", "--command", command, "/dev/null" }) start.ArgumentList.Add(argument);
        using var process = Process.Start(start)!;
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);
        // The terminal turns each line's end into CR LF.
        return (process.ExitCode, (await stdout + await stderr).Replace("\r\n", "\n", StringComparison.Ordinal));
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
