using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Quid.Cli.Demo;

/// <summary>
/// Just enough of a SOCKS5 client (RFC 1928, no authentication, CONNECT by host name) for the
/// demo to fetch a page through its own node, as curl --socks5-hostname would.
/// </summary>
internal static class Socks5Client
{
    public static async Task<Socket> ConnectAsync(IPEndPoint proxy, string host, int port, CancellationToken cancellationToken)
    {
        var socket = new Socket(proxy.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(proxy, cancellationToken).ConfigureAwait(false);
            await socket.SendAsync(new byte[] { 5, 1, 0 }, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            var choice = await ReceiveExactlyAsync(socket, 2, cancellationToken).ConfigureAwait(false);
            if (choice[0] != 5 || choice[1] != 0) throw new IOException("The proxy refused the no-authentication method.");

            var name = Encoding.ASCII.GetBytes(host);
            var request = new byte[7 + name.Length];
            request[0] = 5;
            request[1] = 1;
            request[3] = 3;
            request[4] = (byte)name.Length;
            name.CopyTo(request, 5);
            BinaryPrimitives.WriteUInt16BigEndian(request.AsSpan(5 + name.Length), (ushort)port);
            await socket.SendAsync(request, SocketFlags.None, cancellationToken).ConfigureAwait(false);

            var reply = await ReceiveExactlyAsync(socket, 4, cancellationToken).ConfigureAwait(false);
            if (reply[1] != 0) throw new IOException($"The proxy answered with SOCKS error {reply[1]}.");
            int rest = reply[3] switch { 1 => 4, 4 => 16, 3 => (await ReceiveExactlyAsync(socket, 1, cancellationToken).ConfigureAwait(false))[0], _ => 0 } + 2;
            await ReceiveExactlyAsync(socket, rest, cancellationToken).ConfigureAwait(false);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>GET <paramref name="path"/> over an open connection; returns the whole response body as text.</summary>
    public static async Task<string> GetAsync(Socket socket, string host, string path, CancellationToken cancellationToken)
    {
        await socket.SendAsync(Encoding.ASCII.GetBytes($"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"), SocketFlags.None, cancellationToken).ConfigureAwait(false);
        using var response = new MemoryStream();
        var buffer = new byte[16 * 1024];
        int read;
        while ((read = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false)) > 0)
            response.Write(buffer, 0, read);
        string text = Encoding.UTF8.GetString(response.ToArray());
        int body = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        return body < 0 ? text : text[(body + 4)..];
    }

    private static async Task<byte[]> ReceiveExactlyAsync(Socket socket, int count, CancellationToken cancellationToken)
    {
        var buffer = new byte[count];
        for (int filled = 0; filled < count;)
        {
            int read = await socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (read == 0) throw new IOException("The proxy closed the connection.");
            filled += read;
        }
        return buffer;
    }
}
