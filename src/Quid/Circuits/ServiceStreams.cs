using System.Net.Sockets;
using Quid.Wire;

namespace Quid.Circuits;

/// <summary>
/// Opens the local end of a stream a client began to a session-address service: a socket to
/// the service (say 127.0.0.1 and the port the node maps the <c>.quid</c> name and port to), or
/// null to refuse the stream. <paramref name="cancellationToken"/> ends a connect that takes too long.
/// </summary>
public delegate Task<Socket?> ServiceConnector(StreamTarget target, CancellationToken cancellationToken);

/// <summary>
/// Where the streams a client begins over the virtual hop leave the network: at the service's
/// own node, through the node's <see cref="ServiceConnector"/>, never through the exit code, its
/// policy or its resolver. The service's address is nobody's business: Connected says 0.0.0.0.
/// </summary>
internal sealed class ServiceStreams(ServiceConnector connector, TimeProvider time) : IStreamExit
{
    /// <summary>As long as an exit waits for a destination; a local service that takes longer is refused.</summary>
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(20);
    private static readonly byte[] NoAddress = [4, 0, 0, 0, 0];

    void IStreamExit.Begin(Circuit circuit, RelayStream stream) => _ = RunStreamAsync(circuit, stream);

    /// <summary>A service resolves nothing for its clients.</summary>
    void IStreamExit.Resolve(Circuit circuit, ushort streamId, string host) =>
        circuit.SendRelay(RelayCommand.Resolved, streamId, [(byte)EndReason.ResolveFailed, 0]);

    private async Task RunStreamAsync(Circuit circuit, RelayStream stream)
    {
        Socket? socket;
        EndReason failure = EndReason.ConnectionRefused;
        using (var deadline = new CancellationTokenSource(ConnectTimeout, time))
        {
            try
            {
                socket = await connector(stream.Target, deadline.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                (socket, failure) = (null, EndReason.Timeout);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                (socket, failure) = (null, e is SocketException ? EndReason.ConnectionRefused : EndReason.Internal);
            }
        }
        if (socket is null)
        {
            stream.Abort(failure, notifyPeer: true);
            return;
        }
        if (circuit.State == CircuitState.Closed)
        {
            socket.Dispose();
            return;
        }
        circuit.SendRelay(RelayCommand.Connected, stream.Id, NoAddress);
        await stream.RunAsync(socket).ConfigureAwait(false);
    }
}
