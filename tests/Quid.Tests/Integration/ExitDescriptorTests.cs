using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace Quid.Tests.Integration;

/// <summary>
/// A destination that accepts connections and holds them open, saying nothing: what an attacker
/// points an exit at to make each stream keep a descriptor.
/// </summary>
internal sealed class HoldingServer : IDisposable
{
    private readonly Socket _listener;
    private readonly ConcurrentQueue<Socket> _held = new();
    private readonly CancellationTokenSource _stopping = new();

    public HoldingServer(IPAddress address)
    {
        _listener = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        _listener.Bind(new IPEndPoint(address, 0));
        _listener.Listen(1024);
        EndPoint = (IPEndPoint)_listener.LocalEndPoint!;
        _ = AcceptLoopAsync();
    }

    public IPEndPoint EndPoint { get; }

    /// <summary>The source address of every connection held.</summary>
    public IReadOnlyList<IPAddress> Clients => [.. _held.Select(s => ((IPEndPoint)s.RemoteEndPoint!).Address)];

    private async Task AcceptLoopAsync()
    {
        while (true)
        {
            try
            {
                _held.Enqueue(await _listener.AcceptAsync(_stopping.Token));
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
        }
    }

    /// <summary>Closes every connection held so far, as a destination that finally answers would.</summary>
    public void CloseAll()
    {
        while (_held.TryDequeue(out var socket)) socket.Dispose();
    }

    public void Dispose()
    {
        _stopping.Cancel();
        _listener.Dispose();
        foreach (var socket in _held) socket.Dispose();
    }
}

/// <summary>SOCKS5 CONNECT, with a username (RFC 1929) unless it is empty: each username is its own isolation, hence its own circuit.</summary>
internal static class Socks5
{
    /// <summary>Opens a stream; returns the socket and the reply code (0 success, else the socket is closed).</summary>
    public static Task<(Socket? Socket, int Reply)> ConnectAsync(string proxy, string user, IPEndPoint target, CancellationToken cancellationToken) =>
        ConnectAsync(proxy, user, target.Address.ToString(), target.Port, cancellationToken);

    /// <summary>As above, to a host name or an IP literal, which the exit resolves or takes as it is.</summary>
    public static async Task<(Socket? Socket, int Reply)> ConnectAsync(string proxy, string user, string host, int port, CancellationToken cancellationToken)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await socket.ConnectAsync(IPEndPoint.Parse(proxy), cancellationToken);
            byte method = user.Length == 0 ? (byte)0 : (byte)2;
            await socket.SendAsync(new byte[] { 5, 1, method }, SocketFlags.None, cancellationToken);
            Assert.Equal([5, method], await ReadAsync(socket, 2, cancellationToken));
            if (method == 2)
            {
                byte[] name = Encoding.ASCII.GetBytes(user);
                await socket.SendAsync((byte[])[1, (byte)name.Length, .. name, 1, (byte)'x'], SocketFlags.None, cancellationToken);
                Assert.Equal([1, 0], await ReadAsync(socket, 2, cancellationToken));
            }
            byte[] address = IPAddress.TryParse(host, out var literal) && literal.AddressFamily == AddressFamily.InterNetwork
                ? [1, .. literal.GetAddressBytes()]
                : [3, (byte)host.Length, .. Encoding.ASCII.GetBytes(host)];
            var portBytes = new byte[2];
            BinaryPrimitives.WriteUInt16BigEndian(portBytes, (ushort)port);
            await socket.SendAsync((byte[])[5, 1, 0, .. address, .. portBytes], SocketFlags.None, cancellationToken);
            var reply = await ReadAsync(socket, 10, cancellationToken);
            if (reply[1] == 0) return (socket, 0);
            socket.Dispose();
            return (null, reply[1]);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static async Task<byte[]> ReadAsync(Socket socket, int count, CancellationToken cancellationToken)
    {
        var buffer = new byte[count];
        for (int filled = 0; filled < count;)
        {
            int read = await socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None, cancellationToken);
            if (read == 0) throw new IOException("The proxy closed the connection.");
            filled += read;
        }
        return buffer;
    }
}

