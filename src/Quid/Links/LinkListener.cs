using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Quid.Crypto;

namespace Quid.Links;

/// <summary>
/// Accepts TCP connections from other nodes and runs the responder's handshake on each, at most
/// <see cref="MaxConcurrentHandshakes"/> at a time, so a flood of half-open connections costs
/// little. Every established link goes to <c>onLink</c>.
/// </summary>
public sealed class LinkListener : IAsyncDisposable
{
    public const int MaxConcurrentHandshakes = 64;

    private readonly Socket _socket;
    private readonly NodeIdentity _identity;
    private readonly LinkOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Action<Link> _onLink;
    private readonly SemaphoreSlim _handshakes = new(MaxConcurrentHandshakes);
    private readonly CancellationTokenSource _stopping = new();
    private Task _acceptLoop = Task.CompletedTask;

    public LinkListener(IPEndPoint endPoint, NodeIdentity identity, LinkOptions options, TimeProvider time, ILogger logger, Action<Link> onLink)
    {
        _identity = identity;
        _options = options;
        _time = time;
        _logger = logger;
        _onLink = onLink;
        _socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            _socket.Bind(endPoint);
            _socket.Listen(256);
        }
        catch
        {
            _socket.Dispose();
            throw;
        }
        LocalEndPoint = (IPEndPoint)_socket.LocalEndPoint!;
    }

    public IPEndPoint LocalEndPoint { get; }

    public void Start() => _acceptLoop = Task.Run(AcceptLoopAsync);

    private async Task AcceptLoopAsync()
    {
        while (true)
        {
            Socket socket;
            try
            {
                await _handshakes.WaitAsync(_stopping.Token).ConfigureAwait(false);
                socket = await _socket.AcceptAsync(_stopping.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException e)
            {
                _handshakes.Release();
                _logger.LogWarning("Link accept failed: {Error}", e.SocketErrorCode);
                continue;
            }
            _ = HandshakeAsync(socket);
        }
    }

    private async Task HandshakeAsync(Socket socket)
    {
        var remote = socket.RemoteEndPoint;
        try
        {
            var link = await Link.AcceptAsync(socket, _identity, _options, _time, _logger, _stopping.Token).ConfigureAwait(false);
            _onLink(link);
        }
        catch (Exception e) when (e is LinkException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            _logger.LogDebug("Handshake with {Remote} failed: {Reason}", remote, e.Message);
        }
        finally
        {
            _handshakes.Release();
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
