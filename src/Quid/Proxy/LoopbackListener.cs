using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Quid.Links;

namespace Quid.Proxy;

/// <summary>
/// The listening socket of a proxy front end: loopback only, since anyone who reached a proxy
/// port could use this node's circuits and pass for its user. Each accepted connection goes to
/// the front end's handler, up to a number open at once; past it, a connection is closed as soon
/// as it is accepted. When the process runs out of file descriptors, accepting backs off rather
/// than spinning on a connection it cannot take.
/// </summary>
internal sealed class LoopbackListener : IAsyncDisposable
{
    /// <summary>A limit that is being hit is said once in this long, with how often it was hit meanwhile.</summary>
    private static readonly TimeSpan WarningInterval = AcceptBackoff.WarningInterval;

    private readonly Socket _socket;
    private readonly string _name;
    private readonly int _maxConnections;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly OncePerInterval _overCap;
    private readonly AcceptBackoff _backoff;
    private Task _acceptLoop = Task.CompletedTask;
    private int _open;

    /// <exception cref="ArgumentException"><paramref name="endPoint"/> is not a loopback address.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maxConnections"/> is not positive.</exception>
    /// <exception cref="SocketException">The address could not be bound (in use, say).</exception>
    public LoopbackListener(IPEndPoint endPoint, string name, int maxConnections, TimeProvider time, ILogger logger)
    {
        if (!IPAddress.IsLoopback(endPoint.Address))
            throw new ArgumentException($"The {name} listens on loopback only, never on {endPoint.Address}: anyone who reached it could use your circuits.", nameof(endPoint));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxConnections);
        _name = name;
        _maxConnections = maxConnections;
        _time = time;
        _logger = logger;
        _overCap = new OncePerInterval(WarningInterval, time);
        _backoff = new AcceptBackoff(name, "Raise the descriptor limit (LimitNOFILE, ulimit -n) or lower proxy-max-connections.", time, logger);
        _socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            _socket.Bind(endPoint);
            _socket.Listen(512);
        }
        catch
        {
            _socket.Dispose();
            throw;
        }
        LocalEndPoint = (IPEndPoint)_socket.LocalEndPoint!;
    }

    public IPEndPoint LocalEndPoint { get; }

    /// <summary>Cancelled when the listener stops; connections being served end with it.</summary>
    public CancellationToken Stopping => _stopping.Token;

    /// <summary>Connections being served now.</summary>
    public int OpenConnections => Volatile.Read(ref _open);

    /// <param name="serve">Serves one connection; its task ends when the connection is closed, which frees its place under the cap.</param>
    public void Start(Func<Socket, Task> serve) => _acceptLoop = Task.Run(() => AcceptLoopAsync(serve));

    private async Task AcceptLoopAsync(Func<Socket, Task> serve)
    {
        while (!_stopping.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _socket.AcceptAsync(_stopping.Token).ConfigureAwait(false);
                _backoff.Accepted(client);
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
            if (Interlocked.Increment(ref _open) > _maxConnections)
            {
                Interlocked.Decrement(ref _open);
                client.Dispose();
                if (_overCap.Count() is int refused)
                {
                    _logger.LogWarning("The {Name} has {Max} connections open, its limit (proxy-max-connections): new ones are closed at once " +
                        "({Refused} since the last warning)", _name, _maxConnections, refused);
                }
                continue;
            }
            client.NoDelay = true;
            _ = ServeCountedAsync(client, serve);
        }
    }

    private async Task ServeCountedAsync(Socket client, Func<Socket, Task> serve)
    {
        try
        {
            await serve(client).ConfigureAwait(false);
        }
        finally
        {
            Interlocked.Decrement(ref _open);
        }
    }

    /// <summary>
    /// Sends a final answer and closes without losing it: closing a socket with unread input
    /// resets the connection, and a reset can overtake the answer. So: answer, end our side,
    /// drain what the application still sends for a moment, then close.
    /// </summary>
    public static async Task AnswerAndCloseAsync(Socket client, ReadOnlyMemory<byte> answer, TimeSpan drainFor, TimeProvider time, CancellationToken cancellationToken)
    {
        using var timeout = new CancellationTokenSource(drainFor, time);
        using var drain = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        var buffer = new byte[4096];
        try
        {
            if (!answer.IsEmpty) await client.SendAsync(answer, SocketFlags.None, drain.Token).ConfigureAwait(false);
            client.Shutdown(SocketShutdown.Send);
            while (await client.ReceiveAsync(buffer, SocketFlags.None, drain.Token).ConfigureAwait(false) > 0)
            {
            }
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // Gone or too slow: either way there is nothing left to say.
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        _socket.Dispose();
        await _acceptLoop.ConfigureAwait(false);
        _stopping.Dispose();
    }
}
