using System.Buffers;
using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Quid.Cli.Demo;

/// <summary>
/// A small HTTP/1.1 server on loopback for the demo and the tests: it answers <c>/</c> with a
/// page naming the address the request came from, <c>/bytes/N</c> with N bytes of a fixed
/// pseudo-random pattern and <c>/echo/text</c> with the text, and remembers every address that
/// connected and every request line.
/// </summary>
internal sealed class LocalWebServer : IAsyncDisposable
{
    private const int MaxRequestHead = 16 * 1024;
    private readonly Socket _listener;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentQueue<IPAddress> _clients = new();
    private readonly ConcurrentQueue<string> _requests = new();
    private Task _acceptLoop = Task.CompletedTask;

    public LocalWebServer(IPEndPoint endPoint)
    {
        _listener = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        _listener.Bind(endPoint);
        _listener.Listen(128);
        EndPoint = (IPEndPoint)_listener.LocalEndPoint!;
    }

    public IPEndPoint EndPoint { get; }
    public string BaseUrl => $"http://{EndPoint}";

    /// <summary>The source address of every connection so far, oldest first.</summary>
    public IReadOnlyList<IPAddress> Clients => [.. _clients];

    /// <summary>The request line of every request so far, oldest first.</summary>
    public IReadOnlyList<string> Requests => [.. _requests];

    public void Start() => _acceptLoop = Task.Run(AcceptLoopAsync);

    /// <summary>The bytes <c>/bytes/N</c> serves, so a test can compute the expected hash.</summary>
    public static void FillPattern(Span<byte> destination, long offset)
    {
        for (int i = 0; i < destination.Length; i++)
        {
            ulong x = (ulong)(offset + i) * 0x9E3779B97F4A7C15UL;
            destination[i] = (byte)((x >> 32) ^ (x >> 56));
        }
    }

    private async Task AcceptLoopAsync()
    {
        while (true)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(_stopping.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            _clients.Enqueue(((IPEndPoint)client.RemoteEndPoint!).Address);
            _ = ServeAsync(client);
        }
    }

    private async Task ServeAsync(Socket client)
    {
        using var _ = client;
        try
        {
            var head = new byte[MaxRequestHead];
            int filled = 0, end;
            while ((end = head.AsSpan(0, filled).IndexOf("\r\n\r\n"u8)) < 0)
            {
                if (filled == head.Length) return;
                int read = await client.ReceiveAsync(head.AsMemory(filled), SocketFlags.None, _stopping.Token).ConfigureAwait(false);
                if (read == 0) return;
                filled += read;
            }
            string requestLine = Encoding.ASCII.GetString(head, 0, head.AsSpan(0, end).IndexOf("\r\n"u8) is var n and >= 0 ? n : end);
            _requests.Enqueue(requestLine);
            string[] parts = requestLine.Split(' ');
            string path = parts.Length >= 2 ? parts[1] : "/";
            if (path.StartsWith("http://", StringComparison.OrdinalIgnoreCase)) path = new Uri(path).PathAndQuery;
            var remote = ((IPEndPoint)client.RemoteEndPoint!).Address;

            if (path.StartsWith("/bytes/", StringComparison.Ordinal) && long.TryParse(path.AsSpan(7), NumberStyles.None, CultureInfo.InvariantCulture, out long length))
            {
                await SendHeadAsync(client, "200 OK", "application/octet-stream", length).ConfigureAwait(false);
                var buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
                try
                {
                    for (long sent = 0; sent < length;)
                    {
                        int chunk = (int)Math.Min(64 * 1024, length - sent);
                        FillPattern(buffer.AsSpan(0, chunk), sent);
                        await client.SendAsync(buffer.AsMemory(0, chunk), SocketFlags.None, _stopping.Token).ConfigureAwait(false);
                        sent += chunk;
                    }
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                }
            }
            else if (path.StartsWith("/echo/", StringComparison.Ordinal))
            {
                var body = Encoding.UTF8.GetBytes(Uri.UnescapeDataString(path[6..]));
                await SendHeadAsync(client, "200 OK", "text/plain", body.Length).ConfigureAwait(false);
                await client.SendAsync(body, SocketFlags.None, _stopping.Token).ConfigureAwait(false);
            }
            else if (path == "/")
            {
                var body = Encoding.UTF8.GetBytes(
                    "<!doctype html><html><head><title>Quid demo</title></head><body>" +
                    $"<h1>Hello through Quid</h1><p>This web server saw your request come from <b id=\"remote\">{remote}</b>.</p></body></html>\n");
                await SendHeadAsync(client, "200 OK", "text/html; charset=utf-8", body.Length).ConfigureAwait(false);
                await client.SendAsync(body, SocketFlags.None, _stopping.Token).ConfigureAwait(false);
            }
            else
            {
                await SendHeadAsync(client, "404 Not Found", "text/plain", 0).ConfigureAwait(false);
            }
            client.Shutdown(SocketShutdown.Send);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // The client left early; nothing to clean up beyond the socket.
        }
    }

    private Task SendHeadAsync(Socket client, string status, string contentType, long length) =>
        client.SendAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 {status}\r\nContent-Type: {contentType}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"),
            SocketFlags.None, _stopping.Token).AsTask();

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        _listener.Dispose();
        await _acceptLoop.ConfigureAwait(false);
        _stopping.Dispose();
    }
}
