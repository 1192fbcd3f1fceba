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
        var answer = new byte[2 + Math.Min(addresses.Length, 16) * 17];
        answer[0] = addresses.Length > 0 ? (byte)0 : (byte)failure;
        int at = 2, count = 0;
        foreach (var address in addresses.Take(16))
        {
            at += RelayAddress.Encode(address, answer.AsSpan(at));
            count++;
        }
        answer[1] = (byte)count;
        circuit.SendRelay(RelayCommand.Resolved, streamId, answer.AsSpan(0, at));
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
        Span<byte> address = stackalloc byte[17];
        circuit.SendRelay(RelayCommand.Connected, stream.Id, address[..RelayAddress.Encode(result.Address!, address)]);
        await stream.RunAsync(result.Socket).ConfigureAwait(false);
    }
}
