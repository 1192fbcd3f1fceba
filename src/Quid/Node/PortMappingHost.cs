using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Quid.Links.PortMapping;

namespace Quid.Node;

/// <summary>Whether the node asks its gateway to forward a port to its listener.</summary>
public enum PortMappingMode
{
    /// <summary>Only where it can matter: no <c>advertise</c>, and a wildcard or private (not loopback) listen address.</summary>
    Auto,
    Off,
}

/// <summary>Where the port mapping stands, for status: why none is tried, the attempt, the mapping, or why it failed.</summary>
/// <param name="State">off (never tried, see <paramref name="Reason"/>), asking, mapped or failed.</param>
public sealed record PortMappingStatus(string State, IPAddress? Gateway, IPEndPoint? External, MappingProtocol? Protocol, string? Reason)
{
    public static PortMappingStatus NotTried(string reason) => new("off", null, null, null, reason);
}

/// <summary>
/// The port mapper on a real UDP socket to the gateway's port 5351: the socket is connected, so
/// only the gateway's datagrams arrive (RFC 6886 §3.1 wants others dropped). Each mapping
/// obtained or lost is handed to the node, which republishes its descriptor; one log line says
/// so, and a failure that only repeats the last one is said at Debug.
/// </summary>
internal sealed class PortMappingHost : IAsyncDisposable
{
    private const int GatewayPort = NatPmp.ServerPort;

    private readonly IPEndPoint _gateway;
    private readonly Socket _socket;
    private readonly PortMapper _mapper;
    private readonly ushort _internalPort;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Action<Mapping?> _changed;
    private readonly CancellationTokenSource _stopping = new();
    private readonly byte[] _buffer = new byte[Pcp.MaxMessageSize + 1];
    private Task _loop = Task.CompletedTask;
    private string? _lastFailure;
    private volatile PortMappingStatus _status;

    private PortMappingHost(IPEndPoint gateway, Socket socket, ushort internalPort, TimeProvider time, ILogger logger, Action<Mapping?> changed, PortMapperOptions? options)
    {
        _gateway = gateway;
        _socket = socket;
        _time = time;
        _logger = logger;
        _changed = changed;
        _internalPort = internalPort;
        _mapper = new PortMapper(((IPEndPoint)socket.LocalEndPoint!).Address, internalPort, time, options);
        _status = new PortMappingStatus("asking", gateway.Address, null, null, null);
    }

    public PortMappingStatus Status => _status;

    /// <summary>
    /// Why the node does not ask for a mapping, or null when it should: only when it can matter,
    /// so a node on loopback (every test) never sends a datagram to a gateway.
    /// </summary>
    public static string? WhyNot(NodeOptions options)
    {
        if (options.PortMapping == PortMappingMode.Off) return "port-mapping = off";
        if (options.Advertise is not null) return "not needed: advertise is set";
        // A gateway given explicitly (a test's fake one) is always asked.
        if (options.Gateway is not null) return null;
        var listen = options.Listen.Address;
        if (IPAddress.IsLoopback(listen)) return "not tried: listening on loopback";
        if (listen.Equals(IPAddress.Any) || listen.Equals(IPAddress.IPv6Any)) return null;
        return IsPrivate(listen) ? null : "not needed: the listen address is public";
    }

    /// <summary>The addresses a home or carrier NAT hands out (RFC 1918, RFC 6598).</summary>
    internal static bool IsPrivate(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        if (address.AddressFamily != AddressFamily.InterNetwork) return false;
        Span<byte> b = stackalloc byte[4];
        address.TryWriteBytes(b, out _);
        return b[0] == 10 || (b[0] == 172 && (b[1] & 0xF0) == 16) || (b[0] == 192 && b[1] == 168) || (b[0] == 100 && (b[1] & 0xC0) == 64);
    }

    /// <summary>The gateway of the default IPv4 route in /proc/net/route's text, or null when there is none.</summary>
    internal static IPAddress? DefaultGateway(string procNetRoute)
    {
        foreach (var line in procNetRoute.Split('\n').Skip(1))
        {
            var fields = line.Split((char[])['\t', ' '], StringSplitOptions.RemoveEmptyEntries);
            // Iface Destination Gateway Flags RefCnt Use Metric Mask …; addresses in hex, host byte order.
            if (fields.Length < 8 || fields[1] != "00000000" || fields[7] != "00000000") continue;
            if (!uint.TryParse(fields[2], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out uint gateway) || gateway == 0
                || !uint.TryParse(fields[3], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out uint flags) || (flags & 0x3) != 0x3)
                continue;
            var bytes = new byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(bytes, gateway);
            return new IPAddress(bytes);
        }
        return null;
    }

