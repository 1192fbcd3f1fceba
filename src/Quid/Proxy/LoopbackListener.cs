using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace Quid.Proxy;

/// <summary>
/// The listening socket of a proxy front end: loopback only, since anyone who reached a proxy
/// port could use this node's circuits and pass for its user. Each accepted connection goes to
/// the front end's handler.
/// </summary>
internal sealed class LoopbackListener : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly string _name;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private Task _acceptLoop = Task.CompletedTask;

    /// <exception cref="ArgumentException"><paramref name="endPoint"/> is not a loopback address.</exception>
    /// <exception cref="SocketException">The address could not be bound (in use, say).</exception>
    public LoopbackListener(IPEndPoint endPoint, string name, ILogger logger)
    {
        if (!IPAddress.IsLoopback(endPoint.Address))
            throw new ArgumentException($"The {name} listens on loopback only, never on {endPoint.Address}: anyone who reached it could use your circuits.", nameof(endPoint));
        _name = name;
        _logger = logger;
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

    public void Start(Func<Socket, Task> serve) => _acceptLoop = Task.Run(() => AcceptLoopAsync(serve));

    private async Task AcceptLoopAsync(Func<Socket, Task> serve)
    {
        while (!_stopping.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _socket.AcceptAsync(_stopping.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException e)
            {
                _logger.LogWarning("{Name} accept failed: {Error}", _name, e.SocketErrorCode);
                continue;
            }
            client.NoDelay = true;
            _ = serve(client);
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