/// <summary>An exit under a low descriptor limit, attacked with streams to a destination that holds them open.</summary>
[Collection(nameof(SerialTests))]
public sealed class ExitDescriptorTests(ITestOutputHelper output)
{
    private const int Limit = 256;

    private static string[] Node(string directory, string listen, params string[] more) =>
        ["run", "--data-dir", directory, "--listen", $"{listen}:0", "--http-proxy", "off", "--control", "127.0.0.1:0", "--hops", "1", "--no-probes", .. more];

    private static int Descriptors(QuidProcess process) => Directory.GetFileSystemEntries($"/proc/{process.Id}/fd").Length;

    [Fact]
    public async Task An_exit_whose_budget_is_set_above_its_limit_answers_running_out_of_descriptors_with_resource_limit_and_one_warning()
    {
        using var destination = new HoldingServer(IPAddress.Loopback);
        string root = Directory.CreateTempSubdirectory("quid-fd-").FullName;
        try
        {
            // An operator's mistake: a budget the limit cannot hold, so connect() itself meets EMFILE.
            using var exit = QuidProcess.StartWithDescriptorLimit(Limit, Node(Path.Combine(root, "exit"), "127.0.15.4",
                "--socks", "off", "--exit-allow-private", "--offer", "1048576", "--request", "64", "--exit-sockets", "1000"));
            string exitPort = (await exit.WaitForLineAsync(@"Accepting links on 127\.0\.15\.4:(\d+)", TimeSpan.FromSeconds(30))).Groups[1].Value;
            using var client = QuidProcess.Start(Node(Path.Combine(root, "client"), "127.0.15.5",
                "--socks", "127.0.0.1:0", "--offer", "64", "--request", "524288", "--peer", $"127.0.15.4:{exitPort}"));
            string socks = (await client.WaitForLineAsync(@"SOCKS proxy on (127\.0\.0\.1:\d+)", TimeSpan.FromSeconds(30))).Groups[1].Value;
            await client.WaitForLineAsync("Circuit ready", TimeSpan.FromSeconds(60));
            int idle = Descriptors(exit);

            var sockets = new ConcurrentBag<Socket>();
            var replies = new ConcurrentBag<int>();
            for (int batch = 0; batch < 12; batch++)
            {
                await Task.WhenAll(Enumerable.Range(0, 25).Select(async _ =>
                {
                    using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
                    var (socket, reply) = await Socks5.ConnectAsync(socks, $"user{batch}", destination.EndPoint, timeout.Token);
                    if (socket is not null) sockets.Add(socket);
                    replies.Add(reply);
                }));
            }
            output.WriteLine($"{sockets.Count} streams held, {replies.Count(r => r != 0)} refused");
            Assert.True(replies.Count(r => r != 0) >= 50, $"Only {replies.Count(r => r != 0)} of 300 streams were refused.");
            Assert.All(replies.Where(r => r != 0), r => Assert.Equal(1, r));
            Assert.False(exit.HasExited, exit.Output);
            Assert.DoesNotContain("Exit connect failed unexpectedly", exit.Output, StringComparison.Ordinal);
            Assert.InRange(Regex.Count(exit.Output, "resource limit: the process ran out of descriptors"), 1, 3);

            // Once the streams end, the descriptors are back and the exit serves again.
            foreach (var socket in sockets) socket.Dispose();
            destination.CloseAll();
            await Eventually.WaitUntilAsync(() => Descriptors(exit) <= idle + 8, TimeSpan.FromSeconds(30), $"the exit to close the ended streams' sockets (from {idle} before)");
            using var again = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            var (fresh, code) = await Socks5.ConnectAsync(socks, "later", destination.EndPoint, again.Token);
            fresh?.Dispose();
            Assert.Equal(0, code);
        }
        finally
        {
            try
            {
                Directory.Delete(root, recursive: true);
            }
            catch (IOException)
            {
                // Leftovers in a temporary directory are harmless.
            }
        }
    }

