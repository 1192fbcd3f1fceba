using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Quid.Node;
using Quid.Node.Control;
using Quid.Wire;

namespace Quid.Cli.Demo;

/// <summary>
/// A whole Quid network on this machine: a handful of nodes, each on its own loopback address
/// (127.0.0.2, 127.0.0.3 …) with offers and requests of different sizes, plus a local web
/// server. The first node is "you": its SOCKS and HTTP proxies are what applications use, and it
/// runs the control API as <c>quid run</c> does, so <c>quid status --data-dir</c> and the dashboard
/// show it.
/// </summary>
internal sealed class DemoNetwork : IAsyncDisposable
{
    /// <summary>
    /// Offer and request (kbps, 0 for a donor) of each demo node; the first is the client. Every
    /// node that asks, asks the same, so every trade is even: a partner grants no more than it
    /// gets back, and in a network of a handful of nodes one that asked more than its partners
    /// ask of it would find nobody left to make up the difference.
    /// </summary>
    private static readonly (int Offer, int Request)[] Profiles =
    [
        (4096, 2048), (8192, 2048), (4096, 2048), (2048, 2048), (8192, 0), (4096, 2048), (4096, 2048), (2048, 2048),
    ];

    private readonly List<QuidNode> _nodes = [];
    private readonly string _directory;
    private NodeControl? _control;

    private DemoNetwork(string directory, LocalWebServer web)
    {
        _directory = directory;
        Web = web;
    }

    public IReadOnlyList<QuidNode> Nodes => _nodes;
    public QuidNode Client => _nodes[0];
    public LocalWebServer Web { get; }
    /// <summary>The client's data directory, where <c>quid status</c> finds its control API.</summary>
    public string ClientDataDirectory => DataDirectory(0);
    /// <summary>The client's dashboard, with the token that signs in.</summary>
    public string DashboardUrl => ControlServer.DashboardUrl(_control!.Server!.EndPoint, ControlCookie.Read(ClientDataDirectory));

    private string DataDirectory(int index) => Path.Combine(_directory, $"node{index + 1}");

    /// <param name="nodeCount">How many nodes, 2 to 8.</param>
    /// <param name="socksPort">The client's SOCKS port; any free port if it is taken (or 0).</param>
    /// <param name="httpProxyPort">The client's HTTP proxy port; any free port if it is taken (or 0).</param>
    /// <param name="loggers">The nodes' loggers.</param>
    /// <param name="cancellationToken">Stops starting more nodes.</param>
    public static async Task<DemoNetwork> StartAsync(int nodeCount, int socksPort, int httpProxyPort, ILoggerFactory loggers, CancellationToken cancellationToken)
    {
        if (nodeCount < 2 || nodeCount > Profiles.Length) throw new ArgumentOutOfRangeException(nameof(nodeCount), $"The demo runs 2 to {Profiles.Length} nodes.");
        var web = new LocalWebServer(new IPEndPoint(IPAddress.Loopback, 0));
        web.Start();
        var network = new DemoNetwork(Directory.CreateTempSubdirectory("quid-demo-").FullName, web);
        try
        {
            for (int i = 0; i < nodeCount; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var address = new IPAddress([127, 0, 0, (byte)(i + 2)]);
                var (offer, request) = Profiles[i];
                var options = new NodeOptions
                {
                    DataDirectory = network.DataDirectory(i),
                    Listen = new IPEndPoint(address, 0),
                    Socks = i == 0 ? LoopbackPortOrAnyFree(socksPort) : null,
                    HttpProxy = i == 0 ? LoopbackPortOrAnyFree(httpProxyPort) : null,
                    Offer = Block.FromKbps(offer),
                    Request = request == 0 ? null : Block.FromKbps(request),
                    Peers = i == 0 ? [] : [network._nodes[0].LinkEndPoint.ToString()],
                    // A test network on one machine: every destination is on loopback.
                    ExitPolicy = ExitPolicy.AcceptAll,
                    TickInterval = TimeSpan.FromMilliseconds(200),
                    SearchInterval = TimeSpan.FromSeconds(1),
                };
                network._nodes.Add(await QuidNode.StartAsync(options, loggers).ConfigureAwait(false));
                // The client's control API, as quid run has it, but on any free port: a real node may have 9051.
                if (i == 0)
                    network._control = await NodeControl.StartAsync(network.Client, new IPEndPoint(IPAddress.Loopback, 0), anyPortIfTaken: false,
                        options.DataDirectory, loggers, TimeProvider.System, cancellationToken: cancellationToken).ConfigureAwait(false);
            }
            return network;
        }
        catch
        {
            await network.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// The port on loopback when it is free, else port 0 (any free port): a real node or another
    /// proxy on 1080 or 8118 must not stop the demo. Asked before the node starts, so that one
    /// start is enough.
    /// </summary>
    private static IPEndPoint LoopbackPortOrAnyFree(int port)
    {
        var endPoint = new IPEndPoint(IPAddress.Loopback, port);
        try
        {
            using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            probe.Bind(endPoint);
            return endPoint;
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.AddressAlreadyInUse or SocketError.AccessDenied)
        {
            return new IPEndPoint(IPAddress.Loopback, 0);
        }
    }

    /// <summary>How many nodes have their request met (donors count as met).</summary>
    public async Task<int> MatchedNodesAsync()
    {
        int matched = 0;
        foreach (var node in _nodes)
            if ((await node.StatusAsync().ConfigureAwait(false)).RequestMet) matched++;
        return matched;
    }

    /// <summary>Fetches the demo page directly and through the client node; says which address the server saw each time.</summary>
    public async Task<DemoFetch> FetchAsync(CancellationToken cancellationToken)
    {
        using (var direct = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            await direct.ConnectAsync(Web.EndPoint, cancellationToken).ConfigureAwait(false);
            await Socks5Client.GetAsync(direct, Web.EndPoint.ToString(), "/", cancellationToken).ConfigureAwait(false);
        }
        var directSeen = Web.Clients[^1];

        using var viaQuid = await Socks5Client.ConnectAsync(Client.SocksEndPoint!, Web.EndPoint.Address.ToString(), Web.EndPoint.Port, cancellationToken).ConfigureAwait(false);
        string page = await Socks5Client.GetAsync(viaQuid, Web.EndPoint.ToString(), "/", cancellationToken).ConfigureAwait(false);
        var quidSeen = Web.Clients[^1];
        var exit = _nodes.FirstOrDefault(n => n.LinkEndPoint.Address.Equals(quidSeen));
        var path = Client.Pool.Circuits.OrderByDescending(c => c.CreatedAt).FirstOrDefault()?.Hops
            .Select(h => _nodes.FindIndex(n => n.Id == h.Id) + 1).ToArray() ?? [];
        return new DemoFetch(directSeen, quidSeen, exit is null ? null : _nodes.IndexOf(exit) + 1, path, page);
    }

    public async ValueTask DisposeAsync()
    {
        if (_control is not null) await _control.DisposeAsync().ConfigureAwait(false);
        foreach (var node in _nodes) await node.DisposeAsync().ConfigureAwait(false);
        await Web.DisposeAsync().ConfigureAwait(false);
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // A leftover temporary directory is harmless.
        }
    }
}

/// <summary>What the web server saw: the client's own address directly, the exit's through Quid; and the circuit's hops (node numbers).</summary>
internal sealed record DemoFetch(IPAddress DirectSource, IPAddress QuidSource, int? ExitNodeNumber, IReadOnlyList<int> Path, string Page);
