using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Quid.Cli.Demo;

namespace Quid.Tests.Integration;

/// <summary>
/// A destination for the proxy tests, on 127.0.0.1 (or ::1), plain or TLS with a self-signed certificate
/// made here: <c>GET /bytes/N</c> serves <see cref="LocalWebServer"/>'s pattern (with
/// <c>?chunked</c>, in chunks), <c>POST /sha256</c> answers the SHA-256 of the body it received,
/// framed by Content-Length or chunks. Its request parsing is its own, deliberately simple and
/// independent of the proxy's, so it is a second opinion on what the proxy sent.
/// </summary>
internal sealed class TestOrigin : IAsyncDisposable
{
    private readonly Socket _listener;
    private readonly X509Certificate2? _certificate;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentQueue<IPAddress> _clients = new();
    private readonly ConcurrentQueue<string> _heads = new();
    private readonly ConcurrentQueue<byte[]> _transcripts = new();
    private readonly Task _acceptLoop;

    public TestOrigin(bool tls, IPAddress? address = null)
    {
        _certificate = tls ? SelfSigned() : null;
        address ??= IPAddress.Loopback;
        _listener = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        _listener.Bind(new IPEndPoint(address, 0));
        _listener.Listen(64);
        Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
        _acceptLoop = Task.Run(AcceptLoopAsync);
    }

    public int Port { get; }

    /// <summary>The source address of every connection so far.</summary>
    public IReadOnlyList<IPAddress> Clients => [.. _clients];

    /// <summary>Every request head received, as text.</summary>
    public IReadOnlyList<string> Heads => [.. _heads];

    /// <summary>
    /// Every byte each finished connection brought, in order: after answering, the server ends its
    /// side and reads until the other side closes, so nothing sent on the connection escapes this.
    /// </summary>
    public IReadOnlyList<byte[]> Transcripts => [.. _transcripts];

    private static X509Certificate2 SelfSigned()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=web.quid.test", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName("web.quid.test");
        names.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        var now = DateTimeOffset.UtcNow;
        return request.CreateSelfSigned(now.AddMinutes(-5), now.AddDays(1));
    }

    private async Task AcceptLoopAsync()
    {
        while (true)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(_stopping.Token);
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
            Stream stream = new NetworkStream(client, ownsSocket: false);
            if (_certificate is not null)
            {
                var tls = new SslStream(stream);
                await tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = _certificate }, _stopping.Token);
                stream = tls;
            }
            await using (stream)
            {
                var reader = new Reader(stream);
                try
                {
                    await AnswerAsync(stream, reader);
                    if (stream is SslStream tls) await tls.ShutdownAsync();
                    else client.Shutdown(SocketShutdown.Send);
                    while (await reader.LineAsync(_stopping.Token) is not null)
                    {
                    }
                }
                finally
                {
                    _transcripts.Enqueue(reader.Transcript);
                }
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException or System.Security.Authentication.AuthenticationException)
        {
            // A client that left; the test asserts on what it received.
        }
    }

    private async Task AnswerAsync(Stream stream, Reader reader)
    {
        var lines = new List<string>();
        for (string? line; !string.IsNullOrEmpty(line = await reader.LineAsync(_stopping.Token));) lines.Add(line);
        if (lines.Count == 0) return;
        _heads.Enqueue(string.Join("\n", lines));
        string[] requestLine = lines[0].Split(' ');
        string path = requestLine[1];
        string? Field(string name) => lines.Skip(1).Select(l => l.Split(':', 2)).Where(p => p[0].Trim().Equals(name, StringComparison.OrdinalIgnoreCase)).Select(p => p[1].Trim()).FirstOrDefault();

        if (requestLine[0] == "POST" && path == "/sha256")
        {
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            if (Field("Transfer-Encoding") is { } coding && coding.EndsWith("chunked", StringComparison.OrdinalIgnoreCase))
            {
                for (long size; (size = long.Parse((await reader.LineAsync(_stopping.Token))!.Split(';')[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture)) > 0;)
                {
                    hash.AppendData(await reader.ExactlyAsync(size, _stopping.Token));
                    await reader.LineAsync(_stopping.Token);
                }
                while (!string.IsNullOrEmpty(await reader.LineAsync(_stopping.Token)))
                {
                }
            }
            else
            {
                hash.AppendData(await reader.ExactlyAsync(long.Parse(Field("Content-Length") ?? "0", CultureInfo.InvariantCulture), _stopping.Token));
            }
            byte[] answer = Encoding.ASCII.GetBytes(Convert.ToHexStringLower(hash.GetHashAndReset()));
            await stream.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Length: {answer.Length}\r\nConnection: close\r\n\r\n"), _stopping.Token);
            await stream.WriteAsync(answer, _stopping.Token);
        }
        else if (path.StartsWith("/bytes/", StringComparison.Ordinal))
        {
            bool chunked = path.EndsWith("?chunked", StringComparison.Ordinal);
            long length = long.Parse(path[7..].Split('?')[0], CultureInfo.InvariantCulture);
            await stream.WriteAsync(Encoding.ASCII.GetBytes(chunked
                ? "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                : $"HTTP/1.1 200 OK\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"), _stopping.Token);
            var buffer = new byte[40_000];
            for (long sent = 0; sent < length;)
            {
                int count = (int)Math.Min(buffer.Length, length - sent);
                LocalWebServer.FillPattern(buffer.AsSpan(0, count), sent);
                if (chunked) await stream.WriteAsync(Encoding.ASCII.GetBytes($"{count:x};n={sent}\r\n"), _stopping.Token);
                await stream.WriteAsync(buffer.AsMemory(0, count), _stopping.Token);
                if (chunked) await stream.WriteAsync("\r\n"u8.ToArray(), _stopping.Token);
                sent += count;
            }
            if (chunked) await stream.WriteAsync("0\r\nX-Checksum: none\r\n\r\n"u8.ToArray(), _stopping.Token);
        }
        else
        {
            await stream.WriteAsync("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"u8.ToArray(), _stopping.Token);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        _listener.Dispose();
        await _acceptLoop;
        _stopping.Dispose();
        _certificate?.Dispose();
    }

    /// <summary>Buffered reads of CRLF lines and exact byte counts.</summary>
    private sealed class Reader(Stream stream)
    {
        private readonly byte[] _buffer = new byte[64 * 1024];
        private readonly List<byte> _transcript = [];
        private int _start;
        private int _end;

        public byte[] Transcript => [.. _transcript];

        public async Task<string?> LineAsync(CancellationToken cancellationToken)
        {
            var line = new List<byte>();
            while (true)
            {
                if (_start == _end && !await FillAsync(cancellationToken)) return null;
                byte b = _buffer[_start++];
                if (b == '\n') return Encoding.Latin1.GetString([.. line]).TrimEnd('\r');
                line.Add(b);
            }
        }

        public async Task<byte[]> ExactlyAsync(long count, CancellationToken cancellationToken)
        {
            var bytes = new byte[count];
            for (int at = 0; at < count;)
            {
                if (_start == _end && !await FillAsync(cancellationToken)) throw new IOException("The body was cut short.");
                int n = (int)Math.Min(_end - _start, count - at);
                _buffer.AsSpan(_start, n).CopyTo(bytes.AsSpan(at));
                _start += n;
                at += n;
            }
            return bytes;
        }

        private async Task<bool> FillAsync(CancellationToken cancellationToken)
        {
            _start = 0;
            _end = await stream.ReadAsync(_buffer, cancellationToken);
            _transcript.AddRange(_buffer.AsSpan(0, _end));
            return _end > 0;
        }
    }
}
