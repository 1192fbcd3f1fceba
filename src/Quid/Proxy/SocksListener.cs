using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Quid.Circuits;
using Quid.Proxy.Socks;
using Quid.Wire;

namespace Quid.Proxy;

/// <summary>
/// The SOCKS4, SOCKS4a and SOCKS5 front end on loopback. It feeds socket bytes to the sans-IO
/// handshake, asks for a stream through the network (names go to the exit unresolved), answers
/// with the reply code that matches what went wrong, and then joins the socket to the stream.
/// </summary>
public sealed class SocksListener : IAsyncDisposable
{
    /// <summary>How long a refused application may go on sending before its connection is closed.</summary>
    private static readonly TimeSpan DrainTime = TimeSpan.FromSeconds(2);
    /// <summary>How many destination ports are warned about addresses sent instead of names; an application scanning ports must not flood the log.</summary>
    private const int MaxAddressWarnings = 64;

    private readonly LoopbackListener _listener;
    private readonly StreamOpener _open;
    private readonly ExitResolver _resolve;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly TimeSpan _handshakeTimeout;
    private readonly ConcurrentDictionary<ushort, bool> _addressWarned = new();

    /// <exception cref="ArgumentException"><paramref name="endPoint"/> is not a loopback address.</exception>
    public SocksListener(IPEndPoint endPoint, StreamOpener open, ExitResolver resolve, TimeProvider time, ILogger logger, ProxyOptions? options = null)
    {
        options ??= new ProxyOptions();
        _open = open;
        _resolve = resolve;
        _time = time;
        _logger = logger;
        _handshakeTimeout = options.HandshakeTimeout;
        _listener = new LoopbackListener(endPoint, "SOCKS proxy", options.MaxConnections, time, logger);
    }

    public IPEndPoint LocalEndPoint => _listener.LocalEndPoint;

    /// <summary>Connections being served now, handshakes and streams.</summary>
    public int OpenConnections => _listener.OpenConnections;

    private CancellationToken Stopping => _listener.Stopping;

    public void Start() => _listener.Start(ServeAsync);

    /// <summary>Serves one connection until it is closed: its handshake, then its stream, if it gets one.</summary>
    private async Task ServeAsync(Socket client)
    {
        Task? stream = null;
        try
        {
            var (request, early) = await HandshakeAsync(client).ConfigureAwait(false);
            if (request is null) return;
            stream = await ServeRequestAsync(client, request, early).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // The application went away or was too slow; nothing to answer.
        }
        finally
        {
            if (stream is null) client.Dispose();
        }
        // The stream closes the socket when it ends.
        if (stream is not null) await stream.ConfigureAwait(false);
    }

