using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Quid.Node.Control;
using Xunit.Abstractions;

namespace Quid.Tests.Integration;

/// <summary>
/// The control API under idle connections, and <c>quid status</c> when the API cannot be reached:
/// real sockets, and the real command.
/// </summary>
public sealed class ControlLimitsTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("quid-control-").FullName;
    private readonly List<Socket> _sockets = [];

    private static ControlOptions Limits { get; } = new();

    [Fact]
    public async Task Idle_connections_from_one_source_cannot_lock_out_the_control_API_and_are_dropped_within_seconds()
    {
        await using var network = await TestNetwork.StartAsync(253, [new(256, 0)]);
        await using var control = await ControlPlane.StartAsync(network.Client, network.DataDirectory(0));

        // 64 connections that never send a byte, from one loopback source: as many as the API once took in all.
        var idle = new List<Socket>();
        int resetWhileConnecting = 0;
        for (int i = 0; i < 64; i++)
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            _sockets.Add(socket);
            socket.Bind(new IPEndPoint(IPAddress.Parse("127.0.0.2"), 0));
            try
            {
                await socket.ConnectAsync(control.Server.EndPoint);
                idle.Add(socket);
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
            {
                // Closed over the cap before the connect had finished on this side.
                resetWhileConnecting++;
            }
        }
        await Eventually.WaitUntilAsync(() => idle.Count(Closed) + resetWhileConnecting >= 64 - Limits.MaxConnectionsPerSource, TimeSpan.FromSeconds(10),
            "the connections over the per-source cap to be closed");
        Assert.Equal(64 - Limits.MaxConnectionsPerSource, idle.Count(Closed) + resetWhileConnecting);

        // The node's own user is still answered, while the rest are held.
        var (code, text) = await QuidProcess.RunAsync("status", "--data-dir", control.DataDirectory, "--json");
        Assert.True(code == 0, text);
        Assert.Contains(network.Client.Id.ToString(), text, StringComparison.Ordinal);

        // And those held go after the idle timeout, not after Kestrel's 130 s.
        var watch = Stopwatch.StartNew();
        await Eventually.WaitUntilAsync(() => idle.All(Closed), Limits.IdleTimeout + TimeSpan.FromSeconds(10), "the idle connections to be dropped");
        output.WriteLine($"the last idle connections were dropped {watch.Elapsed.TotalSeconds:0.0} s later");
    }

    [Theory]
    [InlineData("silent", "did not answer within")]
    [InlineData("closing", "closed the connection without answering")]
    [InlineData("refusing", "No node answers on")]
    public async Task Quid_status_says_in_one_line_what_to_check_when_the_control_API_cannot_be_reached(string kind, string problem)
    {
        ControlCookie.Create(_root);
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _sockets.Add(listener);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var endPoint = (IPEndPoint)listener.LocalEndPoint!;
        if (kind == "refusing") listener.Dispose();
        else listener.Listen();
        // A silent port holds the connection in its backlog and never answers; a closing one hangs up at once, as a full server does.
        using var stop = new CancellationTokenSource();
        var closing = kind == "closing" ? HangUpAsync(listener, stop.Token) : Task.CompletedTask;
        await File.WriteAllTextAsync(Path.Combine(_root, ControlCookie.EndPointFileName), endPoint.ToString());

        var (code, text) = await QuidProcess.RunAsync("status", "--data-dir", _root);
        await stop.CancelAsync();
        await closing;
        output.WriteLine(text);

        Assert.Equal(1, code);
        string line = Assert.Single(text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        Assert.StartsWith("quid status: ", line, StringComparison.Ordinal);
        Assert.Contains(problem, line, StringComparison.Ordinal);
        Assert.Contains(endPoint.ToString(), line, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", line, StringComparison.Ordinal);
    }

    private static async Task HangUpAsync(Socket listener, CancellationToken cancellationToken)
    {
        try
        {
            while (true) (await listener.AcceptAsync(cancellationToken)).Dispose();
        }
        catch (OperationCanceledException)
        {
            // The test is over.
        }
    }

    /// <summary>The server closed it: it never sends an idle connection anything, so readable means closed.</summary>
    private static bool Closed(Socket socket)
    {
        try
        {
            return socket.Poll(0, SelectMode.SelectRead);
        }
        catch (SocketException)
        {
            return true;
        }
    }

    public void Dispose()
    {
        foreach (var socket in _sockets) socket.Dispose();
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
            // Leftovers in a temporary directory are harmless.
        }
    }
}
