using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Quid.Cli.Demo;

namespace Quid.Tests.Integration;

/// <summary>
/// One single-hop network for every front-end test: the exits know a made-up name,
/// <c>web.quid.test</c>, that nothing on the client's side could resolve, so a fetch by that name
/// succeeds only if the name reached an exit unresolved.
/// </summary>
public class ProxyNetworkFixture : IAsyncLifetime
{
    public const string Name = "web.quid.test";
    private static readonly NodeSpec[] ThreeNodes = [new(1048576, 524288), new(2097152, 1048576), new(1048576, 0)];

    internal TestNetwork Network { get; private set; } = null!;
    internal TestOrigin Plain { get; } = new(tls: false);
    internal TestOrigin Tls { get; } = new(tls: true);
    internal TestOrigin Ipv6 { get; } = new(tls: false, IPAddress.IPv6Loopback);

    /// <summary>Every name an exit was asked to resolve.</summary>
    public ConcurrentQueue<string> Resolved { get; } = new();

    /// <summary>The nodes' loopback addresses start here; each test class that has its own network has its own range.</summary>
    protected virtual byte FirstAddress => 240;

    public async Task InitializeAsync()
    {
        Network = await TestNetwork.StartAsync(FirstAddress, ThreeNodes, exitResolver: (host, _) =>
        {
            Resolved.Enqueue(host);
            return Task.FromResult(host == Name ? new[] { IPAddress.Loopback } : []);
        });
        await Network.WaitForClientPartnerAsync();
    }

    public async Task DisposeAsync()
    {
        await Network.DisposeAsync();
        await Plain.DisposeAsync();
        await Tls.DisposeAsync();
        await Ipv6.DisposeAsync();
    }
}

/// <summary>
/// Real clients through each front end: curl over SOCKS5, SOCKS4a, SOCKS4 and the HTTP proxy
/// (plain and CONNECT to TLS), and wget. Each fetch must arrive intact, and each destination must
/// have seen only an exit, never the client node.
/// </summary>
public sealed class ProxyClientTests(ProxyNetworkFixture fixture) : IClassFixture<ProxyNetworkFixture>
{
    private const int Size = 1 << 20;
    private static readonly byte[] Expected = Pattern(Size);

    private TestNetwork Network => fixture.Network;
    private string Socks => Network.Socks.ToString();
    private string Http => $"http://{Network.HttpProxy}";

    private static byte[] Pattern(int size)
    {
        var bytes = new byte[size];
        LocalWebServer.FillPattern(bytes, 0);
        return bytes;
    }

    public static TheoryData<string> Clients =>
    [
        "curl --socks5-hostname", "curl --socks5", "curl --socks5 ipv6", "curl --socks4a", "curl --socks4", "curl --socks5-hostname https",
        "curl -x http", "curl -x http ipv6", "curl -x http CONNECT https", "curl -x http --proxytunnel", "curl -x http chunked", "curl -0 -x http chunked",
        "wget http", "wget https",
    ];