    /// <summary>Runs the handshake; returns the request and any bytes the application sent after it, or null after a failure reply.</summary>
    private async Task<(SocksRequest? Request, byte[] Early)> HandshakeAsync(Socket client)
    {
        using var timeout = new CancellationTokenSource(_handshakeTimeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, Stopping);
        var handshake = new SocksServerHandshake();
        // An idle connection holds no buffer: wait for its first byte before taking one.
        await client.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None, linked.Token).ConfigureAwait(false);
        var buffer = new byte[SocksServerHandshake.MaxMessageSize * 2];
        int filled = 0;
        while (true)
        {
            var step = handshake.Step(buffer.AsSpan(0, filled));
            switch (step.Kind)
            {
                case SocksStepKind.Reply:
                    await client.SendAsync(step.Reply, SocketFlags.None, linked.Token).ConfigureAwait(false);
                    buffer.AsSpan(step.Consumed, filled - step.Consumed).CopyTo(buffer);
                    filled -= step.Consumed;
                    continue;
                case SocksStepKind.Finished:
                    return (step.Request, buffer[step.Consumed..filled]);
                case SocksStepKind.Failed:
                    _logger.LogDebug("SOCKS handshake refused: {Error}", step.Error!.Message);
                    await LoopbackListener.AnswerAndCloseAsync(client, step.Reply, DrainTime, _time, linked.Token).ConfigureAwait(false);
                    return (null, []);
            }
            if (filled == buffer.Length) return (null, []);
            int read = await client.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None, linked.Token).ConfigureAwait(false);
            if (read == 0) return (null, []);
            filled += read;
        }
    }

    /// <summary>Answers a finished request; the stream that now owns the socket, running, or null if there is none.</summary>
    private async Task<Task?> ServeRequestAsync(Socket client, SocksRequest request, byte[] early)
    {
        if (request.Command == SocksCommand.Resolve)
        {
            await ResolveAsync(client, request).ConfigureAwait(false);
            return null;
        }
        if (request.Command != SocksCommand.Connect)
        {
            await ReplyAsync(client, request, SocksReplyCode.CommandNotSupported).ConfigureAwait(false);
            return null;
        }
        if (request.Target.Address is not null) WarnOfLocalResolution(request);
        var target = new StreamTarget(request.Target.HostName ?? request.Target.Address!.ToString(), request.Target.Port);
        RelayStream stream;
        try
        {
            stream = await _open(target, request.Auth, Stopping).ConfigureAwait(false);
        }
        catch (StreamException e)
        {
            _logger.LogDebug("SOCKS stream failed: {Reason}", e.Message);
            await ReplyAsync(client, request, ReplyFor(e.Reason)).ConfigureAwait(false);
            return null;
        }
        try
        {
            await client.SendAsync(SocksReply.Encode(request.Version, SocksReplyCode.Succeeded), SocketFlags.None, Stopping).ConfigureAwait(false);
        }
        catch
        {
            // The application left before hearing yes: end the stream at the exit too.
            stream.Abort(EndReason.Internal, notifyPeer: true);
            throw;
        }
        return stream.RunAsync(client, early);
    }

    /// <summary>
    /// An application that sends an address instead of a name resolved the name itself: its DNS
    /// query left outside the network, where it can show where the user goes. Said once per
    /// destination port (as Tor does), so that an operator can tell which kind of application to
    /// fix without a line per stream; the address is never logged, since it is where the user went.
    /// </summary>
    private void WarnOfLocalResolution(SocksRequest request)
    {
        ushort port = request.Target.Port;
        if (_addressWarned.Count >= MaxAddressWarnings || !_addressWarned.TryAdd(port, true)) return;
        _logger.LogWarning("An application sent the SOCKS proxy an IP address instead of a name ({Version}, to port {Port}): it resolved the name itself, " +
            "outside Quid, which can reveal where you go. Set it to send names: socks5h:// instead of socks5://, SOCKS4a, or its 'proxy DNS' option",
            request.Version, port);
    }

    /// <summary>Tor's RESOLVE (0xF0): the exit resolves the name and the first address goes back in the reply.</summary>
    private async Task ResolveAsync(Socket client, SocksRequest request)
    {
        if (request.Target.Address is { } literal)
        {
            await client.SendAsync(SocksReply.Encode(request.Version, SocksReplyCode.Succeeded, literal), SocketFlags.None, Stopping).ConfigureAwait(false);
            return;
        }
        try
        {
            var addresses = await _resolve(request.Target.HostName!, request.Auth, Stopping).ConfigureAwait(false);
            // SOCKS4a can only carry IPv4. An exit may answer with no address at all: that is no answer.
            var answer = request.Version == SocksVersion.Socks5 ? addresses.FirstOrDefault() : addresses.FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork);
            if (answer is null)
            {
                await ReplyAsync(client, request, SocksReplyCode.HostUnreachable).ConfigureAwait(false);
                return;
            }
            await client.SendAsync(SocksReply.Encode(request.Version, SocksReplyCode.Succeeded, answer), SocketFlags.None, Stopping).ConfigureAwait(false);
        }
        catch (StreamException e)
        {
            await ReplyAsync(client, request, ReplyFor(e.Reason)).ConfigureAwait(false);
        }
    }

    /// <summary>Every reply but success ends the connection, so it is sent the way that survives unread input.</summary>
    private Task ReplyAsync(Socket client, SocksRequest request, SocksReplyCode code) =>
        LoopbackListener.AnswerAndCloseAsync(client, SocksReply.Encode(request.Version, code), DrainTime, _time, Stopping);

    /// <summary>The SOCKS5 reply code an application understands for each way a stream can fail.</summary>
    public static SocksReplyCode ReplyFor(EndReason reason) => reason switch
    {
        EndReason.ConnectionRefused => SocksReplyCode.ConnectionRefused,
        EndReason.ResolveFailed => SocksReplyCode.HostUnreachable,
        EndReason.Unreachable => SocksReplyCode.HostUnreachable,
        EndReason.ExitPolicy => SocksReplyCode.NotAllowedByRuleset,
        EndReason.Timeout => SocksReplyCode.TtlExpired,
        _ => SocksReplyCode.GeneralFailure,
    };

    public ValueTask DisposeAsync() => _listener.DisposeAsync();
}
