using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Quid.Cache;
using Quid.Links;
using Quid.Wire;

namespace Quid.Circuits;

/// <summary>
/// This node as the exit of partners' circuits: opens the streams they begin here with
/// <see cref="ExitConnector"/> (the name resolved here, the exit policy obeyed) and splices each to
/// its destination's socket, and answers their RESOLVEs with the exit's own resolver. Each stream
/// holds one of the <see cref="ExitSockets"/> while its socket is open; one beyond its partner's or
/// its circuit's share is refused with End reason resource limit. With an <see cref="ExitCache"/>,
/// streams to the ports it reads go through it, which hands them back to the splice as soon as
/// they carry anything it does not answer.
/// </summary>
public sealed class StreamExit(ExitConnector connector, ExitSockets sockets, TimeProvider time, ILogger logger, ExitCache? cache = null, IReadOnlySet<int>? cachePorts = null)
    : IStreamExit
{
    /// <summary>An attacker makes refusals by the thousand: they are told once per interval, with a count.</summary>
    private readonly OncePerInterval _refusals = new(TimeSpan.FromMinutes(1), time);

    public ExitSockets Sockets => sockets;

    void IStreamExit.Begin(Circuit circuit, RelayStream stream) => _ = RunStreamAsync(circuit, stream);

    void IStreamExit.Resolve(Circuit circuit, ushort streamId, string host) => _ = ResolveAsync(circuit, streamId, host);

    private async Task ResolveAsync(Circuit circuit, ushort streamId, string host)
    {
        var (addresses, failure) = await connector.ResolveAsync(host, CancellationToken.None).ConfigureAwait(false);
        var answer = addresses.Length > 0 ? ResolvedBody.Found(addresses.Take(ResolvedBody.MaxAddresses)) : ResolvedBody.Refused(failure);
        Span<byte> data = stackalloc byte[ResolvedBody.MaxSize];
        circuit.SendRelay(RelayCommand.Resolved, streamId, data[..answer.Write(data)]);
    }

    private async Task RunStreamAsync(Circuit circuit, RelayStream stream)
    {
        using var lease = sockets.TryTake(circuit.Inward!.PeerId, circuit);
        if (lease is null)
        {
            WarnRefused("its partner's or circuit's share of exit sockets is taken");
            stream.Abort(EndReason.ResourceLimit, notifyPeer: true);
            return;
        }
        ExitConnector.Result result;
        try
        {
            result = await connector.ConnectAsync(stream.Target, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            logger.LogWarning(e, "Exit connect failed unexpectedly");
            result = new ExitConnector.Result(null, null, EndReason.Internal);
        }
        if (result.Socket is null)
        {
            if (result.Failure == EndReason.ResourceLimit) WarnRefused("the process ran out of descriptors");
            logger.LogDebug("Exit stream {Stream} on {Circuit}: {Reason}", stream.Id, circuit, result.Failure);
            stream.Abort(result.Failure, notifyPeer: true);
            return;
        }
        if (circuit.State == CircuitState.Closed)
        {
            result.Socket.Dispose();
            return;
        }
        Span<byte> connected = stackalloc byte[ConnectedBody.MaxSize];
        circuit.SendRelay(RelayCommand.Connected, stream.Id, connected[..new ConnectedBody(result.Address!).Write(connected)]);
        long spliced = time.GetTimestamp();
        if (cache is not null && cachePorts is not null && cachePorts.Contains(stream.Target.Port))
        {
            var socket = result.Socket;
            await cache.RelayAsync(stream, new NetworkStream(socket, ownsSocket: true), stream.Target.Host, stream.Target.Port, circuit, async (toOrigin, toClient) =>
            {
                try
                {
                    if (!toOrigin.IsEmpty) await socket.SendAsync(toOrigin, SocketFlags.None).ConfigureAwait(false);
                }
                catch (SocketException)
                {
                    // The splice finds the socket broken, and ends the stream as it would have.
                }
                await stream.RunAsync(socket, toClient).ConfigureAwait(false);
            }).ConfigureAwait(false);
        }
        else await stream.RunAsync(result.Socket).ConfigureAwait(false);
        LogEnded(circuit, stream, spliced);
    }

    /// <summary>What a stream carried toward its origin, and the window its circuit sent it in: a slow download is traced from its exit.</summary>
    private void LogEnded(Circuit circuit, RelayStream stream, long spliced)
    {
        if (!logger.IsEnabled(LogLevel.Debug)) return;
        double seconds = Math.Max(time.GetElapsedTime(spliced).TotalSeconds, 0.001);
        var (cells, rtt, minRtt) = circuit.Congestion;
        logger.LogDebug("Exit stream {Stream} on {Circuit} ended: {Bytes} bytes toward the origin in {Seconds:F1} s ({Kbps:F0} kbps); the circuit's window {Cells} cells, round trip {Rtt} ms, least {MinRtt} ms",
            stream.Id, circuit, stream.BytesSent, seconds, stream.BytesSent * 8 / 1000.0 / seconds, cells, (int)rtt.TotalMilliseconds, (int)minRtt.TotalMilliseconds);
    }

    /// <summary>One warning line per interval however many streams are refused, so a flood of them cannot flood the log.</summary>
    private void WarnRefused(string why)
    {
        if (_refusals.Count() is not int refused) return;
        logger.LogWarning("Refused {Refused} exit stream(s) with resource limit: {Why} ({InUse} of {Budget} exit sockets in use); the next such warning comes in a minute at the soonest",
            refused, why, sockets.InUse, sockets.Budget);
    }
}
