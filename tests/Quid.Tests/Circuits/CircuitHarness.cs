using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using Quid.Circuits;
using Quid.Crypto;
using Quid.Exchange;
using Quid.Tests.Integration;
using Quid.Tests.Wire;
using Quid.Wire;

namespace Quid.Tests.Circuits;

/// <summary>
/// One node's circuit side, in memory: its keys, ledger and circuit table, its ports to other
/// nodes, and whom it trades with. A node admits circuits from those it grants bandwidth and
/// extends circuits to those that grant it bandwidth, as <c>QuidNode</c> decides.
/// </summary>
internal sealed class CircuitNode : IDisposable
{
    public CircuitNode(NodeIdentity identity, CircuitHarness harness, CircuitOptions options)
    {
        Identity = identity;
        Ledger = new Ledger(harness.Time);
        Descriptor = TestDescriptors.Make(identity, Block.FromKbps(1024), null, policy: ExitPolicy.AcceptAll, published: harness.Time.GetUtcNow());
        var logger = Logs.CreateLogger("Quid.Circuits");
        var exit = new StreamExit(new ExitConnector(ExitPolicy.AcceptAll, null, options.ExitConnectTimeout, harness.Time, harness.Resolve),
            new ExitSockets(options.ExitSocketBudget ?? 1024), harness.Time, logger);
        var policy = new CircuitPolicy(Grants.ContainsKey, next => GrantedBy.ContainsKey(next) && Ports.TryGetValue(next, out var port) && port.IsOpen ? port : null, Ledger.Account,
            peer => Kbps.TryGetValue(peer, out var kbps) ? kbps : (0, long.MaxValue));
        Table = new CircuitTable(identity, options, exit, policy, harness.Time, logger);
        Builder = new CircuitBuilder(Table, options, harness.Time, logger);
        Prober = new Prober(Builder, harness.Time, logger);
    }

    public NodeIdentity Identity { get; }
    public NodeId Id => Identity.Id;
    public Ledger Ledger { get; }
    public Descriptor Descriptor { get; }
    public CircuitTable Table { get; }
    public CircuitBuilder Builder { get; }
    public Prober Prober { get; }
    /// <summary>What this node logs at the default level and above.</summary>
    public LogCapture Logs { get; } = new(LogLevel.Information);
    public ConcurrentDictionary<NodeId, MemoryPort> Ports { get; } = new();
    /// <summary>Neighbours we grant bandwidth: they may build circuits through us.</summary>
    public ConcurrentDictionary<NodeId, bool> Grants { get; } = new();
    /// <summary>Neighbours that grant us bandwidth: we may extend circuits to them.</summary>
    public ConcurrentDictionary<NodeId, bool> GrantedBy { get; } = new();
    /// <summary>What we grant a neighbour and it grants us, in kbps, where a test sets it; elsewhere no pair is ever full.</summary>
    public ConcurrentDictionary<NodeId, (long WeGrant, long TheyGrant)> Kbps { get; } = new();

    /// <summary>Our port to <paramref name="node"/>.</summary>
    public MemoryPort PortTo(CircuitNode node) => Ports[node.Id];

    /// <summary>Builds a circuit from this node through <paramref name="path"/>; the build must end within a deadline.</summary>
    public Task<Circuit> BuildAsync(params CircuitNode[] path) => StartBuild(path).WaitAsync(TimeSpan.FromSeconds(10));

    /// <summary>Starts a build, for a test that watches it fail or wait.</summary>
    public Task<Circuit> StartBuild(params CircuitNode[] path) =>
        Builder.BuildAsync(PortTo(path[0]), [.. path.Select(n => n.Descriptor)], isolation: null, CancellationToken.None);

    /// <summary>Circuits this node is part of that are not closed.</summary>
    public IReadOnlyList<Circuit> OpenCircuits => [.. Table.Circuits.Where(c => c.State != CircuitState.Closed)];

    public void Dispose() => Identity.Dispose();
}

/// <summary>
/// A network of circuit tables joined by in-memory links, on a fake clock. Exits resolve names
/// with <see cref="Names"/> and connect to real loopback sockets (a <see cref="Destination"/>).
/// </summary>
internal sealed class CircuitHarness : IDisposable
{
    private readonly List<IDisposable> _nodes = [];
    private Destination? _destination;

    public FakeTimeProvider Time { get; } = new(TestDescriptors.Epoch);
    public CellWire Wire { get; } = new();
    public CircuitOptions Options { get; init; } = new();
    /// <summary>A loopback server for exits to connect to, made on first use.</summary>
    public Destination Destination => _destination ??= new Destination();
    /// <summary>The exits' resolver: a name not here does not resolve.</summary>
    public ConcurrentDictionary<string, IPAddress[]> Names { get; } = new();

    public Task<IPAddress[]> Resolve(string host, CancellationToken cancellationToken) =>
        Names.TryGetValue(host, out var addresses) ? Task.FromResult(addresses) : Task.FromException<IPAddress[]>(new SocketException((int)SocketError.HostNotFound));

    public CircuitNode AddNode(CircuitOptions? options = null)
    {
        var node = new CircuitNode(NodeIdentity.Generate(out _), this, options ?? Options);
        _nodes.Add(node);
        return node;
    }