    [Fact]
    public async Task An_exit_under_a_low_descriptor_limit_refuses_the_streams_beyond_its_budget_stays_up_and_serves_another_partner()
    {
        using var destination = new HoldingServer(IPAddress.Loopback);
        string root = Directory.CreateTempSubdirectory("quid-fd-").FullName;
        try
        {
            // The exit grants both clients; each client's small offer is used up by the exit's
            // request, so the clients never partner each other and each one's only exit is this one.
            using var exit = QuidProcess.StartWithDescriptorLimit(Limit, Node(Path.Combine(root, "exit"), "127.0.15.1",
                "--socks", "off", "--exit-allow-private", "--offer", "1048576", "--request", "64"));
            string exitPort = (await exit.WaitForLineAsync(@"Accepting links on 127\.0\.15\.1:(\d+)", TimeSpan.FromSeconds(30))).Groups[1].Value;
            string[] client = ["--socks", "127.0.0.1:0", "--offer", "64", "--peer", $"127.0.15.1:{exitPort}"];

            using var attacker = QuidProcess.Start(Node(Path.Combine(root, "attacker"), "127.0.15.2", [.. client, "--request", "524288"]));
            string attackerSocks = (await attacker.WaitForLineAsync(@"SOCKS proxy on (127\.0\.0\.1:\d+)", TimeSpan.FromSeconds(30))).Groups[1].Value;
            await attacker.WaitForLineAsync("Circuit ready", TimeSpan.FromSeconds(60));

            // Three usernames, so three circuits, each asking for more streams than the exit could hold.
            var sockets = new ConcurrentBag<Socket>();
            var replies = new ConcurrentBag<int>();
            int worst = 0;
            for (int batch = 0; batch < 12; batch++)
            {
                await Task.WhenAll(Enumerable.Range(0, 25).Select(async _ =>
                {
                    using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
                    var (socket, reply) = await Socks5.ConnectAsync(attackerSocks, $"user{batch / 4}", destination.EndPoint, timeout.Token);
                    if (socket is not null) sockets.Add(socket);
                    replies.Add(reply);
                }));
                worst = Math.Max(worst, Descriptors(exit));
            }
            try
            {
                output.WriteLine($"{sockets.Count} streams held, {replies.Count(r => r != 0)} refused; the exit's most descriptors {worst} of {Limit}");
                Assert.False(exit.HasExited, exit.Output);
                Assert.True(worst < Limit - 16, $"The exit reached {worst} descriptors of {Limit}.");
                Assert.NotEmpty(sockets);
                // Refused, as SOCKS says a failure it has no better code for.
                Assert.All(replies.Where(r => r != 0), r => Assert.Equal(1, r));
                Assert.True(replies.Count(r => r != 0) >= 100, $"Only {replies.Count(r => r != 0)} of 300 streams were refused.");
                Assert.DoesNotContain("Too many open files", exit.Output, StringComparison.Ordinal);
                Assert.InRange(Regex.Count(exit.Output, "resource limit"), 1, 3);

                // Another partner, while the attack's streams stay open, gets its stream.
                using var honest = QuidProcess.Start(Node(Path.Combine(root, "honest"), "127.0.15.3", [.. client, "--request", "262144"]));
                string honestSocks = (await honest.WaitForLineAsync(@"SOCKS proxy on (127\.0\.0\.1:\d+)", TimeSpan.FromSeconds(30))).Groups[1].Value;
                await honest.WaitForLineAsync("Circuit ready", TimeSpan.FromSeconds(60));
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                var (fresh, code) = await Socks5.ConnectAsync(honestSocks, "someone", destination.EndPoint, timeout.Token);
                using (fresh)
                {
                    Assert.Equal(0, code);
                    await Eventually.WaitUntilAsync(() => destination.Clients.Count > sockets.Count, TimeSpan.FromSeconds(10), "the honest stream to arrive");
                    Assert.All(destination.Clients, c => Assert.Equal(IPAddress.Parse("127.0.15.1"), c));
                }
                Assert.False(exit.HasExited, exit.Output);
                Assert.True(Descriptors(exit) < Limit - 16);
            }
            finally
            {
                foreach (var socket in sockets) socket.Dispose();
            }
        }
        finally
        {
            try
            {
                Directory.Delete(root, recursive: true);
            }
            catch (IOException)
            {
                // Leftovers in a temporary directory are harmless.
            }
        }
    }
}
