using System.Net;
using System.Security.Cryptography;
using System.Text;
using Quid.Cache;

namespace Quid.Tests.Integration;

/// <summary>
/// The exit cache between real nodes: curl through a partner that exits with a cache, against an
/// origin that counts what reaches it. Each curl names its own SOCKS user, so each asks on a
/// circuit of its own (isolation), as different users would.
/// </summary>
public sealed class ExitCacheTests
{
    private static readonly NodeSpec[] TwoNodes = [new(1048576, 524288), new(1048576, 524288)];

    private sealed class CacheNetwork : IAsyncDisposable
    {
        public required TestNetwork Network { get; init; }
        public required CacheOrigin Origin { get; init; }
        public required TestOrigin Plain { get; init; }
        public ExitCache Cache => Network.Nodes[1].Cache!;

        public string Url(string path) => $"http://127.0.0.1:{Origin.Port}{path}";

        /// <summary>Fetches <paramref name="urls"/> on one connection of circuit <paramref name="circuit"/>; each response's head and body.</summary>
        public async Task<IReadOnlyList<(string Head, string Body)>> FetchAsync(string circuit, string[] urls, params string[] headers)
        {
            var arguments = new List<string> { "--silent", "--show-error", "--include", "--max-time", "30", "--socks5-hostname", Network.Socks.ToString(), "--proxy-user", $"{circuit}:x" };
            foreach (var header in headers) arguments.AddRange(["--header", header]);
            arguments.AddRange(urls);
            var (exitCode, output, errors) = await Curl.RunAsync([.. arguments]);
            Assert.True(exitCode == 0, $"curl failed ({exitCode}): {errors}");
            var responses = new List<(string, string)>();
            // Each response is a head, a blank line and a body of the length the head gives (a chunked one, decoded by curl, is the last).
            for (int at = 0; at < output.Length;)
            {
                int end = output.IndexOf("\r\n\r\n", at, StringComparison.Ordinal);
                string head = output[at..end];
                var length = head.Split("\r\n").SingleOrDefault(l => l.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase))?["Content-Length:".Length..].Trim();
                int size = length is null ? output.Length - end - 4 : int.Parse(length, System.Globalization.CultureInfo.InvariantCulture);
                responses.Add((head, output.Substring(end + 4, size)));
                at = end + 4 + size;
            }
            return responses;
        }

        public async Task<(string Head, string Body)> FetchAsync(string circuit, string path, params string[] headers) =>
            (await FetchAsync(circuit, [Url(path)], headers))[0];

        /// <summary>A body is indexed once it is synced, just after its last byte went to the client: wait for it.</summary>
        public Task WaitForStoredAsync(int entries) =>
            Eventually.WaitUntilAsync(() => Cache.Store.Count == entries, TimeSpan.FromSeconds(5), $"{entries} entries in the cache");

