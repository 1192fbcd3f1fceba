using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace Quid.Links;

/// <summary>
/// What an accept loop does when accepting fails. A connection the process has no descriptor for
/// stays in the listen backlog, so accepting again at once fails again at once: a loop that only
/// logged and retried would spin at full speed and fill the log. Out of descriptors (EMFILE,
/// ENFILE, ENOBUFS, ENOMEM, or a connection that would leave fewer than <see cref="Descriptors.Reserve"/>
/// free), the loop waits, 10 ms doubling to 1 s, and says so at most once an interval with the
/// count of failures; any other failure (a client that gave up while it waited in the backlog)
/// costs nothing and is not worth a warning. Used by one accept loop, so no lock.
/// </summary>
public sealed class AcceptBackoff(string listener, string fix, TimeProvider time, ILogger logger)
{
    public static readonly TimeSpan FirstDelay = TimeSpan.FromMilliseconds(10);
    public static readonly TimeSpan LastDelay = TimeSpan.FromSeconds(1);
    public static readonly TimeSpan WarningInterval = TimeSpan.FromSeconds(30);

    private readonly OncePerInterval _failures = new(WarningInterval, time);
    private TimeSpan _delay;

    /// <summary>
    /// An accept succeeded: the next failure starts from the shortest wait again. Unless the socket
    /// took one of the descriptors the runtime needs (<see cref="Descriptors.Reserve"/>): then it is
    /// closed, and this throws the <see cref="SocketException"/> (<see cref="SocketError.TooManyOpenSockets"/>)
    /// that the loop hands to <see cref="AfterFailureAsync"/>, as if the process were out of them.
    /// </summary>
    public void Accepted(Socket socket)
    {
        if (Descriptors.InReserve(socket))
        {
            socket.Dispose();
            throw new SocketException((int)SocketError.TooManyOpenSockets);
        }
        _delay = TimeSpan.Zero;
    }

    /// <summary>Waits as long as <paramref name="failure"/> calls for; <see cref="OperationCanceledException"/> when the listener stops meanwhile.</summary>
    public async ValueTask AfterFailureAsync(SocketException failure, CancellationToken stopping)
    {
        if (failure.SocketErrorCode is not (SocketError.TooManyOpenSockets or SocketError.NoBufferSpaceAvailable))
        {
            logger.LogDebug("The {Listener} could not accept a connection: {Error}", listener, failure.SocketErrorCode);
            return;
        }
        _delay = _delay == TimeSpan.Zero ? FirstDelay : TimeSpan.FromTicks(Math.Min(_delay.Ticks * 2, LastDelay.Ticks));
        if (_failures.Count() is int failed)
        {
            logger.LogWarning("The {Listener} cannot accept connections: the process is out of file descriptors ({Error}); it retries every {Backoff} ms at most " +
                "({Failed} failed tries since the last warning). {Fix}",
                listener, failure.SocketErrorCode, (int)LastDelay.TotalMilliseconds, failed, fix);
        }
        await Task.Delay(_delay, time, stopping).ConfigureAwait(false);
    }
}