    /// <summary>The gateway to ask: the options' one, or the default route's from /proc/net/route; null when there is none.</summary>
    public static IPEndPoint? FindGateway(NodeOptions options)
    {
        if (options.Gateway is { } given) return given;
        try
        {
            return DefaultGateway(File.ReadAllText("/proc/net/route")) is { } address ? new IPEndPoint(address, GatewayPort) : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Opens the socket from <paramref name="bindAddress"/> (the listen address, if specific) and starts asking.</summary>
    public static PortMappingHost Start(IPEndPoint gateway, IPAddress? bindAddress, ushort internalPort, TimeProvider time, ILogger logger, Action<Mapping?> changed,
        PortMapperOptions? options = null)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            socket.Bind(new IPEndPoint(bindAddress is { AddressFamily: AddressFamily.InterNetwork } ? bindAddress : IPAddress.Any, 0));
            socket.Connect(gateway);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        var host = new PortMappingHost(gateway, socket, internalPort, time, logger, changed, options);
        host._loop = Task.Run(host.LoopAsync);
        return host;
    }

    private async Task LoopAsync()
    {
        var step = _mapper.Start();
        while (!_stopping.IsCancellationRequested)
        {
            await SendAsync(step).ConfigureAwait(false);
            Report(step);
            step = await NextAsync(step.WakeAt, _stopping.Token).ConfigureAwait(false) ?? step with { Send = [] };
        }
    }

    /// <summary>The mapper's next step: a datagram from the gateway, or the wake it asked for; null when stopping.</summary>
    private async Task<MapperStep?> NextAsync(DateTimeOffset? wakeAt, CancellationToken stopping)
    {
        var wait = wakeAt is { } at ? at - _time.GetUtcNow() : Timeout.InfiniteTimeSpan;
        if (wait != Timeout.InfiniteTimeSpan && wait <= TimeSpan.Zero) return _mapper.Wake();
        using var timeout = wait == Timeout.InfiniteTimeSpan ? new CancellationTokenSource() : new CancellationTokenSource(wait, _time);
        using var both = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, stopping);
        try
        {
            int received = await _socket.ReceiveAsync(_buffer, SocketFlags.None, both.Token).ConfigureAwait(false);
            return _mapper.Receive(_buffer.AsSpan(0, received));
        }
        catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
        {
            return _mapper.Wake();
        }
        catch (OperationCanceledException)
        {
            return null;
        }
        catch (SocketException)
        {
            // ICMP port unreachable (nothing listens on 5351) arrives as an error on a connected socket: it is no answer.
            return _mapper.Receive([]);
        }
    }

    private async Task SendAsync(MapperStep step)
    {
        foreach (var datagram in step.Send)
        {
            try
            {
                await _socket.SendAsync(datagram, SocketFlags.None).ConfigureAwait(false);
            }
            catch (SocketException e)
            {
                // No route to the gateway now: the retransmissions will try again.
                _logger.LogDebug("Port mapping: could not send to {Gateway}: {Reason}", _gateway, e.Message);
            }
        }
    }

    private void Report(MapperStep step)
    {
        if (step.Obtained is { } mapping)
        {
            _lastFailure = null;
            _logger.LogInformation("Gateway {Gateway} maps {External} to our port {Port} ({Protocol}, for {Minutes:0} min): other nodes can dial us there",
                _gateway.Address, mapping.External, _internalPort, mapping.Protocol == MappingProtocol.Pcp ? "PCP" : "NAT-PMP", mapping.Lifetime.TotalMinutes);
            _changed(mapping);
        }
        else if (step.Failure is { } failure)
        {
            if (failure != _lastFailure)
                _logger.LogInformation("No port mapping from gateway {Gateway}: {Reason}; the node dials out only", _gateway.Address, failure);
            else
                _logger.LogDebug("No port mapping from gateway {Gateway} again: {Reason}", _gateway.Address, failure);
            _lastFailure = failure;
            _changed(null);
        }
        var current = _mapper.Current;
        _status = _mapper.State switch
        {
            MapperState.Mapped => new PortMappingStatus("mapped", _gateway.Address, current!.External, current.Protocol, null),
            MapperState.Failed => new PortMappingStatus("failed", _gateway.Address, null, null, _mapper.Failure),
            _ => _status with { State = "asking" },
        };
    }

    /// <summary>Stops asking and deletes the mapping, waiting for the gateway's answer at most <paramref name="bound"/>.</summary>
    public async Task StopAsync(TimeSpan bound)
    {
        if (_stopping.IsCancellationRequested) return;
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        var step = _mapper.Stop();
        using var deadline = new CancellationTokenSource(bound, _time);
        while (true)
        {
            await SendAsync(step).ConfigureAwait(false);
            if (step.WakeAt is null) break;
            step = await NextAsync(step.WakeAt, deadline.Token).ConfigureAwait(false) ?? new MapperStep([], null);
        }
        _status = PortMappingStatus.NotTried("stopped");
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
        _socket.Dispose();
        _stopping.Dispose();
    }
}
