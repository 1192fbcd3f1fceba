using Microsoft.Extensions.Logging;
using Quid.Wire;

namespace Quid.Circuits;

/// <summary>
/// This node as the exit of partners' circuits: opens the streams they begin here with
/// <see cref="ExitConnector"/> (the name resolved here, the exit policy obeyed) and splices each to
/// its destination's socket, and answers their RESOLVEs with the exit's own resolver.
/// </summary>
public sealed class StreamExit(ExitConnector connector, ILogger logger) : IStreamExit
{
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
}
