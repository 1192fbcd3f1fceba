using System.Net;
using System.Net.Sockets;
using Quid.Node;

namespace Quid.Tests.Integration;

/// <summary>
/// Gives one node of a test network an uplink slower than it claims. A forwarder stands in front of
/// every node's listener (each node advertises its forwarder's address and bootstraps through node
/// 0's), and every byte the slow node sends, on any link and whichever side dialed it, passes one
/// shared pace. The slow node offers, grants and promises in full, and delivers at most the pace:
/// a liar made by its network, not by a hook in its code.
/// </summary>
internal sealed class SlowUplink : IAsyncDisposable
{
    private const int ChunkSize = 4096;

    private readonly Socket[] _listeners;
    private readonly int _slow;
    private readonly IPAddress _slowAddress;
    private readonly double _bytesPerSecond;
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Task> _tasks = [];
    private readonly Lock _lock = new();
    private long _nextFree;
    private IReadOnlyList<QuidNode> _nodes = [];

    /// <summary><paramref name="slowAddress"/> is the slow node's listen address, which its outbound links also come from.</summary>
    public SlowUplink(int nodes, int slow, IPAddress slowAddress, double bytesPerSecond)
    {
        _slow = slow;
        _slowAddress = slowAddress;
        _bytesPerSecond = bytesPerSecond;
        _listeners = new Socket[nodes];
        for (int i = 0; i < nodes; i++)
        {
            _listeners[i] = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            _listeners[i].Bind(new IPEndPoint(IPAddress.Loopback, 0));
            _listeners[i].Listen(64);
            int node = i;
            _tasks.Add(Task.Run(() => AcceptAsync(node)));
        }
    }

    private IPEndPoint Front(int node) => (IPEndPoint)_listeners[node].LocalEndPoint!;

    /// <summary>For <see cref="TestNetwork.StartAsync"/>'s configure: node <paramref name="i"/> is reached through its forwarder.</summary>
    public NodeOptions Configure(int i, NodeOptions options, IReadOnlyList<QuidNode> started)
    {
        _nodes = started;
        return options with { Advertise = Front(i), Peers = i == 0 ? [] : [Front(0).ToString()] };
    }

    private async Task AcceptAsync(int node)
    {
        while (!_stopping.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listeners[node].AcceptAsync(_stopping.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            lock (_lock) _tasks.Add(ForwardAsync(node, client));
        }
    }

    private async Task ForwardAsync(int node, Socket client)
    {
        using var _ = client;
        using var server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await server.ConnectAsync(_nodes[node].LinkEndPoint, _stopping.Token);
            bool fromSlow = ((IPEndPoint)client.RemoteEndPoint!).Address.Equals(_slowAddress);
            await Task.WhenAny(
                PumpAsync(client, server, paced: fromSlow),
                PumpAsync(server, client, paced: node == _slow));
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
        {
            // A link closed, or the test is over.
        }
    }

    private async Task PumpAsync(Socket from, Socket to, bool paced)
    {
        var buffer = new byte[ChunkSize];
        try
        {
            while (true)
            {
                int read = await from.ReceiveAsync(buffer, SocketFlags.None, _stopping.Token);
                if (read == 0) return;
                if (paced) await Task.Delay(Reserve(read), _stopping.Token);
                await to.SendAsync(buffer.AsMemory(0, read), SocketFlags.None, _stopping.Token);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
        {
            // Either side closed.
        }
    }

    /// <summary>How long <paramref name="bytes"/> wait for the slow node's uplink, which all its links share.</summary>
    private TimeSpan Reserve(int bytes)
    {
        lock (_lock)
        {
            long now = TimeProvider.System.GetTimestamp();
            long start = Math.Max(now, _nextFree);
            _nextFree = start + (long)(bytes / _bytesPerSecond * TimeProvider.System.TimestampFrequency);
            return TimeProvider.System.GetElapsedTime(now, start);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        foreach (var listener in _listeners) listener.Dispose();
        Task[] tasks;
        lock (_lock) tasks = [.. _tasks];
        await Task.WhenAll(tasks);
        _stopping.Dispose();
    }
}
