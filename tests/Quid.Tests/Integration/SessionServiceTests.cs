using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging.Abstractions;
using Quid.Circuits;
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
        await using var network = await CircuitTests.StartAsync(164);
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
        await using var network = await CircuitTests.StartAsync(170);
        await CircuitTests.ReadyCircuitAsync(network);
        using var keys = ServiceKeys.Ephemeral();
        string nobody = keys.FixedAddress!.ToString();

        var (exit, _, errors) = await Curl.RunAsync("-sS", "--max-time", "60", "--socks5-hostname", network.Socks.ToString(), $"http://{nobody}/");

        // curl's 97: the SOCKS proxy refused the connection, with reply 4 (host unreachable), as for a name that does not exist.
        Assert.Equal(97, exit);
        Assert.True(errors.Contains("(4)", StringComparison.Ordinal), errors);
        Assert.Empty(network.Client.ServiceClient.Meetings);
    }

    /// <summary>A web server that keeps every request head it read and answers each with its own marker.</summary>
    private sealed class MarkerServer : IAsyncDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly List<string> _requests = [];
        private readonly List<IPAddress> _peers = [];
        private readonly Task _accepting;

        public MarkerServer()
        {
            _listener.Start();
            _accepting = AcceptAsync();
        }

        public string Marker { get; } = $"SERVICE-MARKER-{Guid.NewGuid():N}";
        public IPEndPoint EndPoint => (IPEndPoint)_listener.LocalEndpoint;

        public IReadOnlyList<string> Requests
        {
            get { lock (_requests) return [.. _requests]; }
        }

        public IReadOnlyList<IPAddress> Peers
        {
            get { lock (_requests) return [.. _peers]; }
        }

        private async Task AcceptAsync()
        {
            try
            {
                while (true)
                {
                    var client = await _listener.AcceptTcpClientAsync();
                    _ = ServeAsync(client);
                }
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                // Stopped.
            }
        }

        private async Task ServeAsync(TcpClient client)
        {
            using var _ = client;
            var stream = client.GetStream();
            var head = new List<byte>();
            var buffer = new byte[4096];
            while (!head.ToArray().AsSpan().EndsWith("\r\n\r\n"u8))
            {
                int read = await stream.ReadAsync(buffer);
                if (read == 0) return;
                head.AddRange(buffer.AsSpan(0, read).ToArray());
            }
            lock (_requests)
            {
                _requests.Add(System.Text.Encoding.ASCII.GetString([.. head]));
                _peers.Add(((IPEndPoint)client.Client.RemoteEndPoint!).Address);
            }
            var body = System.Text.Encoding.ASCII.GetBytes(Marker);
            await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n"));
            await stream.WriteAsync(body);
        }

        public async ValueTask DisposeAsync()
        {
            _listener.Stop();
            await _accepting;
        }
    }

    /// <summary>What the nodes said about their rendezvous, for a failure's message.</summary>
    private static string Explained(LogCapture logs) => "\n" + string.Join("\n", logs.Lines
        .Where(l => l.Text.Contains("meet", StringComparison.OrdinalIgnoreCase) || l.Text.Contains("SOCKS", StringComparison.Ordinal) || l.Text.Contains("ntroduc", StringComparison.Ordinal))
        .Select(l => $"{l.Category}: {l.Text}"));

    private static async Task<(int Exit, string Output, string Errors)> FetchAsync(TestNetwork network, string address, int maxSeconds = 60) =>
        await Curl.RunAsync("-sS", "--fail", "-i", "--max-time", maxSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--socks5-hostname", network.Socks.ToString(), $"http://{address}/");

    [Fact]
    public async Task Neither_end_learns_the_others_address_the_client_sends_no_trace_of_its_node_and_the_service_none_of_its()
    {
        await using var web = new MarkerServer();
        await using var network = await CircuitTests.StartAsync(190);
        await CircuitTests.ReadyCircuitAsync(network);
        var serviceNode = network.Nodes[^1];
        var service = await serviceNode.PublishAsync(new ServiceSpec("marker", web.EndPoint), Published);
        string clientMarker = $"CLIENT-MARKER-{Guid.NewGuid():N}";

        var (exit, response, errors) = await Curl.RunAsync("-sS", "--fail", "-i", "--max-time", "60", "-H", $"X-Marker: {clientMarker}",
            "--socks5-hostname", network.Socks.ToString(), $"http://{service.Address}/");

        Assert.True(exit == 0, errors);
        // Each marker crossed, end to end.
        Assert.Contains(web.Marker, response);
        var request = Assert.Single(web.Requests);
        Assert.Contains(clientMarker, request);
        // What reached the service names no node of the network: not the client's, by address, port or id.
        foreach (var node in network.Nodes)
        {
            Assert.DoesNotContain(node.LinkEndPoint.Address.ToString(), request);
            Assert.DoesNotContain(node.Id.ToString(), request);
        }
        Assert.DoesNotContain(network.Socks.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), request);
        Assert.All(web.Peers, p => Assert.Equal(IPAddress.Loopback, p));
        // And what came back to the client names neither the service's node nor its listener.
        foreach (var node in network.Nodes)
        {
            Assert.DoesNotContain(node.LinkEndPoint.Address.ToString(), response);
            Assert.DoesNotContain(node.Id.ToString(), response);
        }
        Assert.DoesNotContain(web.EndPoint.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), response);
        // The client's circuit ends at R and then at the virtual hop, which names no node.
        var clientCircuit = Assert.Single(network.Client.ServiceClient.Meetings);
        Assert.DoesNotContain(network.Nodes, n => n.Id == clientCircuit.Hops[^1].Id);
    }

    [Fact]
    public async Task A_stable_service_is_published_again_at_its_address_when_its_node_restarts_and_an_ephemeral_one_is_withdrawn()
    {
        await using var web = new MarkerServer();
        var logs = new LogCapture(Microsoft.Extensions.Logging.LogLevel.Debug);
        await using var network = await CircuitTests.StartAsync(210, loggers: logs);
        await CircuitTests.ReadyCircuitAsync(network);
        int last = network.Nodes.Count - 1;
        var options = network.Nodes[last].Options;
        var stable = await network.Nodes[last].PublishAsync(new ServiceSpec("web", web.EndPoint, AddressKind.Stable), Published);
        var ephemeral = await network.Nodes[last].PublishAsync(new ServiceSpec("temp", web.EndPoint, AddressKind.Ephemeral), Published);
        string stableAddress = stable.Address.ToString(), ephemeralAddress = ephemeral.Address.ToString();
        foreach (var address in new[] { stableAddress, ephemeralAddress })
        {
            var (fetched, _, failed) = await FetchAsync(network, address);
            Assert.True(fetched == 0, failed + Explained(logs));
        }

        // What the node follows, it follows after the restart too.
        using var followedSecret = ServiceSecret.Generate();
        var followedAddress = network.Nodes[last].Follow("friend", followedSecret.ToText(), accessKey: null);

        // The services' vanguards, drawn for the circuits they built, are what the node keeps for its next run.
        var vanguards = network.Nodes[last].Pool.Vanguards;
        Assert.NotEmpty(vanguards);
        await network.StopAsync(last);
        using (var kept = NodeDatabase.OpenReadOnly(options.DataDirectory))
            Assert.Subset(kept.LoadVanguards().Select(v => (v.First, v.Hop)).ToHashSet(), vanguards.Select(v => (v.First, v.Hop)).ToHashSet());
        var restarted = await network.RestartAsync(last, options);
        Assert.Equal(followedAddress, Assert.Single(restarted.ServiceClient.Follows).Address);
        // The stable service is published again by the node itself; the ephemeral one is gone.
        await Eventually.WaitUntilAsync(() => restarted.Services.Any(s => s.Name == "web"), Published, "the stable service to be published again at start");
        var stableAgain = Assert.Single(restarted.Services);
        Assert.Equal(stableAddress, stableAgain.Address.ToString());
        await stableAgain.Published.WaitAsync(Published);
        // Asking for it again, as a script run after the restart would, gets the same service.
        Assert.Same(stableAgain, await restarted.PublishAsync(new ServiceSpec("web", web.EndPoint, AddressKind.Stable), Published));
        var ephemeralAgain = await restarted.PublishAsync(new ServiceSpec("temp", web.EndPoint, AddressKind.Ephemeral), Published);

        Assert.NotEqual(ephemeralAddress, ephemeralAgain.Address.ToString());
        var (exit, response, errors) = await FetchAsync(network, stableAddress);
        Assert.True(exit == 0, errors + Explained(logs));
        Assert.Contains(web.Marker, response);
        (exit, _, errors) = await FetchAsync(network, ephemeralAgain.Address.ToString());
        Assert.True(exit == 0, errors + Explained(logs));
        // The old ephemeral address leads nowhere: its key died with the node, which withdrew it
        // as it stopped, so the lookup fails at once rather than after three meetings that never
        // come. (In a network this small the node itself may have been the only holder of the
        // withdrawal, and then the name is simply not found: at once too.)
        Assert.NotEqual(0, (await FetchAsync(network, ephemeralAddress)).Exit);
        Assert.True(logs.Lines.Any(l => l.Text.Contains($"{ephemeralAddress} has stopped", StringComparison.Ordinal) || l.Text.Contains($"{ephemeralAddress} was not found", StringComparison.Ordinal)),
            "the old ephemeral address should fail at once" + Explained(logs));

        // Removed, the stable service is withdrawn too, and is not published at the next start.
        Assert.True(await restarted.UnpublishAsync("web"));
        Assert.NotEqual(0, (await FetchAsync(network, stableAddress)).Exit);
        Assert.True(logs.Lines.Any(l => l.Text.Contains($"{stableAddress} has stopped", StringComparison.Ordinal)), "the removed stable address should fail as stopped" + Explained(logs));
        await network.StopAsync(last);
        var again = await network.RestartAsync(last, options);
        Assert.Empty(again.Services);
    }

    [Fact]
    public async Task A_moving_service_is_followed_by_a_holder_of_its_secret_and_last_periods_address_leads_nowhere()
    {
        await using var web = new MarkerServer();
        var logs = new LogCapture(Microsoft.Extensions.Logging.LogLevel.Debug);
        await using var network = await CircuitTests.StartAsync(184, loggers: logs);
        await CircuitTests.ReadyCircuitAsync(network);
        var serviceNode = network.Nodes[^1];
        var service = await serviceNode.PublishAsync(new ServiceSpec("moving", web.EndPoint, AddressKind.Moving), Published);
        // The holder of the secret derives this period's address, as the service does.
        var secret = new ServiceSecret(await File.ReadAllBytesAsync(Path.Combine(serviceNode.Options.DataDirectory, "services", "moving.moving.key")));
        using var follower = ServiceKeys.Moving(secret);
        ulong period = follower.Periods.Number(DateTimeOffset.UtcNow);
        string now = follower.Address(period).ToString(), before = follower.Address(period - 1).ToString();
        Assert.Equal(service.Address.ToString(), now);

        var (exit, response, errors) = await FetchAsync(network, now);
        Assert.True(exit == 0, errors + Explained(logs));
        Assert.Contains(web.Marker, response);
        // Whoever kept last period's address, without the secret, finds nothing: the lookup fails as for a name nobody publishes.
        var (oldExit, _, oldErrors) = await FetchAsync(network, before);
        Assert.Equal(97, oldExit);
        Assert.True(oldErrors.Contains("(4)", StringComparison.Ordinal), oldErrors);

        // A node told the secret follows the service under a name of its own: NAME.quid is this period's address.
        Assert.Equal(97, (await FetchAsync(network, "friend.quid")).Exit);
        Assert.Equal(now, network.Client.Follow("Friend", secret.ToText(), accessKey: null).ToString());
        (exit, response, errors) = await FetchAsync(network, "friend.quid");
        Assert.True(exit == 0, errors + Explained(logs));
        Assert.Contains(web.Marker, response);
        var followed = Assert.Single(network.Client.ServiceClient.Follows);
        Assert.Equal(("friend", now), (followed.Name, followed.Address.ToString()));
        Assert.True(network.Client.Unfollow("friend"));
        Assert.Equal(97, (await FetchAsync(network, "friend.quid")).Exit);
    }

    [Fact]
    public async Task Under_a_flood_of_junk_introductions_a_client_still_reaches_the_service_by_paying_work()
    {
        await using var web = new MarkerServer();
        var logs = new LogCapture(Microsoft.Extensions.Logging.LogLevel.Debug);
        await using var network = await CircuitTests.StartAsync(110, loggers: logs);
        await CircuitTests.ReadyCircuitAsync(network);
        var service = await network.Nodes[^1].PublishAsync(new ServiceSpec("flooded", web.EndPoint), Published);
        await service.Published.WaitAsync(Published);

        // A stranger's node looks the service up about 160 times a second, each lookup carrying an
        // introduction shaped right that nobody can open: first come, its flood would take nearly
        // every one of the introduction points' 10 turns a second. (Much faster, it would fill the
        // overlay's own lookup budgets and deny lookups themselves, which no work at the
        // introduction point answers: PROTOCOL §9.14, limits.)
        var flooder = network.Nodes[1];
        var address = service.Address;
        var periods = ServicePeriod.ForAddress(address);
        ulong period = periods.Number(DateTimeOffset.UtcNow);
        byte[] lookupId = periods.LookupId(periods.BlindedKey(address.PublicKey, period), period);
        using var stop = new CancellationTokenSource();
        long lookups = 0;
        async Task FloodAsync()
        {
            while (!stop.IsCancellationRequested)
            {
                Circuit? circuit = null;
                try
                {
                    circuit = await flooder.Pool.BuildDedicatedAsync(new object(), stop.Token);
                    using var pace = new PeriodicTimer(TimeSpan.FromMilliseconds(25));
                    while (circuit.State == CircuitState.Open && await pace.WaitForNextTickAsync(stop.Token))
                    {
                        var junk = RandomNumberGenerator.GetBytes(Introduction.SealedSize);
                        junk[0] = Introduction.Version;
                        await circuit.LookupAsync(lookupId, junk, TimeSpan.FromSeconds(15), stop.Token);
                        Interlocked.Increment(ref lookups);
                    }
                }
                catch (StreamException)
                {
                    // Refused or timed out: another circuit.
                }
                finally
                {
                    circuit?.Destroy(DestroyReason.Finished);
                }
            }
        }
        var floods = Enumerable.Range(0, 4).Select(_ => Task.Run(FloodAsync)).ToList();
        try
        {
            await Eventually.WaitUntilAsync(() => network.Nodes.Sum(n => n.IntroductionsDropped) >= 200, TimeSpan.FromSeconds(60),
                "the introduction points dropping a flood beyond their 10 a second");

            var clock = Stopwatch.StartNew();
            var (exit, response, errors) = await FetchAsync(network, address.ToString(), maxSeconds: 90);
            output.WriteLine($"fetched in {clock.Elapsed.TotalSeconds:0.0} s during a flood of {Interlocked.Read(ref lookups)} lookups so far, " +
                $"{network.Nodes.Sum(n => n.IntroductionsDropped)} introductions dropped ({string.Join(", ", network.Nodes.Select(n => n.IntroductionsDropped))}), " +
                $"the service opened {service.Introduced}, dropped {service.Dropped}, met {service.Met}");
            Assert.True(exit == 0, errors + Explained(logs));
            Assert.Contains(web.Marker, response);
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(floods).ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }

    [Fact]
    public async Task A_private_service_cannot_be_told_from_a_name_nobody_publishes_without_its_key_and_is_reached_with_it()
    {
        await using var web = new MarkerServer();
        await using var network = await CircuitTests.StartAsync(130);
        await CircuitTests.ReadyCircuitAsync(network);
        var service = await network.Nodes[^1].PublishAsync(new ServiceSpec("private", web.EndPoint, Private: true), Published);
        string address = service.Address.ToString();
        Assert.StartsWith("quid-secret-", service.AccessKey);
        using var nobody = ServiceKeys.Ephemeral();

        // Without the key: the same failure, after the same lookup steps, as a name nobody publishes.
        var clock = Stopwatch.StartNew();
        var (exit, _, errors) = await FetchAsync(network, address);
        var withoutKey = clock.Elapsed;
        clock.Restart();
        var (nobodyExit, _, nobodyErrors) = await FetchAsync(network, nobody.FixedAddress!.ToString());
        var forNobody = clock.Elapsed;
        Assert.Equal((97, "(4)"), (exit, errors.Contains("(4)", StringComparison.Ordinal) ? "(4)" : errors));
        Assert.Equal((97, "(4)"), (nobodyExit, nobodyErrors.Contains("(4)", StringComparison.Ordinal) ? "(4)" : nobodyErrors));
        output.WriteLine($"without the key {withoutKey.TotalSeconds:0.0} s, a name nobody publishes {forNobody.TotalSeconds:0.0} s");
        Assert.Empty(web.Requests);
        Assert.Equal(0, service.Introduced);

        // With it.
        network.Client.AddAccess(address, service.AccessKey!);
        (exit, var response, errors) = await FetchAsync(network, address);
        Assert.True(exit == 0, errors);
        Assert.Contains(web.Marker, response);
    }
}
