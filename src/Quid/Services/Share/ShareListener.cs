using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Quid.Links;

namespace Quid.Services.Share;

/// <summary>
/// Serves a share on a loopback TCP port: for tests, and for using a share from this machine.
/// Loopback only, like every port a node listens on for its user. Up to a number of connections
/// at once; past it, a connection is closed as soon as it is accepted.
/// </summary>
public sealed class ShareListener : IAsyncDisposable
{
    public const int DefaultMaxConnections = 256;
    /// <summary>How long a closing connection's unread input is drained, so that the last answer is not lost to a reset.</summary>
    private static readonly TimeSpan DrainTime = TimeSpan.FromSeconds(2);
    private const int MaxDrainBytes = 1024 * 1024;

    private readonly ShareServer _server;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly int _maxConnections;
    private readonly Socket _socket;
    private readonly AcceptBackoff _backoff;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<Task, bool> _connections = new();
    private Task _acceptLoop = Task.CompletedTask;

    /// <param name="endPoint">A loopback address; 127.0.0.1 on a free port if null.</param>
    /// <exception cref="ArgumentException"><paramref name="endPoint"/> is not a loopback address.</exception>
    /// <exception cref="SocketException">The address could not be bound.</exception>
    public ShareListener(ShareServer server, TimeProvider time, ILogger logger, IPEndPoint? endPoint = null, int maxConnections = DefaultMaxConnections)
    {
        endPoint ??= new IPEndPoint(IPAddress.Loopback, 0);
        if (!IPAddress.IsLoopback(endPoint.Address))
            throw new ArgumentException($"A share listens on loopback only, never on {endPoint.Address}: it reaches others through the network.", nameof(endPoint));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxConnections);
        _server = server;
        _time = time;
        _logger = logger;
        _maxConnections = maxConnections;
        _backoff = new AcceptBackoff("share listener", "Raise the descriptor limit (ulimit -n).", time, logger);
        _socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            _socket.Bind(endPoint);
            _socket.Listen(128);
        }
        catch
        {
            _socket.Dispose();
            throw;
        }
        LocalEndPoint = (IPEndPoint)_socket.LocalEndPoint!;
    }

    public IPEndPoint LocalEndPoint { get; }

    /// <summary>Connections being served now.</summary>
    public int OpenConnections => _connections.Count;

    public void Start() => _acceptLoop = Task.Run(AcceptLoopAsync);

    private async Task AcceptLoopAsync()
    {
        while (!_stopping.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _socket.AcceptAsync(_stopping.Token).ConfigureAwait(false);
                _backoff.Accepted();
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException e)
            {
                try
                {
                    await _backoff.AfterFailureAsync(e, _stopping.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                continue;
            }
            if (_connections.Count >= _maxConnections)
            {
                _logger.LogDebug("The share listener has {Max} connections open, its limit: a new one is closed", _maxConnections);
                client.Dispose();
                continue;
            }
            var serving = ServeAsync(client);
            _connections.TryAdd(serving, true);
            _ = serving.ContinueWith(t => _connections.TryRemove(t, out _), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
    }

    private async Task ServeAsync(Socket client)
    {
        await Task.Yield();
        using (client)
        {
            client.NoDelay = true;
            using var stream = new NetworkStream(client, ownsSocket: false);
            try
            {
                await _server.ServeAsync(stream, _stopping.Token).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                _logger.LogError(e, "The share server failed on a connection");
            }
            await CloseAsync(client).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Ends our side, then reads what the client still sends for a moment: closing a socket with
    /// unread input resets the connection, and a reset can overtake the last answer (a 413 to an
    /// upload still being sent).
    /// </summary>
    private async Task CloseAsync(Socket client)
    {
        using var timeout = new CancellationTokenSource(DrainTime, _time);
        using var drain = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, _stopping.Token);
        var buffer = new byte[16 * 1024];
        try
        {
            client.Shutdown(SocketShutdown.Send);
            int drained = 0;
            int read;
            while (drained < MaxDrainBytes && (read = await client.ReceiveAsync(buffer, SocketFlags.None, drain.Token).ConfigureAwait(false)) > 0) drained += read;
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // Gone or too slow: either way there is nothing left to say.
        }
    }

    /// <summary>Stops accepting, ends the connections being served, and waits until each has closed its files.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        _socket.Dispose();
        await _acceptLoop.ConfigureAwait(false);
        await Task.WhenAll(_connections.Keys).ConfigureAwait(false);
        _stopping.Dispose();
    }
}
