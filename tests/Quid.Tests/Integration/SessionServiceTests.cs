using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging.Abstractions;
using Quid.Node;
using Quid.Proxy;
using Quid.Services;
using Quid.Services.Share;
using Xunit.Abstractions;

namespace Quid.Tests.Integration;

/// <summary>
/// Session-address services on real nodes (issue 19): a service published by one node, reached
/// by its <c>.quid</c> name through another node's proxies with curl, over a rendezvous.
/// </summary>
public sealed class SessionServiceTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Published = TimeSpan.FromSeconds(30);

    /// <summary>A folder served by the share server on a loopback port: what <c>quid share</c> publishes.</summary>
    private sealed class SharedFolder : IAsyncDisposable
    {
        private readonly LoopbackListener _listener;
        private readonly List<IPAddress> _peers = [];

        public SharedFolder(byte[] file)
        {
            Directory.CreateDirectory(Root);
            File.WriteAllBytes(Path.Combine(Root, "file.bin"), file);
            var server = new ShareServer(new SharedFiles([Root]), TimeProvider.System, NullLogger.Instance);
            _listener = new LoopbackListener(new IPEndPoint(IPAddress.Loopback, 0), "share", 64, TimeProvider.System, NullLogger.Instance);
            _listener.Start(async socket =>
            {
                lock (_peers) _peers.Add(((IPEndPoint)socket.RemoteEndPoint!).Address);
                await using var stream = new NetworkStream(socket, ownsSocket: true);
                await server.ServeAsync(stream, _listener.Stopping);
            });
        }

        public string Root { get; } = Directory.CreateTempSubdirectory("quid-share-").FullName;
        public IPEndPoint EndPoint => _listener.LocalEndPoint;

        public IReadOnlyList<IPAddress> Peers
        {
            get { lock (_peers) return [.. _peers]; }
        }

        public async ValueTask DisposeAsync()
        {
            await _listener.DisposeAsync();
            Directory.Delete(Root, recursive: true);
        }
    }

    [Fact]
    public async Task A_shared_file_is_fetched_by_curl_through_another_nodes_SOCKS_and_HTTP_proxies_by_its_quid_name_intact()
    {
        var file = RandomNumberGenerator.GetBytes(3 << 20);
        await using var share = new SharedFolder(file);
        await using var network = await CircuitTests.StartAsync(120);
        var serviceNode = network.Nodes[^1];
        await CircuitTests.ReadyCircuitAsync(network);

        var clock = Stopwatch.StartNew();
        var service = await serviceNode.PublishAsync(new ServiceSpec("files", share.EndPoint), Published);
        await service.Published.WaitAsync(Published);
        string url = $"http://{service.Address}/file.bin";
        string saved = Path.Combine(share.Root, "..", $"fetched-{Guid.NewGuid():N}");
        var (exit, _, errors) = await Curl.RunAsync("-sS", "--fail", "--max-time", "60", "--socks5-hostname", network.Socks.ToString(), "-o", saved, url);
        output.WriteLine($"published and fetched 3 MiB in {clock.Elapsed.TotalSeconds:0.0} s");
        Assert.True(exit == 0, $"curl through SOCKS exited {exit}: {errors}");
        Assert.Equal(SHA256.HashData(file), SHA256.HashData(await File.ReadAllBytesAsync(saved)));
        File.Delete(saved);

        // The HTTP proxy reaches it too, over the same rendezvous.
        (exit, var listing, errors) = await Curl.RunAsync("-sS", "--fail", "--max-time", "60", "-x", $"http://{network.HttpProxy}", $"http://{service.Address}/?format=json");
        Assert.True(exit == 0, $"curl through the HTTP proxy exited {exit}: {errors}");
        Assert.Contains("file.bin", listing);

        // The service saw its own node only: every connection came from loopback's 127.0.0.1, never a node's address.
        var nodes = network.Nodes.Select(n => n.LinkEndPoint.Address).ToHashSet();
        Assert.NotEmpty(share.Peers);
        Assert.All(share.Peers, p => Assert.DoesNotContain(p, nodes));
        // And no node's exit was asked: the name never left by an exit.
        Assert.Equal(1, service.Met);
    }

    [Fact]
    public async Task A_name_no_service_publishes_fails_like_an_unknown_host_and_reaches_no_exit()
    {
        await using var network = await CircuitTests.StartAsync(130);
        await CircuitTests.ReadyCircuitAsync(network);
        using var keys = ServiceKeys.Ephemeral();
        string nobody = keys.FixedAddress!.ToString();

        var (exit, _, errors) = await Curl.RunAsync("-sS", "--max-time", "60", "--socks5-hostname", network.Socks.ToString(), $"http://{nobody}/");

        // curl's 97: the SOCKS proxy refused the connection, with reply 4 (host unreachable), as for a name that does not exist.
        Assert.Equal(97, exit);
        Assert.True(errors.Contains("(4)", StringComparison.Ordinal), errors);
        Assert.Empty(network.Client.ServiceClient.Meetings);
    }
}
