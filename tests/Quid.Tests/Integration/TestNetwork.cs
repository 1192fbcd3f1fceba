using System.Net;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Quid.Circuits;
using Quid.Cli.Demo;
using Quid.Links;
using Quid.Node;
using Quid.Wire;

namespace Quid.Tests.Integration;

/// <summary>The offer and request (kbps, 0 for none) of one test node; the first node of a network runs the SOCKS and HTTP proxies.</summary>
internal sealed record NodeSpec(int Offer, int Request);

/// <summary>
/// Real nodes on real sockets, each on its own loopback address from <c>firstAddress</c> on, all
/// joined through the first; plus a local web server that records who connected.
/// </summary>
internal sealed class TestNetwork : IAsyncDisposable
{
    private readonly List<QuidNode> _nodes = [];
    private readonly string _directory = Directory.CreateTempSubdirectory("quid-test-").FullName;
    private ILoggerFactory _loggers = NullLoggerFactory.Instance;

    public IReadOnlyList<QuidNode> Nodes => _nodes;
    public QuidNode Client => _nodes[0];
    public LocalWebServer Web { get; } = new(new IPEndPoint(IPAddress.Loopback, 0));
    public IPEndPoint Socks => Client.SocksEndPoint!;
    public IPEndPoint HttpProxy => Client.HttpProxyEndPoint!;

    /// <param name="time">Every node's clock: a test that moves time on for all of them at once passes one.</param>
    /// <param name="loggersOf">Each node's own loggers, when a test reads what one node logged: instead of <paramref name="loggers"/>.</param>
    public static async Task<TestNetwork> StartAsync(byte firstAddress, IReadOnlyList<NodeSpec> specs, Resolver? exitResolver = null,
        ILoggerFactory? loggers = null, Func<int, NodeOptions, IReadOnlyList<QuidNode>, NodeOptions>? configure = null, TimeProvider? time = null,
        Func<int, ILoggerFactory>? loggersOf = null)
    {
        var network = new TestNetwork { _loggers = loggers ?? NullLoggerFactory.Instance };
        network.Web.Start();
        try
        {
            for (int i = 0; i < specs.Count; i++)
            {
                var options = new NodeOptions
                {
                    DataDirectory = Path.Combine(network._directory, $"node{i}"),
                    Listen = new IPEndPoint(new IPAddress([127, 0, 0, (byte)(firstAddress + i)]), 0),
                    Socks = i == 0 ? new IPEndPoint(IPAddress.Loopback, 0) : null,
                    HttpProxy = i == 0 ? new IPEndPoint(IPAddress.Loopback, 0) : null,
                    Offer = Block.FromKbps(specs[i].Offer),
                    Request = specs[i].Request == 0 ? null : Block.FromKbps(specs[i].Request),
                    Peers = i == 0 ? [] : [network._nodes[0].LinkEndPoint.ToString()],
                    ExitPolicy = ExitPolicy.AcceptAll,
                    ExitResolver = exitResolver,
                    // Most tests are about one layer of the system; the circuit tests ask for more hops.
                    Hops = 1,
                    TickInterval = TimeSpan.FromMilliseconds(100),
                    SearchInterval = TimeSpan.FromSeconds(1),
                    Links = new LinkOptions { HandshakeTimeout = TimeSpan.FromSeconds(2) },
                };
                if (configure is not null) options = configure(i, options, network._nodes);
                network._nodes.Add(await QuidNode.StartAsync(options, loggersOf?.Invoke(i) ?? network._loggers, time));
            }
        }
        catch
        {
            await network.DisposeAsync();
            throw;
        }
        return network;
    }

    public string DataDirectory(int node) => Path.Combine(_directory, $"node{node}");

    /// <summary>Stops one node, as a crash would not: politely. The slot stays, so indexes do not shift.</summary>
    public async Task StopAsync(int node) => await _nodes[node].DisposeAsync();

    public async Task<QuidNode> RestartAsync(int node, NodeOptions options)
    {
        // Its log goes where the network's does, so a test that reads the log reads the restarted node's too.
        var restarted = await QuidNode.StartAsync(options, _loggers);
        _nodes[node] = restarted;
        return restarted;
    }

    public Task WaitForClientPartnerAsync() =>
        Eventually.WaitUntilAsync(async () => (await Client.StatusAsync()).RequestMet, TimeSpan.FromSeconds(20), "the client node's request to be met");

    /// <summary>Every node's status, in order.</summary>
    public Task<NodeStatus[]> StatusesAsync() => Task.WhenAll(_nodes.Select(n => n.StatusAsync()));

    /// <summary>The loopback addresses of the nodes that grant the client bandwidth: the only ones allowed to exit its streams.</summary>
    public async Task<IReadOnlyList<IPAddress>> ClientPartnerAddressesAsync()
    {
        var granting = (await Client.StatusAsync()).Agreements.Where(a => a.TheyGrant is not null).Select(a => a.Partner).ToHashSet();
        return [.. _nodes.Where(n => granting.Contains(n.Id)).Select(n => n.LinkEndPoint.Address)];
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var node in _nodes) await node.DisposeAsync();
        await Web.DisposeAsync();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // Leftover temporary files are harmless.
        }
    }
}
