using System.Net;
using System.Net.Sockets;

namespace Quid.Proxy;

/// <summary>
/// Two connected loopback sockets. A relay stream joins a circuit to a socket; when the HTTP
/// proxy must rewrite what flows (request heads, response heads, framing), it gives the stream
/// one end and reads and writes the other itself.
/// </summary>
internal static class SocketPair
{
    public static async Task<(Socket Near, Socket Far)> CreateAsync(CancellationToken cancellationToken)
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(4);
        var near = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            var accepting = listener.AcceptAsync(cancellationToken);
            await near.ConnectAsync(listener.LocalEndPoint!, cancellationToken).ConfigureAwait(false);
            while (true)
            {
                var far = await accepting.ConfigureAwait(false);
                // Another local process could connect in between; only our own connection will do.
                if (far.RemoteEndPoint!.Equals(near.LocalEndPoint))
                {
                    far.NoDelay = true;
                    return (near, far);
                }
                far.Dispose();
                accepting = listener.AcceptAsync(cancellationToken);
            }
        }
        catch
        {
            near.Dispose();
            throw;
        }
    }
}