    [Theory]
    [MemberData(nameof(Clients))]
    public async Task Each_client_fetches_a_file_intact_and_the_destination_sees_only_an_exit(string client)
    {
        string web = $"{ProxyNetworkFixture.Name}:{Network.Web.EndPoint.Port}";
        string literal = $"127.0.0.1:{Network.Web.EndPoint.Port}";
        string tls = $"https://{ProxyNetworkFixture.Name}:{fixture.Tls.Port}/bytes/{Size}";
        string chunked = $"http://{ProxyNetworkFixture.Name}:{fixture.Plain.Port}/bytes/{Size}?chunked";
        string ipv6 = $"http://[::1]:{fixture.Ipv6.Port}/bytes/{Size}";
        string file = Path.Combine(Path.GetTempPath(), $"quid-{Guid.NewGuid():n}.bin");
        string[] curl = ["--silent", "--show-error", "--fail", "--max-time", "60", "--output", file];
        (string Program, string[] Arguments, bool ByName) run = client switch
        {
            "curl --socks5-hostname" => ("curl", [.. curl, "--socks5-hostname", Socks, $"http://{web}/bytes/{Size}"], true),
            // Without -hostname curl resolves names itself, so these are given an address.
            "curl --socks5" => ("curl", [.. curl, "--socks5", Socks, $"http://{literal}/bytes/{Size}"], false),
            "curl --socks5 ipv6" => ("curl", [.. curl, "--socks5", Socks, ipv6], false),
            "curl --socks4a" => ("curl", [.. curl, "--socks4a", Socks, $"http://{web}/bytes/{Size}"], true),
            "curl --socks4" => ("curl", [.. curl, "--socks4", Socks, $"http://{literal}/bytes/{Size}"], false),
            "curl --socks5-hostname https" => ("curl", [.. curl, "--insecure", "--socks5-hostname", Socks, tls], true),
            "curl -x http" => ("curl", [.. curl, "--proxy", Http, $"http://{web}/bytes/{Size}"], true),
            "curl -x http ipv6" => ("curl", [.. curl, "--proxy", Http, ipv6], false),
            "curl -x http CONNECT https" => ("curl", [.. curl, "--insecure", "--proxy", Http, tls], true),
            "curl -x http --proxytunnel" => ("curl", [.. curl, "--proxytunnel", "--proxy", Http, $"http://{web}/bytes/{Size}"], true),
            "curl -x http chunked" => ("curl", [.. curl, "--proxy", Http, chunked], true),
            // An HTTP/1.0 client cannot read chunks: the proxy takes the framing off.
            "curl -0 -x http chunked" => ("curl", [.. curl, "--http1.0", "--proxy", Http, chunked], true),
            "wget http" => ("wget", ["--quiet", "--tries=1", "--timeout=60", "-O", file, "-e", "use_proxy=on", "-e", $"http_proxy={Http}", $"http://{web}/bytes/{Size}"], true),
            "wget https" => ("wget", ["--quiet", "--tries=1", "--timeout=60", "--no-check-certificate", "-O", file, "-e", "use_proxy=on", "-e", $"https_proxy={Http}", tls], true),
            _ => throw new ArgumentOutOfRangeException(nameof(client)),
        };
        int[] before = [.. Destinations().Select(s => s.Count)];
        int resolvedBefore = fixture.Resolved.Count;
        try
        {
            var (code, _, errors) = await ClientProcess.RunAsync(run.Program, run.Arguments, TimeSpan.FromSeconds(90));
            Assert.True(code == 0, $"{client} failed ({code}): {errors}");
            Assert.Equal(SHA256.HashData(Expected), SHA256.HashData(await File.ReadAllBytesAsync(file)));
        }
        finally
        {
            File.Delete(file);
        }
        var seen = Destinations().SelectMany((s, i) => s.Skip(before[i])).ToList();
        Assert.NotEmpty(seen);
        // Every node shares the one IPv6 loopback address, so only IPv4 tells the exit from the client.
        if (client.EndsWith("ipv6", StringComparison.Ordinal))
            Assert.All(seen, address => Assert.Equal(IPAddress.IPv6Loopback, address));
        else
        {
            var partners = await Network.ClientPartnerAddressesAsync();
            Assert.All(seen, address => Assert.Contains(address, partners));
        }
        Assert.DoesNotContain(Network.Client.LinkEndPoint.Address, seen);
        Assert.DoesNotContain(IPAddress.Loopback, seen);
        if (run.ByName) Assert.Contains(ProxyNetworkFixture.Name, fixture.Resolved.Skip(resolvedBefore));
    }

    private IReadOnlyList<IPAddress>[] Destinations() => [Network.Web.Clients, fixture.Plain.Clients, fixture.Tls.Clients, fixture.Ipv6.Clients];

    [Theory]
    [InlineData("Content-Length")]
    [InlineData("chunked")]
    public async Task A_POST_body_reaches_the_destination_intact_through_the_HTTP_proxy(string framing)
    {
        byte[] body = RandomNumberGenerator.GetBytes(3 << 20);
        string file = Path.Combine(Path.GetTempPath(), $"quid-{Guid.NewGuid():n}.bin");
        await File.WriteAllBytesAsync(file, body);
        try
        {
            string[] arguments =
            [
                "--silent", "--show-error", "--fail", "--max-time", "60", "--proxy", Http, "--data-binary", $"@{file}",
                // No Expect: 100-continue: this origin never sends 100, and curl would wait a second for it.
                "--header", "Expect:", .. framing == "chunked" ? ["--header", "Transfer-Encoding: chunked"] : Array.Empty<string>(),
                $"http://{ProxyNetworkFixture.Name}:{fixture.Plain.Port}/sha256",
            ];
            var (code, output, errors) = await Curl.RunAsync(arguments);
            Assert.True(code == 0, $"curl failed ({code}): {errors}");
            Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(body)), output);
            string head = fixture.Plain.Heads[^1];
            Assert.StartsWith("POST /sha256 HTTP/1.1\n", head, StringComparison.Ordinal);
            Assert.Contains(framing == "chunked" ? "Transfer-Encoding: chunked" : $"Content-Length: {body.Length}", head, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task A_request_pipelined_after_the_first_never_leaves_and_the_answer_says_Connection_close()
    {
        int before = fixture.Plain.Transcripts.Count;
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(Network.HttpProxy);
        string target = $"{ProxyNetworkFixture.Name}:{fixture.Plain.Port}";
        // A request with a body and a second one right behind it, in one write; the second, with credentials, must reach nobody.
        await socket.SendAsync(Encoding.ASCII.GetBytes(
            $"POST http://{target}/sha256 HTTP/1.1\r\nHost: {target}\r\nContent-Length: 5\r\nProxy-Connection: keep-alive\r\n\r\nhello" +
            $"GET http://{target}/bytes/7 HTTP/1.1\r\nHost: {target}\r\nProxy-Authorization: Basic c2VjcmV0OnNlY3JldA==\r\n\r\n"));
        var response = new List<byte>();
        var buffer = new byte[4096];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        for (int read; (read = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token)) > 0;) response.AddRange(buffer.AsSpan(0, read));
        string text = Encoding.ASCII.GetString([.. response]);
        Assert.StartsWith("HTTP/1.1 200 OK\r\n", text, StringComparison.Ordinal);
        Assert.Contains("\r\nConnection: close\r\n", text, StringComparison.Ordinal);
        Assert.EndsWith("\r\n\r\n" + Convert.ToHexStringLower(SHA256.HashData("hello"u8)), text, StringComparison.Ordinal);

        // Everything the destination's connection ever carried: the first request, rewritten, and its body; nothing after.
        await Eventually.WaitUntilAsync(() => fixture.Plain.Transcripts.Count > before, TimeSpan.FromSeconds(10), "the destination's connection to end");
        Assert.Equal($"POST /sha256 HTTP/1.1\r\nHost: {target}\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
            Encoding.Latin1.GetString(Assert.Single(fixture.Plain.Transcripts.Skip(before))));
    }