        public async ValueTask DisposeAsync()
        {
            await Network.DisposeAsync();
            await Origin.DisposeAsync();
            await Plain.DisposeAsync();
        }
    }

    private static async Task<CacheNetwork> StartAsync(byte first)
    {
        var origin = await CacheOrigin.StartAsync(IPAddress.Loopback);
        var plain = new TestOrigin(tls: false);
        var network = await TestNetwork.StartAsync(first, TwoNodes, configure: (i, options, _) => i == 1
            ? options with { Cache = new CacheOptions { Quota = 64 << 20, Ports = new HashSet<int> { origin.Port, plain.Port } } }
            : options);
        await network.WaitForClientPartnerAsync();
        return new CacheNetwork { Network = network, Origin = origin, Plain = plain };
    }

    private static string Expected(string path, int size = 1000) => Encoding.ASCII.GetString(CacheOrigin.Body(path, size));

    [Fact]
    public async Task An_object_two_circuits_asked_for_is_stored_and_a_third_ask_never_reaches_the_origin()
    {
        await using var net = await StartAsync(130);
        var first = await net.FetchAsync("alice", "/fresh/a");
        var second = await net.FetchAsync("bob", "/fresh/a");
        Assert.Equal(2, net.Origin.Count("/fresh/a"));
        await net.WaitForStoredAsync(1);

        // On one connection: a hit, then a miss, the relay reading the second request after the first answer.
        var third = await net.FetchAsync("carol", [net.Url("/fresh/a"), net.Url("/fresh/b")]);
        Assert.Equal(2, net.Origin.Count("/fresh/a"));
        Assert.Equal(1, net.Origin.Count("/fresh/b"));
        Assert.All(new[] { first, second, third[0] }, r => Assert.Equal(Expected("/fresh/a"), r.Body));
        Assert.Equal(Expected("/fresh/b"), third[1].Body);

        // The hit says nothing of when it was stored: no Age, and the Date of its sending.
        Assert.DoesNotContain("\nAge:", third[0].Head, StringComparison.OrdinalIgnoreCase);
        var date = DateTimeOffset.Parse(third[0].Head.Split('\n').Single(l => l.StartsWith("Date:", StringComparison.OrdinalIgnoreCase))[5..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(DateTimeOffset.UtcNow - date < TimeSpan.FromSeconds(5), $"the hit's Date is {date}");
        Assert.Equal(1, net.Cache.Counters.Hits);
        Assert.Equal(1000, net.Cache.Counters.BytesFromStore);
    }

    [Fact]
    public async Task One_circuit_asking_again_and_again_never_gets_an_object_stored()
    {
        await using var net = await StartAsync(132);
        for (int i = 0; i < 3; i++) Assert.Equal(Expected("/fresh/one"), (await net.FetchAsync("alice", "/fresh/one")).Body);
        Assert.Equal(3, net.Origin.Count("/fresh/one"));
        Assert.Equal(0, net.Cache.Store.Count);
    }

    [Theory]
    [InlineData("/set-cookie")]
    [InlineData("/private")]
    [InlineData("/no-store")]
    [InlineData("/vary-star")]
    [InlineData("/fresh/authorization", "Authorization: Basic YWxpY2U6c2VjcmV0")]
    [InlineData("/fresh/cookie", "Cookie: session=1")]
    public async Task What_a_shared_cache_must_not_store_always_reaches_the_origin(string path, string? header = null)
    {
        await using var net = await StartAsync(134);
        string[] headers = header is null ? [] : [header];
        foreach (var circuit in new[] { "alice", "bob", "carol" }) Assert.Equal(Expected(path), (await net.FetchAsync(circuit, path, headers)).Body);
        Assert.Equal(3, net.Origin.Count(path));
        Assert.Equal(0, net.Cache.Store.Count);
        if (header is null) return;

        // Stored for others, the object is still not given to a request with credentials.
        await net.FetchAsync("alice", path);
        await net.FetchAsync("bob", path);
        await net.WaitForStoredAsync(1);
        await net.FetchAsync("carol", path, headers);
        Assert.Equal(6, net.Origin.Count(path));
    }

    [Fact]
    public async Task A_response_that_varies_is_given_only_to_requests_that_match_it()
    {
        await using var net = await StartAsync(136);
        await net.FetchAsync("alice", "/vary-lang", "Accept-Language: en");
        await net.FetchAsync("bob", "/vary-lang", "Accept-Language: en");
        await net.WaitForStoredAsync(1);
        Assert.Equal("language fr", (await net.FetchAsync("carol", "/vary-lang", "Accept-Language: fr")).Body);
        Assert.Equal(3, net.Origin.Count("/vary-lang"));
        Assert.Equal("language en", (await net.FetchAsync("dave", "/vary-lang", "Accept-Language: en")).Body);
        Assert.Equal(3, net.Origin.Count("/vary-lang"));
    }

    [Fact]
    public async Task A_stale_object_is_revalidated_and_a_304_lets_the_stored_body_answer()
    {
        await using var net = await StartAsync(138);
        await net.FetchAsync("alice", "/short/x");
        await net.FetchAsync("bob", "/short/x");
        await net.WaitForStoredAsync(1);
        var stored = Assert.Single(net.Cache.Store.Entries());
        // Past half its second of freshness, a stored response is not used without asking the origin.
        await Eventually.WaitUntilAsync(() => DateTimeOffset.UtcNow - stored.ResponseTime > TimeSpan.FromMilliseconds(600), TimeSpan.FromSeconds(5), "the object to go stale");

        var answer = await net.FetchAsync("carol", "/short/x");
        Assert.StartsWith("HTTP/1.1 200", answer.Head, StringComparison.Ordinal);
        Assert.Equal(Expected("/short/x"), answer.Body);
        var last = net.Origin.Log[^1];
        Assert.Equal(("/short/x", "\"s1\"", 304), last);
        Assert.Equal(1, net.Cache.Counters.Hits);
    }

    [Fact]
    public async Task A_chunked_response_is_stored_whole_and_served_with_its_length()
    {
        await using var net = await StartAsync(140);
        const string path = "/chunked?size=5000";
        await net.FetchAsync("alice", path);
        await net.FetchAsync("bob", path);
        await net.WaitForStoredAsync(1);
        var hit = await net.FetchAsync("carol", path);
        Assert.Equal(2, net.Origin.Count(path));
        Assert.Equal(Expected(path, 5000), hit.Body);
        Assert.Contains("Content-Length: 5000", hit.Head, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("Transfer-Encoding", hit.Head, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task A_request_the_cache_does_not_answer_passes_byte_for_byte()
    {
        await using var net = await StartAsync(142);
        var content = RandomNumberGenerator.GetBytes(1 << 20);
        string file = Path.Combine(Path.GetTempPath(), $"quid-{Guid.NewGuid():n}.bin");
        await File.WriteAllBytesAsync(file, content);
        try
        {
            var (exitCode, output, errors) = await Curl.RunAsync("--silent", "--show-error", "--max-time", "30", "--socks5-hostname", net.Network.Socks.ToString(),
                "--data-binary", $"@{file}", $"http://127.0.0.1:{net.Plain.Port}/sha256");
            Assert.True(exitCode == 0, $"curl failed ({exitCode}): {errors}");
            Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(content)), output.Trim());
        }
        finally
        {
            File.Delete(file);
        }
        // What reached the origin is exactly what curl sent, head and all.
        Assert.Contains("POST /sha256 HTTP/1.1", Assert.Single(net.Plain.Heads), StringComparison.Ordinal);
        Assert.Equal(0, net.Cache.Counters.Requests);
    }
}
