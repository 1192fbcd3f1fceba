using System.Net;
using System.Net.Sockets;
using Quid.Links;

namespace Quid.Tests.Links;

public sealed class DescriptorsTests
{
    [Fact]
    public void The_descriptor_limit_is_read_from_the_system()
    {
        if (!OperatingSystem.IsLinux()) return;
        string line = File.ReadLines("/proc/self/limits").Single(l => l.StartsWith("Max open files", StringComparison.Ordinal));
        long soft = long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[3], System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(soft, Descriptors.Limit());
    }

    [Fact]
    public async Task A_connection_accepted_far_below_the_limit_is_not_in_the_reserve()
    {
        if (!OperatingSystem.IsLinux()) return;
        using var pair = await AcceptedPair.OpenAsync();
        // The test process holds a few hundred descriptors under a limit of thousands.
        Assert.True(Descriptors.Limit() > pair.Accepted.SafeHandle.DangerousGetHandle() + Descriptors.Reserve);
        Assert.False(Descriptors.InReserve(pair.Accepted));
    }
}

/// <summary>A connection on loopback, as an accept loop gets one.</summary>
internal sealed class AcceptedPair : IDisposable
{
    private readonly Socket _listener;
    private readonly Socket _client;

    private AcceptedPair(Socket listener, Socket client, Socket accepted) => (_listener, _client, Accepted) = (listener, client, accepted);

    public Socket Accepted { get; }

    public static async Task<AcceptedPair> OpenAsync()
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(listener.LocalEndPoint!);
        return new AcceptedPair(listener, client, await listener.AcceptAsync());
    }

    public void Dispose()
    {
        Accepted.Dispose();
        _client.Dispose();
        _listener.Dispose();
    }
}