    [Fact]
    public async Task A_dot_quid_name_that_is_no_address_is_refused_by_both_proxies_and_never_reaches_an_exit()
    {
        // 56 base32 characters whose checksum fails: no service has this address, and no exit ever hears of it.
        const string service = "abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuvwx.quid";
        var (socks, _, socksErrors) = await Curl.RunAsync("--silent", "--show-error", "--max-time", "30", "--socks5-hostname", Socks, $"http://{service}/");
        Assert.Equal(97, socks); // curl: the SOCKS5 proxy refused the connect
        Assert.True(socksErrors.EndsWith("(4)\n", StringComparison.Ordinal), socksErrors); // SOCKS5 reply 4: host unreachable

        var (http, page, _) = await Curl.RunAsync("--silent", "--max-time", "30", "--proxy", Http, "--write-out", "%{http_code}", $"http://www.{service}/");
        Assert.Equal(0, http);
        Assert.EndsWith("502", page, StringComparison.Ordinal);
        Assert.DoesNotContain(fixture.Resolved, name => name.Contains(".quid", StringComparison.OrdinalIgnoreCase) && !name.EndsWith(".quid.test", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Failures_through_the_HTTP_proxy_get_a_page_that_names_what_failed()
    {
        // Port 1 on loopback: nothing listens, so the exit's connection is refused.
        var (code, page, _) = await Curl.RunAsync("--silent", "--max-time", "30", "--proxy", Http, "--write-out", "%{http_code}", "http://127.0.0.1:1/");
        Assert.Equal(0, code);
        Assert.EndsWith("502", page, StringComparison.Ordinal);
        Assert.Contains("Quid could not open a connection to 127.0.0.1:1", page, StringComparison.Ordinal);
        Assert.Contains("connection refused", page, StringComparison.Ordinal);

        // A name no exit knows.
        (code, page, _) = await Curl.RunAsync("--silent", "--max-time", "30", "--proxy", Http, "--write-out", "%{http_code}", "http://nowhere.quid.test/");
        Assert.Equal(0, code);
        Assert.EndsWith("502", page, StringComparison.Ordinal);
        Assert.Contains("could not resolve the name", page, StringComparison.Ordinal);

        // The same for a tunnel: curl reports the proxy's status.
        var (tunnel, _, errors) = await Curl.RunAsync("--silent", "--show-error", "--max-time", "30", "--proxy", Http, "--insecure", "https://127.0.0.1:1/");
        Assert.Equal(56, tunnel); // curl: failure receiving network data (CONNECT refused)
        Assert.Contains("502", errors, StringComparison.Ordinal);
    }

    [Fact]
    public async Task HTTP_proxy_credentials_isolate_circuits_like_SOCKS_credentials()
    {
        const string first = "alice", second = "bob";
        foreach (var user in new[] { first, second, first })
        {
            var (code, _, errors) = await Curl.RunAsync("--silent", "--show-error", "--fail", "--max-time", "30",
                "--proxy", $"http://{user}:pw@{Network.HttpProxy}", $"http://{ProxyNetworkFixture.Name}:{Network.Web.EndPoint.Port}/");
            Assert.True(code == 0, errors);
        }
        // One circuit per set of credentials, and SOCKS5 with the same credentials shares it.
        var (socks, _, socksErrors) = await Curl.RunAsync("--silent", "--show-error", "--fail", "--max-time", "30",
            "--proxy", $"socks5h://{first}:pw@{Network.Socks}", $"http://{ProxyNetworkFixture.Name}:{Network.Web.EndPoint.Port}/");
        Assert.True(socks == 0, socksErrors);
        var isolations = Network.Client.Pool.Circuits.Select(c => c.Isolation).OfType<Quid.Proxy.Socks.SocksAuth>().ToList();
        Assert.Single(isolations, a => a.Username.Span.SequenceEqual(Encoding.ASCII.GetBytes(first)));
        Assert.Single(isolations, a => a.Username.Span.SequenceEqual(Encoding.ASCII.GetBytes(second)));
    }
}
