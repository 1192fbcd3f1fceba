using Microsoft.Extensions.Logging;
using Quid.Links;
using Quid.Wire;

namespace Quid.Circuits;

/// <summary>
/// This node as the exit of partners' circuits: opens the streams they begin here with
/// <see cref="ExitConnector"/> (the name resolved here, the exit policy obeyed) and splices each to
/// its destination's socket, and answers their RESOLVEs with the exit's own resolver. Each stream
/// holds one of the <see cref="ExitSockets"/> while its socket is open; one beyond its partner's or
/// its circuit's share is refused with End reason resource limit.
/// </summary>
public sealed class StreamExit(ExitConnector connector, ExitSockets sockets, TimeProvider time, ILogger logger) : IStreamExit
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
        await stream.RunAsync(result.Socket).ConfigureAwait(false);
    }

    /// <summary>One warning line per interval however many streams are refused, so a flood of them cannot flood the log.</summary>
    private void WarnRefused(string why)
    {
        if (_refusals.Count() is not int refused) return;
        logger.LogWarning("Refused {Refused} exit stream(s) with resource limit: {Why} ({InUse} of {Budget} exit sockets in use); the next such warning comes in a minute at the soonest",
            refused, why, sockets.InUse, sockets.Budget);
    }
}
