using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Quid.Crypto;

namespace Quid.Links;

/// <summary>
/// Accepts TCP connections from other nodes and runs the responder's handshake on those that
/// <see cref="HandshakeAdmission"/> admits: a few at a time and at a limited rate per source,
/// with every network kept a fair share of the slots. The others are reset at once, so a flood
/// holds neither a slot nor a descriptor, and gets no reply. Every established link goes to
/// <c>onLink</c>.
/// </summary>
public sealed class LinkListener : IAsyncDisposable
{
    private static readonly TimeSpan LogInterval = TimeSpan.FromMinutes(1);

    private readonly Socket _socket;
    private readonly NodeIdentity _identity;
    private readonly LinkOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Action<Link> _onLink;
    private readonly HandshakeAdmission _admission;
    private readonly AcceptBackoff _backoff;
    private readonly CancellationTokenSource _stopping = new();
    // Refusals since their last report, by reason; only the accept loop touches these.
    private readonly int[] _refused = new int[Enum.GetValues<HandshakeRefusal>().Length];
    private readonly OncePerInterval _refusals;
    private Task _acceptLoop = Task.CompletedTask;

    public LinkListener(IPEndPoint endPoint, NodeIdentity identity, LinkOptions options, TimeProvider time, ILogger logger, Action<Link> onLink)
    {
        _identity = identity;
        _options = options;
        _time = time;
        _logger = logger;
        _onLink = onLink;
        _admission = new HandshakeAdmission(options, time);
        _refusals = new OncePerInterval(LogInterval, time);
        _backoff = new AcceptBackoff("link listener", "Raise the descriptor limit (LimitNOFILE, ulimit -n).", time, logger);
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

    /// <summary>Sources whose handshakes the listener keeps count of: bounded by <see cref="LinkOptions.MaxTrackedSources"/>.</summary>
    internal int TrackedSources => _admission.TrackedSources;

    internal int HandshakesInProgress => _admission.InProgress;

    public void Start() => _acceptLoop = Task.Run(AcceptLoopAsync);

    private async Task AcceptLoopAsync()
    {
        while (true)
        {
            Socket socket;
            try
            {
                // Accepting whatever comes, rather than waiting for a free slot, keeps a flood out
                // of the kernel's backlog, where an honest node would queue behind it.
                socket = await _socket.AcceptAsync(_stopping.Token).ConfigureAwait(false);
                _backoff.Accepted(socket);
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
            Admit(socket);
        }
    }

    private void Admit(Socket socket)
    {
        Admission admission;
        try
        {
            admission = _admission.TryAdmit(((IPEndPoint)socket.RemoteEndPoint!).Address);
        }
        catch (SocketException)
        {
            // Gone before we could ask whom it came from.
            socket.Dispose();
            return;
        }
        if (admission.Evicted is { } evicted)
        {
            _logger.LogDebug("Handshake slot taken from the busiest network for {Remote}", socket.RemoteEndPoint);
            evicted.Abandon();
        }
        if (admission.Slot is { } slot)
        {
            _ = HandshakeAsync(socket, slot);
            return;
        }
        Refuse(socket, admission.Refusal);
    }

    /// <summary>
    /// Resets the connection, which frees its descriptor and leaves nothing in TIME_WAIT. The first
    /// refusal is reported at once, the ones after it counted and reported at most once a minute.
    /// </summary>
    private void Refuse(Socket socket, HandshakeRefusal reason)
    {
        try
        {
            socket.LingerState = new LingerOption(true, 0);
        }
        catch (SocketException)
        {
            // Already reset by the peer.
        }
        socket.Dispose();
        _refused[(int)reason]++;
        if (_refusals.Count() is not int count) return;
        _logger.LogWarning("Refused {Count} link connection(s) without a handshake since the last report: {Busy} from a source with {PerSource} handshakes in progress, " +
            "{Rate} over a source's handshake rate, {Full} with every slot taken and its network holding its share",
            count, _refused[(int)HandshakeRefusal.SourceBusy], _options.MaxHandshakesPerSource,
            _refused[(int)HandshakeRefusal.SourceRate], _refused[(int)HandshakeRefusal.Full]);
        Array.Clear(_refused);
    }

    private async Task HandshakeAsync(Socket socket, HandshakeSlot slot)
    {
        var remote = socket.RemoteEndPoint;
        try
        {
            using var abandon = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            var accepting = Link.AcceptAsync(socket, _identity, _options, _time, _logger, abandon.Token);
            if (await Task.WhenAny(accepting, slot.Abandoned).ConfigureAwait(false) != accepting) await abandon.CancelAsync().ConfigureAwait(false);
            _onLink(await accepting.ConfigureAwait(false));
        }
        catch (Exception e) when (e is LinkException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            _logger.LogDebug("Handshake with {Remote} failed: {Reason}", remote, e.Message);
        }
        finally
        {
            _admission.Release(slot);
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
