using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Quid.Proxy;
using Quid.Services.Share;
using Quid.Tests.Integration;

namespace Quid.Tests.Services.Share;

/// <summary>
/// A share on a loopback port over a fresh folder of its own, and the clients the tests fetch
/// from it with. The port is the proxies' <see cref="LoopbackListener"/>: a node hands the share
/// server streams from circuits, so only tests need a socket in front of it.
/// </summary>
internal sealed class ShareHost : IAsyncDisposable
{
    private readonly LoopbackListener _listener;

    private ShareHost(string folder, LoopbackListener listener)
    {
        Folder = folder;
        _listener = listener;
    }

    /// <summary>The temporary folder the test fills; what is shared is in it, and so are the downloads.</summary>
    public string Folder { get; }

    public LoopbackListener Listener => _listener;

    public string Url(string path = "/") => $"http://127.0.0.1:{_listener.LocalEndPoint.Port}{path}";

    /// <summary>A fresh temporary folder for a test's files; the host started over it deletes it.</summary>
    public static string NewFolder() => Directory.CreateTempSubdirectory("quid-share-").FullName;

    /// <param name="folder">From <see cref="NewFolder"/>; deleted when the host is disposed.</param>
    public static ShareHost Start(string folder, ShareContent content, ShareOptions? options = null, TimeProvider? time = null)
    {
        time ??= TimeProvider.System;
        var server = new ShareServer(content, time, NullLogger.Instance, options);
        var listener = new LoopbackListener(new IPEndPoint(IPAddress.Loopback, 0), "share", 256, time, NullLogger.Instance);
        listener.Start(async client =>
        {
            using (client)
            {
                using (var stream = new NetworkStream(client, ownsSocket: false))
                    await server.ServeAsync(stream, listener.Stopping);
                // Closing with unread input would reset the connection, and a reset can overtake the last answer (a 413 to an upload still being sent).
                await LoopbackListener.AnswerAndCloseAsync(client, default, TimeSpan.FromSeconds(2), TimeProvider.System, listener.Stopping);
            }
        });
        return new ShareHost(folder, listener);
    }

    public static string Write(string folder, string relativePath, byte[] bytes)
    {
        string path = Path.Join(folder, relativePath);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    public static byte[] RandomBytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    public static string Sha256(string path) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)));

    public static string Sha256(byte[] bytes) => Convert.ToHexString(SHA256.HashData(bytes));

    /// <summary>Sends raw bytes on a new connection and returns all the server says until it closes.</summary>
    public async Task<string> RawAsync(byte[] request)
    {
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(_listener.LocalEndPoint);
        await socket.SendAsync(request);
        return await ReadToEndAsync(socket);
    }

    public static async Task<string> ReadToEndAsync(Socket socket)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var answer = new List<byte>();
        var buffer = new byte[16 * 1024];
        int read;
        while ((read = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token)) > 0) answer.AddRange(buffer.AsSpan(0, read));
        return Encoding.Latin1.GetString([.. answer]);
    }

    /// <summary>Runs wget (the other client people resume downloads with) and returns its exit code and messages.</summary>
    public static async Task<(int ExitCode, string Errors)> WgetAsync(params string[] arguments)
    {
        var start = new ProcessStartInfo("wget") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.Environment.Remove("http_proxy");
        start.Environment.Remove("HTTP_PROXY");
        start.Environment.Remove("no_proxy");
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await process.WaitForExitAsync(timeout.Token);
        await output;
        return (process.ExitCode, await errors);
    }

    public async ValueTask DisposeAsync()
    {
        await _listener.DisposeAsync();
        // The listener stops accepting at once; the connections it was serving end with it, and close their files.
        await Eventually.WaitUntilAsync(() => _listener.OpenConnections == 0, TimeSpan.FromSeconds(10), "the share's connections to close");
        Directory.Delete(Folder, recursive: true);
    }
}