    /// <summary>A last hop the test plays, linked from <paramref name="origin"/>, which dialed it.</summary>
    public FakeHop AddFake(CircuitNode origin)
    {
        var fake = new FakeHop(this, origin);
        _nodes.Add(fake);
        return fake;
    }

    /// <summary>A rendezvous point the test plays, which keeps all it decrypts; link to it with <see cref="CuriousPoint.LinkFrom"/>.</summary>
    public CuriousPoint AddCuriousPoint()
    {
        var point = new CuriousPoint(this);
        _nodes.Add(point);
        return point;
    }

    /// <summary>Links two nodes; <paramref name="dialer"/> dialed, so its circuit ids have the top bit set.</summary>
    public void Link(CircuitNode dialer, CircuitNode listener)
    {
        var outward = new MemoryPort(Wire, listener.Id, outbound: true) { Cells = dialer.Table };
        var inward = new MemoryPort(Wire, dialer.Id, outbound: false) { Cells = listener.Table, Other = outward };
        outward.Other = inward;
        dialer.Ports[listener.Id] = outward;
        listener.Ports[dialer.Id] = inward;
    }

    /// <summary>Links two nodes that grant each other bandwidth: each may build circuits through the other.</summary>
    public void Partners(CircuitNode dialer, CircuitNode listener)
    {
        Link(dialer, listener);
        dialer.Grants[listener.Id] = listener.Grants[dialer.Id] = true;
        dialer.GrantedBy[listener.Id] = listener.GrantedBy[dialer.Id] = true;
    }

    /// <summary>An origin and <paramref name="hops"/> nodes after it, each the partner of the one before: a path to build along.</summary>
    public (CircuitNode Origin, CircuitNode[] Hops) Line(int hops)
    {
        var origin = AddNode();
        var path = new CircuitNode[hops];
        var previous = origin;
        for (int i = 0; i < hops; i++)
        {
            path[i] = AddNode();
            Partners(previous, path[i]);
            previous = path[i];
        }
        return (origin, path);
    }

    /// <summary>
    /// A new origin, a line of <paramref name="hops"/> hops after it, a circuit along them and a
    /// stream through it to <see cref="Destination"/>, with the destination's end of the connection.
    /// </summary>
    public async Task<Through> StreamThroughAsync(int hops)
    {
        var (origin, path) = Line(hops);
        var circuit = await origin.BuildAsync(path);
        var stream = await circuit.OpenStreamAsync(Destination.Target, TimeSpan.FromSeconds(10), default);
        return new Through(origin, path, circuit, stream, await Destination.AcceptAsync());
    }

    public void Dispose()
    {
        // Keys go only once no cell is on its way to them.
        SpinWait.SpinUntil(() => Wire.IsIdle, TimeSpan.FromSeconds(10));
        foreach (var node in _nodes) node.Dispose();
        _destination?.Dispose();
        // No table may have thrown on a cell, whatever a hostile hop sent it.
        Assert.Empty(Wire.Failures);
    }
}

/// <summary>What <see cref="CircuitHarness.StreamThroughAsync"/> set up; disposing it closes the stream and the destination's socket.</summary>
internal sealed record Through(CircuitNode Origin, CircuitNode[] Hops, Circuit Circuit, RelayStream Stream, Socket Server) : IAsyncDisposable
{
    public async ValueTask DisposeAsync()
    {
        await Stream.DisposeAsync();
        Server.Dispose();
    }
}

/// <summary>A TCP server on loopback standing for what an exit connects to; the test works each connection it accepts.</summary>
internal sealed class Destination : IDisposable
{
    private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);

    public Destination()
    {
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(8);
    }

    public int Port => ((IPEndPoint)_listener.LocalEndPoint!).Port;
    public StreamTarget Target => new("127.0.0.1", (ushort)Port);

    public async Task<Socket> AcceptAsync()
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        return await _listener.AcceptAsync(deadline.Token);
    }

    public void Dispose() => _listener.Dispose();
}

/// <summary>Reading and writing what crosses a circuit, with a deadline on every wait.</summary>
internal static class Bytes
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);

    /// <summary>Reads until the end, or until the stream is cut: what arrived before either.</summary>
    public static Task<byte[]> ReadToEndAsync(Stream stream) => ReadToEndAsync(stream.ReadAsync);

    /// <summary>Reads until the destination's side of the connection ends, or until it is cut.</summary>
    public static Task<byte[]> ReadToEndAsync(Socket socket) => ReadToEndAsync((buffer, token) => socket.ReceiveAsync(buffer, SocketFlags.None, token));

    private static async Task<byte[]> ReadToEndAsync(Func<Memory<byte>, CancellationToken, ValueTask<int>> read)
    {
        using var deadline = new CancellationTokenSource(Deadline);
        var all = new MemoryStream();
        var buffer = new byte[16 * 1024];
        try
        {
            int n;
            while ((n = await read(buffer, deadline.Token)) > 0) all.Write(buffer, 0, n);
        }
        catch (Exception e) when (e is IOException or SocketException)
        {
            // Cut: what came before the cut is the answer.
        }
        return all.ToArray();
    }

    /// <summary>A recognisable pattern, so a byte out of place is a byte corrupted.</summary>
    public static byte[] Pattern(int length)
    {
        var data = new byte[length];
        for (int i = 0; i < length; i++) data[i] = (byte)(i * 31 + (i >> 8));
        return data;
    }
}
